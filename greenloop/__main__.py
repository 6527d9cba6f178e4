"""`python -m greenloop ...`: the same commands as the `greenloop` script."""

from greenloop.cli import entry

entry()
