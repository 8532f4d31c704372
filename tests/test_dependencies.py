"""The behaviours of numpy and ml_dtypes that fp8sim relies on, stated as tests.

setup.cfg's lower bounds are where these hold (ml_dtypes 0.5 for E8M0, numpy 2 for NEP 50
scalar promotion); it caps nothing, so CI resolving today's releases fails here first when a
release changes one of them. Each test says which code relies on the behaviour.
"""

from __future__ import annotations

import re
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest

from fp8sim import decode, encode
from fp8sim.formats.info import FORMATS

SETUP = Path(__file__).resolve().parents[1] / "setup.cfg"


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", text)[:3])


def _requirements() -> dict[str, str]:
    """install_requires of setup.cfg, {name: specifier}."""
    text = SETUP.read_text().split("install_requires =")[1].split("\n[")[0]
    reqs = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name = re.match(r"[A-Za-z0-9_.-]+", line).group(0)
            reqs[name.lower().replace("-", "_")] = line[len(name):].strip()
    return reqs


def test_bounds_are_lower_bounds_only():
    """No upper caps: CI resolves today's releases, so a behaviour change fails a test."""
    reqs = _requirements()
    assert {"numpy", "numba", "ml_dtypes", "scipy", "matplotlib", "click", "tqdm"} <= set(reqs)
    for name, spec in reqs.items():
        assert spec.startswith(">=") and "," not in spec and "<" not in spec, (name, spec)
    assert _version(reqs["ml_dtypes"]) >= (0, 5)
    assert _version(reqs["numpy"]) >= (2, 0)


def test_installed_versions_meet_the_bounds():
    import importlib.metadata as md
    for name, spec in _requirements().items():
        have = _version(md.version(name.replace("_", "-")))
        assert have >= _version(spec), (name, have, spec)


def test_ml_dtypes_has_every_format_and_its_layout():
    """formats/info.py names ml_dtypes' float8 types (E8M0 since ml_dtypes 0.5); their
    finfo must agree with ours (encode/decode, as_codes read arrays by these dtypes)."""
    for f in FORMATS.values():
        dt = np.dtype(getattr(ml_dtypes, f.dtype_name))
        assert dt.itemsize == 1 and f.ml_dtype == dt
        fi = ml_dtypes.finfo(dt)
        assert float(fi.max) == f.max, f.name
    assert np.dtype(ml_dtypes.bfloat16).itemsize == 2


def test_ml_dtypes_float32_casts_round_to_nearest_even():
    """float32 -> float8 / bfloat16 casts round to nearest even: tests compare encode with
    them, and bfloat16 outputs (gemm's out_dtype, gemm_bf16, linear) are float32 values
    rounded by ml_dtypes' cast."""
    ties = np.array([1.0 + 2.0**-8, 1.0 + 3 * 2.0**-8, -(1.0 + 2.0**-8)], np.float32)
    assert ties.astype(ml_dtypes.bfloat16).view(np.uint16).tolist() == [0x3F80, 0x3F82, 0xBF80]
    above = np.array([1.0 + 2.0**-8 + 2.0**-20], np.float32)
    assert above.astype(ml_dtypes.bfloat16).view(np.uint16)[0] == 0x3F81
    x = np.array([1.0625, 1.1875, 1.0625 + 2.0**-20], np.float32)  # E4M3 ties and above
    got = x.astype(ml_dtypes.float8_e4m3fn).view(np.uint8)
    assert got.tolist() == encode(x, "e4m3").tolist() == [0x38, 0x3A, 0x39]
    nan = np.array([np.nan], np.float32).astype(ml_dtypes.bfloat16).view(np.uint16)[0]
    assert nan & 0x7F80 == 0x7F80 and nan & 0x7F  # a NaN (gemm then writes 0x7FFF)


def test_ml_dtypes_float64_cast_is_not_relied_on():
    """ml_dtypes' float64 casts round twice (through float32, up to 0.5) or once (0.6 on):
    fp8sim never uses them; its own encode rounds float64 once, and float64 -> bfloat16
    goes through float32 explicitly (as torch). Either ml_dtypes behaviour is accepted."""
    probe = np.array([1.0625 + 2.0**-40])
    assert int(probe.astype(ml_dtypes.float8_e4m3fn).view(np.uint8)[0]) in (0x38, 0x39)
    assert encode(probe, "e4m3")[0] == 0x39
    assert decode(encode(probe.astype(np.float32), "e4m3"))[0] == 1.0


def test_numpy_2_scalar_promotion():
    """NEP 50 (numpy >= 2): a Python float next to a float32 scalar is float32, so a check
    like ``np.float32(v) != v`` never fires; exactness checks compare in float64
    (gemm's scales: ``arr.astype(float32).astype(arr.dtype) != arr`` on arrays)."""
    assert (np.float32(3) * 0.1).dtype == np.float32
    assert not (np.float32(0.1) != 0.1)  # the NEP 50 trap itself
    assert float(np.float32(0.1)) != 0.1
    from fp8sim import gemm
    with pytest.raises(ValueError, match=r"^scale_a: 0\.1 \(float64\) is not exactly "
                                         r"representable .* np\.float32\(s\)"):
        gemm(np.zeros((1, 32), np.uint8), np.zeros((32, 1), np.uint8), scale_a=0.1,
             scale_b=1.0)
