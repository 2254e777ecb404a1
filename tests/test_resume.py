"""A run interrupted and resumed with ``--ckpt_path last`` ends exactly like one that never
stopped: the same weights, bit for bit on CPU, and the same full ``metrics.csv`` history."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch

from mtl.cli import run_cli
from mtl.losses import WEIGHTINGS as REGISTRY
from mtl.losses.weighting.jacobian_state import TaskStateAggregation

from .conftest import tiny_fit_args

WEIGHTINGS = {name: [f"--model.weighting={cls.__name__}"] for name, cls in REGISTRY.items()}
"""Every registered weighting: each keeps state (learned weights, DWA's loss history, GradNorm's
initial losses, PCGrad's step) that a resume must restore exactly."""

SAME_PATH = {"alignedmtl", "cagrad", "config", "dualproj", "fairgrad", "imtlg", "mgda"}
"""TorchJD's stateless aggregators whose resume is UPGrad's: no state but the step count that
every :class:`~mtl.losses.weighting.jacobian.JacobianAggregation` keeps (GradDrop, which draws
random numbers, runs too). Run with ``-m slow``; the others run in every suite."""


def weighting_cases() -> list:
    """Every weighting's name, those of :data:`SAME_PATH` marked ``slow``."""
    return [
        pytest.param(name, marks=pytest.mark.slow) if name in SAME_PATH else name
        for name in sorted(WEIGHTINGS)
    ]


def fit(folder: Path, monkeypatch: pytest.MonkeyPatch, *extra: str) -> None:
    """One CLI fit in ``folder``: dropout, augmentation, every random stream; two DataLoader
    workers (evaluation only, unless ``--data.device_data=false``)."""
    folder.mkdir(exist_ok=True)
    monkeypatch.chdir(folder)
    args = [
        *tiny_fit_args(train=48, val=16, test=8),
        "--data.batch_size=16",
        "--data.num_workers=2",
        "--data.augmentation.rotate=15",  # pad, flip, rotate: every stream is drawn
        *extra,
    ]
    run_cli(args)


def weights(folder: Path) -> dict[str, torch.Tensor]:
    ckpt = folder / "runs" / "mtl" / "version_0" / "checkpoints" / "last.ckpt"
    return torch.load(ckpt, weights_only=True)["state_dict"]


def identical(a: object, b: object) -> bool:
    """Bit-for-bit equal tensors, also inside a module's extra state (a dict of tensors)."""
    try:
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    except AssertionError:
        return False
    return True


def history(folder: Path) -> list[dict[str, str]]:
    with (folder / "runs" / "mtl" / "version_0" / "metrics.csv").open(newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize("weighting", weighting_cases())
def test_kill_and_resume_equals_an_uninterrupted_run(weighting, tmp_path, monkeypatch):
    """On the default data path: the faces in memory, batches augmented there."""
    kill_and_resume(tmp_path, monkeypatch, *WEIGHTINGS[weighting])


def test_kill_and_resume_on_the_dataloader_path(tmp_path, monkeypatch):
    """Augmentation in two DataLoader workers (albumentations' streams per worker)."""
    kill_and_resume(tmp_path, monkeypatch, "--data.device_data=false")


def kill_and_resume(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *extra: str) -> None:
    fit(tmp_path / "straight", monkeypatch, *extra, "--trainer.max_epochs=3")
    fit(tmp_path / "resumed", monkeypatch, *extra, "--trainer.max_epochs=1")  # killed here
    fit(tmp_path / "resumed", monkeypatch, *extra, "--trainer.max_epochs=3", "--ckpt_path=last")

    straight, resumed = weights(tmp_path / "straight"), weights(tmp_path / "resumed")
    assert straight.keys() == resumed.keys()
    differ = [k for k in straight if not identical(straight[k], resumed[k])]
    assert not differ, f"weights differ after resuming: {differ[:5]}"
    rows = history(tmp_path / "straight")
    assert {r["epoch"] for r in rows if r["epoch"]} == {"0", "1", "2"}
    assert history(tmp_path / "resumed") == rows  # every row, every value, in order


def test_rows_logged_after_the_checkpoint_are_not_logged_twice(tmp_path, monkeypatch):
    """A run killed mid-epoch logged some steps the resumed run trains (and logs) again."""
    fit(tmp_path / "straight", monkeypatch, "--trainer.max_epochs=2")
    fit(tmp_path / "resumed", monkeypatch, "--trainer.max_epochs=1")
    metrics = tmp_path / "resumed" / "runs" / "mtl" / "version_0" / "metrics.csv"
    rows = history(tmp_path / "resumed")
    stale = {**rows[0], "epoch": "1", "step": str(int(rows[-1]["step"]) + 1)}  # the killed epoch
    with metrics.open("a", newline="") as f:
        csv.DictWriter(f, fieldnames=list(rows[0])).writerow(stale)
    fit(tmp_path / "resumed", monkeypatch, "--trainer.max_epochs=2", "--ckpt_path=last")
    assert history(tmp_path / "resumed") == history(tmp_path / "straight")


def test_csv_and_wandb_together_resume_both_runs(in_tmp):
    """conf/wandb.yaml logs to CSV (first: it holds the checkpoints) and W&B: a resumed fit
    continues the same version folder and the same W&B run, from the ids the checkpoint keeps."""
    import wandb

    from .conftest import CONF_DIR

    both = ["--config", str(CONF_DIR / "wandb.yaml")]
    first = run_cli([*tiny_fit_args(train=32, val=8, test=8), *both])
    run_id = first.trainer.loggers[1].version
    wandb.finish()
    args = [*tiny_fit_args(train=32, val=8, test=8), *both, "--trainer.max_epochs=2"]
    resumed = run_cli([*args, "--ckpt_path=last"])
    assert resumed.trainer.loggers[1].experiment.id == run_id
    assert resumed.trainer.loggers[0].log_dir.endswith("version_0")
    wandb.finish()
    assert sorted(p.name for p in (in_tmp / "runs" / "mtl").iterdir()) == ["version_0"]
    epochs = {r["epoch"] for r in history(in_tmp) if r["epoch"]}
    assert epochs == {"0", "1"}  # both epochs in one metrics.csv


def test_a_resumed_wandb_run_continues_the_same_run_id(in_tmp):
    import wandb

    logger = [
        "--trainer.logger=lightning.pytorch.loggers.WandbLogger",
        "--trainer.logger.save_dir=runs",
        "--trainer.logger.project=mtl",
        "--trainer.logger.offline=true",
    ]
    first = run_cli([*tiny_fit_args(train=32, val=8, test=8), *logger])
    run_id = first.trainer.logger.version
    wandb.finish()
    args = [*tiny_fit_args(train=32, val=8, test=8), *logger, "--trainer.max_epochs=2"]
    resumed = run_cli([*args, "--ckpt_path=last"])
    assert resumed.trainer.logger.experiment.id == run_id
    assert resumed.trainer.current_epoch == 2 and resumed.trainer.global_step == 6
    wandb.finish()
    assert len(list((in_tmp / "runs" / "wandb").glob(f"offline-run-*-{run_id}"))) == 2


def test_the_weightings_left_to_slow_runs_keep_the_same_state_as_upgrad():
    """What makes them the same resume path: the same checkpointed state (names and shapes)."""
    tasks = ["smile", "emotion", "gender"]

    def state(name: str) -> dict[str, tuple[int, ...]]:
        return {k: tuple(v.shape) for k, v in REGISTRY[name](tasks).state_dict().items()}

    for name in sorted(SAME_PATH):
        assert not issubclass(REGISTRY[name], TaskStateAggregation), name
        assert state(name) == state("upgrad"), name
