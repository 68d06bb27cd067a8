"""``python -m rempart.cli._main``: the same entry point as the ``rempart`` script."""

from rempart.cli import main

if __name__ == "__main__":
    main()
