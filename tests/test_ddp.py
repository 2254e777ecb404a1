"""Real two-process DDP runs (CPU, gloo) that must match one device. The ``mtl`` command's own
DDP run (fit, validate and test with batches of two, so a rank's batch lacks tasks and sources,
W&B on) is in tests/test_wandb.py."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import torch

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

    for weighting in ("fixed", "uncertainty", "dwa"):
        one, two = state(weighting, 1), state(weighting, 2)
        for key in one:
            torch.testing.assert_close(two[key], one[key], rtol=1e-5, atol=1e-6, msg=key)
    assert (state("uncertainty", 1)["weighting.log_vars"] != 0).all()  # learned weights moved
    assert not torch.allclose(state("dwa", 1)["weighting.weight"], torch.ones(4))  # epoch 3
    # GradNorm and PCGrad act on each rank's own task gradients; DDP then averages what they
    # produce, so every rank keeps the same weights (GradNorm's w too) and the run finishes.
    for weighting in ("gradnorm", "pcgrad"):
        rank0, rank1 = state(weighting, 2, 0), state(weighting, 2, 1)
        for key in rank0:
            torch.testing.assert_close(rank1[key], rank0[key], rtol=0, atol=0, msg=key)
    assert not torch.equal(state("gradnorm", 2)["weighting.w"], torch.ones(4))
