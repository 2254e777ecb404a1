"""Real two-process DDP runs (CPU, gloo) that must match one device. The ``mtl`` command's own
DDP run (fit, validate and test with batches of two, so a rank's batch lacks tasks and sources,
W&B on) is in tests/test_wandb.py."""

from __future__ import annotations

import functools
import inspect
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mtl.losses import WEIGHTINGS
from mtl.models.zoo import ZOO

from .conftest import tiny_sources

LIKE_ONE_DEVICE = sorted(n for n, w in WEIGHTINGS.items() if not w.needs_shared_params)
"""Weightings whose DDP run equals one device seeing the global batch (ddp_step_run trains
every registered weighting)."""
ON_OWN_GRADIENTS = sorted(n for n, w in WEIGHTINGS.items() if w.needs_shared_params)
"""Weightings that act on each rank's own task gradients: their ranks stay identical."""

MTL = str(Path(sys.executable).with_name("mtl"))  # a console script: Lightning re-runs it


def test_a_ddp_step_over_a_global_batch_equals_one_process_on_all_of_it(tmp_path):
    """Two ranks with half the batch each update the weights exactly as one process with the
    whole batch: the masked losses are normalised by the global batch, absent tasks are decided
    globally, and DWA's epoch means come from every rank."""
    script = str(Path(__file__).with_name("ddp_step_run.py"))
    for devices in ("1", "2"):
        done = subprocess.run(
            [sys.executable, script, str(tmp_path), devices],
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert done.returncode == 0, done.stderr[-3000:]

    def state(weighting: str, devices: int, rank: int = 0) -> dict:
        return torch.load(tmp_path / f"{weighting}-{devices}-rank{rank}.pt")

    for weighting in LIKE_ONE_DEVICE:
        one, two = state(weighting, 1), state(weighting, 2)
        for key in one:
            torch.testing.assert_close(two[key], one[key], rtol=1e-5, atol=1e-6, msg=key)
    assert (state("uncertainty", 1)["weighting.log_vars"] != 0).all()  # learned weights moved
    assert not torch.allclose(state("dwa", 1)["weighting.weight"], torch.ones(4))  # epoch 3
    # GradNorm and PCGrad act on each rank's own task gradients; DDP then averages what they
    # produce, so every rank keeps the same weights (GradNorm's w too) and the run finishes.
    for weighting in ON_OWN_GRADIENTS:
        rank0, rank1 = state(weighting, 2, 0), state(weighting, 2, 1)
        for key in rank0:
            torch.testing.assert_close(rank1[key], rank0[key], rtol=0, atol=0, msg=key)
    assert not torch.equal(state("gradnorm", 2)["weighting.w"], torch.ones(4))

    # Each epoch's training-loss means and metrics (their state summed over the ranks before
    # they are computed) are the one-process figures on both ranks, also in the epoch where a
    # rank's batch missed a task.
    def record(weighting: str, devices: int, rank: int = 0) -> dict:
        return torch.load(tmp_path / f"{weighting}-{devices}-rank{rank}.epoch.pt")

    for weighting in LIKE_ONE_DEVICE:
        one = record(weighting, 1)
        assert len(one["epochs"]) == 3 and all(map(all, one["labelled"]))
        assert {"train/loss_epoch", "train/age/loss_epoch", "train/age/f1"} <= set(one["epochs"][0])
        ranks = [record(weighting, 2, rank) for rank in (0, 1)]
        assert not all(map(all, ranks[0]["labelled"] + ranks[1]["labelled"]))  # a task missed
        for rank, two in enumerate(ranks):
            for epoch, expected in enumerate(one["epochs"]):
                got = two["epochs"][epoch]
                assert got == pytest.approx(expected, rel=1e-5), (weighting, rank, epoch)

    # Precise BN: each rank recomputes batch-norm statistics from its own batches, and both
    # evaluate with their mean.
    rank0, rank1 = state("precise_bn", 2, 0), state("precise_bn", 2, 1)
    assert rank0["evaluated"].keys() == rank0["own"].keys() and len(rank0["own"]) > 0
    for key in rank0["own"]:
        own0, own1 = rank0["own"][key], rank1["own"][key]
        assert not torch.allclose(own0, own1), key  # the ranks saw different faces
        torch.testing.assert_close(rank0["evaluated"][key], (own0 + own1) / 2, msg=key)
        torch.testing.assert_close(rank1["evaluated"][key], rank0["evaluated"][key], msg=key)


def backbone_args(name: str) -> list[str]:
    """The command-line options that build zoo preset ``name`` (48x48 faces, as the data)."""
    factory = ZOO[name][1]
    cls = factory.func if isinstance(factory, functools.partial) else factory
    bound = {}
    if isinstance(factory, functools.partial):
        bound = inspect.signature(cls).bind_partial(*factory.args, **factory.keywords).arguments
    params = inspect.signature(cls).parameters
    if "input_size" in params and params["input_size"].default != 48:
        bound["input_size"] = 48
    values = {k: str(v).lower() if isinstance(v, bool) else v for k, v in bound.items()}
    return [f"--model.backbone={cls.__name__}"] + [
        f"--model.backbone.{k}={v}" for k, v in values.items()
    ]


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(ZOO))  # every registered backbone has a preset
def test_every_backbone_trains_validates_and_tests_on_two_ranks(name, tmp_path):
    """Two gloo ranks, batches of two, one epoch of fit (with validation), then test."""
    mtl = str(Path(sys.executable).with_name("mtl"))
    args = ["--data=SyntheticDataModule", tiny_sources(train=8, val=4, test=4)]
    args += ["--data.batch_size=2", "--model.head.hidden=[16]", *backbone_args(name)]
    args += ["--trainer.accelerator=cpu", "--trainer.devices=2", "--trainer.strategy=ddp"]
    args += ["--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false"]
    for command in (["fit", "--trainer.max_epochs=1"], ["test"]):
        done = subprocess.run(
            [mtl, command[0], *args, *command[1:]], cwd=tmp_path, capture_output=True,
            text=True, timeout=900,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr[-3000:]
