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


def test_old_class_paths_in_configs_and_checkpoints_still_resolve():
    from jsonargparse import Namespace
    from lightning.pytorch.cli import instantiate_class

    logger = instantiate_class((), Namespace(class_path="mtl.loggers.CSVLogger", init_args={
        "save_dir": "unused"}))  # fmt: skip
    assert type(logger).__module__ == "mtl.training.loggers"
    hyperband = importlib.import_module("mtl.sweep.hyperband")
    assert hyperband is importlib.import_module("mtl.experiments.sweep.hyperband")
