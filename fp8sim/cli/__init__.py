"""The `fp8sim` command line (click): `app` holds the group, the other modules its commands."""

from fp8sim.cli.app import main

__all__ = ["main"]
