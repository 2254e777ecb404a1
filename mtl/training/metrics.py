"""Per-task and per-source metrics of one stage, fed only the rows labelled for each task.

Each task has one :class:`~torchmetrics.MetricCollection` (accuracy and macro F1 for a
classification, mean absolute error for a regression, from the task registry), cloned with a
prefix per stage and per source: ``val/smile/acc``, ``val/genki4k/smile/acc``. The module logs
every collection with ``log_dict`` at the end of each epoch, on every rank and in the same
order, whatever each rank saw (Lightning computes, syncs and resets them): under DDP every rank
enters the same collectives, also when its batches missed a task or a source entirely. A metric
no rank saw a labelled sample for in an epoch reports NaN, not the 0 torchmetrics would: its
states are synced before it is computed, so every rank computes the same value.

Updates never synchronise with the GPU: a metric is given the whole batch with the mask of
labelled rows and accumulates with tensor arithmetic only (a masked confusion matrix for
accuracy and macro F1, masked sums for the mean absolute error). torchmetrics' own classification
updates select rows with boolean indexing (``ignore_index``) or ``bincount``, which wait for the
GPU; in a training step that is several stalls per task, and halved the framework's training
throughput on an H100 against a bare loop.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics import Metric, MetricCollection

from mtl.tasks import Task, metric_prefix

STAGES = ("train", "val", "test")
EVAL_STAGES = ("val", "test")


def evaluation_sources(datamodule: object, stage: str) -> dict[str, list[str]]:
    """The sources a stage reports on, with their tasks ({} for data that has no sources)."""
    sources = getattr(datamodule, "evaluation_sources", None)
    return sources(stage) if callable(sources) and getattr(datamodule, "sources", None) else {}


class MaskedConfusion(Metric):
    """The confusion matrix of the labelled rows (true class x predicted class), accumulated
    without leaving the device; ``reads`` says what :meth:`compute` returns: ``acc`` (micro
    accuracy) or ``f1`` (macro F1 over the classes that occurred, as torchmetrics averages)."""

    full_state_update = False

    def __init__(self, num_classes: int, reads: Literal["acc", "f1"]) -> None:
        super().__init__()
        if reads not in ("acc", "f1"):
            raise ValueError(f"reads must be acc or f1, got {reads!r}")
        self.num_classes, self.reads = num_classes, reads
        zeros = torch.zeros(num_classes, num_classes, dtype=torch.long)
        self.add_state("confusion", zeros, dist_reduce_fx="sum")

    def update(self, scores: torch.Tensor, target: torch.Tensor, labelled: torch.Tensor) -> None:
        """``scores`` B x C, ``target`` B (any value where unlabelled), ``labelled`` B bool."""
        c = self.num_classes
        truth = F.one_hot(torch.where(labelled, target, 0).long(), c) * labelled[:, None]  # B x C
        predicted = F.one_hot(scores.argmax(dim=1), c)  # B x C
        # Counts as a float product (no integer matmul on CUDA): exact, since every product is
        # 0 or 1 and a batch sums fewer than 2^24 of them; autocast off, or bf16 would round.
        with torch.autocast(scores.device.type, enabled=False):
            counts = truth.T.float() @ predicted.float()  # C x C
        self.confusion += counts.round().long()

    def compute(self) -> torch.Tensor:
        confusion = self.confusion.float()
        tp = confusion.diagonal()  # C
        if self.reads == "acc":
            return (tp.sum() / confusion.sum()).float()  # 0 / 0: NaN
        fp, fn = confusion.sum(0) - tp, confusion.sum(1) - tp  # C each
        occurred = (tp + fp + fn) > 0
        f1 = torch.where(occurred, 2 * tp / (2 * tp + fp + fn).clamp(min=1), 0.0)
        return (f1.sum() / occurred.sum()).float()  # no labelled row on any rank: NaN

    def matrix(self) -> torch.Tensor:
        """The confusion matrix (C x C, true class x predicted) summed over every DDP rank: a
        collective, so every rank calls it, in the same order."""
        with self.sync_context(should_sync=True, should_unsync=True):
            return self.confusion.clone()


class MaskedMAE(Metric):
    """Mean absolute error of the labelled rows of a regression."""

    full_state_update = False

    def __init__(self) -> None:
        super().__init__()
        self.add_state("error", torch.tensor(0.0), dist_reduce_fx="sum")
        self.add_state("rows", torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, values: torch.Tensor, target: torch.Tensor, labelled: torch.Tensor) -> None:
        error = torch.where(labelled, (values.float() - target).abs(), 0.0)  # B
        self.error += error.sum()
        self.rows += labelled.sum()

    def compute(self) -> torch.Tensor:
        return (self.error / self.rows).float()  # no labelled row on any rank: NaN


METRIC_CLASSES: dict[str, Callable[[Task], Metric]] = {
    "acc": lambda task: MaskedConfusion(task.num_classes, "acc"),
    "f1": lambda task: MaskedConfusion(task.num_classes, "f1"),
    "mae": lambda task: MaskedMAE(),
}
"""How each metric a task kind names (:attr:`mtl.tasks.TaskKind.metrics`) is computed."""


def task_metrics(task: Task) -> MetricCollection:
    """The metrics of one task (no prefix), those its kind names."""
    metrics = {name: METRIC_CLASSES[name](task) for name in task.kind.metrics}
    # One confusion matrix for acc and F1: the collection updates one and hands the other its
    # state.
    shared = [name for name, m in metrics.items() if isinstance(m, MaskedConfusion)]
    return MetricCollection(metrics, compute_groups=[shared] if len(shared) > 1 else False)


class StageMetrics(nn.Module):
    """Metrics of one stage (``train``, ``val`` or ``test``) per task and, optionally, per
    source (``sources`` maps each source, in ``batch["source"]`` order, to the tasks it labels)."""

    def __init__(
        self,
        tasks: Sequence[Task],
        stage: str,
        sources: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        super().__init__()
        self.tasks = list(tasks)
        template = {t.name: task_metrics(t) for t in self.tasks}
        self.by_task = nn.ModuleDict(
            {name: m.clone(prefix=metric_prefix(stage, name)) for name, m in template.items()}
        )
        self.source_names = list(sources or {})
        self.by_source = nn.ModuleDict(
            {
                source: nn.ModuleDict(
                    {t: template[t].clone(prefix=metric_prefix(stage, t, source)) for t in names}
                )
                for source, names in (sources or {}).items()
            }
        )

    def update(
        self, outputs: Mapping[str, torch.Tensor], batch: Mapping[str, torch.Tensor]
    ) -> None:
        """Feed every task's metrics the rows labelled for it (per source too)."""
        mask, targets = batch["mask"], batch["targets"]  # B x T each
        for j, task in enumerate(self.tasks):
            self._update(self.by_task[task.name], task, outputs, targets[:, j], mask[:, j])
        for k, source in enumerate(self.source_names):
            rows = batch["source"] == k  # B
            for j, task in enumerate(self.tasks):
                if task.name in self.by_source[source]:
                    collection = self.by_source[source][task.name]
                    self._update(collection, task, outputs, targets[:, j], mask[:, j] & rows)

    @staticmethod
    def _update(
        collection: MetricCollection,
        task: Task,
        outputs: Mapping[str, torch.Tensor],
        target: torch.Tensor,
        labelled: torch.Tensor,
    ) -> None:
        collection.update(outputs[task.name].detach(), target, labelled)  # B x C_t or B; B; B

    def confusion(self, task: str, source: str = "") -> MaskedConfusion | None:
        """The confusion-matrix metric of a task (over every source, or of one): the state its
        accuracy and F1 come from; None for a task without classes or a source without it."""
        group = self.by_task if not source else self.by_source[source]
        if task not in group:
            return None
        found = [m for m in group[task].values(copy_state=False) if isinstance(m, MaskedConfusion)]
        return found[0] if found else None

    def collections(self) -> Iterator[MetricCollection]:
        """Every collection, in a fixed order (the same on every rank)."""
        yield from self.by_task.values()
        for source in self.source_names:
            yield from self.by_source[source].values()
