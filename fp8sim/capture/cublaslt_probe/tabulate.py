"""Builds fp8sim/engine/data/cublaslt_splits.json.gz from the probe's grid recordings.

    python -m fp8sim.capture.cublaslt_probe.tabulate --card H100 DIR1 [DIR2 ...] \\
        [--card H200 DIR3 ...] --out fp8sim/engine/data/cublaslt_splits.json.gz \\
        --npz tests/data/cublaslt_splits_points.npz

A DIR may be that npz itself: the card's points tabulated before (a new recording adds to
them; the raw recordings need not be kept).

Each DIR holds what ``record.py all`` wrote on one card: env.json, grid.csv.gz and
optionally random.csv.gz (held-out shapes, kept as recorded points too). The file keeps,
per card and family group, the rule's two thresholds (the longest K never split, the
largest M x N ever split), checked against every recorded point, and the recorded slice
count of every point inside the split region (K above the first, M x N up to the second),
float32 and bfloat16 outputs. No torch needed.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import math
from pathlib import Path

from fp8sim.capture.cublaslt_probe.record import DENSE_MN, DIMS, MS, WGRAD_K

GROUPS = {"tensor-fast": "tensor-fast", "tensor": "tensor", "row-fast": "row", "row": "row",
          "block128": "block128", "block1": "block1"}
"""Families whose recorded splits agree are stored once (checked when building). Per-tensor
scaling with and without fast accumulation agreed on every grid shape but differed at 4 of
12,689 random shapes (H100, cuBLASLt 13.1), so each keeps its own table."""
OUTS = ("float32", "bfloat16")


def _npz_points(path: Path, card: str) -> tuple[dict, dict]:
    """The points and env a card's earlier tabulation kept in its npz (`write_npz`)."""
    import numpy as np

    with np.load(path) as z:
        if f"{card}/shapes" not in z.files:
            raise ValueError(f"{path}: no points of the {card}")
        combos = [str(c).split() for c in z["combos"]]
        env = json.loads(str(z[f"{card}/env"])) if f"{card}/env" in z.files else {}
        points = {}
        for shape, counts in zip(z[f"{card}/shapes"].tolist(), z[f"{card}/slices"].tolist(),
                                 strict=True):
            for (fam, out), v in zip(combos, counts, strict=True):
                if v:
                    points[(fam, out, *shape)] = v
    return points, env


def load_points(dirs: list[Path], card: str | None = None) -> tuple[dict, dict]:
    """({(family, out, M, N, K): S}, env of the first source) over every csv in dirs; a
    source that is an npz of `write_npz` (tests/data/cublaslt_splits_points.npz) gives the
    card's points tabulated before, so a new recording adds to them without the old dirs."""
    points: dict = {}
    env: dict = {}
    for d in dirs:
        if d.suffix == ".npz":
            old, old_env = _npz_points(d, card or "")
            points.update(old)
            env = env or old_env
            continue
        if not env and (d / "env.json").exists():
            env = json.loads((d / "env.json").read_text())
        for name in ("grid.csv.gz", "random.csv.gz", "dense_m.csv.gz", "dense_k16.csv.gz",
                     "dense_k128.csv.gz"):
            if not (d / name).exists():
                continue
            with gzip.open(d / name, "rt") as f:
                for r in csv.DictReader(f):
                    if r["error"] or r["splitk"] == "":
                        continue
                    key = (r["family"], r["out"], int(r["M"]), int(r["N"]), int(r["K"]))
                    points[key] = int(r["splitk"])
        calls = d / "calls_nongrid.jsonl.gz"
        if calls.exists():  # the random-shape captures: recorded with their outputs
            with gzip.open(calls, "rt") as f:
                for line in f:
                    rec = json.loads(line)
                    tag = rec.get("tag", "").split()
                    if len(tag) == 6 and tag[0] == "cap" and rec.get("algo"):
                        key = (tag[1], tag[2], *(int(v) for v in tag[3:]))
                        points[key] = int(rec["algo"]["splitk_num"])
    return points, env


def card_of(directory: Path) -> str | None:
    """"H100" or "H200" from the device name in a recording's env.json (None without one):
    the card a recording ran on, whatever --card its command was given."""
    env = directory / "env.json"
    if not env.exists():
        return None
    device = json.loads(env.read_text()).get("device", "")
    return next((c for c in ("H200", "H100") if c in device), None)


def write_npz(cards: dict[str, dict], path: str, envs: dict | None = None) -> None:
    """The recorded points per card as arrays (tests/data): shapes (n, 3) int32 and the
    slice count per family x out (n, 12) uint8, 0 where nothing was recorded, and the
    recording's env.json (what `load_points` reads back)."""
    import numpy as np
    arrays = {}
    combos = [(f, o) for f in GROUPS for o in OUTS]
    for name, points in cards.items():
        shapes = sorted({k[2:] for k in points})
        index = {s: i for i, s in enumerate(shapes)}
        counts = np.zeros((len(shapes), len(combos)), np.uint8)
        for (fam, out, *shape), v in points.items():
            counts[index[tuple(shape)], combos.index((fam, out))] = v
        arrays[f"{name}/shapes"] = np.array(shapes, np.int32)
        arrays[f"{name}/slices"] = counts
        arrays[f"{name}/env"] = np.array(json.dumps((envs or {}).get(name, {})))
    arrays["combos"] = np.array([f"{f} {o}" for f, o in combos])
    np.savez_compressed(path, **arrays)


def _runs(values: list[int]) -> list[int]:
    """[start index, value, start index, value, ...] of the runs of equal values."""
    out: list[int] = []
    for i, v in enumerate(values):
        if not out or out[-1] != v:
            out += [i, v]
    return out


def dense_runs(pts: dict, group: str) -> tuple[dict, dict, set]:
    """The dense recordings of one group and output as runs: ``m_runs["N,K"] = [M max,
    M start, S, ...]`` (every M from 1 for projection N, K >= 5120) and ``k_runs["M,N"] =
    [step, K min, K max, K start, S, ...]`` (every token count K for projection M, N);
    S 0 where nothing was recorded. Also the points the runs cover."""
    m_runs, k_runs, covered = {}, {}, set()
    for n in DIMS:
        mmax = min(MS[-1], DENSE_MN // n)
        for k in (k for k in DIMS if k >= 5120):
            vals = [pts.get((m, n, k), 0) for m in range(1, mmax + 1)]
            if sum(v > 0 for v in vals) > mmax // 2:
                runs = _runs(vals)
                runs[0::2] = [i + 1 for i in runs[0::2]]
                m_runs[f"{n},{k}"] = [mmax] + runs
                covered |= {(m, n, k) for m in range(1, mmax + 1)}
    step = 16 if group.startswith("tensor") else 128
    kmin, kmax = 5120, WGRAD_K[-1]
    for m in DIMS:
        for n in DIMS:
            if m * n > DENSE_MN:
                continue
            ks = range(kmin, kmax + 1, step)
            vals = [pts.get((m, n, k), 0) for k in ks]
            if sum(v > 0 for v in vals) > len(vals) // 2:
                runs = _runs(vals)
                runs[0::2] = [kmin + step * i for i in runs[0::2]]
                k_runs[f"{m},{n}"] = [step, kmin, kmax] + runs
                covered |= {(m, n, k) for k in ks}
    return m_runs, k_runs, covered


def build_card(points: dict, env: dict) -> dict:
    """One card's record: thresholds, split-region tables, counts."""
    groups: dict = {}
    for fam, group in GROUPS.items():
        for out in OUTS:
            pts = {k[2:]: v for k, v in points.items() if k[0] == fam and k[1] == out}
            if not pts:
                continue
            g = groups.setdefault(group, {"families": [], "outs": {}})
            if fam not in g["families"]:
                g["families"].append(fam)
            prev = g["outs"].get(out)
            if prev is not None:  # a second family of the group: must agree where both ran
                bad = [s for s, v in pts.items() if s in prev["_all"] and prev["_all"][s] != v]
                if bad:
                    raise ValueError(f"{fam} {out} differs from its group at {bad[:3]}")
                prev["_all"].update(pts)
            else:
                g["outs"][out] = {"_all": dict(pts)}
    for group, g in groups.items():
        for o in g["outs"].values():
            pts = o.pop("_all")
            split = [s for s, v in pts.items() if v > 1]
            max_k = min((s[2] for s in split), default=1 << 30) - 1
            unsplit_max_k = max((s[2] for s in pts if s[2] <= max_k), default=0)
            split_max_mn = max((s[0] * s[1] for s in split), default=0)
            region = sorted((s, v) for s, v in pts.items()
                            if s[2] > unsplit_max_k and s[0] * s[1] <= split_max_mn)
            m_runs, k_runs, covered = dense_runs(pts, group)
            m_multiple = math.gcd(*(s[0] for s in pts))  # blockwise: M a multiple of 4
            o.update(unsplit_max_k=unsplit_max_k, split_max_mn=split_max_mn, m_multiple=m_multiple,
                     points=len(pts), rule_points=len(pts) - len(region),
                     table=" ".join(f"{m},{n},{k},{v}" for (m, n, k), v in region
                                    if (m, n, k) not in covered),
                     m_runs=m_runs, k_runs=k_runs)
    return {"device": env.get("device", ""), "sms": env.get("sms"),
            "cublaslt_version": env.get("lt_version"), "torch": env.get("torch"),
            "cuda": env.get("cuda"), "groups": groups}


def main(argv=None) -> None:
    """Command line: --card NAME DIR... (repeatable) --out FILE."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--card", nargs="+", action="append", required=True,
                   metavar=("NAME", "DIR"))
    p.add_argument("--out", required=True)
    p.add_argument("--npz", help="also write the recorded points here (tests/data)")
    args = p.parse_args(argv)
    cards, all_points, envs = {}, {}, {}
    for name, *dirs in args.card:
        wrong = [d for d in dirs if card_of(Path(d)) not in (None, name)]
        if wrong:
            p.error(f"--card {name}: {', '.join(wrong)} ran on the {card_of(Path(wrong[0]))}")
        points, env = load_points([Path(d) for d in dirs], name)
        all_points[name] = points
        envs[name] = env
        cards[name] = build_card(points, env)
        for group, g in cards[name]["groups"].items():
            for out, o in g["outs"].items():
                print(f"{name} {group} {out}: {o['points']} points, {o['rule_points']} by the "
                      f"rule (K <= {o['unsplit_max_k']} or M*N > {o['split_max_mn']})")
    data = {"format": 2, "source": "fp8sim/capture/cublaslt_probe (record.py all; "
            "tabulate.py)", "cards": cards}
    if args.npz:
        write_npz(all_points, args.npz, envs)
    text = json.dumps(data, separators=(",", ":")).encode()
    with open(args.out, "wb") as raw, gzip.GzipFile(filename="", fileobj=raw, mode="wb",
                                                    mtime=0) as f:
        f.write(text)  # no name, mtime 0: the same recordings give the same bytes



def compact_captures(sources: list[str], path: str, per_card: int = 12) -> None:
    """tests/data's capture file: per card up to `per_card` captures (the split ones first,
    then one of each family and output type), 2 rows x 2 columns of split ones and 1 x 1 of
    the rest, with the recorded SPLITK_NUM in the meta."""
    import numpy as np
    out: dict = {}
    for src in sources:
        card = card_of(Path(src).parent)
        with np.load(src) as z:
            keys = sorted({k.split("/")[0] for k in z.files})
            metas = {k: json.loads(str(z[k + "/meta"])) | ({"card": card} if card else {})
                     for k in keys}
            split = {k: (m["records"][-1].get("algo") or {}).get("splitk_num", 1)
                     for k, m in metas.items()}
            chosen, seen = [], set()
            for k in sorted(keys, key=lambda k: -split[k]):
                combo = (metas[k]["family"], metas[k]["out"], split[k] > 1)
                if combo not in seen and len(chosen) < per_card:
                    seen.add(combo)
                    chosen.append(k)
            for k in chosen:
                r = 2 if split[k] > 1 else 1
                card = metas[k]["card"]
                fam = metas[k]["family"]
                sa, sb = z[k + "/scale_a"], z[k + "/scale_b"]
                rows, cols = slice(0, r), slice(0, r)
                if fam.startswith("row") or fam == "block1":
                    sb = sb[:, cols]
                if not fam.startswith("tensor"):
                    sa = sa[rows]
                meta = {"family": fam, "out": metas[k]["out"], "card": card,
                        "splitk": int(split[k])}
                pre = f"{card}-{k}"
                out |= {f"{pre}/A": z[k + "/A"][rows], f"{pre}/B": z[k + "/B"][:, cols],
                        f"{pre}/scale_a": sa, f"{pre}/scale_b": sb,
                        f"{pre}/D": z[k + "/D"][rows, cols], f"{pre}/shape": z[k + "/shape"],
                        f"{pre}/meta": np.array(json.dumps(meta))}
    np.savez_compressed(path, **out)


if __name__ == "__main__":
    main()
