"""The model, data and runs of the training what-if study (06_training_whatif.py); not a study.

A GPT-style decoder (pre-norm, causal self-attention, GELU MLP, untied head) on byte
tokens of the CPython standard library's own source: the running interpreter's stdlib
.py files (site-packages left out), sorted by path, each file in the train or the
validation split by the CRC-32 of its relative path (1 in 16 to validation).
Every ``nn.Linear`` becomes a `Float8SimLinear` for the FP8 runs; attention's score and
value matmuls (scaled_dot_product_attention), embeddings and LayerNorms stay as autocast
runs them (bf16 matmuls, fp32 norms). Every run, the bf16 reference included, trains
under ``torch.autocast(bfloat16)`` with fp32 master weights and AdamW.
"""

from __future__ import annotations

import dataclasses
import math
import sysconfig
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from fp8sim.engine.kernel import Kernel
from fp8sim.engine.mma import HOPPER
from fp8sim.recipes.layers import LINEAR_RECIPES, LinearRecipe
from fp8sim.torch import swap_linears


@dataclass(frozen=True)
class Config:
    """Model and training sizes."""

    d_model: int
    n_layer: int
    n_head: int
    seq: int
    batch: int
    steps: int
    log_every: int
    lr: float
    warmup: int
    val_batches: int
    corpus_bytes: int


TINY = Config(d_model=64, n_layer=1, n_head=2, seq=64, batch=4, steps=6, log_every=3,
              lr=3e-3, warmup=2, val_batches=2, corpus_bytes=1 << 20)
FULL = Config(d_model=384, n_layer=6, n_head=6, seq=256, batch=32, steps=80, log_every=10,
              lr=2e-3, warmup=10, val_batches=4, corpus_bytes=24 << 20)


@dataclass(frozen=True)
class Run:
    """One training run: a recipe (None: the bf16 reference) and a seed."""

    recipe: str
    accumulator: str
    promote: str
    seed: int
    linear: LinearRecipe | None = dataclasses.field(default=None, compare=False, repr=False)

    @property
    def name(self) -> str:
        return f"{self.recipe}|{self.accumulator}|{self.promote}|s{self.seed}"

    @property
    def config(self) -> str:
        """The run without its seed (what the seeds repeat)."""
        return self.name.rsplit("|", 1)[0]


def whatif_recipe(frac: int, promote: int) -> LinearRecipe:
    """torchao's tensorwise casts (E4M3 x, w; E5M2 gy; one scale per tensor) with every
    GEMM on an accumulator of `frac` fractional bits promoting every `promote` (0: never)."""
    step = HOPPER.replace(frac_bits=frac)
    kern = Kernel(name=f"whatif-f{frac}-p{promote}", step=step, promote=promote,
                  scaling="tensor", out_dtype="bfloat16")
    base = LINEAR_RECIPES["torchao-tensorwise"]
    return base.replace(name=f"whatif-f{frac}-p{promote}",
                        forward=dataclasses.replace(base.forward, kernel=kern),
                        grad_input=dataclasses.replace(base.grad_input, kernel=kern),
                        grad_weight=dataclasses.replace(base.grad_weight, kernel=kern))


NAMED = {"deepseek-v3": ("hopper-13", "128/128/128"),
         "torchao-tensorwise": ("hopper-13", "0/128/128"),
         "torchao-rowwise": ("hopper-13", "0/128/128")}
"""The named recipes: accumulator, promotion of forward/grad_input/grad_weight."""


def grid(tiny: bool, seeds: int, bf16_seeds: int) -> list[Run]:
    """The runs in priority order: bf16 seeds, the named recipes, then the what-if grid."""
    if tiny:
        return [Run("bf16", "bf16", "-", s) for s in range(2)] + [
            Run("deepseek-v3", *NAMED["deepseek-v3"], 0, LINEAR_RECIPES["deepseek-v3"]),
            Run("whatif", "frac10", "0/0/0", 0, whatif_recipe(10, 0))]
    runs = [Run("bf16", "bf16", "-", s) for s in range(bf16_seeds)]
    for s in range(seeds):
        runs += [Run(n, *NAMED[n], s, LINEAR_RECIPES[n]) for n in NAMED]
    # first the two one-way sweeps through 13 bits promoting never (the bits, the interval),
    # then the rest of the grid; 23 bits runs on the GPU's generic kernel (about 1.7x the
    # step time of 13 bits on the H100), so each of its groups comes after the others
    sweeps = [(13, 0), (10, 0), (16, 0), (13, 128), (13, 512)]
    rest = [(10, 128), (10, 512), (16, 128), (16, 512)]
    for group in (sweeps, [(23, 0)], rest, [(23, 128), (23, 512)]):
        for s in range(seeds):
            runs += [Run("whatif", f"frac{f}", "/".join([str(p)] * 3), s, whatif_recipe(f, p))
                     for f, p in group]
    return runs


def corpus(limit: int) -> tuple[torch.Tensor, torch.Tensor, int]:
    """(train bytes, validation bytes, files read) of the stdlib's .py sources."""
    root = Path(sysconfig.get_paths()["stdlib"])
    train, val = bytearray(), bytearray()
    files = 0
    for p in sorted(root.rglob("*.py")):
        rel = p.relative_to(root).as_posix()
        if "site-packages" in rel or "dist-packages" in rel:
            continue
        try:
            data = p.read_bytes()
        except OSError:
            continue
        files += 1
        (val if zlib.crc32(rel.encode()) % 16 == 0 else train).extend(data)
        if len(train) + len(val) >= limit:
            break
    as_t = lambda b: torch.frombuffer(b, dtype=torch.uint8).long()  # noqa: E731
    return as_t(train), as_t(val), files


class Block(nn.Module):
    """Pre-norm transformer block."""

    def __init__(self, d: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv = nn.Linear(d, 3 * d, bias=False)
        self.proj = nn.Linear(d, d, bias=False)
        self.fc1 = nn.Linear(d, 4 * d, bias=False)
        self.fc2 = nn.Linear(4 * d, d, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(d, dim=-1)
        q, k, v = (z.reshape(b, t, self.heads, d // self.heads).transpose(1, 2)
                   for z in (q, k, v))
        a = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.proj(a.transpose(1, 2).reshape(b, t, d))
        return x + self.fc2(F.gelu(self.fc1(self.ln2(x))))


class GPT(nn.Module):
    """Byte-level decoder: token and position embeddings, blocks, final norm, head."""

    def __init__(self, cfg: Config) -> None:
        super().__init__()
        self.tok = nn.Embedding(256, cfg.d_model)
        self.pos = nn.Embedding(cfg.seq, cfg.d_model)
        self.blocks = nn.ModuleList(Block(cfg.d_model, cfg.n_head) for _ in range(cfg.n_layer))
        self.ln = nn.LayerNorm(cfg.d_model)
        self.head = nn.Linear(cfg.d_model, 256, bias=False)
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Embedding)):
                nn.init.normal_(m.weight, std=0.02)
        for blk in self.blocks:  # GPT-2's scaled residual projections
            for m in (blk.proj, blk.fc2):
                nn.init.normal_(m.weight, std=0.02 / math.sqrt(2 * cfg.n_layer))

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        x = self.tok(idx) + self.pos(torch.arange(idx.shape[1], device=idx.device))
        for blk in self.blocks:
            x = blk(x)
        return self.head(self.ln(x))


def _batch(data: torch.Tensor, gen: torch.Generator, cfg: Config, device) -> tuple:
    starts = torch.randint(0, data.numel() - cfg.seq - 1, (cfg.batch,), generator=gen)
    rows = torch.stack([data[s:s + cfg.seq + 1] for s in starts.tolist()])
    rows = rows.to(device, non_blocking=True)
    return rows[:, :-1], rows[:, 1:]


def _loss(model, x, y, device_type: str) -> torch.Tensor:
    with torch.autocast(device_type, dtype=torch.bfloat16):
        logits = model(x)
    return F.cross_entropy(logits.float().reshape(-1, 256), y.reshape(-1))


def train(run: Run, cfg: Config, data: tuple, device: str, emit, deadline: float,
          progress=None) -> tuple[bool, float]:
    """Trains one run, calling emit(row) at every log step; (finished, seconds per step)."""
    train_data, val_data = data
    torch.manual_seed(run.seed)
    model = GPT(cfg).to(device)
    params = sum(p.numel() for p in model.parameters())
    if run.linear is not None:
        swap_linears(model, recipe=run.linear, engine="gpu" if device == "cuda" else "cpu")
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, betas=(0.9, 0.95),
                            weight_decay=0.1)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / cfg.warmup) * (
        0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, s / cfg.steps)))))
    gen = torch.Generator().manual_seed(1000 + run.seed)
    vgen = torch.Generator().manual_seed(99)  # the same validation batches for every run
    val = [_batch(val_data, vgen, cfg, device) for _ in range(cfg.val_batches)]
    dev_type = "cuda" if device == "cuda" else "cpu"
    name = torch.cuda.get_device_name() if device == "cuda" else "cpu"
    losses, t_steps = [], []
    for step in range(1, cfg.steps + 1):
        if time.time() > deadline:
            return False, _mean(t_steps)
        t0 = time.perf_counter()
        x, y = _batch(train_data, gen, cfg, device)
        loss = _loss(model, x, y, dev_type)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        losses.append(loss.detach())
        if device == "cuda":
            torch.cuda.synchronize()
        t_steps.append(time.perf_counter() - t0)
        if progress is not None:
            progress(step)
        if step % cfg.log_every == 0 or step == cfg.steps:
            with torch.no_grad():
                vloss = sum(float(_loss(model, vx, vy, dev_type)) for vx, vy in val) / len(val)
            emit({"run": run.name, "recipe": run.recipe, "accumulator": run.accumulator,
                  "promote": run.promote, "seed": run.seed, "step": step,
                  "tokens": step * cfg.batch * cfg.seq,
                  "train_loss": float(torch.stack(losses).mean()), "val_loss": vloss,
                  "device": name, "params": params})
            losses = []
    return True, _mean(t_steps[1:] or t_steps)


def _mean(v: list[float]) -> float:
    return sum(v) / len(v) if v else float("nan")
