"""Driver of the cuBLASLt probe: which split-K cuBLASLt runs for torch's FP8 GEMMs, per shape.

Runs on the GPU machine under the interposer (interpose.c, LD_PRELOADed): every
``cublasLtMatmul`` torch makes is written as a JSON line with the algorithm configuration
(split-K count, reduction scheme, tile, stages). Imports without torch (the parsing and the
grid are used on the CPU too); torch is imported inside the GPU functions.

    gcc -O2 -shared -fPIC -I$(python3 -c 'import nvidia,os;print(os.path.dirname(
        nvidia.__path__[0]))')/nvidia/cu13/include -o libltprobe.so interpose.c -ldl
    LD_PRELOAD=$PWD/libltprobe.so FP8SIM_LT_LOG=$OUT/calls.jsonl \\
        python3 record.py all --out $OUT --card H100

``all``: a mapping check (a non-square shape, its torch (M, N, K) against the record),
random-shape captures at full precision (``captures.npz``: cropped A, B, scales, D and the
recorded configuration), then the grid in record-only mode (``grid.csv``: one row per
family, out dtype and shape).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import time
from pathlib import Path

import numpy as np

FAMILIES = ("tensor-fast", "tensor", "row-fast", "row", "block128", "block1")
"""torch scaling: per-tensor / row-wise with and without fast accumulation; blockwise
1x128 x 128x128 (forward) and 1x128 x 128x1 (Wgrad)."""
OUTS = ("float32", "bfloat16")

MS = (1, 2, 3, 4, 8, 16, 32, 64, 96, 128, 256, 512, 1000, 1024, 2048, 3000, 4096, 8192,
      16384, 32768, 65536)
"""Tokens per GEMM (M)."""
DIMS = (128, 256, 512, 1024, 1536, 2048, 3584, 4096, 5120, 7168, 8192, 14336, 16384, 18432,
        18944, 24576, 28672)
"""Projection sizes of DeepSeek-V3, Llama 3 8B/70B, Qwen 2.5, Mixtral (and MoE expert
widths 128, 256)."""
WGRAD_K = (4096, 8192, 16384, 32768, 65536, 131072)
"""Tokens as the contraction of a Wgrad GEMM."""
SMALL = (64, 128, 192, 256, 320, 384, 512)
SMALL_K = (4096, 5120, 6144, 7168, 8192, 10240, 12288, 14336, 16384, 20480, 24576, 32768,
           40960, 49152, 65536, 98304, 131072)
MAX_BYTES = 40e9
SPLIT_M = (1, 2, 4, 5, 8, 12, 16, 24, 32, 48, 64, 96, 100, 128, 192, 256, 384, 512)
SPLIT_N = (16, 32, 64, 128, 192, 256, 384, 512, 768, 1024, 1536, 2048, 3072, 4096, 6144,
           8192, 12288)
SPLIT_K = tuple(range(5120, 33792, 1024)) + (36864, 40960, 49152, 57344, 65536, 81920,
                                              98304, 131072)


def grid_shapes(extended: bool = False) -> list[tuple[int, int, int]]:
    """The (M, N, K) grid: forward/Dgrad (M tokens x projections), Wgrad (projections x
    tokens as K), and small outputs at long K (where cuBLASLt splits); `extended` adds a
    denser grid of the split region (few output tiles, K > 5120)."""
    shapes = {(m, n, k) for m in MS for n in DIMS for k in DIMS if k >= 512}
    shapes |= {(m, n, k) for m in DIMS[2:] for n in DIMS[2:] for k in WGRAD_K}
    shapes |= {(m, n, k) for m in SMALL for n in SMALL for k in SMALL_K}
    if extended:
        shapes |= {(m, n, k) for m in SPLIT_M for n in SPLIT_N for k in SPLIT_K}
    shapes = {s for s in shapes if _bytes(*s) <= MAX_BYTES}
    return sorted(shapes)


DENSE_MN = 160_000
"""Dense recordings cover outputs up to this many elements (past the largest split one)."""


def dense_forward_shapes() -> list[tuple[int, int, int]]:
    """Every M from 1 to DENSE_MN / N for N and K projections (K >= 5120): the forward and
    Dgrad GEMMs of the common models at any token count, where cuBLASLt may split."""
    return [(m, n, k) for n in DIMS for k in DIMS if k >= 5120
            for m in range(1, min(MS[-1], DENSE_MN // n) + 1)]


def dense_wgrad_shapes(step: int) -> list[tuple[int, int, int]]:
    """Every K (tokens, a multiple of `step`) from 5120 to 131072 for M and N projections
    with M x N <= DENSE_MN: the Wgrad GEMMs of the common models at any token count."""
    return [(m, n, k) for m in DIMS for n in DIMS if m * n <= DENSE_MN
            for k in range(5120, WGRAD_K[-1] + 1, step)]


def random_shapes(count: int, seed: int = 11) -> list[tuple[int, int, int]]:
    """Random shapes of the split region (held out from the grid, to validate a rule)."""
    rng = np.random.default_rng(seed)
    return [(int(rng.integers(1, 513)), 16 * int(rng.integers(1, 257)),
             128 * int(rng.integers(40, 1025))) for _ in range(count)]


def _bytes(m: int, n: int, k: int) -> float:
    return m * k + k * n + 4.0 * m * n


def torch_shape(rec: dict) -> tuple[int, int, int]:
    """torch's (M, N, K) of a recorded call: torch computes row-major D (M, N) as the
    column-major D^T, so cuBLASLt's m is torch's N, its n torch's M; K from A's layout."""
    d, a = rec["d"], rec["a"]
    m_lt, n_lt = d["rows"], d["cols"]
    k = a["rows"] if rec["desc"].get("transa", 0) == 1 else a["cols"]
    return int(n_lt), int(m_lt), int(k)


def read_log(path: str | Path) -> list[dict]:
    """The JSON records of a probe log (a truncated last line is skipped)."""
    out = []
    with open(path) as f:
        for line in f:
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return out


CSV_FIELDS = ("card", "family", "out", "M", "N", "K", "splitk", "reduction", "algo", "tile",
              "stages", "swizzle", "custom", "cluster", "inner", "calls", "error")


def csv_row(card: str, family: str, out: str, shape, recs: list[dict], error: str = "") -> dict:
    """One grid row: the configuration of the (single) matmul recorded for a torch call."""
    row = dict.fromkeys(CSV_FIELDS, "")
    row.update(card=card, family=family, out=out, M=shape[0], N=shape[1], K=shape[2],
               calls=len(recs), error=error[:120])
    if recs:
        al = recs[-1].get("algo") or {}
        row.update(splitk=al.get("splitk_num", ""), reduction=al.get("reduction_scheme", ""),
                   algo=al.get("algo_id", ""), tile=al.get("tile_id", ""),
                   stages=al.get("stages_id", ""), swizzle=al.get("cta_swizzling", ""),
                   custom=al.get("custom_option", ""), cluster=al.get("cluster_shape_id", ""),
                   inner=al.get("inner_shape_id", ""))
    return row


# ---------------------------------------------------------------- GPU side (torch inside)

class Probe:
    """The interposer's controls (tag, record-only) and the log it writes."""

    def __init__(self, log: str):
        import ctypes
        lib = ctypes.CDLL(None)
        self._tag = lib.fp8sim_probe_tag
        self._tag.argtypes = [ctypes.c_char_p]
        self._skip = lib.fp8sim_probe_skip
        self._skip.argtypes = [ctypes.c_int]
        self.log = log
        Path(log).touch()
        self._pos = 0

    def tag(self, text: str) -> None:
        self._tag(text.encode())

    def skip(self, on: bool) -> None:
        self._skip(1 if on else 0)

    def new(self) -> list[dict]:
        """Records written since the last call."""
        with open(self.log) as f:
            f.seek(self._pos)
            text = f.read()
            self._pos = f.tell()
        return [json.loads(s) for s in text.splitlines() if s.strip()]


def _scales(torch, family: str, m: int, n: int, k: int, gen, random: bool):
    """(scale_a, scale_b) in the layouts torch checks: tensor (), row (M, 1) / (1, N),
    block128 (M, K/128) column-major / (round_up(K/128, 4), N/128) column-major, block1
    (M, K/128) column-major / (N, K/128) column-major (torch 2.11's layouts)."""
    g = -(-k // 128)

    def val(*shape):
        if not random:
            return torch.ones(shape, device="cuda")
        return torch.rand(shape, device="cuda", generator=gen) * 1.5 + 0.25

    if family.startswith("tensor"):
        return val(), val()
    if family.startswith("row"):
        return val(m, 1), val(1, n)
    sa = val(g, m).t()
    if family == "block128":  # (round_up(G, 4), N/128), column-major; rows past G unused
        return sa, val(-(-n // 128), -(-g // 4) * 4).t()
    return sa, val(g, n).t()  # (N, G) column-major: the (G, N) row-major scales of b^T


def call(torch, family: str, a, b, sa, sb, out: str):
    """One torch FP8 GEMM of the family: a (M, K) row-major, b (K, N) column-major."""
    od = {"float32": torch.float32, "bfloat16": torch.bfloat16}[out]
    if family in ("block128", "block1"):
        import torch.nn.functional as F
        st = F.ScalingType
        b1 = getattr(st, "BlockWise1x128", None) or st.Blockwise_1x128
        b128 = getattr(st, "BlockWise128x128", None) or st.Blockwise_128x128
        return F.scaled_mm(a, b, sa, b1, sb, b128 if family == "block128" else b1,
                           output_dtype=od)
    return torch._scaled_mm(a, b, scale_a=sa, scale_b=sb, out_dtype=od,
                            use_fast_accum=family.endswith("fast"))


def call_any(torch, family: str, a, b, sa, sb, out: str):
    """`call`; a blockwise scale_b torch refuses is retried row-major (the same values)."""
    try:
        return call(torch, family, a, b, sa, sb, out)
    except (ValueError, RuntimeError) as e:
        if not family.startswith("block") or "scale_b" not in str(e):
            raise
        return call(torch, family, a, b, sa, sb.contiguous(), out)


def run_grid(probe: Probe, card: str, out_dir: Path, families=FAMILIES, shapes=None,
             budget_s: float = 300.0, name: str = "grid.csv") -> Path:
    """Every grid shape x family x out dtype in record-only mode -> grid.csv. Shapes run in
    a fixed shuffled order, so a time budget cut leaves a random subset out; a family that
    makes no cuBLASLt call (torch runs another library) is tried once and left out."""
    import torch
    shapes = grid_shapes() if shapes is None else list(shapes)
    np.random.default_rng(5).shuffle(shapes)
    probe.skip(True)
    max_a = max(m * k for m, n, k in shapes)
    max_b = max(k * n for m, n, k in shapes)
    pool_a = torch.empty(max_a, dtype=torch.uint8, device="cuda")
    pool_b = torch.empty(max_b, dtype=torch.uint8, device="cuda")
    path = out_dir / name
    t0 = time.time()
    live = {(f, o) for f in families for o in OUTS}
    done = 0
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, CSV_FIELDS)
        w.writeheader()
        for m, n, k in shapes:
            if time.time() - t0 > budget_s:
                print(f"grid: time budget spent after {done} of {len(shapes)} shapes", flush=True)
                break
            a = pool_a[:m * k].view(torch.float8_e4m3fn).view(m, k)
            b = pool_b[:k * n].view(torch.float8_e4m3fn).view(n, k).t()
            for fam in families:
                sa, sb = _scales(torch, fam, m, n, k, None, False)
                for out in OUTS:
                    if (fam, out) not in live:
                        continue
                    probe.tag(f"grid {fam} {out} {m} {n} {k}")
                    err = ""
                    try:
                        call_any(torch, fam, a, b, sa, sb, out)
                    except Exception as e:  # noqa: BLE001 - what torch refuses is recorded
                        err = f"{type(e).__name__}: {e}".replace("\n", " ")
                    recs = probe.new()
                    w.writerow(csv_row(card, fam, out, (m, n, k), recs, err))
                    if not recs and not err:
                        live.discard((fam, out))
                        print(f"grid: {fam} {out} makes no cuBLASLt call; left out", flush=True)
            done += 1
            if done % 500 == 0:
                print(f"grid: {done} shapes at {time.time() - t0:.1f}s", flush=True)
                torch.cuda.empty_cache()
    print(f"grid: {done} shapes in {time.time() - t0:.1f}s", flush=True)
    probe.skip(False)
    return path


def random_cases(card: str, count: int, families=FAMILIES) -> list[tuple[str, str, int, int, int]]:
    """(family, out, M, N, K) at random shapes: a third with few output tiles and long K
    (anywhere), a third forward/Dgrad (random M, N and K projections), a third Wgrad (M and
    N projections, random tokens K) -- the last two inside the densely recorded range."""
    rng = np.random.default_rng({"H100": 100, "H200": 200}.get(card, 7))
    cases = []
    combos = [(f, o) for f in families for o in OUTS]
    pairs = sorted({(m, n) for m, n, _ in dense_wgrad_shapes(1 << 20)})
    for i in range(count):
        fam, out = combos[i % len(combos)]
        block = fam.startswith("block")
        kind = (i // len(combos)) % 3
        if kind == 0:
            m = int(rng.integers(1, 400))
            if block and i % 2:
                m = 4 * int(rng.integers(1, 100))
            n = 16 * int(rng.integers(1, 24))
            k = 128 * int(rng.integers(40, 160)) if i % 5 else 128 * int(rng.integers(4, 40))
            if not block:
                k += 16 * int(rng.integers(0, 8))
        elif kind == 1:
            n = DIMS[int(rng.integers(0, 9))]
            k = DIMS[int(rng.integers(8, len(DIMS) - 3))]
            m = int(rng.integers(4 if block else 1, DENSE_MN // n + 1))
        else:
            m, n = pairs[int(rng.integers(0, len(pairs)))]
            k = (128 if block else 16) * int(rng.integers(5120 // 16 // (8 if block else 1),
                                                         65536 // (128 if block else 16)))
        cases.append((fam, out, m, n, k))
    return cases


def _wide(torch, gen, rows: int, cols: int):
    """E4M3 values over many binades (normal x 2^U(-8, 8)): promotion and split-K round
    differently on such sums, so the split shows in the bits."""
    x = torch.randn(rows, cols, device="cuda", generator=gen)
    e = torch.randint(-8, 9, (rows, cols), device="cuda", generator=gen).float()
    return (x * torch.exp2(e)).clamp(-448, 448).to(torch.float8_e4m3fn)


def run_captures(probe: Probe, card: str, out_dir: Path, count: int,
                 families=FAMILIES) -> Path:
    """Random-shape GEMMs at full precision: cropped rows/columns of A, B, scales, D and the
    recorded configuration -> captures.npz."""
    import torch
    probe.skip(False)
    gen = torch.Generator(device="cuda").manual_seed(1234)
    rng = np.random.default_rng(99)
    saved: dict[str, np.ndarray] = {}
    for i, (fam, out, m, n, k) in enumerate(random_cases(card, count, families)):
        a, b = _wide(torch, gen, m, k), _wide(torch, gen, n, k).t()
        sa, sb = _scales(torch, fam, m, n, k, gen, True)
        probe.tag(f"cap {fam} {out} {m} {n} {k}")
        try:
            d = call_any(torch, fam, a, b, sa, sb, out)
            torch.cuda.synchronize()
        except Exception as e:  # noqa: BLE001
            print(f"capture {fam} {out} {m}x{n}x{k}: {type(e).__name__}: {e}"[:300], flush=True)
            probe.new()
            continue
        recs = probe.new()
        rows = np.sort(rng.choice(m, size=min(m, 3), replace=False))
        j = int(rng.integers(0, -(-n // 128)))
        lo, hi = 128 * j, min(128 * j + 128, n)
        cols = np.sort(rng.choice(np.arange(lo, hi), size=min(3, hi - lo), replace=False))
        key = f"cap{i:02d}"
        d = d.contiguous()
        dbits = (d.view(torch.int32) if d.dtype == torch.float32 else d.view(torch.int16))
        dnp = dbits.cpu().numpy()[np.ix_(rows, cols)]
        san, sbn = sa.cpu().numpy(), sb.cpu().numpy()
        if fam.startswith("row"):
            san, sbn = san[rows], sbn[:, cols]
        elif fam == "block128":
            san, sbn = san[rows], sbn[:-(-k // 128), j:j + 1]
        elif fam == "block1":
            san, sbn = san[rows], sbn.T[:, cols]
        saved |= {
            f"{key}/A": a.view(torch.uint8).cpu().numpy()[rows],
            f"{key}/B": b.contiguous().view(torch.uint8).cpu().numpy()[:, cols],
            f"{key}/scale_a": np.ascontiguousarray(san, np.float32),
            f"{key}/scale_b": np.ascontiguousarray(sbn, np.float32),
            f"{key}/D": dnp.astype(np.uint32 if out == "float32" else np.uint16),
            f"{key}/rows": rows.astype(np.int32), f"{key}/cols": cols.astype(np.int32),
            f"{key}/shape": np.array([m, n, k], np.int32),
            f"{key}/meta": np.array(json.dumps({"family": fam, "out": out, "card": card,
                                                "records": recs})),
        }
        al = (recs[-1].get("algo") or {}) if recs else {}
        print(f"capture {key} {fam} {out} {m}x{n}x{k}: {len(recs)} call(s), "
              f"splitk {al.get('splitk_num')}", flush=True)
    path = out_dir / "captures.npz"
    np.savez_compressed(path, **saved)
    return path


def run_check(probe: Probe, out_dir: Path) -> dict:
    """The mapping check on a non-square shape, and the library and torch versions."""
    import torch
    probe.skip(False)
    m, n, k = 48, 80, 112
    a = torch.randn(m, k, device="cuda").to(torch.float8_e4m3fn)
    b = torch.randn(n, k, device="cuda").to(torch.float8_e4m3fn).t()
    one = torch.ones((), device="cuda")
    probe.tag("check")
    torch._scaled_mm(a, b, scale_a=one, scale_b=one, out_dtype=torch.float32)
    torch.cuda.synchronize()
    recs = probe.new()
    info = {"torch": torch.__version__, "cuda": torch.version.cuda,
            "device": torch.cuda.get_device_name(), "sms":
            torch.cuda.get_device_properties(0).multi_processor_count,
            "lt_version": recs[0]["lt_version"] if recs else None,
            "lt_path": recs[0]["lt_path"] if recs else None,
            "calls": len(recs), "torch_shape": [m, n, k],
            "recorded_shape": list(torch_shape(recs[0])) if recs else None,
            "record": recs[0] if recs else None}
    (out_dir / "env.json").write_text(json.dumps(info, indent=1))
    print(json.dumps({k: v for k, v in info.items() if k != "record"}), flush=True)
    assert info["recorded_shape"] == [m, n, k], info
    return info


def main(argv=None) -> None:
    """Command line: check, captures, grid or all."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("what", choices=("check", "captures", "dense", "grid", "all"))
    p.add_argument("--out", required=True)
    p.add_argument("--card", required=True)
    p.add_argument("--captures", type=int, default=48)
    p.add_argument("--budget", type=float, default=300.0)
    p.add_argument("--random", type=int, default=3000, help="random split-region shapes")
    p.add_argument("--dense-budget", type=float, default=150.0,
                   help="seconds for the dense (any M / any tokens) recordings")
    p.add_argument("--families", default=",".join(FAMILIES),
                   help="comma-separated subset of " + ", ".join(FAMILIES))
    args = p.parse_args(argv)
    fams = tuple(args.families.split(","))
    unknown = set(fams) - set(FAMILIES)
    if unknown:
        p.error(f"--families: unknown {sorted(unknown)}; expected some of {FAMILIES}")
    out = Path(args.out)
    probe = Probe(os.environ["FP8SIM_LT_LOG"])
    dense = [f for f in fams if f != "row-fast"]  # row-wise never splits: row checks it
    steps = [("check", lambda: run_check(probe, out)),
             ("captures", lambda: run_captures(probe, args.card, out, args.captures, fams)),
             ("dense", lambda: run_grid(probe, args.card, out, dense,
                                        budget_s=args.dense_budget * 0.45,
                                        shapes=dense_forward_shapes(), name="dense_m.csv")),
             ("dense", lambda: run_grid(probe, args.card, out,
                                        [f for f in dense if f.startswith("tensor")],
                                        budget_s=args.dense_budget * 0.35,
                                        shapes=dense_wgrad_shapes(16), name="dense_k16.csv")),
             ("dense", lambda: run_grid(probe, args.card, out,
                                        [f for f in dense if not f.startswith("tensor")],
                                        budget_s=args.dense_budget * 0.2,
                                        shapes=dense_wgrad_shapes(128), name="dense_k128.csv")),
             ("grid", lambda: run_grid(probe, args.card, out, fams, budget_s=args.budget,
                                       shapes=grid_shapes(extended=True))),
             ("grid", lambda: run_grid(probe, args.card, out, fams, budget_s=args.budget / 4,
                                       shapes=random_shapes(args.random),
                                       name="random.csv"))]
    for name, step in steps:
        if args.what in (name, "all"):
            try:
                step()
            except Exception:  # noqa: BLE001 - one step failing leaves the others to run
                import traceback
                traceback.print_exc()


if __name__ == "__main__":
    main()
