"""Metrics that update without waiting for the GPU agree with torchmetrics, and say NaN (not 0)
when nothing was labelled."""

from __future__ import annotations

import pytest
import torch
from torchmetrics.classification import MulticlassAccuracy, MulticlassF1Score

from mtl.tasks import make_task
from mtl.training.metrics import MaskedConfusion, MaskedMAE, task_metrics


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


def test_accuracy_and_f1_of_a_task_share_one_confusion_matrix_across_epochs():
    """The collection updates one confusion matrix per batch for both metrics; after the
    per-metric compute and reset Lightning does at each epoch end, the next epoch's figures are
    its own."""
    collection = task_metrics(make_task("emotion")).clone(prefix="val/emotion/")
    g = torch.Generator().manual_seed(0)
    for epoch in range(3):
        refs = {"acc": MulticlassAccuracy(7, average="micro"), "f1": MulticlassF1Score(7)}
        for _ in range(2):
            scores, target = (
                torch.randn(16, 7, generator=g),
                torch.randint(0, 7, (16,), generator=g),
            )
            labelled = torch.rand(16, generator=g) < 0.7
            collection.update(scores, target.float(), labelled)
            for ref in refs.values():
                ref.update(scores[labelled], target[labelled])
        metrics = dict(collection.items(keep_base=True, copy_state=False))  # as log_dict does
        assert metrics["f1"].confusion is metrics["acc"].confusion, epoch  # one state
        for name, metric in metrics.items():
            assert metric.compute().item() == pytest.approx(refs[name].compute().item(), abs=1e-6)
        for metric in metrics.values():
            metric.reset()
