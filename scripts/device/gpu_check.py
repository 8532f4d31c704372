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
    _engine_checks(check)
    print("failures:", fails)
    return fails


def _engine_checks(check) -> None:
    """The GPU engine against the CPU engine with the K split on and off (test_gpu_engine)."""
    import test_gpu_engine as e

    for scaling in (None, "group"):
        check(f"engine K split at a Wgrad shape, scaling {scaling}",
              lambda s=scaling: e.test_k_split_at_a_wgrad_shape(s))
    for preset in ("hopper", "ideal"):  # C through the split
        check(f"engine K split with C, {preset}", lambda p=preset: e.test_k_split_with_c(p))
    for on in (True, False):
        def run(fn, *args, on=on):
            with e.k_split_set(on):
                fn(*args)
        tag = "K split" if on else "serial"
        for promote in (32, 128):
            for shape in ((67, 300, 65), (128, 512, 64)):
                check(f"engine special codes {tag} promote {promote} {shape}",
                      lambda p=promote, sh=shape: run(e.test_special_codes_and_accumulators, p, sh))
        for scaling in (None, "group", "tensor", "row"):
            check(f"engine scaling {scaling} {tag}",
                  lambda sc=scaling: run(e.test_random_cases_of_every_scaling, sc, "bfloat16"))
        check(f"engine {len(e._epilogue_variants())} epilogues {tag}",
              lambda: run(lambda: [e.test_every_epilogue_variant(ep)
                                   for ep in e._epilogue_variants()]))


if __name__ == "__main__":
    sys.exit(1 if main() else 0)
