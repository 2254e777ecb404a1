"""Commands beside LightningCLI's fit/validate/test/predict: ``mtl prepare``, ``mtl bench``,
``mtl models``, ``mtl sweep``, ``mtl cv``, ``mtl report``, ``mtl dashboard``, ``mtl analyze``,
``mtl export``, ``mtl publish``.

Each takes options the way ``mtl fit`` does (jsonargparse: typed ``--key value`` options,
``--config`` files, ``--help``) and returns an exit status; ``mtl cv`` passes every option it
does not know on to ``mtl fit``, so it parses its own few with argparse.

A command's module is imported only when it runs: ``mtl --help`` stays fast, and a machine
without a command's optional dependencies (Optuna for ``sweep``, wandb-workspaces for
``dashboard``) still runs the others.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass


@dataclass(frozen=True)
class Command:
    """One ``mtl`` command: its one-line help and the module whose ``main(argv)`` runs it."""

    help: str
    module: str

    def run(self, argv: list[str]) -> int:
        return importlib.import_module(self.module).main(argv)


COMMANDS: dict[str, Command] = {
    "prepare": Command(
        "Detect, crop, grey and resize a raw dataset's faces into a cache.",
        "mtl.cli.commands.prepare",
    ),
    "bench": Command(
        "Measure throughput: data pipeline, training against a bare PyTorch loop, per-step host "
        "overhead, inference.",
        "mtl.cli.commands.bench",
    ),
    "models": Command(
        "Every backbone's parameters, FLOPs and CPU throughput, as one table.",
        "mtl.cli.commands.models",
    ),
    "sweep": Command(
        "Run a W&B sweep file locally (Optuna storage; several workers may share it).",
        "mtl.cli.commands.sweep",
    ),
    "cv": Command(
        "k-fold cross-validation of a config: every fold fitted and tested, then mean ± std.",
        "mtl.cli.commands.cv",
    ),
    "report": Command(
        "Compare finished runs (folders, W&B offline runs, a W&B project) in the papers' tables.",
        "mtl.cli.commands.report",
    ),
    "dashboard": Command(
        "Create a W&B saved workspace (and --report) comparing task sets, backbones, weightings.",
        "mtl.cli.commands.dashboard",
    ),
    "analyze": Command(
        "Find every face in photos, folders and videos and predict its attributes (CSV, JSONL, "
        "annotated images and video).",
        "mtl.cli.commands.analyze",
    ),
    "publish": Command(
        "A finished run as a Hugging Face Hub model folder with its model card (--repo_id: push).",
        "mtl.cli.commands.publish",
    ),
    "export": Command(
        "Export a checkpoint to ONNX and TorchScript, with its preprocessing in the metadata.",
        "mtl.cli.commands.export",
    ),
}
