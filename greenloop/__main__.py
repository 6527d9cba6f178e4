"""`python -m greenloop ...`: the same commands as the `greenloop` script."""

from greenloop.cli import entry

if __name__ == "__main__":
    entry()
