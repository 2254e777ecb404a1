"""Shared test helpers: tiny, fast CLI runs on synthetic data, written under tmp_path."""

from __future__ import annotations

import os
import signal
import time
import warnings
from pathlib import Path

import pytest
import torch

os.environ.setdefault("WANDB_MODE", "offline")
# Two threads (as on CI's 2 cores) unless OMP_NUM_THREADS asks for another count: the suite must
# pass on every floating-point path, thread count included (tests/test_numeric_paths.py).
_omp = os.environ.get("OMP_NUM_THREADS", "").split(",")[0]  # OpenMP also allows "4,2"
torch.set_num_threads(int(_omp) if _omp.isdigit() else min(2, os.cpu_count() or 1))

REPO = Path(__file__).resolve().parents[1]
CONF_DIR = REPO / "conf"

NARROW_BKNET = [
    "--model.backbone=BKNet",
    "--model.backbone.channels=[[8, 8], [16, 16], [32, 32], [64, 64, 64]]",
    "--model.head.hidden=[64, 64]",
]


def tiny_sources(train: int = 64, val: int = 32, test: int = 32) -> str:
    """Three synthetic sources shaped like the papers' mix, sized for a test."""
    split = f"train: {train}, val: {val}, test: {test}"
    return (
        f"--data.sources=[{{name: s_smile, tasks: [smile], {split}}}, "
        f"{{name: s_emotion, tasks: [emotion], {split}}}, "
        f"{{name: s_gender_age, tasks: [gender, age], {split}}}]"
    )


def tiny_fit_args(**sizes: int) -> list[str]:
    """``mtl fit`` arguments for a seconds-long run of a narrow BKNet on tiny synthetic data."""
    return [
        "fit",
        "--data=SyntheticDataModule",
        tiny_sources(**sizes),
        "--data.batch_size=32",
        *NARROW_BKNET,
        "--trainer.max_epochs=1",
        "--trainer.enable_progress_bar=false",
        "--trainer.enable_model_summary=false",
        "--trainer.log_every_n_steps=1",
    ]


LOSS_VARIANTS = {
    "labelled": {"normalization": "labelled"},
    "squared_hinge": {"task_loss": "squared_hinge"},
}
"""Module options that change the masked losses' computation (tests run each)."""


def tiny_module_with_years(**options: object) -> object:
    """The overhead benchmark's tiny network with a regression task (``age_years``) too."""
    from mtl.experiments.bench.overhead import TASKS, tiny_module

    return tiny_module(tasks=[*TASKS, "age_years"], **options)


def fit_tiny(module: object, steps: int, **trainer_options: object) -> None:
    """Fit ``module`` (the overhead benchmark's tiny network) for ``steps`` steps on its tiny
    in-memory batches, on the CPU, without logger, checkpoints, progress bar or summary."""
    import lightning as L

    from mtl.experiments.bench.overhead import Cycle, tiny_batches

    options = {"accelerator": "cpu", "devices": 1, "max_steps": steps, "logger": False,
               "enable_checkpointing": False, "enable_progress_bar": False,
               "enable_model_summary": False} | trainer_options  # fmt: skip
    L.Trainer(**options).fit(module, train_dataloaders=Cycle(tiny_batches(module.tasks, 4), steps))


def wandb_run_file(folder: Path, timeout: float = 60.0) -> Path:
    """The one ``run-*.wandb`` file under ``folder``, once it holds the run's exit record.

    W&B's service writes the file through a LevelDB-style record writer that holds the last
    block in memory until it closes the run's stream, which can happen after ``wandb.finish()``
    has returned (seen once in CI: the file read right after it had no exit record, and the run
    was skipped). A test that reads the file waits for it, and names the file if it never
    completes."""
    from mtl.errors import UserError
    from mtl.experiments.report.wandb_file import read_wandb_file

    deadline = time.monotonic() + timeout
    while True:
        paths = list(folder.rglob("run-*.wandb"))
        try:
            if len(paths) == 1 and read_wandb_file(paths[0]).finished:
                return paths[0]
            problem = f"{len(paths)} run files" if len(paths) != 1 else "no exit record"
        except UserError as err:  # not even its header yet
            problem = str(err)
        if time.monotonic() > deadline:
            raise AssertionError(f"{folder}: {problem} {timeout:.0f} s after wandb.finish()")
        time.sleep(0.05)


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run in tmp_path so that ``runs/`` (logs, checkpoints) lands there, not in the repo."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _sigint_ignored() -> bool:
    """SIGINT ignored by this process at the OS level (also by a C library, which Python's
    ``signal.getsignal`` would not show): children would inherit it."""
    with open("/proc/self/status") as status:
        mask = next((line.split()[1] for line in status if line.startswith("SigIgn:")), "0")
    return bool(int(mask, 16) & (1 << (signal.SIGINT - 1)))


@pytest.fixture(autouse=True)
def sigint_kept(request: pytest.FixtureRequest):
    """Name (as a warning) any test after which this process ignores Ctrl-C, and restore it:
    the sweep runner's interrupt test starts a worker that would inherit the ignore."""
    yield
    if os.path.exists("/proc/self/status") and _sigint_ignored():
        signal.signal(signal.SIGINT, signal.default_int_handler)
        warnings.warn(f"{request.node.nodeid} left SIGINT ignored (restored)", stacklevel=1)
