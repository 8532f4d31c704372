"""Name lookups in the package's registries of hardware descriptions (presets, epilogues,
kernels, cast conventions, recipes), with one error message shape for all of them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

T = TypeVar("T")


def lookup(value: str | T, registry: Mapping[str, T], kind: type, *, arg: str, what: str,
           fold_case: bool = False) -> T:
    """The entry of `registry` named `value`; an instance of `kind` passes through.

    Raises:
        ValueError: naming `arg`, the unknown value and every name the registry has.
    """
    if isinstance(value, kind):
        return value
    if isinstance(value, str):
        key = value.lower() if fold_case else value
        if key in registry:
            return registry[key]
    raise ValueError(f"{arg}: unknown {what} {value!r}; expected one of "
                     f"{', '.join(registry)} (or a {kind.__name__})")
