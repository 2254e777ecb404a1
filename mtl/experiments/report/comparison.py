"""Multi-task against single-task: which single-task row a multi-task row is compared with,
the difference of their means, the paired difference with its confidence interval, and Δm.

Against single-task, a multi-task experiment gets per column the difference to the single-task
experiment of that column's task (same backbone, loss and model; none if several match), and
the mean relative gain as LibMTL defines it (Maninis et al. 2019; Vandenhende et al. 2021)::

    Δm = 100 % · 1/T · Σ_t 1/K_t · Σ_k (-1)^{l_k} (M_mt,k − M_st,k) / M_st,k

with l_k = 1 where lower is better (MAE) and 0 otherwise, averaged over the K columns of each
task (its sources and metrics) first, then over the tasks that have a single-task baseline.

Whether a difference is real is read from the *paired* differences: each multi-task run is
paired with the single-task runs of the same fold and data seed (the same training and test
faces; each side's runs of that split, over ``seed_everything``, averaged), and the mean of the
paired differences gets a 95 % confidence interval (Student's t over the pairs,
:func:`scipy.stats.ttest_rel`). Pairing removes what folds share (one fold is harder than
another for both), so the interval is narrower than one from the two rows' spreads. An interval
that contains 0 does not show a difference.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from scipy import stats as scipy_stats

from mtl.experiments.report.table import Column, Experiment, Stats, value_of
from mtl.tasks import metric_of

SINGLE_TASK_MOOT = ("model.weighting", "data.balance", "data.weights")
"""Keys a multi-task row may vary that say nothing about a single-task row: how the task
losses are weighted and how the sources share an epoch (one task, one source there)."""


def baseline(experiment: Experiment, task: str, found: Sequence[Experiment]) -> Experiment | None:
    """The single-task experiment of ``task`` matching ``experiment`` (backbone, loss, model)
    and sharing its values of every config key that sets either row apart from its kind
    (:func:`differing`): where single-task rows differ in precision, the one of the multi-task
    row's precision; where multi-task rows differ in epochs, a single-task row run at one
    length only is the baseline of the multi-task row of that length alone. Where none shares
    them all, the one that shares all but the experiment's ``baseline_ignoring`` keys (and their
    arguments: ``model.lr_scheduler`` covers ``model.lr_scheduler.T_max``), so a row whose
    schedule was chosen for its task set pairs with the single-task row chosen for its own
    (:func:`loose_keys` says in what they differ). None when there is no such experiment, or
    still several (no single baseline to compare)."""
    same = ("backbone", "loss", "model")
    matches = [
        other
        for other in found
        if other.tasks == (task,) and all(other.fields[f] == experiment.fields[f] for f in same)
    ]
    strict = [other for other in matches if not differing(experiment, other)]
    ignoring = experiment.baseline_ignoring
    if not strict and ignoring:
        strict = [
            other
            for other in matches
            if all(_ignored(k, ignoring) for k in differing(experiment, other))
        ]
    return strict[0] if len(strict) == 1 else None


def differing(multi: Experiment, single: Experiment) -> list[str]:
    """The config keys in which the two rows differ, of those that set either apart from its
    kind (``single``'s first). A key only the multi-task rows vary counts where ``single``'s
    config has it (a run saved without a config, or a weighting's argument, cannot be compared)
    and it is not :data:`SINGLE_TASK_MOOT`."""
    mine = [k for k in multi.variant if k in single.config and not _ignored(k, SINGLE_TASK_MOOT)]
    keys = dict.fromkeys([*single.variant, *mine])
    return [k for k in keys if len(set(values_of(k, multi, single))) > 1]


def values_of(key: str, multi: Experiment, single: Experiment) -> tuple[str, str]:
    """The multi-task row's value of ``key``, then the single-task row's, each as the kind that
    varies the key shows it (its variant's value; the other row's read from its config alike).
    ``key`` must be in one of the two rows' variants."""
    if key in single.variant:
        return value_of(multi.config, key, single.variant), single.variant[key]
    return multi.variant[key], value_of(single.config, key, multi.variant)


def _ignored(key: str, ignoring: Iterable[str]) -> bool:
    """Whether ``key`` is one of ``ignoring`` or an argument of one (``model.lr_scheduler``
    covers ``model.lr_scheduler.T_max``)."""
    return any(key == i or key.startswith(f"{i}.") for i in ignoring)


def loose_keys(experiment: Experiment, task: str, found: Sequence[Experiment]) -> list[str]:
    """The config keys in which ``experiment``'s single-task baseline of ``task`` differs from
    it, where it was matched ignoring them (``baseline_ignoring``); empty otherwise."""
    base = None if experiment.single_task else baseline(experiment, task, found)
    if base is None:
        return []
    keys = differing(experiment, base)
    return sorted({k for k in keys if not any(k.startswith(f"{o}.") for o in keys)})


def deltas(experiment: Experiment, found: Sequence[Experiment]) -> dict[Column, float]:
    """Multi-task minus single-task mean per column (in the metric's units)."""
    if experiment.single_task:
        return {}
    out = {}
    mine = experiment.stats()
    for column, stats in mine.items():
        base = baseline(experiment, column.task, found)
        if base is not None and column in base.values:
            out[column] = stats.mean - Stats.of(base.values[column]).mean
    return out


@dataclass(frozen=True)
class PairedDelta:
    """Multi-task minus single-task over the runs paired by data split: the mean difference,
    its 95 % confidence interval (NaN with fewer than 2 pairs, or when every pair differs by the
    same amount: Student's t needs a spread) and the number of pairs."""

    mean: float
    low: float
    high: float
    n: int

    @property
    def has_interval(self) -> bool:
        return not math.isnan(self.low)

    @property
    def spans_zero(self) -> bool:
        """No evidence of a difference: the interval contains 0, or there is no interval."""
        return not self.has_interval or self.low <= 0.0 <= self.high

    @classmethod
    def of(cls, multi: Sequence[float], single: Sequence[float]) -> PairedDelta:
        """From the paired values (same order, finite): Student's t interval of the mean
        difference."""
        diffs = [m - s for m, s in zip(multi, single, strict=True)]
        mean = statistics.fmean(diffs)
        if len(diffs) < 2 or max(diffs) == min(diffs):
            return cls(mean, math.nan, math.nan, len(diffs))
        interval = scipy_stats.ttest_rel(multi, single).confidence_interval(0.95)
        return cls(mean, float(interval.low), float(interval.high), len(diffs))


def per_split(by_run: dict[tuple, float]) -> dict[tuple, float]:
    """A row's finite values averaged per data split (fold and data seed) over its
    ``seed_everything`` repetitions. The split is what a multi-task run pairs on: runs of one
    split trained and tested on the same faces, while one ``seed_everything`` draws unrelated
    initial weights for two different networks, so it is no reason to pair."""
    splits: dict[tuple, list[float]] = {}
    for key, value in by_run.items():
        if math.isfinite(value):
            splits.setdefault(key[:2], []).append(value)
    return {split: statistics.fmean(values) for split, values in splits.items()}


def paired_deltas(experiment: Experiment, found: Sequence[Experiment]) -> dict[Column, PairedDelta]:
    """Per column of a multi-task experiment with a single-task baseline, the paired difference
    over the data splits (fold and data seed) both ran with a finite value, each side's runs of
    a split averaged (:func:`per_split`); a column without any is left out."""
    if experiment.single_task:
        return {}
    out = {}
    for column, by_run in sorted(experiment.by_run.items()):
        base = baseline(experiment, column.task, found)
        mine = per_split(by_run)
        theirs = per_split(base.by_run.get(column, {})) if base is not None else {}
        common = sorted(set(mine) & set(theirs), key=str)
        if common:
            out[column] = PairedDelta.of([mine[k] for k in common], [theirs[k] for k in common])
    return out


def delta_m(experiment: Experiment, found: Sequence[Experiment]) -> float | None:
    """LibMTL's Δm in per cent: the relative gain of each column (sign flipped where lower is
    better), averaged within each task, then over the tasks that have a single-task baseline;
    None when none has."""
    per_task: dict[str, list[float]] = {}
    mine = experiment.stats()
    for column, diff in deltas(experiment, found).items():
        base = mine[column].mean - diff
        if base:
            sign = -1.0 if metric_of(column.metric).lower_is_better else 1.0
            per_task.setdefault(column.task, []).append(sign * diff / base)
    if not per_task:
        return None
    return 100.0 * statistics.fmean(statistics.fmean(g) for g in per_task.values())
