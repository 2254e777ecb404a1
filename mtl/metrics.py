"""Per-task and per-source metrics of one stage, fed only the rows labelled for each task.

Each task has one :class:`~torchmetrics.MetricCollection` (accuracy and macro F1 for a
classification, mean absolute error for a regression, from the task registry), cloned with a
prefix per stage and per source: ``val/smile/acc``, ``val/genki4k/smile/acc``. The module logs
every collection with ``log_dict`` at the end of each epoch, on every rank and in the same
order, whatever each rank saw (Lightning computes, syncs and resets them): under DDP every rank
enters the same collectives, also when its batches missed a task or a source entirely. A metric
no rank saw a labelled sample for in an epoch reports NaN, not the 0 torchmetrics would.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

import torch
from torch import nn
from torchmetrics import MeanAbsoluteError, Metric, MetricCollection
from torchmetrics.classification import MulticlassAccuracy, MulticlassF1Score

from mtl.tasks import Task


class IfLabelled(Metric):
    """``metric`` over the labelled rows it is given, or NaN for an epoch in which no rank was
    given any. The decision uses the count summed over all ranks, so every rank takes it the
    same way and enters the same collectives."""

    full_state_update = False

    def __init__(self, metric: Metric) -> None:
        super().__init__()
        self.metric = metric
        self.add_state("count", torch.tensor(0), dist_reduce_fx="sum")

    def update(self, preds: torch.Tensor, target: torch.Tensor) -> None:
        if len(target):  # torchmetrics rejects empty updates
            self.metric.update(preds, target)
            self.count += len(target)

    def compute(self) -> torch.Tensor:
        if self.count == 0:  # the synced count: the same on every rank
            return torch.tensor(float("nan"), device=self.count.device)
        return self.metric.compute()

    def reset(self) -> None:
        self.metric.reset()
        super().reset()


def task_metrics(task: Task) -> MetricCollection:
    """The metrics of one task (no prefix)."""
    if task.kind == "regression":
        metrics = {"mae": MeanAbsoluteError()}
    else:
        metrics = {
            "acc": MulticlassAccuracy(task.num_classes, average="micro"),
            "f1": MulticlassF1Score(task.num_classes, average="macro"),
        }
    wrapped = {name: IfLabelled(metric) for name, metric in metrics.items()}
    return MetricCollection(wrapped, compute_groups=False)


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
            {name: m.clone(prefix=f"{stage}/{name}/") for name, m in template.items()}
        )
        self.source_names = list(sources or {})
        self.by_source = nn.ModuleDict(
            {
                source: nn.ModuleDict(
                    {t: template[t].clone(prefix=f"{stage}/{source}/{t}/") for t in names}
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
        pred = outputs[task.name][labelled].detach()  # L x C (classification) or L
        target = target[labelled]  # L
        collection.update(pred, target if task.kind == "regression" else target.long())

    def collections(self) -> Iterator[MetricCollection]:
        """Every collection, in a fixed order (the same on every rank)."""
        yield from self.by_task.values()
        for source in self.source_names:
            yield from self.by_source[source].values()
