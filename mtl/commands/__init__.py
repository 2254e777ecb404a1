"""Subcommands beside LightningCLI's fit/validate/test/predict: ``mtl prepare``, ``mtl bench``,
``mtl models``.

Each module exposes ``main(argv: list[str]) -> int`` (an exit status).
"""

from collections.abc import Callable

from mtl.commands import bench, models, prepare

COMMANDS: dict[str, Callable[[list[str]], int]] = {
    "prepare": prepare.main,
    "bench": bench.main,
    "models": models.main,
}
