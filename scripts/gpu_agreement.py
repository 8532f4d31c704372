"""Census of the GPU engine against the CPU engine (and the captured hardware), bit for bit.

    python scripts/gpu_agreement.py [--golden DIR ...] [--json out.json]

Every reproducible output of every golden file (each DIR; default tests/data/golden and
../shared/golden), DeepGEMM's captures (group scaling), and random cases of every preset,
scaling, output type, format pair and promotion interval, with NaN/Inf codes and extreme
accumulators; prints the cases, elements and mismatches. Exits 1 on any mismatch.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
GOLDEN_FILES = ("gemm_public0", "gemm_public1", "special", "extra_public", "longk_public0",
                "longk_public1")


class Tally:
    """Counts cases, elements and mismatches per group."""

    def __init__(self) -> None:
        self.groups: dict[str, list[int]] = {}
        self.failures: list[str] = []

    def add(self, group: str, label: str, cpu: np.ndarray, gpu: np.ndarray,
            hw: np.ndarray | None = None) -> None:
        """Compares one output's bits (and the hardware's where given)."""
        g = self.groups.setdefault(group, [0, 0, 0, 0, 0])
        diff = int(np.count_nonzero(cpu != gpu))
        g[0] += 1
        g[1] += cpu.size
        g[2] += diff
        if hw is not None:
            g[3] += hw.size
            g[4] += int(np.count_nonzero(gpu != hw))
        if diff:
            self.failures.append(f"{group} {label}: {diff} of {cpu.size} differ")

    def report(self) -> dict:
        """Prints one line per group; returns the numbers."""
        out = {}
        for name, (cases, elems, diff, hw_elems, hw_diff) in self.groups.items():
            hw = f", vs hardware {hw_diff} of {hw_elems} differ" if hw_elems else ""
            print(f"{name:28s} {cases:6d} outputs {elems:11d} elements, GPU vs CPU {diff} "
                  f"differ{hw}")
            out[name] = {"outputs": cases, "elements": elems, "gpu_vs_cpu_differ": diff,
                         "hardware_elements": hw_elems, "gpu_vs_hardware_differ": hw_diff}
        for f in self.failures[:20]:
            print("MISMATCH", f)
        return out


def golden(tally: Tally, directories: list[Path]) -> None:
    """Every reproducible output of the golden files in `directories`."""
    from fp8sim import gemm
    from fp8sim.capture.golden import as_bits, known_unexplained, load_cases, output_spec

    for d in directories:
        for f in GOLDEN_FILES:
            path = d / f"{f}.npz"
            if not path.exists():
                continue
            group = f"golden {d.parent.name}/{d.name}"
            for case in load_cases(path):
                for name in case.outputs:
                    spec = output_spec(case, name)
                    if spec is None:
                        continue
                    cpu = as_bits(gemm(case.a, case.b, engine="cpu", **spec))
                    gpu = as_bits(gemm(case.a, case.b, engine="gpu", **spec))
                    hw = None if known_unexplained(case, name) else as_bits(case.arrays[name])
                    tally.add(group, f"{f}:{case.key}/{name}", cpu, gpu, hw)
        dg = d / "deepgemm_public.npz"
        if dg.exists():
            z = np.load(dg)
            for key in sorted({k.rsplit("/", 1)[0] for k in z.files if k.endswith("/A")}):
                kw = dict(promote=128, scale_a=z[f"{key}/scale_a"], scale_b=z[f"{key}/scale_b"],
                          scaling="group", out_dtype="bfloat16")
                cpu = as_bits(gemm(z[f"{key}/A"], z[f"{key}/B"], engine="cpu", **kw))
                gpu = as_bits(gemm(z[f"{key}/A"], z[f"{key}/B"], engine="gpu", **kw))
                tally.add(f"deepgemm {d.parent.name}", key, cpu, gpu, as_bits(z[f"{key}/out"]))


def random_cases(tally: Tally, seed: int = 0) -> None:
    """Random cases of every preset, scaling, output type, format pair and interval."""
    from fp8sim import decode, gemm
    from fp8sim.analysis.studies import random_case
    from fp8sim.capture.golden import as_bits
    from fp8sim.engine.mma import PRESETS

    rng = np.random.default_rng(seed)
    steps = dict(PRESETS) | {
        "hopper[frac_bits=16]": PRESETS["hopper"].replace(frac_bits=16),
        "hopper[frac_bits=17]": PRESETS["hopper"].replace(frac_bits=17),
        "hopper[frac_bits=20]": PRESETS["hopper"].replace(frac_bits=20),
        "hopper[frac_bits=0]": PRESETS["hopper"].replace(frac_bits=0),
        "hopper[terms=64]": PRESETS["hopper"].replace(terms=64)}
    pairs = [("e4m3", "e4m3"), ("e4m3", "e5m2"), ("e5m2", "e4m3"), ("e5m2", "e5m2")]
    shapes = [(64, 64, 4096), (130, 70, 1000), (1, 257, 33), (200, 1, 160)]
    for name, step in steps.items():
        for fa, fb in pairs:
            for si, (m, n, k) in enumerate(shapes):
                for promote in (0, 32, 128):
                    if promote % step.terms:
                        continue
                    dist = ("normal", "codes", "positive", "uniform")[si]
                    a, b = random_case(m, n, k, dist=dist, a_format=fa, b_format=fb,
                                       seed=int(rng.integers(1 << 30)))
                    c = None
                    if si % 2:
                        c = (rng.standard_normal((m, n)) *
                             10.0 ** rng.integers(-45, 39, (m, n))).astype(np.float32)
                    kw = dict(a_format=fa, b_format=fb, promote=promote, preset=step, c=c)
                    tally.add(f"random preset {name.split('[')[0]}"
                              + ("" if "[" not in name else " variants"),
                              f"{name} {fa}x{fb} {m}x{n}x{k} p{promote}",
                              as_bits(gemm(a, b, engine="cpu", **kw)),
                              as_bits(gemm(a, b, engine="gpu", **kw)))
    # scalings x output types, formats and intervals (hopper)
    for scaling in (None, "group", "tensor", "row"):
        for out_dtype in ("float32", "bfloat16", "float16"):
            for fa, fb in pairs:
                for promote in (0, 128) if scaling != "group" else (32, 128):
                    m, n, k = 96, 300, 1000
                    a, b = random_case(m, n, k, dist="normal", a_format=fa, b_format=fb,
                                       seed=int(rng.integers(1 << 30)))
                    g = -(-k // promote) if promote else 1
                    sa, sb = {None: (None, None),
                              "tensor": (np.float32(rng.random() * 4), np.float32(rng.random())),
                              "row": (rng.random((m, 1), np.float32), rng.random((1, n),
                                                                                   np.float32)),
                              "group": ((rng.random((m, g)) * 100).astype(np.float32),
                                        rng.random((g, -(-n // 128)), np.float32))}[scaling]
                    kw = dict(a_format=fa, b_format=fb, promote=promote, scale_a=sa,
                              scale_b=sb, scaling=scaling, out_dtype=out_dtype)
                    tally.add(f"random scaling {scaling}", f"{out_dtype} {fa}x{fb} p{promote}",
                              as_bits(gemm(a, b, engine="cpu", **kw)),
                              as_bits(gemm(a, b, engine="gpu", **kw)))
    # every code (NaN and Inf too), extreme accumulators; ragged and whole 64x64 tiles
    for (m, k, n), (fa, fb) in zip([(67, 300, 130), (128, 512, 192)] * 4,
                                   [p for p in pairs for _ in (0, 1)], strict=True):
        for promote in (0, 32, 128):
            a = rng.integers(0, 256, (m, k), dtype=np.uint8)
            b = rng.integers(0, 256, (k, n), dtype=np.uint8)
            fin = np.isfinite(decode(a, fa))
            a[:, ::3] = np.where(fin[:, ::3], a[:, ::3], 0x30)
            c = (rng.standard_normal((m, n)) * 10.0 ** rng.integers(-45, 39, (m, n))
                 ).astype(np.float32)
            c.flat[::5] = np.array([np.inf, -np.inf, np.nan, 3e38, -0.0, 1e-40, 2.0**60, 0.0],
                                   np.float32)[rng.integers(0, 8, c.flat[::5].size)]
            for preset in ("hopper", "ideal", "exact", "ada", "blackwell"):
                kw = dict(a_format=fa, b_format=fb, promote=promote, preset=preset, c=c)
                tally.add("random special codes, C", f"{preset} {fa}x{fb} p{promote}",
                          as_bits(gemm(a, b, engine="cpu", **kw)),
                          as_bits(gemm(a, b, engine="gpu", **kw)))
    # subnormal C passing through all-zero rows, subnormal scales and partials
    for preset in ("hopper", "ideal", "exact", "ada", "blackwell"):
        for promote in (0, 128):
            a, b = random_case(128, 64, 256, dist="normal", seed=int(rng.integers(1 << 30)))
            a[::2] = 0
            c = (rng.random((128, 64)) * 2.0**-126 * rng.choice([-1, 1], (128, 64))).astype(
                np.float32)
            kw = dict(promote=promote, preset=preset, c=c)
            if promote and preset != "exact":
                kw |= dict(scale_a=np.full((128, 2), 2.0**-70, np.float32),
                           scale_b=np.full((2, 1), 2.0**-60, np.float32), scaling="group")
            tally.add("random subnormal C, scales", f"{preset} p{promote}",
                      as_bits(gemm(a, b, engine="cpu", **kw)),
                      as_bits(gemm(a, b, engine="gpu", **kw)))
    # larger: many tiles, long K
    for promote, (m, n) in ((0, (1000, 700)), (128, (1000, 700)), (0, (1024, 768)),
                            (128, (1024, 768))):
        a, b = random_case(m, n, 8192, dist="normal", seed=int(rng.integers(1 << 30)))
        tally.add("random large", f"{m}x{n}x8192 p{promote}",
                  as_bits(gemm(a, b, engine="cpu", promote=promote)),
                  as_bits(gemm(a, b, engine="gpu", promote=promote)))


def epilogues(tally: Tally, golden_dirs: list[Path], seed: int = 1) -> None:
    """Every epilogue variant (`fp8sim.engine.epilogue`, when present) and the blockwise
    third-party kernels' captures, both engines."""
    try:
        from fp8sim.engine.epilogue import A_GRANULARITIES, B_GRANULARITIES, ORDERS, Epilogue
    except ImportError:
        print("epilogues: fp8sim.engine.epilogue not in this version, skipped")
        return
    import fp8sim
    from fp8sim import gemm
    from fp8sim.capture.golden import as_bits

    variants = []
    for sa, sb, order in ((x, y, o) for x in A_GRANULARITIES for y in B_GRANULARITIES
                          for o in ORDERS):
        for fused in (True, False):
            variants.append(Epilogue(name="v", when="promotion", scale_a=sa, scale_b=sb,
                                     order=order, fused=fused, block_n=128))
        if sa != "group" and sb not in ("block", "group-column"):
            variants.append(Epilogue(name="v", when="end", scale_a=sa, scale_b=sb,
                                     order=order, fused=False))
    rng = np.random.default_rng(seed)

    def scales(shape, kind):
        shape1 = shape or (1,)
        lo, hi = (-8, 8) if kind == "moderate" else (-140, 120)
        v = np.ldexp(rng.random(shape1) + 0.5, rng.integers(lo, hi, shape1))
        if kind != "moderate":
            v *= rng.choice([-1.0, 1.0], shape1)
        if kind == "special":
            pool = np.array([0.0, -0.0, np.inf, np.nan, 1e-45, 3.4e38])
            v = np.where(rng.random(shape1) < 0.1, pool[rng.integers(0, 6, shape1)], v)
        v = v.astype(np.float32)
        return v.reshape(()) if not shape else v

    for ep in variants:
        for kind in ("moderate", "wide", "special"):
            for (m, k, n) in ((70, 260, 140), (128, 512, 256)):
                promote = 128 if ep.when == "promotion" or kind != "wide" else 0
                a = rng.integers(0, 0x7B, (m, k), dtype=np.uint8) | \
                    (rng.integers(0, 2, (m, k), dtype=np.uint8) << 7)
                b = rng.integers(0, 0x7B, (k, n), dtype=np.uint8) | \
                    (rng.integers(0, 2, (k, n), dtype=np.uint8) << 7)
                c = rng.standard_normal((m, n)).astype(np.float32) if m == 70 else None
                want_a, want_b = ep.scale_shapes(m, k, n, promote)
                kw = dict(promote=promote, c=c, scaling=ep,
                          scale_a=None if want_a is None else scales(want_a, kind),
                          scale_b=None if want_b is None else scales(want_b, kind))
                tally.add(f"epilogue {ep.when}", f"{ep.key} {kind} {m}x{k}x{n}",
                          as_bits(gemm(a, b, engine="cpu", **kw)),
                          as_bits(gemm(a, b, engine="gpu", **kw)))
    families = {"cublas": "cublaslt-blockwise", "triton": "torchao-triton-blockwise"}
    for d in golden_dirs:
        path = d / "thirdparty_public_a.npz"
        if not path.exists():
            continue
        with np.load(path) as z:
            cases = sorted({k.rsplit("/", 1)[0] for k in z.files if k.startswith("gemm/")
                            and k.endswith("/A")})
            for case in cases:
                a, b = z[case + "/A"], z[case + "/B"]
                sa, sb = z[case + "/scale_a"], z[case + "/scale_b"]
                for fam, name in families.items():
                    for out, dtype in (("f32", "float32"), ("bf16", "bfloat16")):
                        kern = fp8sim.KERNELS[name]
                        kw = dict(scale_a=sa, scale_b=sb, out_dtype=dtype)
                        tally.add(f"thirdparty {d.parent.name}", f"{case} {fam}_{out}",
                                  as_bits(kern(a, b, engine="cpu", **kw)),
                                  as_bits(kern(a, b, engine="gpu", **kw)),
                                  as_bits(z[f"{case}/{fam}_{out}"]))


def main(argv: list[str] | None = None) -> int:
    """Runs the census; prints the tally."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--golden", action="append", type=Path, default=None)
    ap.add_argument("--json", default=None)
    ap.add_argument("--no-random", action="store_true")
    args = ap.parse_args(argv)
    from fp8sim.engine import _gpu

    why = _gpu.available()
    if why is not None:
        print(f"gpu_agreement: skipped, {why}")
        return 0
    dirs = args.golden or [ROOT / "tests" / "data" / "golden", ROOT.parent / "shared" / "golden"]
    tally = Tally()
    np.seterr(over="ignore")  # the random accumulators span float32's range on purpose
    t0 = time.perf_counter()
    golden(tally, [d for d in dirs if d.is_dir()])
    print(f"golden done in {time.perf_counter() - t0:.1f} s", flush=True)
    if not args.no_random:
        random_cases(tally)
        print(f"random done in {time.perf_counter() - t0:.1f} s", flush=True)
    epilogues(tally, [d for d in dirs if d.is_dir()])
    print(f"epilogues done in {time.perf_counter() - t0:.1f} s", flush=True)
    numbers = tally.report()
    total = sum(v["elements"] for v in numbers.values())
    bad = sum(v["gpu_vs_cpu_differ"] for v in numbers.values())
    print(f"TOTAL {sum(v['outputs'] for v in numbers.values())} outputs, {total} elements, "
          f"{bad} GPU-vs-CPU mismatches")
    if args.json:
        Path(args.json).write_text(json.dumps(numbers, indent=1))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
