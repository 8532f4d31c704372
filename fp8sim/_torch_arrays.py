"""Torch tensors as numpy arrays, one conversion for every entry point that accepts them.

torch is optional: it is imported only when a caller passed a tensor. Float8 and
bfloat16 tensors become ml_dtypes arrays with the same bits (their codes are copied,
never rounded); a tensor with no numpy counterpart, or one without data (the meta
device), is a TypeError naming the argument instead of torch's own message.
"""

from __future__ import annotations

import ml_dtypes
import numpy as np

__all__ = ["is_torch", "torch_to_numpy", "host_array"]

_ML_DTYPES = frozenset({"float8_e4m3fn", "float8_e5m2", "float8_e4m3fnuz", "float8_e5m2fnuz",
                        "float8_e8m0fnu", "bfloat16"})
"""torch dtypes numpy lacks, read through their bits as the ml_dtypes type of the same name."""


def is_torch(x) -> bool:
    """True for objects of the torch package (tensors, dtypes), without importing torch."""
    return type(x).__module__.split(".")[0] == "torch"


def torch_to_numpy(t, arg: str) -> np.ndarray:
    """A torch tensor (any device, any strides, grad or not) as a numpy array of its values.

    Raises:
        TypeError: naming `arg`, for a meta tensor (no values) or a dtype numpy and
            ml_dtypes cannot hold (complex32, quantized and bit-packed types).
    """
    import torch  # only reached when the caller passed a torch object

    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{arg}: expected an array or a torch tensor, got {type(t).__name__}")
    if t.device.type == "meta":
        raise TypeError(f"{arg}: expected a tensor holding data, got one on the meta device "
                        "(shape and dtype only, no values); pass a CPU or CUDA tensor")
    t = t.detach().cpu()
    name = str(t.dtype).removeprefix("torch.")
    if name in _ML_DTYPES:
        raw = t.view(torch.uint8 if t.element_size() == 1 else torch.int16).numpy()
        return raw.view(getattr(ml_dtypes, name))
    try:
        return t.numpy()
    except (TypeError, RuntimeError):
        raise TypeError(f"{arg}: torch dtype {t.dtype} has no numpy counterpart; pass a "
                        "float32, float16, bfloat16, float8 or integer tensor") from None


def host_array(x, arg: str) -> np.ndarray:
    """`x` as a numpy array: torch tensors through `torch_to_numpy`, the rest np.asarray."""
    return torch_to_numpy(x, arg) if is_torch(x) else np.asarray(x)
