"""A stage's metrics, kept in one state updated once per batch without waiting for the GPU,
agree with torchmetrics over every source and per source, and say NaN (not 0) when nothing was
labelled."""

from __future__ import annotations

import pytest
import torch
from torchmetrics.classification import MulticlassAccuracy, MulticlassF1Score

from mtl.tasks import build_tasks
from mtl.training.metrics import StageMetrics

TASKS = build_tasks(["smile", "emotion", "age_years"])
SOURCES = {"a": ["smile", "age_years"], "b": ["smile", "emotion"]}


def batches(count: int, seed: int = 0, rows: int = 33):
    """Batches of random outputs, with each task labelled in about 60 % of the rows and a
    class never seen in the targets."""
    g = torch.Generator().manual_seed(seed)
    for _ in range(count):
        outputs = {
            "smile": torch.randn(rows, 2, generator=g),
            "emotion": torch.randn(rows, 7, generator=g),
            "age_years": torch.rand(rows, generator=g) * 80,
        }
        targets = torch.stack(
            [
                torch.randint(0, 2, (rows,), generator=g).float(),
                torch.randint(0, 6, (rows,), generator=g).float(),  # class 6 never occurs
                torch.rand(rows, generator=g) * 80,
            ],
            dim=1,
        )  # B x T
        mask = torch.rand(rows, 3, generator=g) < 0.6
        source = torch.randint(0, 3, (rows,), generator=g)  # 2: a source not reported
        yield outputs, {"targets": torch.where(mask, targets, torch.nan), "mask": mask,
                        "source": source}  # fmt: skip


def reference(data, source: int | None):
    """torchmetrics' figures of the labelled rows (of one source)."""
    acc = {t: MulticlassAccuracy(c, average="micro") for t, c in (("smile", 2), ("emotion", 7))}
    f1 = {t: MulticlassF1Score(c, average="macro") for t, c in (("smile", 2), ("emotion", 7))}
    errors, rows = [], 0
    for outputs, batch in data:
        keep = torch.ones(len(batch["mask"]), dtype=torch.bool)
        if source is not None:
            keep = batch["source"] == source
        for j, t in enumerate(("smile", "emotion")):
            rows_t = batch["mask"][:, j] & keep
            acc[t].update(outputs[t][rows_t], batch["targets"][rows_t, j].long())
            f1[t].update(outputs[t][rows_t], batch["targets"][rows_t, j].long())
        rows_a = batch["mask"][:, 2] & keep
        errors.append((outputs["age_years"][rows_a] - batch["targets"][rows_a, 2]).abs())
        rows += int(rows_a.sum())
    mae = torch.cat(errors).sum() / rows
    return acc, f1, mae


def test_every_metric_agrees_with_torchmetrics_over_all_sources_and_per_source():
    data = list(batches(4))
    metrics = StageMetrics(TASKS, "val", SOURCES)
    for outputs, batch in data:
        metrics.update(outputs, batch)
    values = metrics.compute()
    groups = [("val/", None, ["smile", "emotion", "age_years"])]
    groups += [("val/a/", 0, SOURCES["a"]), ("val/b/", 1, SOURCES["b"])]
    for prefix, source, tasks in groups:
        acc, f1, mae = reference(data, source)
        for t in tasks:
            if t == "age_years":
                assert values[f"{prefix}{t}/mae"].item() == pytest.approx(mae.item(), rel=1e-5)
            else:
                assert values[f"{prefix}{t}/acc"].item() == pytest.approx(acc[t].compute().item())
                assert values[f"{prefix}{t}/f1"].item() == pytest.approx(f1[t].compute().item())
    # a source reports only the tasks it labels
    assert "val/a/emotion/acc" not in values and "val/b/age_years/mae" not in values


def test_classification_tasks_alone_count_as_beside_a_regression():
    """With no regression the batch's columns are counted as they are (no column selection):
    the same figures as the mixed task set's, which selects its classified columns."""
    data = list(batches(4))
    mixed = StageMetrics(TASKS, "val", SOURCES)
    sources = {"a": ["smile"], "b": ["smile", "emotion"]}
    alone = StageMetrics(build_tasks(["smile", "emotion"]), "val", sources)
    for outputs, batch in data:
        mixed.update(outputs, batch)
        columns = {k: batch[k][:, :2] for k in ("targets", "mask")}
        alone.update({t: outputs[t] for t in ("smile", "emotion")}, batch | columns)
    assert alone.all_classified and not mixed.all_classified
    expected, values = mixed.compute(), alone.compute()
    assert {"val/smile/acc", "val/a/smile/f1", "val/b/emotion/acc"} <= set(values)
    for key, value in values.items():
        assert torch.equal(value, expected[key]) or (value.isnan() and expected[key].isnan())


def test_the_mean_losses_are_weighted_by_batch_size_and_named_per_stage():
    train, val = StageMetrics(TASKS, "train"), StageMetrics(TASKS, "val")
    for metrics in (train, val):
        for (outputs, batch), losses in zip(batches(2, rows=4), ([1.0, 2, 3, 4], [3.0, 4, 5, 6]),
                                            strict=True):  # fmt: skip
            metrics.update(outputs, batch, torch.tensor(losses))
        outputs, batch = next(batches(1, rows=2))
        metrics.update(outputs, batch, torch.tensor([6.0, 6, 6, 6]))  # a smaller last batch
    expected = (1 * 4 + 3 * 4 + 6 * 2) / 10
    assert train.compute()["train/loss_epoch"].item() == pytest.approx(expected)
    assert val.compute()["val/loss"].item() == pytest.approx(expected)
    assert val.compute()["val/emotion/loss"].item() == pytest.approx((3 * 4 + 5 * 4 + 12) / 10)


def test_metrics_are_nan_when_nothing_was_labelled_and_reset_between_epochs():
    metrics = StageMetrics(TASKS, "val", SOURCES)
    outputs, batch = next(batches(1))
    batch["mask"][:, 1] = False  # no emotion label
    batch["mask"][batch["source"] == 0] = False  # nothing labelled in source a
    metrics.update(outputs, batch)
    values = metrics.compute()
    assert torch.isnan(values["val/emotion/acc"]) and torch.isnan(values["val/emotion/f1"])
    assert all(torch.isnan(v) for k, v in values.items() if k.startswith("val/a/"))
    assert not torch.isnan(values["val/smile/acc"])
    metrics.reset()
    data = list(batches(2, seed=1))
    for outputs, batch in data:
        metrics.update(outputs, batch)
    acc, _, _ = reference(data, None)  # the new epoch's own figures
    assert metrics.compute()["val/smile/acc"].item() == pytest.approx(acc["smile"].compute().item())


def test_confusion_matrices_are_the_state_accuracy_is_computed_from():
    metrics = StageMetrics(TASKS, "test", SOURCES)
    data = list(batches(3))
    for outputs, batch in data:
        metrics.update(outputs, batch)
    matrices = metrics.confusion_matrices()
    assert set(matrices) == {("", "smile"), ("", "emotion"), ("a", "smile"), ("b", "smile"),
                             ("b", "emotion")}  # fmt: skip
    emotion = matrices[("", "emotion")]
    assert emotion.shape == (7, 7)
    labelled = sum(int(b["mask"][:, 1].sum()) for _, b in data)
    assert int(emotion.sum()) == labelled
    accuracy = emotion.diagonal().sum() / emotion.sum()
    assert metrics.compute()["test/emotion/acc"].item() == pytest.approx(accuracy.item())
