"""A user's own arrays on the command line: peek, load, quantize, scale and save them.

`fp8sim gemm --a A.npy --b B.npy` reads each operand from a ``.npy`` file or an array
of a ``.npz`` archive (``PATH`` takes the archive's array named ``A``/``a`` (``B``/``b``,
``scale_a``, ...) or its only array; ``PATH:NAME`` names one). uint8 arrays (and the
1-byte void arrays ``np.save`` writes for ml_dtypes float8 arrays) are FP8 codes; float
arrays are quantized first. Shapes are read from the file headers before anything is
loaded, so the memory check runs first.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import ml_dtypes
import numpy as np

from fp8sim.formats.convert import decode, encode
from fp8sim.formats.info import format_info

__all__ = ["Source", "peek", "load", "is_codes", "quantize_operand", "save_output",
           "scale_expand", "scaled_exact", "parse_scale"]

_FLOATS = (np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64),
           np.dtype(ml_dtypes.bfloat16))


@dataclass(frozen=True)
class Source:
    """One array in a file: where it is, its shape and dtype (from the header only)."""

    option: str
    """The command-line option that named it ("--a")."""
    path: Path
    key: str | None
    """The array's name in an .npz archive; None for .npy."""
    shape: tuple[int, ...]
    dtype: np.dtype

    @property
    def nbytes(self) -> int:
        """Bytes the array takes once loaded."""
        return int(np.prod(self.shape, dtype=np.int64)) * self.dtype.itemsize

    def __str__(self) -> str:
        return f"{self.path}" + (f":{self.key}" if self.key else "")


class DataError(ValueError):
    """An input file cannot be used; the message starts with the option naming it."""


def _split(spec: str) -> tuple[Path, str | None]:
    """'x.npz:A' -> (x.npz, 'A'); anything else is a plain path."""
    head, sep, tail = spec.rpartition(":")
    if sep and head.lower().endswith(".npz") and tail:
        return Path(head), tail
    return Path(spec), None


def _header(f) -> tuple[tuple[int, ...], np.dtype]:
    """(shape, dtype) from an open .npy stream's header."""
    version = np.lib.format.read_magic(f)
    if version == (1, 0):
        shape, _, dtype = np.lib.format.read_array_header_1_0(f)
    else:
        shape, _, dtype = np.lib.format.read_array_header_2_0(f)
    return tuple(shape), np.dtype(dtype)


def peek(spec: str, option: str, names: tuple[str, ...] = ()) -> Source:
    """Finds the array `spec` names and reads its shape and dtype without loading it.

    Args:
        spec: PATH (.npy, or .npz with an array named one of `names`, or one array
            only) or PATH.npz:NAME.
        option: the option, for messages ("--a").
        names: the array names an .npz is searched for ("A", "a").

    Raises:
        DataError: missing file, unreadable file, no such array.
    """
    path, key = _split(spec)
    if not path.is_file():
        raise DataError(f"{option}: no such file {str(path)!r}")
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as z:
                arrays = [n[:-4] for n in z.namelist() if n.endswith(".npy")]
                if key is None:
                    found = [n for n in names if n in arrays]
                    if found:
                        key = found[0]
                    elif len(arrays) == 1:
                        key = arrays[0]
                    else:
                        want = " or ".join(names) or "one array"
                        raise DataError(f"{option}: {path.name} has arrays "
                                        f"{', '.join(arrays) or 'none'}; expected {want}, or "
                                        f"name one as {path.name}:NAME")
                if key not in arrays:
                    raise DataError(f"{option}: {path.name} has no array {key!r} (it has "
                                    f"{', '.join(arrays)})")
                with z.open(key + ".npy") as f:
                    shape, dtype = _header(f)
        else:
            if key is not None:
                raise DataError(f"{option}: {path.name} is not an .npz archive")
            with open(path, "rb") as f:
                shape, dtype = _header(f)
    except DataError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile) as e:
        raise DataError(f"{option}: cannot read {str(path)!r} as .npy/.npz ({e})") from None
    return Source(option, path, key, shape, dtype)


def load(src: Source) -> np.ndarray:
    """The array itself (no pickles)."""
    try:
        if src.key is None:
            return np.load(src.path, allow_pickle=False)
        with np.load(src.path, allow_pickle=False) as z:
            return z[src.key]
    except (OSError, ValueError, zipfile.BadZipFile) as e:
        raise DataError(f"{src.option}: cannot read {src} ({e})") from None


def is_codes(dtype: np.dtype) -> bool:
    """True for uint8 and 1-byte void (ml_dtypes float8 as np.save writes it) arrays."""
    return dtype == np.uint8 or (dtype.kind == "V" and dtype.itemsize == 1)


def check_operand(src: Source, ndim: int = 2) -> None:
    """Refuses arrays that are neither FP8 codes nor floats, or not 2-D."""
    if len(src.shape) != ndim:
        raise DataError(f"{src.option}: expected a 2-D array, {src} has shape {src.shape}")
    if not (is_codes(src.dtype) or src.dtype in _FLOATS):
        hint = " (bfloat16 saved by np.save reads back as 2-byte void: save it as float32)" \
            if src.dtype.kind == "V" else ""
        raise DataError(f"{src.option}: expected uint8 FP8 codes or a float array, {src} has "
                        f"dtype {src.dtype}{hint}")


def as_float8(codes: np.ndarray, fmt: str) -> np.ndarray:
    """uint8 (or 1-byte void) codes as an ml_dtypes float8 array, which carries its format."""
    return np.ascontiguousarray(codes).view(np.uint8).view(format_info(fmt).ml_dtype)


def quantize_operand(x: np.ndarray, fmt: str, scale: str, option: str
                     ) -> tuple[np.ndarray, np.float32 | None]:
    """Float data as FP8: (float8 array, per-tensor scale or None).

    scale "unit": encoded as given, round to nearest even, saturating (no scale);
    "tensor": `fp8sim.quantize` with one block over the whole tensor, DeepGEMM's cast
    (codes of x * fmt_max / amax, scale amax / fmt_max), so the tensor epilogue undoes it.
    """
    x = np.asarray(x)
    if x.dtype == ml_dtypes.bfloat16 or x.dtype == np.float16:
        x = x.astype(np.float32)
    if not np.all(np.isfinite(x)):
        raise DataError(f"{option}: the float data holds NaN or Inf; pass FP8 codes to "
                        "multiply special values")
    if scale == "unit":
        return as_float8(encode(x, fmt, saturate=True), fmt), None
    from fp8sim.recipes.quant import quantize

    codes, scales = quantize(np.asarray(x, np.float32), fmt, block=x.shape)
    return as_float8(codes, fmt), np.float32(scales.reshape(()))


def parse_scale(text: str | None, option: str, names: tuple[str, ...]
                ) -> tuple[Source | None, np.float32 | None]:
    """--scale-a VALUE or FILE: (file source, None) or (None, the float32 number)."""
    if text is None:
        return None, None
    try:
        value = float(text)
    except ValueError:
        return peek(text, option, names), None
    if np.float32(value) != value:
        raise DataError(f"{option}: {text} is not exactly a float32 number")
    return None, np.float32(value)


def _k_block(count: int, k: int, prefer: int | None) -> int:
    """Length of each of `count` scale groups along K: `prefer` or 128 when they fit the
    count, else the smallest multiple of 32 that does."""
    if count == 1:
        return k
    per_group = -(-k // count)
    for cand in (prefer, 128, -(-per_group // 32) * 32):
        if cand and -(-k // cand) == count:
            return cand
    raise DataError(f"scales: {count} groups along K = {k} fit no group length")


def scale_expand(scale, rows: int, cols: int, *, operand: str,
                 prefer: int | None = None) -> np.ndarray:
    """A scale array blown up to its operand's (rows, cols) in float64, for the exact product.

    operand "a": scale_a of shape () (tensor), (1 or M, groups along K); "b": scale_b of
    shape (), (groups along K, 1, ceil(N / 128) or N). Groups along K are `prefer` (the
    kernel's promotion interval) or 128 elements long when that gives their count.
    """
    s = np.asarray(scale, np.float64)
    if s.ndim == 0 or s.size == 1:
        return np.full((rows, cols), float(s.reshape(-1)[0]))
    if s.ndim != 2:
        raise DataError(f"scale_{operand}: expected a scalar or a 2-D array, got shape {s.shape}")
    if operand == "a":
        r_blk = rows if s.shape[0] == 1 else 1
        c_blk = _k_block(s.shape[1], cols, prefer)
    else:
        r_blk = _k_block(s.shape[0], rows, prefer)
        c_blk = cols if s.shape[1] == 1 else 1 if s.shape[1] == cols else 128
    out = np.repeat(np.repeat(s, r_blk, axis=0), c_blk, axis=1)[:rows, :cols]
    if out.shape != (rows, cols):
        raise DataError(f"scale_{operand}: shape {s.shape} does not cover ({rows}, {cols})")
    return out


def scaled_exact(a: np.ndarray, b: np.ndarray, scale_a=None, scale_b=None,
                 promote: int | None = None) -> np.ndarray:
    """The exact (float64) product of the decoded, scaled FP8 inputs.

    Scales of any granularity (tensor, row, 1x128 groups, 128x128 blocks, 128x1 tiles)
    multiply their blocks of A and B before the sum: FP8 values times float32 scales
    are exact in float64.
    """
    from fp8sim.analysis.stats import exact_product

    av = decode(a).astype(np.float64)
    bv = decode(b).astype(np.float64)
    m, k = av.shape
    n = bv.shape[1]
    if scale_a is not None:
        av *= scale_expand(scale_a, m, k, operand="a", prefer=promote)
    if scale_b is not None:
        bv *= scale_expand(scale_b, k, n, operand="b", prefer=promote)
    return exact_product(av, bv)


def save_output(path: str | Path, out: np.ndarray, out_dtype: str,
                inputs: dict | None = None) -> Path:
    """Writes the simulated output bit for bit, creating missing folders.

    .npy: the array (float32 or float16; bfloat16 as its raw uint16 bits: read it with
    ``np.load(p).view(ml_dtypes.bfloat16)``). .npz: ``D`` (the same), ``out_dtype`` (its
    name) and the arrays of `inputs` that are not None (A and B as uint8 codes, scale_a,
    scale_b): a case file `fp8sim identify` reads as it is.
    """
    p = Path(path)
    if p.suffix.lower() not in (".npy", ".npz"):
        raise DataError(f"--out: expected a .npy or .npz file name, got {str(p)!r}")
    p.parent.mkdir(parents=True, exist_ok=True)
    d = np.asarray(out)
    if d.dtype == ml_dtypes.bfloat16:
        d = d.view(np.uint16)
    if p.suffix.lower() == ".npz":
        extra = {key: np.asarray(v) for key, v in (inputs or {}).items() if v is not None}
        np.savez(p, D=d, out_dtype=np.array(out_dtype), **extra)
    else:
        np.save(p, d)
    return p
