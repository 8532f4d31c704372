"""Torch helpers shared by the stack modules: seeded bf16 draws on the device, raw bits out.

Every stack module draws its inputs with `gen` and `draw` (reproducible on the same GPU)
and saves tensors with `bits` and `f32`, so all files encode arrays the same way.
Imported only where torch exists.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["DEVICE", "sync", "empty_cache", "on_device", "bits", "f32", "gen", "draw"]

DEVICE = "cuda"
"""Where inputs are drawn and kernels run (tests set "cpu" to check the plumbing)."""


def sync() -> None:
    """Waits for the GPU (nothing on the CPU)."""
    if DEVICE == "cuda":
        torch.cuda.synchronize()


def empty_cache() -> None:
    """Frees the GPU's cached memory between cases (nothing on the CPU)."""
    if DEVICE == "cuda":
        torch.cuda.empty_cache()


def on_device(a: np.ndarray) -> torch.Tensor:
    """A numpy array (crop indices) as a tensor on DEVICE."""
    return torch.from_numpy(a).to(DEVICE)


def bits(t: torch.Tensor) -> np.ndarray:
    """Raw bits of a tensor: float32 -> uint32, bf16/f16 -> uint16, FP8 and uint8 -> uint8."""
    t = t.detach().contiguous().cpu()
    if t.dtype == torch.float32:
        return t.view(torch.int32).numpy().view(np.uint32)
    if t.dtype in (torch.bfloat16, torch.float16):
        return t.view(torch.int16).numpy().view(np.uint16)
    if t.dtype in (torch.float8_e4m3fn, torch.float8_e5m2):
        return t.view(torch.uint8).numpy()
    if t.dtype == torch.uint8:
        return t.numpy()
    raise TypeError(f"t: no bit layout for {t.dtype}")


def f32(t: torch.Tensor) -> np.ndarray:
    """A scale tensor as a contiguous float32 numpy array (logical orientation)."""
    return t.detach().float().contiguous().cpu().numpy()


def gen(seed: int) -> torch.Generator:
    """A generator on DEVICE seeded with `seed` (inputs are reproducible on the same GPU)."""
    g = torch.Generator(device=DEVICE)
    g.manual_seed(seed)
    return g


def draw(dist: str, shape: tuple[int, int], g: torch.Generator) -> torch.Tensor:
    """bf16 inputs: 'normal' N(0,1); 'outlier' N(0,1) with 0.5% of entries times 2^U(4,12);
    'wide' a random sign times 2^U(-12,4) per element."""
    if dist == "normal":
        x = torch.randn(shape, generator=g, device=DEVICE)
    elif dist == "outlier":
        x = torch.randn(shape, generator=g, device=DEVICE)
        hit = torch.rand(shape, generator=g, device=DEVICE) < 0.005
        mag = torch.exp2(4 + 8 * torch.rand(shape, generator=g, device=DEVICE))
        x = torch.where(hit, x * mag, x)
    elif dist == "wide":
        sign = torch.where(torch.rand(shape, generator=g, device=DEVICE) < 0.5, -1.0, 1.0)
        x = sign * torch.exp2(-12 + 16 * torch.rand(shape, generator=g, device=DEVICE))
    else:
        raise ValueError(f"dist: expected normal, outlier or wide, got {dist!r}")
    return x.to(torch.bfloat16).contiguous()
