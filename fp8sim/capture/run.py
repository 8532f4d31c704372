"""Running a capture on an NVIDIA GPU and saving every bit: one ``.npz`` file per group.

`capture` runs the cases of `fp8sim.capture.cases` (or, for a real-stack group, its stack
through `fp8sim.capture.stacks.runner`) and writes ``.npz`` files in the layout of
`fp8sim.capture.golden` (and of ``../shared/golden``): GEMM cases under
``<fa>_<fb>/<dist>/<tag>/<name>`` with inputs ``A`` (M, K uint8), ``B`` (K, N uint8),
optional ``C``, ``scale_a``/``scale_b`` (group scales; ``scale_b`` is (ceil(N/128),
groups)), ``tensor_scale_a/b``, ``row_scale_a/b``, a ``meta`` string (what failed to run
and why), and one array per kernel output:

- ``triton_p<N>``: a Triton kernel, one program per 64 x 64 tile, BLOCK_K = 32,
  ``part = tl.dot(a, b, part)`` and ``acc += part; part = 0`` every N elements (0: never);
  loads are masked, so any M, N, K run; C (when given) is the first partial's start.
- ``triton_scaled_p128``: DeepGEMM-style, ``acc = tl.fma(part, sa[i, g] * sb[j // 128, g],
  acc)`` every 128.
- ``cublas_{fast,slow}_{f32,bf16,f16}[_scaled]``: ``torch._scaled_mm`` (column-major B),
  ``use_fast_accum`` True/False, unit or per-tensor scales; bf16/f16 as uint16 bits.
- ``rowwise_{fast,slow}_bf16``: ``torch._scaled_mm`` with row-wise scales.

Conversions sit at the top level as in ``convert_public.npz``: ``x`` (float32) and
``torch_<fmt>``, ``cuda_<fmt>_nosat``, ``cuda_<fmt>_sat`` (uint8 codes); a top-level
``meta`` string (JSON) names the device, torch/triton/CUDA versions, group and seed.

The inputs come from `fp8sim.capture.cases.build_cases` (numpy only, deterministic); only
running them needs torch, triton, cupy and a GPU (`fp8sim.capture.kernels`).

Groups of real FP8 training stacks (`fp8sim.capture.stacks.STACK_GROUPS`: torchao's
blockwise GEMMs through cuBLASLt and Triton, torchao's casts and Linear recipes, DeepGEMM)
draw and cast their inputs on the GPU with the stack's own code (`fp8sim.capture.stacks`);
their files are described in `fp8sim.capture.golden` (`STACK_ARRAYS`). They need torchao
there (carry its wheel) and, for ``deepgemm``, DeepGEMM's source tree (commit fcd1dcd, the
JIT era, with CUTLASS's ``include/cute`` and ``include/cutlass`` copied into
``deep_gemm/include`` and, for CUDA 13, ``typedef PFN_cuTensorMapEncodeTiled_v12000
PFN_cuTensorMapEncodeTiled;`` in ``tma_utils.cuh``) passed as ``deepgemm_src``.
"""

from __future__ import annotations

import json
import traceback
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np

from fp8sim.capture.cases import GROUPS, CaseSpec, build_cases, conversion_inputs
from fp8sim.capture.stacks import STACK_GROUPS

__all__ = ["gpu_available", "stacks_available", "capture", "NO_GPU_MESSAGE"]

NO_GPU_MESSAGE = "no CUDA GPU with torch and triton: nothing captured"
_OUTS = {"f32": "float32", "bf16": "bfloat16", "f16": "float16"}


def gpu_available() -> bool:
    """True where torch, triton and a CUDA GPU are all there."""
    try:
        import torch
        import triton  # noqa: F401
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def stacks_available(group: str, deepgemm_src: str | None = None) -> str | None:
    """None where `group` of `STACK_GROUPS` can run here, else why not (one line)."""
    import importlib.util
    needs = STACK_GROUPS[group].needs
    missing = [m for m in needs if m != "deep_gemm" and importlib.util.find_spec(m) is None]
    if "deep_gemm" in needs and not deepgemm_src and importlib.util.find_spec("deep_gemm") is None:
        missing.append("deep_gemm (or deepgemm_src)")
    if missing:
        return f"{group}: not captured, missing {', '.join(missing)}"
    return None


def _run_case(spec: CaseSpec, kern) -> tuple[dict[str, np.ndarray], list[str]]:
    """Every output of one case, and a line for each kernel that could not run."""
    out: dict[str, np.ndarray] = {"A": spec.a, "B": spec.b}
    errors: list[str] = []

    def attempt(name: str, fn: Callable[[], np.ndarray]) -> None:
        try:
            out[name] = fn()
        except Exception as e:  # noqa: BLE001 - a kernel the GPU or torch refuses is recorded
            errors.append(f"{name}: {type(e).__name__}: {str(e).splitlines()[0][:200]}"
                          if str(e) else f"{name}: {type(e).__name__}")

    fa, fb, a, b = spec.a_format, spec.b_format, spec.a, spec.b
    if spec.c is not None:
        out["C"] = spec.c
    for p in spec.promotes:
        attempt(f"triton_p{p}", lambda p=p: kern.triton_gemm(a, b, fa, fb, p, spec.c))
    if spec.scaled:
        sa, sb = spec.group_scales
        out["scale_a"], out["scale_b"] = sa, sb
        attempt("triton_scaled_p128", lambda: kern.triton_scaled_gemm(a, b, fa, fb, sa, sb))
    cublas_ok = spec.cublas and (fa, fb) != ("e5m2", "e5m2")
    if cublas_ok:
        for speed in ("fast", "slow"):
            for o, dt in _OUTS.items():
                attempt(f"cublas_{speed}_{o}", lambda s=speed, dt=dt: kern.scaled_mm(
                    a, b, fa, fb, fast=s == "fast", out_dtype=dt))
        if spec.tensor_scales is not None:
            ta = np.float32(spec.tensor_scales[0])
            tb = np.float32(spec.tensor_scales[1])
            out["tensor_scale_a"], out["tensor_scale_b"] = np.array(ta), np.array(tb)
            for speed in ("fast", "slow"):
                for o, dt in _OUTS.items():
                    attempt(f"cublas_{speed}_{o}_scaled", lambda s=speed, dt=dt: kern.scaled_mm(
                        a, b, fa, fb, fast=s == "fast", out_dtype=dt, scale_a=ta, scale_b=tb))
        if spec.row_scales:
            ra = spec.extra.get("row_scale_a")
            rb = spec.extra.get("row_scale_b")
            if ra is None:
                rng = np.random.default_rng(zlib.crc32(spec.key.encode()))
                ra = (2.0 ** rng.uniform(-6, 6, (a.shape[0], 1))).astype(np.float32)
                rb = (2.0 ** rng.uniform(-6, 6, (1, b.shape[1]))).astype(np.float32)
            out["row_scale_a"], out["row_scale_b"] = ra, rb
            for speed in ("fast", "slow"):
                attempt(f"rowwise_{speed}_bf16", lambda s=speed: kern.scaled_mm(
                    a, b, fa, fb, fast=s == "fast", out_dtype="bfloat16", scale_a=ra,
                    scale_b=rb))
    out["meta"] = np.array(json.dumps({"errors": errors}))
    return out, errors


def _conversions(kern) -> tuple[dict[str, np.ndarray], list[str]]:
    x = conversion_inputs()
    out = {"x": x}
    errors = []
    for fmt in ("e4m3", "e5m2"):
        try:
            out[f"torch_{fmt}"] = kern.convert_torch(x, fmt)
        except Exception as e:  # noqa: BLE001
            errors.append(f"torch_{fmt}: {e}")
        for sat in (False, True):
            name = f"cuda_{fmt}_{'sat' if sat else 'nosat'}"
            try:
                out[name] = kern.convert_cuda(x, fmt, sat)
            except Exception as e:  # noqa: BLE001
                errors.append(f"{name}: {str(e)[:300]}")
    return out, errors


def capture(out_dir: str | Path, groups: list[str] | None = None, *, seed: int = 7,
            conversions: bool = True, log: Callable[[str], None] = print,
            deepgemm_src: str | None = None) -> list[Path]:
    """Runs every case of `groups` on the GPU and writes ``capture_<group>.npz`` files.

    Args:
        out_dir: folder for the files (created if missing).
        groups: names from `GROUPS` (default: all of them).
        seed: seed of the random inputs.
        conversions: also capture torch and CUDA float32 -> FP8 conversions (into the
            "special" file, or "main" if special is not captured).
        log: receives one line per case and per failure.
        deepgemm_src: DeepGEMM's source tree (the ``deepgemm`` group and DeepGEMM's casts
            in ``casts``); without it, an installed ``deep_gemm`` is used if there is one.

    Returns:
        The paths written; [] without a GPU (after logging NO_GPU_MESSAGE).
    """
    if not gpu_available():
        log(NO_GPU_MESSAGE)
        return []
    from fp8sim.capture import kernels as kern
    groups = list(GROUPS) if groups is None else groups
    for g in groups:
        if g not in GROUPS:
            raise ValueError(f"groups: expected names from {', '.join(GROUPS)}, got {g!r}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    log(f"device: {kern.device_name()}")
    numpy_groups = [g for g in groups if g not in STACK_GROUPS]
    conv_group = "special" if "special" in groups else (numpy_groups or [None])[0]
    written = []
    for g in groups:
        if g in STACK_GROUPS:
            why = stacks_available(g, deepgemm_src)
            if why:
                log(why)
                continue
            from fp8sim.capture.stacks.runner import run_family
            try:
                written.append(run_family(
                    g, out_dir / f"capture_{g}.npz", log=log,
                    limit_mib=STACK_GROUPS[g].limit_mib, deepgemm_src=deepgemm_src))
            except Exception:  # noqa: BLE001 - one family failing keeps the others
                log(f"{g}: FAILED\n{traceback.format_exc()}")
            continue
        arrays: dict[str, np.ndarray] = {}
        for spec in build_cases(g, seed):
            try:
                res, errors = _run_case(spec, kern)
            except Exception:  # noqa: BLE001
                log(f"{spec.key}: FAILED\n{traceback.format_exc()}")
                continue
            for name, v in res.items():
                arrays[f"{spec.key}/{name}"] = v
            n_out = len([n for n in res if n not in ("A", "B", "C", "meta") and "scale" not in n])
            log(f"{spec.key}: {n_out} outputs" + (f"; not run: {'; '.join(errors)}"
                                                    if errors else ""))
        if conversions and g == conv_group:
            conv, errors = _conversions(kern)
            arrays.update(conv)
            log(f"conversions: {len(conv) - 1} outputs" + (f"; failed: {errors}" if errors
                                                           else ""))
        arrays["meta"] = np.array(json.dumps({"device": kern.device_name(), "group": g,
                                              "seed": seed}))
        path = out_dir / f"capture_{g}.npz"
        np.savez_compressed(path, **arrays)
        log(f"wrote {path} ({path.stat().st_size / 2**20:.1f} MiB)")
        written.append(path)
    return written
