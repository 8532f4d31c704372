"""The CLI's one error policy: a bad argument is one line on stderr and exit status 2.

click's usage errors print as one line ("Error: ..."), never a usage block or a
traceback; fp8sim's ValueError/TypeError (a bad argument found inside a command) become
usage errors named by their option (`usage_errors`); a request too large for the memory
is one line with status 2. `OneLineGroup` is the `fp8sim` group; `OneLineErrors` gives a
command the same policy when it runs on its own (tests, embedding).
"""

from __future__ import annotations

import contextlib
import re
import sys
from collections.abc import Iterator

import click

__all__ = ["OneLineGroup", "OneLineErrors", "TooLarge", "fail", "one_line", "cli_message",
           "usage_errors"]

_OPTION_OF = {"a": "--a", "b": "--b", "scale_a": "--scale-a", "scale_b": "--scale-b",
              "a_format": "--a-format", "b_format": "--b-format", "promote": "--promote",
              "out_dtype": "--out-dtype", "preset": "--preset", "m": "--m", "n": "--n",
              "k": "--k", "seed": "--seed", "frac_bits": "--frac-bits", "kernel": "--kernel",
              "recipe": "--recipe", "dist": "--dist", "slices": "--slices", "gpu": "--gpu",
              "m_max": "--m-max"}


def one_line(message: str) -> str:
    """Joins a (possibly multi-line) message into one line."""
    return "; ".join(part.strip() for part in str(message).splitlines() if part.strip())


def cli_message(message: str) -> str:
    """An API error message with its leading argument name as the CLI option ("scale_a:" ->
    "--scale-a:"), and a keyword a kernel does not take named as its option."""
    text = one_line(message).replace("pass slices=", "pass --slices N")
    head, sep, rest = text.partition(": ")
    if sep and head in _OPTION_OF:
        return f"{_OPTION_OF[head]}: {rest}"
    kw = re.search(r"unexpected keyword argument '(\w+)'", text)
    if kw:
        option = _OPTION_OF.get(kw.group(1), kw.group(1))
        return f"{option}: this kernel does not take it ({text})"
    return text


class TooLarge(click.ClickException):
    """A request that cannot fit in memory: one line, exit status 2."""

    exit_code = 2


@contextlib.contextmanager
def usage_errors() -> Iterator[None]:
    """Turns fp8sim's ValueError/TypeError (bad arguments) into a one-line usage error, and a
    request too large for the memory into one line with exit status 2."""
    try:
        yield
    except (ValueError, TypeError) as e:
        raise click.UsageError(cli_message(str(e))) from None
    except MemoryError as e:
        text = one_line(str(e)) or "out of memory"
        raise TooLarge(f"{text} (nothing was computed)") from None


def _echo_error(e: click.ClickException) -> None:
    """Prints a click error as one stderr line, with a --help hint for usage errors."""
    hint = ""
    ctx = getattr(e, "ctx", None)
    if isinstance(e, click.UsageError) and ctx is not None:
        hint = f" (try '{ctx.command_path} --help')"
    click.echo(f"Error: {one_line(e.format_message())}{hint}", err=True)


class OneLineGroup(click.Group):
    """A click group whose errors print as one stderr line (exit 2 for usage errors)."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True,
             **extra):
        """Runs the CLI; in standalone mode prints click errors as one line and exits."""
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            rv = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.ClickException as e:
            _echo_error(e)
            sys.exit(e.exit_code)
        except click.Abort:
            click.echo("Aborted!", err=True)
            sys.exit(1)
        sys.exit(rv if isinstance(rv, int) else 0)


class OneLineErrors(click.Command):
    """A command whose usage errors print one line and exit 2 when it runs on its own."""

    def make_context(self, info_name, args, parent=None, **extra):
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except click.UsageError as e:
            click.echo(f"Error: {one_line(e.format_message())}", err=True)
            raise click.exceptions.Exit(2) from None


def fail(message: str) -> None:
    """Prints one line to stderr and exits with status 2."""
    click.echo(f"Error: {one_line(message)}", err=True)
    raise click.exceptions.Exit(2)
