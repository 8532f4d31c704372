"""`fp8sim encode` / `fp8sim decode`: one FP8 code at a time, its fields, value, neighbours
and what every rounding mode gives."""

from __future__ import annotations

import math

import click
import numpy as np

from fp8sim.cli.options import INSPECT_FORMATS
from fp8sim.formats.convert import encode
from fp8sim.formats.info import decode_table, format_info
from fp8sim.formats.rounding import RoundMode

__all__ = ["encode_", "decode_"]


def _describe(code: int, fmt: str) -> list[str]:
    """Lines describing one code: hex, binary, fields, value, neighbours."""
    f = format_info(fmt)
    mb, eb = f.mantissa_bits, f.exponent_bits
    sign, exp, man = code >> 7, (code >> mb) & ((1 << eb) - 1), code & ((1 << mb) - 1)
    value = float(decode_table(f)[code])
    if math.isnan(value):
        kind = "NaN"
    elif math.isinf(value):
        kind = "infinity"
    elif value == 0:
        kind = "zero"
    elif exp == 0:
        kind = f"subnormal, 2^{1 - f.bias} x 0.{man:0{mb}b}b"
    else:
        kind = f"normal, 2^{exp - f.bias} x 1.{man:0{mb}b}b"
    lines = [f"  code     0x{code:02x} = 0b{sign}_{exp:0{eb}b}_{man:0{mb}b}  "
             f"(sign {sign}, exponent {exp:0{eb}b} = {exp} biased by {f.bias}, "
             f"mantissa {man:0{mb}b})",
             f"  value    {value!r}  ({kind})"]
    if math.isfinite(value):
        below, above = _neighbours(value, f)
        parts = [f"below {_code_value(below, f)}" if below is not None else "below: none",
                 f"above {_code_value(above, f)}" if above is not None else "above: none"]
        lines.append(f"  neighbours {', '.join(parts)}")
    return lines


def _code_value(code: int, f) -> str:
    """'0xNN (value)'."""
    return f"0x{code:02x} ({float(decode_table(f)[code])!r})"


def _neighbours(value: float, f) -> tuple[int | None, int | None]:
    """Codes of the next smaller and next larger finite values (positive zero preferred)."""
    table = decode_table(f).astype(np.float64)
    codes = np.arange(table.size)
    finite = np.isfinite(table)
    lower = codes[finite & (table < value)]
    upper = codes[finite & (table > value)]
    below = int(lower[np.argmax(table[lower])]) if lower.size else None
    above = int(upper[np.argmin(table[upper])]) if upper.size else None
    return below, above


def _parse_float(text: str) -> float:
    """A float from the command line (also 'inf', 'nan', hex floats like 0x1.8p-3)."""
    try:
        return float(text)
    except ValueError:
        try:
            if "0x" not in text.lower():
                raise ValueError(text)
            return float.fromhex(text)
        except ValueError:
            raise click.BadParameter(f"expected a number, got {text!r}",
                                     param_hint="'VALUE'") from None


_FORMAT_OPTION = click.option("--format", "fmt", type=click.Choice(INSPECT_FORMATS),
                              default="e4m3", show_default=True, help="FP8 format.")


@click.command(name="encode", context_settings={"ignore_unknown_options": True},
              short_help="Encodes numbers: code, fields, neighbours, every rounding mode.")
@click.argument("values", nargs=-1, required=True)
@_FORMAT_OPTION
def encode_(values, fmt):
    """Encodes VALUE... (e.g. 0.3 -1.5 448 1e-3 inf) and shows what each rounding mode gives."""
    f = format_info(fmt)
    blocks = []
    for text in values:
        x = _parse_float(text)
        arr = np.array([x], np.float64)
        code = int(encode(arr, f)[0])
        lines = [f"{text} -> {fmt} (round to nearest, ties to even)"]
        lines += _describe(code, fmt)
        v = float(decode_table(f)[code])
        if math.isfinite(v) and math.isfinite(x):
            err = v - x
            rel = f", rel {err / abs(x):+.3e}" if x else ""
            lines.append(f"  error    {err:+.6g}{rel}")
        modes = []
        for mode in RoundMode:
            if mode is RoundMode.Stochastic:
                continue
            c = int(encode(arr, f, rounding=mode)[0])
            modes.append(f"{mode.name} {_code_value(c, f)}")
        lines.append("  rounding " + "; ".join(modes))
        lines.append("  " + _stochastic(x, f))
        sat = int(encode(arr, f, saturate=True)[0])
        lines.append(f"  saturating (satfinite) {_code_value(sat, f)}")
        blocks.append("\n".join(lines))
    click.echo("\n\n".join(blocks))


def _stochastic(x: float, f) -> str:
    """What stochastic rounding gives for x: the two candidates and P(away from zero)."""
    arr = np.array([x], np.float64)
    lo = int(encode(arr, f, rounding=RoundMode.TowardZero)[0])
    hi_mode = RoundMode.TowardPositive if x >= 0 else RoundMode.TowardNegative
    hi = int(encode(arr, f, rounding=hi_mode)[0])
    if lo == hi or not math.isfinite(x):
        return f"Stochastic always {_code_value(lo, f)}"
    vlo, vhi = float(decode_table(f)[lo]), float(decode_table(f)[hi])
    if not math.isfinite(vhi):
        return f"Stochastic {_code_value(lo, f)} or {_code_value(hi, f)}"
    p = (abs(x) - abs(vlo)) / (abs(vhi) - abs(vlo))
    return (f"Stochastic {_code_value(hi, f)} with probability {p:.4g}, "
            f"else {_code_value(lo, f)}")


def _parse_code(text: str) -> int:
    """A code from '0x7e', '0b01111110', '126'."""
    try:
        code = int(text, 0)
    except ValueError:
        raise click.BadParameter(f"expected a code like 0x7e or 126, got {text!r}",
                                 param_hint="'CODE'") from None
    if not 0 <= code <= 255:
        raise click.BadParameter(f"expected 0..255 (0x00..0xff), got {text!r}",
                                 param_hint="'CODE'")
    return code


@click.command(name="decode", context_settings={"ignore_unknown_options": True},
               short_help="Decodes FP8 codes: fields, value, neighbours.")
@click.argument("codes", nargs=-1, required=True)
@_FORMAT_OPTION
def decode_(codes, fmt):
    """Decodes CODE... (hex like 0x7e, binary like 0b01111110, or decimal)."""
    blocks = []
    for text in codes:
        code = _parse_code(text)
        blocks.append("\n".join([f"{text} as {fmt}"] + _describe(code, fmt)))
    click.echo("\n\n".join(blocks))
