"""A user's own arrays on the command line: peek, load, quantize, scale and save them.

`fp8sim gemm --a A.npy --b B.npy` reads each operand from a ``.npy`` file or an array
of a ``.npz`` archive (``PATH`` takes the archive's array named ``A``/``a`` (``B``/``b``,
``scale_a``, ...) or its only array; ``PATH:NAME`` names one). uint8 arrays (and the
1-byte void arrays ``np.save`` writes for ml_dtypes float8 arrays) are FP8 codes; float
arrays are quantized first. Shapes are read from the file headers before anything is
loaded, so the memory check runs first.
"""

from __future__ import annotations

import math
import zipfile
from dataclasses import dataclass
from pathlib import Path

import ml_dtypes
import numpy as np

from fp8sim.formats.convert import encode
from fp8sim.formats.info import format_info

__all__ = ["Source", "DataError", "peek", "load", "is_codes", "check_operand", "as_float8",
           "quantize_operand", "parse_scale", "rounded_note", "check_writable", "save_output"]

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
    if not path.exists():
        raise DataError(f"{option}: no such file {str(path)!r}")
    if not path.is_file():
        what = "a folder" if path.is_dir() else "not a regular file"
        raise DataError(f"{option}: {str(path)!r} is {what}, not an .npy/.npz file")
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
        if "'<f1'" in str(e):  # np.save of an ml_dtypes float8_e5m2 array
            raise DataError(f"{option}: {path.name} holds an ml_dtypes float8 array, whose "
                            "dtype numpy cannot read back; save its codes instead: "
                            "np.save(FILE, x.view(np.uint8)), and pass the format "
                            "(--a-format/--b-format e5m2)") from None
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
    big = float(np.finfo(np.float32).max)
    if x.dtype == np.float64 and x.size and float(np.max(np.abs(x))) > big:
        raise DataError(f"{option}: the float64 data holds values beyond float32's range "
                        f"(|x| up to {float(np.max(np.abs(x))):.3g} > {big:.4g}); fp8sim "
                        "casts float32")
    if scale == "unit":
        return as_float8(encode(x, fmt, saturate=True), fmt), None
    from fp8sim.casts import quantize

    codes, scales = quantize(np.asarray(x, np.float32), fmt, block=x.shape)
    return as_float8(codes, fmt), np.float32(scales.reshape(()))


def parse_scale(text: str | None, option: str, names: tuple[str, ...]
                ) -> tuple[Source | None, np.float32 | None]:
    """--scale-a VALUE or FILE: (file source, None) or (None, the float32 number).

    A number is used as the kernel uses it, in float32: a decimal that float32 cannot
    hold exactly (0.1) is rounded to the nearest float32 (the gemm summary says so);
    nan and inf are taken as the API takes them; a finite number beyond float32's range
    is refused.
    """
    if text is None:
        return None, None
    try:
        value = float(text)
    except ValueError:
        path = _split(text)[0]
        if not path.is_file() and path.suffix.lower() not in (".npy", ".npz"):
            raise DataError(f"{option}: expected a number (e.g. 0.5, nan, inf) or an array file "
                            f"(.npy, .npz[:NAME]), got {text!r}") from None
        return peek(text, option, names), None
    if math.isfinite(value) and abs(value) > float(np.finfo(np.float32).max):
        raise DataError(f"{option}: {text} is beyond float32's range (largest "
                        f"{float(np.finfo(np.float32).max):.7g})")
    return None, np.float32(value)


def rounded_note(text: str | None, value, option: str) -> str | None:
    """'--scale-a 0.1 is float32 0.10000000149011612' when a typed number is not a float32."""
    if text is None or value is None:
        return None
    try:
        typed = float(text)
    except ValueError:
        return None
    used = float(value)
    if used == typed or (math.isnan(used) and math.isnan(typed)):
        return None
    return f"{option} {text} is not a float32 number; used float32 {used!r}"


def check_writable(path: str | Path, option: str = "--out") -> None:
    """Refuses an output path that cannot be written, before anything is computed.

    The nearest existing folder above it must be a folder; the missing folders are then
    created (as `save_output` would) and the file opened for appending (and removed again
    if it did not exist), which also catches read-only file systems.
    """
    p = Path(path)
    if p.is_dir():
        raise DataError(f"{option}: {str(p)!r} is a folder; expected a file name")
    parent = p.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise DataError(f"{option}: cannot write {str(p)!r}: {str(parent)!r} is not a folder")
    existed = p.exists()
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        with open(p, "ab"):
            pass
    except OSError as e:
        raise DataError(f"{option}: cannot write {str(p)!r} ({e.strerror or e})") from None
    if not existed:
        p.unlink(missing_ok=True)


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
