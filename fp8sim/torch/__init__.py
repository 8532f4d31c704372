"""torch adapters of fp8sim, on CPU tensors (the optional extra ``pip install fp8sim[torch]``).

* `scaled_mm` (`fp8sim.torch.scaled`): ``torch._scaled_mm``'s signature and checks,
  returning the bits an H100 returns: a drop-in expected value for kernel tests.
* `Float8SimLinear`, `swap_linears` (`fp8sim.torch.linear`): ``nn.Linear`` layers whose
  forward and backward GEMMs are FP8 as a named stack runs them (`fp8sim.linear`).

Importing this package needs no torch; the linear layers load torch on first use.
"""

from __future__ import annotations

import importlib

from fp8sim.torch.scaled import scaled_mm

__all__ = ["scaled_mm", "Float8SimLinear", "Float8SimLinearFunction", "swap_linears"]

_LINEAR = ("Float8SimLinear", "Float8SimLinearFunction", "swap_linears")


def __getattr__(name: str):
    """Loads the torch layers (`fp8sim.torch.linear`, which imports torch) on first use."""
    if name in _LINEAR:
        return getattr(importlib.import_module("fp8sim.torch.linear"), name)
    raise AttributeError(f"module 'fp8sim.torch' has no attribute {name!r}")
