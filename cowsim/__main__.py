"""``python -m cowsim``: the same command line as the ``cowsim`` script."""
from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())
