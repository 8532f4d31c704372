"""One-line, exit-status-2 argument errors shared by the standalone click commands."""

from __future__ import annotations

import click

__all__ = ["OneLineErrors", "fail"]


class OneLineErrors(click.Command):
    """A command whose usage errors print one line and exit 2 (no usage block)."""

    def make_context(self, info_name, args, parent=None, **extra):
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except click.UsageError as e:
            click.echo(f"Error: {e.format_message()}", err=True)
            raise click.exceptions.Exit(2) from None


def fail(message: str) -> None:
    """Prints one line to stderr and exits with status 2."""
    click.echo(f"Error: {message}", err=True)
    raise click.exceptions.Exit(2)
