"""Subcommands beside LightningCLI's fit/validate/test/predict: ``mtl prepare``, ``mtl bench``.

Each module exposes ``main(argv: list[str]) -> int`` (an exit status).
"""

from collections.abc import Callable

from mtl.commands import bench, prepare

COMMANDS: dict[str, Callable[[list[str]], int]] = {"prepare": prepare.main, "bench": bench.main}
