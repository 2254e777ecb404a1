"""Every metric of one stage, per task and per source, in one state updated once per batch.

A stage (``train``, ``val``, ``test``) reports, per task, the metrics its kind names (accuracy
and macro F1 for a classification, mean absolute error for a regression), over every source
and per source (``val/smile/acc``, ``val/genki4k/smile/acc``), and the mean losses
(``val/loss``, ``val/smile/loss``; ``train/loss_epoch`` …, since ``train/loss`` is the step's).
All of it is one :class:`~torchmetrics.Metric`, :class:`StageMetrics`, whose state holds every
task's and source's confusion matrix, absolute-error sums and loss sums: one ``update`` per
batch, a few batched tensor operations whatever the number of tasks and sources (one
collection per task and source cost several hundred microseconds of Python per training step,
a large part of a step at GPU speed).

Updates never wait for the GPU: the whole batch comes with the mask of labelled rows and is
counted with tensor arithmetic only (an ``index_add_`` into the confusion matrices, masked sums),
never boolean indexing or ``bincount``, which wait for the device.

The module computes, logs and resets the stage's metrics at the end of every epoch, on every
rank and in the same order whatever each rank saw: the state is synced over DDP ranks before it
is computed, so every rank logs the same values, also when its batches missed a task or a
source entirely. A metric no rank saw a labelled sample for reports NaN, not 0.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torchmetrics import Metric

from mtl.losses.task_losses import class_indices
from mtl.tasks import Task, metric_key

STAGES = ("train", "val", "test")
EVAL_STAGES = ("val", "test")


def evaluation_sources(datamodule: object, stage: str) -> dict[str, list[str]]:
    """The sources a stage reports on, with their tasks ({} for data that has no sources)."""
    sources = getattr(datamodule, "evaluation_sources", None)
    return sources(stage) if callable(sources) and getattr(datamodule, "sources", None) else {}


CONFUSION_METRICS = ("acc", "f1")
"""Metrics read from a task's confusion matrix (classification kinds)."""
ERROR_METRICS = ("mae",)
"""Metrics read from a task's absolute-error sums (regression kinds)."""


def _reads(task: Task, metrics: Sequence[str]) -> bool:
    return any(m in metrics for m in task.kind.metrics)


class StageMetrics(Metric):
    """Metrics and mean losses of one stage, per task and, optionally, per source.

    Args:
        tasks: the run's tasks, in the order of the batch's ``targets`` columns.
        stage: the keys' first part (``train``, ``val``, ``test``, ``test_ens``).
        sources: each source, in ``batch["source"]`` order, with the tasks it labels; metrics
            of a source are reported for those tasks only.
        with_losses: also average the losses given to :meth:`update`.
    """

    full_state_update = False

    def __init__(
        self,
        tasks: Sequence[Task],
        stage: str,
        sources: Mapping[str, Sequence[str]] | None = None,
        with_losses: bool = True,
    ) -> None:
        super().__init__()
        self.tasks, self.stage, self.with_losses = list(tasks), stage, with_losses
        self.source_names = list(sources or {})
        for t in self.tasks:
            unknown = set(t.kind.metrics) - set(CONFUSION_METRICS) - set(ERROR_METRICS)
            if unknown:
                raise ValueError(f"task {t.name}: no way to compute metric(s) {sorted(unknown)}")
        # Each kind names its metrics; they say which state a task's rows are counted in.
        self.classified = [j for j, t in enumerate(self.tasks) if _reads(t, CONFUSION_METRICS)]
        self.regressed = [j for j, t in enumerate(self.tasks) if _reads(t, ERROR_METRICS)]
        self.classified_names = [self.tasks[j].name for j in self.classified]
        # Every column of the batch is a classification: the columns are counted as they are.
        self.all_classified = self.classified == list(range(len(self.tasks)))
        self.regressed_names = [self.tasks[j].name for j in self.regressed]
        classes = max([self.tasks[j].num_classes for j in self.classified], default=1)
        groups = 1 + len(self.source_names)  # every source together, then each source
        self.classes, self.groups = classes, groups
        # Which (group, task) pairs are reported: every task over all sources; a source's own.
        self.reported = [(0, t) for t in self.tasks]
        for g, labelled in enumerate((sources or {}).values(), start=1):
            self.reported += [(g, t) for t in self.tasks if t.name in labelled]
        tc, tr = len(self.classified), len(self.regressed)
        long = torch.long
        self.add_state("confusion", torch.zeros(groups, tc, classes, classes, dtype=long), "sum")
        self.add_state("abs_error", torch.zeros(groups, tr), "sum")  # G x Tr
        self.add_state("rows", torch.zeros(groups, tr, dtype=long), "sum")  # G x Tr
        self.add_state("loss_sum", torch.zeros(1 + len(self.tasks)), "sum")  # total, then T
        self.add_state("samples", torch.zeros(()), "sum")
        # Index tensors, built once (a Python list as an index is copied to the GPU each use).
        self.register_buffer("classified_index", torch.tensor(self.classified, dtype=long), False)
        self.register_buffer("regressed_index", torch.tensor(self.regressed, dtype=long), False)
        self.register_buffer("task_offset", torch.arange(tc, dtype=long) * classes**2, False)
        group_size = tc * classes**2  # cells of one group's matrices
        self.register_buffer("group_offset", torch.arange(groups, dtype=long) * group_size, False)

    def update(
        self,
        outputs: Mapping[str, torch.Tensor],
        batch: Mapping[str, torch.Tensor],
        losses: torch.Tensor | None = None,
    ) -> None:
        """Count a batch: ``outputs`` {task: B x C_t scores or B values}, ``batch`` with
        ``targets`` and ``mask`` (B x T) and ``source`` (B), ``losses`` the batch's total and
        per-task losses (1 + T, detached)."""
        mask, targets = batch["mask"], batch["targets"]  # B x T each
        member = self._membership(batch, len(mask))  # B x G, None: every row in group 0 only
        if self.classified:
            self._count_classes(outputs, targets, mask, member)
        if self.regressed:
            self._sum_errors(outputs, targets, mask, member)
        if self.with_losses and losses is not None:
            n = len(mask)
            self.loss_sum.add_(losses.detach().float(), alpha=n)
            self.samples.add_(n)  # in place: no Module.__setattr__ per batch

    def _membership(self, batch: Mapping[str, torch.Tensor], n: int) -> torch.Tensor | None:
        """B x G long: 1 where a row counts in a group (every row in group 0, "all sources"; a
        row in its source's group, if that source is reported); None when there is no group
        but "all sources"."""
        if self.groups == 1:
            return None
        source = batch["source"]  # B
        known = (source >= 0) & (source < self.groups - 1)
        member = F.one_hot(torch.where(known, source + 1, 0), self.groups)  # B x G
        member[:, 0] = 1
        return member

    def _count_classes(
        self,
        outputs: Mapping[str, torch.Tensor],
        targets: torch.Tensor,
        mask: torch.Tensor,
        member: torch.Tensor | None,
    ) -> None:
        predicted = torch.stack(
            [outputs[t].argmax(dim=1) for t in self.classified_names], dim=1
        )  # B x Tc
        labelled = mask  # B x T; with a regression, the classified columns only: B x Tc
        if not self.all_classified:
            labelled, targets = (x.index_select(1, self.classified_index) for x in (mask, targets))
        truth = class_indices(targets, labelled)  # B x Tc
        c = self.classes
        index = self.task_offset + truth * c + predicted  # B x Tc, cells of one group's state
        counts = labelled.long()  # B x Tc
        if member is not None:  # the same cells in every group the row counts in
            index = index[:, None, :] + self.group_offset[:, None]  # B x G x Tc
            counts = member[:, :, None] * counts[:, None, :]  # B x G x Tc
        self.confusion.view(-1).index_add_(0, index.reshape(-1), counts.reshape(-1))

    def _sum_errors(
        self,
        outputs: Mapping[str, torch.Tensor],
        targets: torch.Tensor,
        mask: torch.Tensor,
        member: torch.Tensor | None,
    ) -> None:
        values = torch.stack(
            [outputs[t].detach().float() for t in self.regressed_names], dim=1
        )  # B x Tr
        labelled = mask.index_select(1, self.regressed_index)  # B x Tr
        target = targets.index_select(1, self.regressed_index)
        error = torch.where(labelled, (values - target).abs(), 0.0)  # B x Tr (NaN targets out)
        if member is None:
            self.abs_error += error.sum(0)[None]  # 1 x Tr
            self.rows += labelled.sum(0)[None]
        else:
            self.abs_error += (member[:, :, None] * error[:, None, :]).sum(0)  # G x Tr
            self.rows += (member[:, :, None] * labelled[:, None, :]).sum(0)

    def compute(self) -> dict[str, torch.Tensor]:
        """Every reported value by its logged key (NaN where nothing was labelled)."""
        tables = self._tables()
        values = {}
        for g, task in self.reported:
            source = self.source_names[g - 1] if g else ""
            column = self._column(task)
            for name in task.kind.metrics:
                values[metric_key(self.stage, task.name, name, source)] = tables[name][g, column]
        if self.with_losses:
            means = self.loss_sum / self.samples  # 1 + T (NaN when no sample)
            suffix = "_epoch" if self.stage == "train" else ""  # train/loss is the step's
            values[f"{self.stage}/loss{suffix}"] = means[0]
            for j, task in enumerate(self.tasks):
                values[f"{self.stage}/{task.name}/loss{suffix}"] = means[1 + j]
        return values

    def _tables(self) -> dict[str, torch.Tensor]:
        """acc, f1 (G x Tc) and mae (G x Tr) of every group and task."""
        confusion = self.confusion.float()  # G x Tc x C x C (true x predicted)
        tp = confusion.diagonal(dim1=-2, dim2=-1)  # G x Tc x C
        fp, fn = confusion.sum(-2) - tp, confusion.sum(-1) - tp
        occurred = (tp + fp + fn) > 0  # classes seen or predicted: those macro F1 averages
        f1 = torch.where(occurred, 2 * tp / (2 * tp + fp + fn).clamp(min=1), 0.0)
        return {
            "acc": tp.sum(-1) / confusion.sum((-2, -1)),  # 0 / 0: NaN
            "f1": f1.sum(-1) / occurred.sum(-1),
            "mae": self.abs_error / self.rows,
        }

    def _column(self, task: Task) -> int:
        """The task's column in the tables of its state."""
        j = self.tasks.index(task)
        return (self.classified if j in self.classified else self.regressed).index(j)

    def confusion_matrices(self) -> dict[tuple[str, str], torch.Tensor]:
        """{(source or "", task): C_t x C_t confusion matrix (true x predicted)} of every
        reported classification, summed over every DDP rank: a collective, so every rank calls
        it, at the same point."""
        with self.sync_context(should_sync=True, should_unsync=True):
            confusion = self.confusion.clone()  # G x Tc x C x C
        matrices = {}
        for g, task in self.reported:
            if self.tasks.index(task) in self.classified:
                c = task.num_classes
                source = self.source_names[g - 1] if g else ""
                matrices[(source, task.name)] = confusion[g, self._column(task), :c, :c]
        return matrices
