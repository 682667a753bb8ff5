"""`python -m transgan_lab ...` is the same as the `transgan-lab` console script."""

from transgan_lab.platform.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
