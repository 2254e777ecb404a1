"""The package's layers (mtl/__init__.py) hold: checked by import-linter's contracts in
pyproject.toml, and at run time by what a fresh interpreter has loaded after an import."""

from __future__ import annotations

import importlib
import pkgutil
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import mtl

ROOT = Path(__file__).resolve().parents[1]
OLD_MODULES = (
    "mtl.benchmarks",
    "mtl.benchmarks.common",
    "mtl.benchmarks.infer",
    "mtl.benchmarks.train",
    "mtl.callbacks",
    "mtl.cli",
    "mtl.commands",
    "mtl.commands.analyze",
    "mtl.commands.bench",
    "mtl.commands.cv",
    "mtl.commands.dashboard",
    "mtl.commands.export",
    "mtl.commands.models",
    "mtl.commands.parsing",
    "mtl.commands.prepare",
    "mtl.commands.report",
    "mtl.commands.sweep",
    "mtl.dashboard",
    "mtl.data",
    "mtl.data.cache",
    "mtl.data.datamodules",
    "mtl.data.datamodules.base",
    "mtl.data.datamodules.cached",
    "mtl.data.datamodules.multisource",
    "mtl.data.datamodules.real",
    "mtl.data.datamodules.synthetic",
    "mtl.data.datasets",
    "mtl.data.device",
    "mtl.data.faces",
    "mtl.data.prepare",
    "mtl.data.readers",
    "mtl.data.readers.adience",
    "mtl.data.readers.base",
    "mtl.data.readers.celeba",
    "mtl.data.readers.fer2013",
    "mtl.data.readers.genki4k",
    "mtl.data.readers.imdb_wiki",
    "mtl.data.readers.records",
    "mtl.data.readers.utkface",
    "mtl.data.sampler",
    "mtl.data.splits",
    "mtl.data.synthetic_faces",
    "mtl.data.transforms",
    "mtl.ensemble",
    "mtl.errors",
    "mtl.eval_logs",
    "mtl.hparams",
    "mtl.identity",
    "mtl.inference",
    "mtl.inference.analyze",
    "mtl.inference.export",
    "mtl.inference.media",
    "mtl.inference.model",
    "mtl.inference.preprocessing",
    "mtl.loggers",
    "mtl.losses",
    "mtl.losses.regression",
    "mtl.losses.task_losses",
    "mtl.losses.weighting",
    "mtl.losses.weighting.base",
    "mtl.losses.weighting.dwa",
    "mtl.losses.weighting.fixed",
    "mtl.losses.weighting.gradient",
    "mtl.losses.weighting.kang",
    "mtl.losses.weighting.uncertainty",
    "mtl.metrics",
    "mtl.models",
    "mtl.models.backbones",
    "mtl.models.backbones.base",
    "mtl.models.backbones.bknet",
    "mtl.models.backbones.classic",
    "mtl.models.backbones.lightweight",
    "mtl.models.backbones.mbknet",
    "mtl.models.backbones.resnetv2",
    "mtl.models.backbones.timm_backbone",
    "mtl.models.heads",
    "mtl.models.network",
    "mtl.models.zoo",
    "mtl.module",
    "mtl.optim",
    "mtl.precise_bn",
    "mtl.precision",
    "mtl.report",
    "mtl.report.render",
    "mtl.report.runs",
    "mtl.report.table",
    "mtl.report.wandb_file",
    "mtl.resume",
    "mtl.run_report",
    "mtl.sweep",
    "mtl.sweep.bayes",
    "mtl.sweep.command",
    "mtl.sweep.config",
    "mtl.sweep.hyperband",
    "mtl.sweep.params",
    "mtl.sweep.report",
    "mtl.sweep.runner",
    "mtl.sweep.trial",
    "mtl.tasks",
)
"""Every module of the package before the layers were drawn (commit 25e686f)."""


def loaded_after(code: str) -> set[str]:
    """Top-level packages a fresh interpreter has imported after running ``code``."""
    script = (
        f"{code}\nimport sys\nprint(' '.join(sorted({{m.split('.')[0] for m in sys.modules}})))"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    return set(out.stdout.split())


def test_the_import_contracts_are_kept():
    lint = shutil.which("lint-imports") or str(Path(sys.executable).parent / "lint-imports")
    done = subprocess.run([lint, "--no-cache"], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout


def test_reading_reports_loads_neither_torch_nor_lightning():
    modules = [m.name for m in pkgutil.walk_packages(
        importlib.import_module("mtl.experiments.report").__path__, "mtl.experiments.report."
    )]  # fmt: skip
    assert "mtl.experiments.report.table" in modules
    loaded = loaded_after("\n".join(f"import {m}" for m in modules))
    assert not loaded & {"torch", "lightning", "torchmetrics", "timm"}


def test_inference_imports_without_lightning():
    code = "import mtl.inference, mtl.inference.model, mtl.inference.analyze, mtl.inference.export"
    loaded = loaded_after(code)
    assert "torch" in loaded  # it does run networks
    assert "lightning" not in loaded


@pytest.mark.parametrize(("old", "new"), sorted(mtl.MOVED.items()))
def test_a_moved_module_answers_at_its_old_name(old, new):
    assert importlib.import_module(old) is importlib.import_module(new)


def test_every_module_of_the_old_tree_still_imports_and_leaves_the_new_one_intact():
    code = "\n".join(
        [
            "import importlib, importlib.resources, pickle",
            f"for name in {OLD_MODULES!r}:",
            "    importlib.import_module(name)",
            "import mtl.experiments.report as report",
            "assert report.__spec__.name == 'mtl.experiments.report', report.__spec__",
            "assert importlib.resources.files(report).joinpath('references.yaml').is_file()",
            "from mtl.experiments.report.render import load_references",
            "assert load_references(None)",
            "from mtl.loggers import CSVLogger",
            "assert pickle.loads(pickle.dumps(CSVLogger)) is CSVLogger",
        ]
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)


def test_old_class_paths_in_configs_and_checkpoints_still_resolve():
    from jsonargparse import Namespace
    from lightning.pytorch.cli import instantiate_class

    logger = instantiate_class((), Namespace(class_path="mtl.loggers.CSVLogger", init_args={
        "save_dir": "unused"}))  # fmt: skip
    assert type(logger).__module__ == "mtl.training.loggers"
    hyperband = importlib.import_module("mtl.sweep.hyperband")
    assert hyperband is importlib.import_module("mtl.experiments.sweep.hyperband")
