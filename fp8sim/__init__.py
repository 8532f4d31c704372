"""fp8sim: bit-exact CPU simulation of FP8 matrix multiplication on NVIDIA Hopper Tensor Cores.

The public API: `encode`, `decode`, `gemm`, `quantize`, `identify` (the contract), the
recipes (`fp8_matmul`, `linear`: one Linear layer forward and backward as a named stack
runs it; `Float8SimLinear` / `swap_linears` for torch models, with the `torch` extra),
the oracle (`compare`, `assert_matches`), batch invariance (`splits`: the batch sizes over
which a kernel keeps one split of K), and the format, preset and kernel descriptions.
Heavier modules load lazily so `import fp8sim` stays
fast.
"""

from __future__ import annotations

import importlib

from fp8sim.engine.gemm import gemm
from fp8sim.engine.mma import PRESETS, MMAStep
from fp8sim.formats.convert import decode, encode, encode_e8m0
from fp8sim.formats.info import E4M3, E5M2, FORMATS, FormatInfo, format_info
from fp8sim.formats.rounding import RoundMode

__version__ = "0.1.0"

_LAZY = {
    "quantize": "casts",
    "dequantize": "casts",
    "retile": "casts",
    "quantize_mx": "casts",
    "delayed_scale": "casts",
    "identify": "analysis.identify",
    "fp8_matmul": "analysis.matmul",
    "RECIPES": "recipes.pipeline",
    "Recipe": "recipes.pipeline",
    "assert_matches": "analysis.oracle",
    "compare": "analysis.oracle",
    "KERNELS": "engine.kernel",
    "linear": "recipes.layers",
    "LinearRecipe": "recipes.layers",
    "LINEAR_RECIPES": "recipes.layers",
    "CONVENTIONS": "casts",
    "Float8SimLinear": "torch.linear",
    "swap_linears": "torch.linear",
    "splits": "engine.split_choice",
}

__all__ = [
    "encode", "decode", "encode_e8m0", "gemm", "quantize", "dequantize", "retile",
    "quantize_mx", "delayed_scale", "identify", "fp8_matmul", "Recipe", "RECIPES", "compare",
    "assert_matches", "FormatInfo", "E4M3", "E5M2", "FORMATS", "format_info", "MMAStep",
    "PRESETS", "RoundMode", "KERNELS", "linear", "LinearRecipe", "LINEAR_RECIPES", "CONVENTIONS",
    "Float8SimLinear", "swap_linears", "splits",
]


def __getattr__(name: str):
    """Loads the quantization, identification and oracle modules on first use."""
    if name in _LAZY:
        module = importlib.import_module(f".{_LAZY[name]}", __name__)
        return getattr(module, name)
    raise AttributeError(f"module 'fp8sim' has no attribute {name!r}")
