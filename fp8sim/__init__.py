"""fp8sim: bit-exact CPU simulation of FP8 matrix multiplication on NVIDIA Hopper Tensor Cores."""

from .convert import decode, encode
from .formats import E4M3, E5M2, FORMATS, FormatInfo, format_info
from .rounding import RoundMode

__version__ = "0.1.0"
__all__ = ["encode", "decode", "FormatInfo", "E4M3", "E5M2", "FORMATS", "format_info", "RoundMode"]
