"""fp8sim: bit-exact CPU simulation of FP8 matrix multiplication on NVIDIA Hopper Tensor Cores.

The public API: `encode`, `decode`, `gemm`, `quantize`, `identify` (the contract), the
recipes (`fp8_matmul`), the oracle (`compare`, `assert_matches`), and the format,
preset and kernel descriptions. Heavier modules load lazily so `import fp8sim` stays
fast.
"""

from __future__ import annotations

import importlib

from .convert import decode, encode, encode_e8m0
from .formats import E4M3, E5M2, FORMATS, FormatInfo, format_info
from .gemm import gemm
from .mma import PRESETS, MMAStep
from .rounding import RoundMode

__version__ = "0.1.0"

_LAZY = {
    "quantize": "quant",
    "dequantize": "quant",
    "retile": "quant",
    "quantize_mx": "quant",
    "delayed_scale": "quant",
    "identify": "identify",
    "fp8_matmul": "pipeline",
    "RECIPES": "pipeline",
    "Recipe": "pipeline",
    "assert_matches": "oracle",
    "compare": "oracle",
    "KERNELS": "kernel",
}

__all__ = [
    "encode", "decode", "encode_e8m0", "gemm", "quantize", "dequantize", "retile",
    "quantize_mx", "delayed_scale", "identify", "fp8_matmul", "Recipe", "RECIPES", "compare",
    "assert_matches", "FormatInfo", "E4M3", "E5M2", "FORMATS", "format_info", "MMAStep",
    "PRESETS", "RoundMode", "KERNELS",
]


def __getattr__(name: str):
    """Loads the quantization, identification and oracle modules on first use."""
    if name in _LAZY:
        module = importlib.import_module(f".{_LAZY[name]}", __name__)
        return getattr(module, name)
    raise AttributeError(f"module 'fp8sim' has no attribute {name!r}")
