"""Precise BN: validation during a fit evaluates batch norm with statistics recomputed from the
epoch's latest training inputs under the current weights, and training is left exactly as it
was (the 2-process DDP run with it is in tests/test_wandb.py)."""

from __future__ import annotations

import copy

import pytest
import torch

from mtl.cli import run_cli
from mtl.training.precise_bn import PreciseBatchNorm, batch_norms

from .conftest import tiny_fit_args


def test_it_keeps_the_fewest_latest_batches_that_reach_the_image_count():
    precise = PreciseBatchNorm(images=10)
    batches = [torch.full((4, 1, 2, 2), float(i)) for i in range(5)]
    for batch in batches:
        precise.remember(batch)
    assert [b[0, 0, 0, 0].item() for b in precise.batches] == [2.0, 3.0, 4.0]  # 12 >= 10 images
    precise.forget()
    assert not precise.batches
    off = PreciseBatchNorm(images=0)
    off.remember(batches[0])
    assert not off.batches
    with pytest.raises(ValueError, match="precise_bn"):
        PreciseBatchNorm(images=-1)


def fit(*extra: str):
    args = tiny_fit_args(train=48, val=16, test=8) + ["--data.batch_size=16", *extra]
    return run_cli(args + ["--trainer.max_epochs=2", "--seed_everything=3"])


def test_validation_sees_the_recomputed_statistics_and_training_is_unchanged(in_tmp, monkeypatch):
    used: list[torch.Tensor] = []  # the batches of the last recomputation
    recalibrate = PreciseBatchNorm.recalibrate

    def spy(self: PreciseBatchNorm, module) -> int:
        used[:] = list(self.batches)
        return recalibrate(self, module)

    monkeypatch.setattr(PreciseBatchNorm, "recalibrate", spy)
    plain = fit().model
    precise = fit("--model.precise_bn=40").model
    assert not precise.precise_bn.batches  # forgotten when the fit ended: no memory held

    # Training is the same, parameter for parameter: the recomputation draws no random numbers
    # and changes nothing training uses.
    params = dict(plain.named_parameters())
    for name, p in precise.named_parameters():
        torch.testing.assert_close(p, params[name], rtol=0, atol=0, msg=name)

    # The last validation evaluated statistics recomputed from the last three batches of 16
    # (48 >= 40 images) with the final weights: batch norms in training mode, dropout off.
    assert [len(b) for b in used] == [16, 16, 16]
    expected = copy.deepcopy(precise).eval()
    norms = batch_norms(expected)
    with torch.no_grad(), precise.trainer.precision_plugin.forward_context():  # as the run
        for m in norms:
            m.reset_running_stats()
            m.momentum = None
            m.train()
        for images in used:
            expected(images)
    got = batch_norms(precise)
    assert len(got) == len(norms) > 0
    for a, b in zip(got, norms, strict=True):
        torch.testing.assert_close(a.running_mean, b.running_mean)
        torch.testing.assert_close(a.running_var, b.running_var)
        assert a.momentum == 0.1  # restored
    lagging = batch_norms(plain)[0].running_var
    assert not torch.allclose(got[0].running_var, lagging)  # not the running averages


def test_too_few_images_or_no_validation_keep_the_running_averages_and_say_so(in_tmp):
    plain = fit().model
    with pytest.warns(UserWarning, match="fewer than 1000 training images"):
        few = fit("--model.precise_bn=1000").model  # an epoch has 48
    for name, buffer in few.named_buffers():
        torch.testing.assert_close(buffer, dict(plain.named_buffers())[name], rtol=0, atol=0)
    with pytest.warns(UserWarning, match="this fit runs none"):
        fit("--model.precise_bn=40", "--trainer.limit_val_batches=0")


def test_a_resumed_run_recomputes_from_the_same_batches(in_tmp):
    """The remembered inputs are the current epoch's, so resuming at an epoch boundary gives
    the same statistics, checkpoint and logged values as an uninterrupted run."""
    straight = fit("--model.precise_bn=40", "--trainer.default_root_dir=straight")
    first = run_cli(
        tiny_fit_args(train=48, val=16, test=8)
        + ["--data.batch_size=16", "--model.precise_bn=40", "--seed_everything=3"]
        + ["--trainer.default_root_dir=resumed", "--trainer.logger=false"]
    )
    checkpoint = first.trainer.checkpoint_callback.last_model_path
    resumed = fit(
        "--model.precise_bn=40",
        "--trainer.default_root_dir=resumed",
        "--trainer.logger=false",
        f"--ckpt_path={checkpoint}",
    )
    a, b = straight.model.state_dict(), resumed.model.state_dict()
    for key in a:
        torch.testing.assert_close(b[key], a[key], rtol=0, atol=0, msg=key)
    for key in ("val/smile/acc", "val/emotion/acc", "val/loss"):
        assert resumed.trainer.callback_metrics[key] == straight.trainer.callback_metrics[key]
