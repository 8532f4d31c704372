"""fp8sim: bit-exact CPU simulation of FP8 matrix multiplication on NVIDIA Hopper Tensor Cores.

The public API (see CONTRACT in the README): `encode`, `decode`, `gemm`, `quantize`,
`identify`, plus the format and preset descriptions. Heavier modules load lazily so
`import fp8sim` stays fast.
"""

from __future__ import annotations

import importlib

from .convert import decode, encode
from .formats import E4M3, E5M2, FORMATS, FormatInfo, format_info
from .gemm import gemm
from .mma import PRESETS, MMAStep
from .rounding import RoundMode

__version__ = "0.1.0"

_LAZY = {
    "quantize": "quant",
    "dequantize": "quant",
    "identify": "identify",
    "fp8_matmul": "pipeline",
    "RECIPES": "pipeline",
    "assert_matches": "oracle",
    "compare": "oracle",
    "KERNELS": "kernel",
}

__all__ = [
    "encode", "decode", "gemm", "quantize", "dequantize", "identify", "fp8_matmul",
    "FormatInfo", "E4M3", "E5M2", "FORMATS", "format_info", "MMAStep", "PRESETS", "RoundMode",
    "KERNELS",
]


def __getattr__(name: str):
    """Loads the quantization, identification and oracle modules on first use."""
    if name in _LAZY:
        module = importlib.import_module(f".{_LAZY[name]}", __name__)
        return getattr(module, name)
    raise AttributeError(f"module 'fp8sim' has no attribute {name!r}")
