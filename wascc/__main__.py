"""``python -m wascc``: the same command line as ``wascc``."""

from wascc.cli import main

if __name__ == "__main__":
    main(prog_name="wascc")
