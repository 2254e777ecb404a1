"""Metrics that update without waiting for the GPU agree with torchmetrics, and say NaN (not 0)
when nothing was labelled."""

from __future__ import annotations

import pytest
import torch
from torchmetrics.classification import MulticlassAccuracy, MulticlassF1Score

from mtl.metrics import MaskedConfusion, MaskedMAE


@pytest.mark.parametrize("classes", [2, 7])
def test_masked_confusion_agrees_with_torchmetrics(classes):
    g = torch.Generator().manual_seed(classes)
    acc, f1 = MaskedConfusion(classes, "acc"), MaskedConfusion(classes, "f1")
    ref_acc = MulticlassAccuracy(classes, average="micro")
    ref_f1 = MulticlassF1Score(classes, average="macro")
    for _ in range(4):
        scores = torch.randn(33, classes, generator=g)
        target = torch.randint(0, classes - 1, (33,), generator=g).float()  # a class never seen
        labelled = torch.rand(33, generator=g) < 0.6
        target[~labelled] = float("nan")
        acc.update(scores, target, labelled)
        f1.update(scores, target, labelled)
        ref_acc.update(scores[labelled], target[labelled].long())
        ref_f1.update(scores[labelled], target[labelled].long())
    assert acc.compute().item() == pytest.approx(ref_acc.compute().item(), abs=1e-6)
    assert f1.compute().item() == pytest.approx(ref_f1.compute().item(), abs=1e-6)


def test_metrics_are_nan_when_nothing_was_labelled():
    none = torch.zeros(5, dtype=torch.bool)
    for metric in (MaskedConfusion(3, "acc"), MaskedConfusion(3, "f1")):
        metric.update(torch.randn(5, 3), torch.full((5,), float("nan")), none)
        assert torch.isnan(metric.compute())
    mae = MaskedMAE()
    mae.update(
        torch.ones(3), torch.tensor([2.0, float("nan"), 5.0]), torch.tensor([1, 0, 1]).bool()
    )
    assert mae.compute().item() == pytest.approx(2.5)
