"""`python -m fp8sim ...` runs the command line."""

from fp8sim.cli import main

main()
