"""``python -m mtl`` is the ``mtl`` command."""

from mtl.cli import main

if __name__ == "__main__":
    main()
