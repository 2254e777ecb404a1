"""mtl: multi-source, multi-task face-attribute learning on PyTorch Lightning.

The package is layered; each layer imports only from the layers below it (the import-linter
contracts in ``pyproject.toml`` enforce it, ``lint-imports`` checks them)::

    cli          the ``mtl`` command: LightningCLI and the project's commands
    experiments  sweeps, k-fold cross-validation, reports, dashboards, benchmarks
    inference    a trained model on photos and video; export
    training     the LightningModule, metrics, callbacks, loggers, checkpoints and resume
    data | models | losses   face data and sources; backbones and heads; task losses, weightings
    tasks | errors           what each task is; the errors users are shown

Modules that moved keep answering at their old names (``mtl.module``, ``mtl.loggers``, …), so
the class paths in configs, saved runs and checkpoints written before the move still load.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
from types import ModuleType

__version__ = "0.1.0"

MOVED: dict[str, str] = {
    "mtl.module": "mtl.training.module",
    "mtl.metrics": "mtl.training.metrics",
    "mtl.optim": "mtl.training.optim",
    "mtl.precise_bn": "mtl.training.precise_bn",
    "mtl.precision": "mtl.training.precision",
    "mtl.resume": "mtl.training.resume",
    "mtl.identity": "mtl.training.identity",
    "mtl.loggers": "mtl.training.loggers",
    "mtl.callbacks": "mtl.training.callbacks",
    "mtl.eval_logs": "mtl.training.evaluation",
    "mtl.run_report": "mtl.training.summary",
    "mtl.ensemble": "mtl.training.ensemble",
    "mtl.hparams": "mtl.models.hparams",
    "mtl.inference.preprocessing": "mtl.data.preprocessing",
    "mtl.dashboard": "mtl.experiments.dashboard",
    "mtl.sweep": "mtl.experiments.sweep",
    "mtl.report": "mtl.experiments.report",
    "mtl.benchmarks": "mtl.experiments.bench",
    "mtl.commands": "mtl.cli.commands",
    "mtl.commands.parsing": "mtl.cli.parsing",
    "mtl.sweep.report": "mtl.experiments.sweep.results",
}
"""Old module name -> where it lives now (submodules follow their package)."""


def moved_to(name: str) -> str | None:
    """The current name of a module imported by an old one, or None if it did not move (the
    longest old prefix decides: ``mtl.commands.parsing`` before ``mtl.commands``)."""
    if not name.startswith("mtl."):
        return None
    for old in sorted(MOVED, key=len, reverse=True):
        if name == old or name.startswith(old + "."):
            return MOVED[old] + name[len(old) :]
    return None


class _MovedModules(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Imports an old module name as the module it became (the same object, not a copy)."""

    def __init__(self) -> None:
        self._specs: dict[str, importlib.machinery.ModuleSpec | None] = {}

    def find_spec(self, name: str, path: object = None, target: object = None):  # noqa: ANN201
        new = moved_to(name)
        return importlib.util.spec_from_loader(name, self) if new else None

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        module = importlib.import_module(moved_to(spec.name) or spec.name)
        self._specs[spec.name] = module.__spec__  # Python sets the alias spec on it next
        return module

    def exec_module(self, module: ModuleType) -> None:
        """Nothing to run (the module was imported under its current name): give it its own
        spec back, which the import system replaced with the alias's (``importlib.resources``
        and pickling read it)."""
        for alias, spec in list(self._specs.items()):
            if module.__spec__ is not None and module.__spec__.name == alias:
                module.__spec__ = spec
                del self._specs[alias]


if not any(isinstance(finder, _MovedModules) for finder in sys.meta_path):
    sys.meta_path.insert(0, _MovedModules())  # first: a package's old name must not find its files
