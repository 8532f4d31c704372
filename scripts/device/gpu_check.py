"""GPU bit-equality checks on a device without pytest: casts, device-array gemm, the layer.

Runs the GPU tests of tests/test_gpu_casts.py as plain functions (a stand-in `pytest`
module when pytest is absent) and prints OK/FAIL per check and the failure count.
"""

from __future__ import annotations

import sys
import traceback
import types


def _stand_in_pytest() -> None:
    """A `pytest` module whose marks leave the decorated function as it is."""
    try:
        import pytest  # noqa: F401
        return
    except ImportError:
        pass

    class _Marks:
        def __getattr__(self, name):
            def mark(*args, **kwargs):
                if len(args) == 1 and callable(args[0]) and not kwargs:
                    return args[0]
                return lambda f: f
            return mark

    fake = types.ModuleType("pytest")
    fake.mark = _Marks()
    fake.importorskip = __import__
    fake.raises = None
    sys.modules["pytest"] = fake


def main() -> int:
    """Runs each check; returns the number that failed."""
    sys.path.insert(0, "tests")
    _stand_in_pytest()
    import test_gpu_casts as t

    fails = 0

    def check(name, fn):
        nonlocal fails
        try:
            fn()
            print("OK  ", name, flush=True)
        except Exception:
            fails += 1
            print("FAIL", name, flush=True)
            traceback.print_exc()

    check("encode", t.test_gpu_encode_matches_fp8sim_encode)
    for op in t._casts():
        check(f"quantize {op}", lambda op=op: t.test_gpu_quantize_matches_the_cpu_casts(op))
    for od in ("float32", "bfloat16"):
        check(f"gemm device {od}",
              lambda od=od: t.test_gemm_on_device_arrays_returns_device_arrays(od))
    for r in t.GPU_RECIPES:
        check(f"Float8SimLinear {r}",
              lambda r=r: t.test_float8simlinear_on_the_gpu_matches_the_cpu(r, t.SMALL_SHAPE))
        check(f"Float8SimLinear {r} (split-K Wgrad)",
              lambda r=r: t.test_float8simlinear_on_the_gpu_matches_the_cpu(r, t.SPLIT_SHAPE))
    print("failures:", fails)
    return fails


if __name__ == "__main__":
    sys.exit(1 if main() else 0)
