"""How a GEMM kernel applies its scales and adds its partial sums, described as data.

An `Epilogue` says, for the FP32 partial sum ``p`` that the MMA chain hands over:

* **when** the scales apply: at each promotion (``acc <- acc + scaled(p)``, DeepGEMM's
  fine-grained scaling) or once at the end (``out = scaled(acc)``, cuBLASLt's alpha);
* the **granularity** of each scale: for A none, one per tensor, one per row, or one per
  row and K group (1x128 tiles); for B none, one per tensor, one per column, one per K
  group and block of `block_n` columns (128x128 weight blocks), or one per K group and
  column (128x1 tiles: the Wgrad GEMM);
* the **order** of the multiplications, each rounded to float32: ``product`` rounds
  ``s = fl(sa * sb)`` and multiplies ``p * s``; ``a-first`` rounds ``fl(p * sa)`` and
  multiplies by ``sb``; ``b-first`` rounds ``fl(p * sb)`` and multiplies by ``sa``;
* whether the last multiplication and the add are **fused** into one fma (one rounding)
  or rounded separately.

The variants captured on Hopper (`../shared/HOPPER_FP8.md`):

==================  =====================================  ==================================
name                formula                                 seen in
==================  =====================================  ==================================
``group``           ``acc = fma(p, fl(sa*sb), acc)``        DeepGEMM; cuBLASLt 1x128 x 128x128
``group-a-first``   ``acc = fma(fl(p*sa), sb, acc)``        torchao Triton 1x128 x 128x128
``group-column``    ``acc = fma(fl(p*sa), sb[g, j], acc)``  cuBLASLt and torchao 1x128 x 128x1
``tensor``          ``out = fl(acc * fl(sa*sb))``           cuBLASLt per-tensor scales
``row``             ``out = fl(fl(acc*sb[j]) * sa[i])``     torch row-wise scales
==================  =====================================  ==================================

`fp8sim.gemm` takes an `Epilogue` (or one of these names) as ``scaling=``; the numba engine
runs every variant from small integer op-codes (`kernel_args`), the pure-Python reference
(`fp8sim.engine.reference`) follows the definition one value at a time.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from fp8sim._lookup import lookup

__all__ = ["Epilogue", "EPILOGUES", "epilogue", "variants", "fitting", "A_GRANULARITIES",
           "B_GRANULARITIES", "ORDERS", "WHEN", "kernel_args", "GROUP", "GROUP_A_FIRST",
           "GROUP_COLUMN", "TENSOR", "ROW"]

WHEN = ("promotion", "end")
"""When the scales apply: to each partial at its promotion, or to the accumulator at the end."""
A_GRANULARITIES = ("none", "tensor", "row", "group")
"""scale_a: none, a scalar, (M, 1), (M, G) with G = ceil(K / promote) (1x128 tiles)."""
B_GRANULARITIES = ("none", "tensor", "column", "block", "group-column")
"""scale_b: none, a scalar, (1, N), (G, ceil(N / block_n)) (128x128 blocks), (G, N) (128x1)."""
ORDERS = ("product", "a-first", "b-first")
"""product: p * fl(sa * sb); a-first: fl(p * sa) * sb; b-first: fl(p * sb) * sa."""

# op-codes of the numba engine (`_gemm_kernels.gemm_tiles`)
WHEN_NONE, WHEN_PROMOTION, WHEN_END = 0, 1, 2
ORDER_PRODUCT, ORDER_A_FIRST, ORDER_B_FIRST = 0, 1, 2
_K_DEPENDENT = {"group", "block", "group-column"}
_NO_COLUMN = 1 << 30  # column divisor that maps every column to scale column 0


@dataclass(frozen=True, kw_only=True)
class Epilogue:
    """How a kernel scales its FP32 partial sums and adds them: when, per what, in what order."""

    name: str
    """Name ("group") or a derived label ("group[order=a-first]")."""
    when: str = "promotion"
    """"promotion": at each promotion acc <- acc + scaled(partial); "end": out = scaled(acc)."""
    scale_a: str = "group"
    """Granularity of scale_a, one of `A_GRANULARITIES`."""
    scale_b: str = "block"
    """Granularity of scale_b, one of `B_GRANULARITIES`."""
    order: str = "product"
    """Which multiplication is rounded first, one of `ORDERS`."""
    fused: bool = True
    """True: the last multiplication and the add into acc are one fma (one rounding);
    False: the product is rounded, then added. Only for `when` = "promotion"."""
    block_n: int = 128
    """Columns of B per scale for the "block" granularity."""
    verified: bool = False
    """True where GPU captures back this epilogue bit for bit."""
    description: str = ""

    def __post_init__(self) -> None:
        """Rejects combinations no kernel could run, naming the field."""
        for fld, value, allowed in (("when", self.when, WHEN), ("scale_a", self.scale_a,
                                    A_GRANULARITIES), ("scale_b", self.scale_b, B_GRANULARITIES),
                                    ("order", self.order, ORDERS)):
            if value not in allowed:
                raise ValueError(f"{fld}: expected one of {', '.join(allowed)}, got {value!r}")
        if not isinstance(self.fused, bool):
            raise TypeError(f"fused: expected a bool, got {self.fused!r}")
        if isinstance(self.block_n, bool) or not isinstance(self.block_n, int) or self.block_n < 1:
            raise ValueError(f"block_n: expected a positive int, got {self.block_n!r}")
        if self.when == "end":
            for fld, value in (("scale_a", self.scale_a), ("scale_b", self.scale_b)):
                if value in _K_DEPENDENT:
                    raise ValueError(f"{fld}: {value!r} scales change along K, so they apply at "
                                     "each promotion (when='promotion'), not at the end")
            if self.fused:
                raise ValueError("fused: an epilogue at the end adds nothing, so it cannot fuse "
                                 "an add; use fused=False")

    @property
    def key(self) -> tuple:
        """The fields that decide the bits (name and documentation left out)."""
        return (self.when, self.scale_a, self.scale_b, self.order, self.fused, self.block_n)

    @property
    def k_grouped(self) -> bool:
        """True when a scale changes along K (one per promotion group)."""
        return self.scale_a in _K_DEPENDENT or self.scale_b in _K_DEPENDENT

    @property
    def formula(self) -> str:
        """The arithmetic in one line, e.g. "acc = fma(fl(p*sa), sb, acc) at each promotion"."""
        x = "acc" if self.when == "end" else "p"
        first, second = {"product": (x, "fl(sa*sb)"), "a-first": (f"fl({x}*sa)", "sb"),
                         "b-first": (f"fl({x}*sb)", "sa")}[self.order]
        if self.when == "end":
            return f"out = fl({first} * {second}) at the end"
        if self.fused:
            return f"acc = fma({first}, {second}, acc) at each promotion"
        return f"acc = fl(acc + fl({first} * {second})) at each promotion"

    def scale_shapes(self, m: int, k: int, n: int, promote: int
                     ) -> tuple[tuple | None, tuple | None]:
        """The shapes scale_a and scale_b must have (None: no scale; (): a scalar)."""
        g = -(-k // promote) if promote > 0 else 0
        sa = {"none": None, "tensor": (), "row": (m, 1), "group": (m, g)}[self.scale_a]
        sb = {"none": None, "tensor": (), "column": (1, n), "block": (g, -(-n // self.block_n)),
              "group-column": (g, n)}[self.scale_b]
        return sa, sb

    def scale_blocks(self, m: int, k: int, n: int, promote: int
                     ) -> tuple[tuple[int, int] | None, tuple[int, int] | None]:
        """The block of its operand each scale element covers: A's (rows, K), B's (K, columns).

        None: no scale. A: tensor (M, K), row (1, K), group (1, promote); B: tensor (K, N),
        column (K, 1), block (promote, block_n), group-column (promote, 1). Edge blocks may
        be partial (K = 300 with promote 128 has a last group of 44).
        """
        p = promote if promote > 0 else max(k, 1)
        a = {"none": None, "tensor": (m, k), "row": (1, k), "group": (1, p)}[self.scale_a]
        b = {"none": None, "tensor": (k, n), "column": (k, 1), "block": (p, self.block_n),
             "group-column": (p, 1)}[self.scale_b]
        return a, b

    def expand_scales(self, scale_a, scale_b, m: int, k: int, n: int, promote: int
                      ) -> tuple[np.ndarray | None, np.ndarray | None]:
        """Each operand element's scale: float32 (M, K) for A and (K, N) for B (None: no scale).

        The scales must have `scale_shapes`; the exact product of a scaled GEMM is
        (decode(A) * sa) @ (decode(B) * sb) in float64 (FP8 values times float32 scales
        are exact there).
        """
        want_a, want_b = self.scale_shapes(m, k, n, promote)
        blk_a, blk_b = self.scale_blocks(m, k, n, promote)
        out = []
        for arg, s, want, blk, shape in (("scale_a", scale_a, want_a, blk_a, (m, k)),
                                         ("scale_b", scale_b, want_b, blk_b, (k, n))):
            if want is None or s is None:
                if (want is None) != (s is None):
                    raise ValueError(f"{arg}: the {self.name} epilogue takes "
                                     f"{'no scale' if want is None else 'a scale'}")
                out.append(None)
                continue
            v = np.asarray(s, np.float32)
            if not _shape_fits(v.shape, want):
                raise ValueError(f"{arg}: expected shape {want} for the {self.name} epilogue "
                                 f"at M={m} K={k} N={n} promote={promote}, got {v.shape}")
            v = v.reshape(1, 1) if want == () else v
            r, c = (max(b, 1) for b in blk)
            out.append(np.repeat(np.repeat(v, r, axis=0), c, axis=1)[: shape[0], : shape[1]])
        return out[0], out[1]

    def scales_from_blocks(self, scale_a, a_block: tuple[int, int], scale_b,
                           b_block: tuple[int, int], m: int, k: int, n: int, promote: int
                           ) -> tuple[np.ndarray | None, np.ndarray | None]:
        """Cast scales laid out as this epilogue reads them (`scale_shapes`).

        scale_a holds one scale per (bm, bk) block of A (M, K), shape (ceil(M / bm),
        ceil(K / bk)); scale_b one per (bk, bn) block of B (K, N). Each scale the
        epilogue reads must lie in one cast block: a K group of `promote` elements in one
        block along K, a row, column or column group in one block along its axis.

        Raises:
            ValueError: naming a_block or b_block where a block does not fit (e.g. 1x128
                tiles of A for a row epilogue, or K blocks of 64 with promote 128).
        """
        if self.k_grouped and promote <= 0:
            raise ValueError(f"promote: the {self.name} epilogue scales at each promotion; "
                             f"expected promote > 0, got {promote}")
        sa = _lay_out(self.scale_a, scale_a, a_block, (m, k), promote, self.block_n, "a_block",
                      self.name)
        sb_t = None if scale_b is None else np.asarray(scale_b, np.float32).T
        sb = _lay_out(_B_AS_A[self.scale_b], sb_t, tuple(b_block)[::-1], (n, k), promote,
                      self.block_n, "b_block", self.name)
        return sa, (None if sb is None else (sb if sb.ndim == 0 else np.ascontiguousarray(sb.T)))

    def replace(self, **changes) -> Epilogue:
        """A copy with some fields changed; a derived name says which unless one is given."""
        if "name" not in changes:
            changes["name"] = self.name + "".join(f"[{k}={v}]" for k, v in changes.items())
            changes["verified"] = False
            changes["description"] = ""
        return dataclasses.replace(self, **changes)


GROUP = Epilogue(
    name="group", when="promotion", scale_a="group", scale_b="block", order="product",
    fused=True, verified=True,
    description="DeepGEMM's fine-grained scaling, and cuBLASLt's BlockWise1x128 x "
                "BlockWise128x128 (torch._scaled_mm): at each promotion acc = fma(p, "
                "fl(scale_a[i, g] * scale_b[g, j // 128]), acc).")
GROUP_A_FIRST = Epilogue(
    name="group-a-first", when="promotion", scale_a="group", scale_b="block", order="a-first",
    fused=True, verified=True,
    description="torchao's Triton triton_fp8_gemm_1x128_128x128: `acc += dot * a_s * b_s` "
                "compiles to acc = fma(fl(p * scale_a[i, g]), scale_b[g, j // 128], acc).")
GROUP_COLUMN = Epilogue(
    name="group-column", when="promotion", scale_a="group", scale_b="group-column",
    order="a-first", fused=True, verified=True,
    description="1x128 x 128x1 (the Wgrad GEMM), cuBLASLt and torchao's Triton alike: "
                "acc = fma(fl(p * scale_a[i, g]), scale_b[g, j], acc).")
TENSOR = Epilogue(
    name="tensor", when="end", scale_a="tensor", scale_b="tensor", order="product",
    fused=False, verified=True,
    description="cuBLASLt per-tensor scales: out = fl(acc * fl(scale_a * scale_b)).")
ROW = Epilogue(
    name="row", when="end", scale_a="row", scale_b="column", order="b-first", fused=False,
    verified=True,
    description="torch row-wise scales: out = fl(fl(acc * scale_b[j]) * scale_a[i]).")

EPILOGUES: dict[str, Epilogue] = {e.name: e for e in (GROUP, GROUP_A_FIRST, GROUP_COLUMN,
                                                      TENSOR, ROW)}
"""Every named epilogue."""

INFERRED = (TENSOR, ROW, GROUP, GROUP_COLUMN)
"""What `fp8sim.gemm` infers from the scale shapes when `scaling` is None."""


def epilogue(name: str | Epilogue, *, arg: str = "scaling") -> Epilogue:
    """Looks an epilogue up by name; an Epilogue passes through."""
    return lookup(name, EPILOGUES, Epilogue, arg=arg, what="epilogue")


def variants(base: Epilogue) -> list[Epilogue]:
    """Every order and fusion with base's timing and granularities, named ones by their name.

    Base first; fused variants only where the scales apply at promotion.
    """
    named = {e.key: e for e in EPILOGUES.values()}
    out = [base]
    for fused in ((True, False) if base.when == "promotion" else (False,)):
        for order in ORDERS:
            if (order, fused) == (base.order, base.fused):
                continue
            changes = {k: v for k, v in (("order", order), ("fused", fused))
                       if getattr(base, k) != v}
            v = base.replace(**changes)
            out.append(named.get(v.key, v))
    return out


_B_AS_A = {"none": "none", "tensor": "tensor", "column": "row", "block": "block",
           "group-column": "group"}
"""B's granularity read on B.T (N, K), where its columns are rows: one layout rule serves both."""


def _lay_out(gran: str, s, block, shape, promote, block_n, arg, name):
    """Scales of (bm, bk) blocks of an (R, K) operand in the layout of one granularity.

    Granularities on rows: tensor (), row (R, 1), group (R, G), block (ceil(R / block_n), G)
    transposed back by the caller (B's 128x128 blocks, rows = columns of B).
    """
    if gran == "none":
        if s is not None:
            raise ValueError(f"{arg}: the {name} epilogue takes no scale for this operand")
        return None
    s = np.asarray(s, np.float32)
    r, k = shape
    br, bk = (max(1, min(int(b), n)) for b, n in zip(block, shape, strict=True))
    if s.shape != (-(-r // br), -(-k // bk)):
        raise ValueError(f"{arg}: scales of shape {s.shape} are not those of ({br}, {bk}) "
                         f"blocks of a ({r}, {k}) operand")
    if gran == "tensor":
        if s.size != 1:
            raise ValueError(f"{arg}: the {name} epilogue takes one scale per tensor, the "
                             f"blocks ({br}, {bk}) give {s.shape}")
        return np.float32(s.reshape(()))
    if gran == "row":
        if s.shape[1] != 1:
            raise ValueError(f"{arg}: the {name} epilogue takes one scale per row or column; "
                             f"blocks ({br}, {bk}) do not span K = {k}")
        return np.ascontiguousarray(s[np.arange(r) // br])
    if s.shape[1] > 1 and bk % promote:
        raise ValueError(f"{arg}: the {name} epilogue applies a scale per K group of "
                         f"promote = {promote}; blocks of {bk} along K split a group")
    g = (np.arange(-(-k // promote)) * promote) // bk  # block of each group's first K index
    if gran == "group":
        return np.ascontiguousarray(s[np.arange(r) // br][:, g])
    if s.shape[0] > 1 and br % block_n:
        raise ValueError(f"{arg}: the {name} epilogue applies a scale per {block_n} columns; "
                         f"blocks of {br} columns split them")
    return np.ascontiguousarray(s[(np.arange(-(-r // block_n)) * block_n) // br][:, g])


def _shape_fits(shape, want) -> bool:
    """True when an array of `shape` can serve as a scale of shape `want` (() or (1,): scalar)."""
    if want is None:
        return shape is None
    if shape is None:
        return False
    if want == ():
        return tuple(shape) in ((), (1,))
    return tuple(shape) == want


def fitting(candidates: Sequence[Epilogue], scale_a, scale_b, m: int, k: int, n: int,
            promote: int) -> list[Epilogue]:
    """The candidates whose scale shapes fit the given scales (K-grouped ones need promote > 0)."""
    sa = None if scale_a is None else np.shape(scale_a)
    sb = None if scale_b is None else np.shape(scale_b)
    out = []
    for ep in candidates:
        if ep.k_grouped and promote <= 0:
            continue
        want_a, want_b = ep.scale_shapes(m, k, n, promote)
        if _shape_fits(sa, want_a) and _shape_fits(sb, want_b):
            out.append(ep)
    return out


def shape_text(ep: Epilogue, m: int, k: int, n: int, promote: int) -> str:
    """ "scale_a (M, G) and scale_b (G, N)" with the numbers, for error messages."""
    want_a, want_b = ep.scale_shapes(m, k, n, promote)

    def one(s) -> str:
        return "none" if s is None else ("a scalar" if s == () else str(s))

    return f"scale_a {one(want_a)} and scale_b {one(want_b)}"


def kernel_args(ep: Epilogue | None, sa: np.ndarray | None, sb: np.ndarray | None
                ) -> tuple[int, int, bool, np.ndarray, np.ndarray, int]:
    """(when, order, fused, sa2, sb2, column divisor) for the numba engine.

    sa2 is float32 (1 or M, 1 or G), sb2 (1 or G, 1 or columns); the engine reads
    sa2[i or 0, g or 0] and sb2[g or 0, j // divisor], so the shapes carry the granularity.
    Missing scales are ones (multiplying by 1 is exact).
    """
    one = np.ones((1, 1), np.float32)
    if ep is None:
        return WHEN_NONE, ORDER_PRODUCT, False, one, one, _NO_COLUMN
    sa2 = one if sa is None else np.ascontiguousarray(np.asarray(sa, np.float32).reshape(
        (1, 1) if ep.scale_a == "tensor" else np.shape(sa)))
    sb2 = one if sb is None else np.ascontiguousarray(np.asarray(sb, np.float32).reshape(
        (1, 1) if ep.scale_b == "tensor" else np.shape(sb)))
    divisor = {"none": _NO_COLUMN, "tensor": _NO_COLUMN, "column": 1, "group-column": 1,
               "block": ep.block_n}[ep.scale_b]
    when = WHEN_PROMOTION if ep.when == "promotion" else WHEN_END
    order = ORDERS.index(ep.order)
    return when, order, ep.fused, sa2, sb2, divisor


def as_candidates(scaling) -> list[Epilogue] | None:
    """scaling as a list of candidate epilogues: a name, an Epilogue or a sequence of them."""
    if scaling is None:
        return None
    if isinstance(scaling, (str, Epilogue)):
        return [epilogue(scaling)]
    if isinstance(scaling, Iterable):
        out = [epilogue(s) for s in scaling]
        if out:
            return out
    raise ValueError(f"scaling: expected None, an Epilogue, one of {', '.join(EPILOGUES)}, or "
                     f"a non-empty sequence of them, got {scaling!r}")
