"""Task kinds and their metrics: what differs between a classification and a regression, and
how each metric reads, defined once for the whole project (:mod:`mtl.tasks` re-exports it).

Plain Python and NumPy: reports read metrics without importing torch.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

if TYPE_CHECKING:  # annotations only
    from torch import Tensor

    from mtl.tasks import Task


@dataclass(frozen=True)
class Metric:
    """A metric a task kind is measured by, and how reports show it."""

    name: str  # in metric keys: ``val/smile/acc``
    title: str
    lower_is_better: bool = False
    percent: bool = False  # a fraction, shown in per cent with 2 digits (else 3 digits)

    @property
    def scale(self) -> float:
        return 100.0 if self.percent else 1.0

    @property
    def digits(self) -> int:
        return 2 if self.percent else 3


METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric("acc", "accuracy", percent=True),
        Metric("f1", "macro F1", percent=True),
        Metric("mae", "MAE", lower_is_better=True),
    )
}
"""Every metric a task can have, by its name in metric keys."""


def metric_of(name: str) -> Metric:
    """The :class:`Metric` called ``name`` (another logged value, e.g. a loss: shown as is)."""
    return METRICS.get(name) or Metric(name, name)


def metric_key(stage: str, task: str, metric: str, source: str = "") -> str:
    """The logged name of a metric: ``stage/task/metric``, or ``stage/source/task/metric`` for
    one source (``val/smile/acc``, ``test/genki4k/smile/acc``)."""
    return metric_prefix(stage, task, source) + metric


def metric_prefix(stage: str, task: str, source: str = "") -> str:
    """What every metric key of a task (of one source) starts with: ``val/smile/``."""
    return "/".join((stage, source, task, "") if source else (stage, task, ""))


def parse_metric_key(key: str) -> tuple[str, str, str, str] | None:
    """:func:`metric_key`'s inverse: (stage, source or "", task, metric); None for another key."""
    parts = key.split("/")
    if len(parts) == 3:
        return parts[0], "", parts[1], parts[2]
    if len(parts) == 4:
        return parts[0], parts[1], parts[2], parts[3]
    return None


@dataclass(frozen=True)
class Reading:
    """One prediction as people read it: a class name (with its probability and every class's)
    or a value."""

    label: str | float
    confidence: float | None = None
    probabilities: dict[str, float] | None = None


class TaskKind(ABC):
    """What a kind of task is, defined once: its outputs and how they become predictions and
    probabilities, its metrics, its loss family and its likelihood's scale. Tensor methods take
    torch tensors (called as methods on them: this module does not import torch, so reports
    read metrics without it); :meth:`read` takes NumPy arrays. The kinds are singletons
    (compared with ``is``), also after pickling or copying."""

    name: ClassVar[str]
    metrics: ClassVar[tuple[str, ...]]
    loss_family: ClassVar[str]
    """Which configured loss trains it: the module's classification loss (``--model.task_loss``)
    or its regression loss (``--model.regression_loss``)."""
    uncertainty_scale: ClassVar[float]
    """Factor of 1/sigma^2 in uncertainty weighting (Kendall et al.: 1 for a softmax
    likelihood, 1/2 for a Gaussian one)."""

    def __str__(self) -> str:
        return self.name

    def __repr__(self) -> str:
        return self.name.upper()

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return kind_named, (self.name,)  # unpickled (and copied) as the same singleton

    @property
    def quality(self) -> Metric:
        """The metric that says how good a task of this kind is (reports, dashboards)."""
        return METRICS[self.metrics[0]]

    @abstractmethod
    def num_outputs(self, task: Task) -> int:
        """Outputs of the task's head."""

    def from_head(self, head_out: Tensor) -> Tensor:
        """A head's B x num_outputs output -> the task's raw output (B x C or B)."""
        return head_out

    @abstractmethod
    def probabilities(self, raw: Tensor) -> Tensor:
        """Raw outputs -> what a user gets: class probabilities (B x C) or values (B)."""

    @abstractmethod
    def average(self, raws: Tensor) -> Tensor:
        """K x B (x C) raw outputs of ensemble members -> their averaged :meth:`probabilities`."""

    @abstractmethod
    def average_raw(self, raws: Tensor) -> Tensor:
        """K x B (x C) raw outputs of one face's views -> one raw output whose
        :meth:`probabilities` are their :meth:`average`, so losses and metrics read it as any
        raw output."""

    @abstractmethod
    def describe(self, task: Task, value: float) -> str:
        """A target (class index or value) as text."""

    @abstractmethod
    def read(self, task: Task, probabilities: np.ndarray) -> Reading:
        """One sample's :meth:`probabilities` (C values, or one value) as a :class:`Reading`."""

    @abstractmethod
    def output_names(self, task: Task) -> list[str] | str:
        """What the outputs are, for exported files' metadata: class names, or the unit."""


class Classification(TaskKind):
    name = "classification"
    metrics = ("acc", "f1")
    loss_family = "classification"
    uncertainty_scale = 1.0

    def num_outputs(self, task: Task) -> int:
        return len(task.class_names)

    def probabilities(self, raw: Tensor) -> Tensor:
        return raw.softmax(-1)  # B x C

    def average(self, raws: Tensor) -> Tensor:
        return raws.softmax(-1).mean(0)  # K x B x C -> B x C

    def average_raw(self, raws: Tensor) -> Tensor:
        # log of the mean probabilities: K x B x C -> B x C (softmax gives back their mean)
        return raws.log_softmax(-1).logsumexp(0) - math.log(raws.shape[0])

    def describe(self, task: Task, value: float) -> str:
        return task.class_names[int(value)]

    def read(self, task: Task, probabilities: np.ndarray) -> Reading:
        best = int(np.argmax(probabilities))
        every = {c: float(p) for c, p in zip(task.class_names, probabilities, strict=True)}
        return Reading(task.class_names[best], float(probabilities[best]), every)

    def output_names(self, task: Task) -> list[str]:
        return list(task.class_names)


class Regression(TaskKind):
    name = "regression"
    metrics = ("mae",)
    loss_family = "regression"
    uncertainty_scale = 0.5

    def num_outputs(self, task: Task) -> int:
        return 1

    def from_head(self, head_out: Tensor) -> Tensor:
        return head_out.squeeze(1)  # B x 1 -> B

    def probabilities(self, raw: Tensor) -> Tensor:
        return raw  # B values

    def average(self, raws: Tensor) -> Tensor:
        return raws.mean(0)  # K x B -> B

    def average_raw(self, raws: Tensor) -> Tensor:
        return self.average(raws)  # values are their own raw outputs: K x B -> B

    def describe(self, task: Task, value: float) -> str:
        return f"{float(value):.1f}"

    def read(self, task: Task, probabilities: np.ndarray) -> Reading:
        return Reading(round(float(np.asarray(probabilities).reshape(-1)[0]), 2))

    def output_names(self, task: Task) -> str:
        return task.unit


CLASSIFICATION = Classification()
REGRESSION = Regression()
KINDS: dict[str, TaskKind] = {k.name: k for k in (CLASSIFICATION, REGRESSION)}
"""Every task kind, by name."""


def kind_named(name: str) -> TaskKind:
    """The task kind called ``name``."""
    return KINDS[name]
