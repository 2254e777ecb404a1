"""Values logged on a logging step reach the loggers, the progress bar and the callbacks, and
Lightning does not keep collecting them on the steps after it; values a subclass logs in
``training_step`` are left as Lightning keeps them."""

from __future__ import annotations

import csv

import lightning as L
import pytest
import torch

from mtl.experiments.bench.overhead import tiny_module
from mtl.training.loggers import CSVLogger
from mtl.training.module import MultiTaskModule
from tests.conftest import fit_tiny


class HeldStepValues(L.Callback):
    """After each training step: the names of the values logged in ``training_step`` that
    Lightning's store still holds (and so collects again after every step)."""

    def __init__(self) -> None:
        self.names: list[list[str]] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        items = trainer._results.valid_items()
        self.names.append(sorted(v.meta.name for _, v in items if v.meta.fx == "training_step"))


class LogsItsOwn(MultiTaskModule):
    """Logs an epoch total and a step value of its own in ``training_step``."""

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        self.log("extra/sum", float(batch_idx), on_step=False, on_epoch=True, reduce_fx="sum")
        self.log("extra/step", float(batch_idx), on_step=True, on_epoch=False)
        return super().training_step(batch, batch_idx)


def test_a_logging_steps_values_are_logged_once_and_then_dropped(tmp_path):
    module = tiny_module("uncertainty")
    held = HeldStepValues()
    logger = CSVLogger(save_dir=tmp_path, name="", version="logs")
    fit_tiny(module, 7, log_every_n_steps=3, logger=logger, callbacks=[held])

    names = ["train/loss"]
    names += [f"train/{t}/{v}" for v in ("loss", "weight") for t in module.task_names]
    logged = sorted(names)
    assert held.names == [[], [], logged, [], [], logged, []]  # steps 2 and 5 log (every 3)

    rows = list(csv.DictReader((tmp_path / "logs" / "metrics.csv").open()))
    steps = {int(r["step"]) for r in rows if r.get("train/loss")}
    assert steps == {2, 5}
    assert all(r[n] for r in rows if r.get("train/loss") for n in names)
    fixed = tiny_module("fixed")  # each value under its own name: fixed weights are all 1
    fit_tiny(fixed, 3, log_every_n_steps=3, logger=CSVLogger(save_dir=tmp_path, name="f"))
    (row,) = [r for r in csv.DictReader(next(tmp_path.glob("f/*/metrics.csv")).open())
              if r.get("train/loss")]  # fmt: skip
    assert all(float(row[f"train/{t}/weight"]) == 1.0 for t in fixed.task_names)
    losses = sum(float(row[f"train/{t}/loss"]) for t in fixed.task_names)
    assert losses == pytest.approx(float(row["train/loss"]), rel=1e-5)  # the total of mu_t L_t
    trainer = module.trainer
    assert "train/loss" in trainer.callback_metrics  # kept for callbacks and the progress bar
    assert "train/loss" in trainer.progress_bar_metrics


def test_values_a_subclass_logs_in_the_training_step_are_kept():
    module = tiny_module(module_class=LogsItsOwn)
    held = HeldStepValues()
    fit_tiny(module, 7, log_every_n_steps=3, callbacks=[held])
    own = sorted(["extra/step", "extra/sum", *module._step_log_names])
    extra = ["extra/step", "extra/sum"]
    assert held.names == [extra, extra, own, extra, extra, own, extra]  # the module's dropped
    metrics = module.trainer.callback_metrics
    assert metrics["extra/sum"].item() == sum(range(7))  # the epoch total, every step counted
    assert metrics["extra/step"].item() == 6
