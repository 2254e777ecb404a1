"""A training step never waits for the device: no host read of a tensor value in the module's
step (network, masked losses, every weighting, metrics, logging), except one copy on logging
steps, and none in the device-resident data path.

On a CPU the reads are caught by :class:`tests.host_reads.HostReads`; on a GPU,
``torch.cuda.set_sync_debug_mode("error")`` turns every synchronisation into an error.
"""

from __future__ import annotations

import lightning as L
import numpy as np
import pytest
import torch

from mtl.data.device import DeviceFaces, FaceArrays
from mtl.data.transforms import Augmentation
from mtl.experiments.bench.overhead import tiny_module
from mtl.losses import WEIGHTINGS
from mtl.losses.weighting import JacobianAggregation
from tests.conftest import LOSS_VARIANTS, fit_tiny, tiny_module_with_years
from tests.host_reads import HostReads

ASYNC = sorted(n for n, w in WEIGHTINGS.items() if not w.reads_host)
"""Every weighting but TorchJD's aggregators, whose solvers run on the host (documented)."""


def guarded_fit(weighting: str, steps: int, log_every: int, module=None) -> list:
    """Fit the tiny network (or ``module``) for ``steps`` steps with the module's step under
    the detector; returns [(step, reads)] of the steps that read."""
    module = module or tiny_module(weighting)
    step = module.shared_step
    found = []

    def guarded(batch, stage):
        with HostReads() as reads:
            out = step(batch, stage)
        if reads.found:
            found.append((module.global_step, reads.found))
        return out

    module.shared_step = guarded
    fit_tiny(module, steps, log_every_n_steps=log_every)
    return found


def test_only_the_gradient_aggregators_wait_for_the_device():
    reading = {n for n, w in WEIGHTINGS.items() if w.reads_host}
    assert reading == {n for n, w in WEIGHTINGS.items() if issubclass(w, JacobianAggregation)}
    assert {"upgrad", "mgda", "cagrad"} <= reading


@pytest.mark.parametrize("weighting", ASYNC)
def test_a_training_step_reads_nothing_on_the_host(weighting):
    """Every weighting, batches in which tasks are missing from some rows and, for a batch
    of 4, from whole batches."""
    found = guarded_fit(weighting, steps=6, log_every=1000)
    assert not found, "\n".join(f"step {s}: {name}\n{where}" for s, r in found for name, where in r)


@pytest.mark.parametrize("variant", LOSS_VARIANTS)
def test_every_task_loss_reads_nothing_on_the_host(variant):
    """A regression task beside the classifications, each normalisation and loss."""
    module = tiny_module_with_years(**LOSS_VARIANTS[variant])
    found = guarded_fit("", steps=6, log_every=1000, module=module)
    assert not found, "\n".join(f"step {s}: {name}\n{where}" for s, r in found for name, where in r)


def test_a_logging_step_reads_its_values_in_one_copy():
    found = guarded_fit("uncertainty", steps=6, log_every=3)
    assert [(s, [name for name, _ in r]) for s, r in found] == [(2, ["cpu"]), (5, ["cpu"])]


def test_device_data_batches_read_nothing_on_the_host():
    """Faces gathered and augmented on the device (``data.device_data``)."""
    g = np.random.default_rng(0)
    parts = [
        FaceArrays(
            g.integers(0, 255, (n, 16, 16), dtype=np.uint8),
            torch.full((n, 2), 1.0),
            Augmentation(pad=2, hflip=0.5, rotate=10.0),
        )
        for n in (5, 7)
    ]
    faces = DeviceFaces(parts, seed=0)
    with HostReads() as reads:
        batch = faces.batch(torch.tensor([0, 3, 6, 11]))
    assert batch["image"].shape == (4, 1, 16, 16)
    assert not reads.found, reads.found


class SyncErrors(L.Callback):
    """CUDA synchronisations are errors from the start of a training batch to its end."""

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        torch.cuda.set_sync_debug_mode("error")

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        torch.cuda.set_sync_debug_mode("default")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("weighting", ASYNC)
def test_a_training_step_never_synchronises_with_the_gpu(weighting):
    try:
        fit_tiny(tiny_module(weighting), 6, accelerator="gpu", log_every_n_steps=1000,
                 callbacks=[SyncErrors()])  # fmt: skip
    finally:
        torch.cuda.set_sync_debug_mode("default")
