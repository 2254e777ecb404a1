"""Table cells as text: a row's mean ± std over its runs, and a multi-task row's difference to
single-task, paired with its confidence interval or, with no common split, unpaired."""

from __future__ import annotations

from mtl.experiments.report.comparison import PairedDelta
from mtl.experiments.report.table import Stats
from mtl.tasks import metric_of


def format_cell(stats: Stats | None, metric: str) -> str:
    """``mean ± std (n)`` (per cent for accuracy and F1); one run has no std."""
    if stats is None:
        return "–"
    scale, digits = metric_of(metric).scale, metric_of(metric).digits
    if stats.n < 2:
        return f"{stats.mean * scale:.{digits}f} ({stats.n})"
    return f"{stats.mean * scale:.{digits}f} ± {stats.std * scale:.{digits}f} ({stats.n})"


def format_delta(diff: float | None, metric: str) -> str:
    """``+1.23``: a difference of means, signed, in the metric's display units."""
    if diff is None:
        return ""
    scale, digits = metric_of(metric).scale, metric_of(metric).digits
    return f"{diff * scale:+.{digits}f}"


def format_paired(paired: PairedDelta | None, metric: str) -> str:
    """``+1.23 [-0.40, +2.86] (4 pairs), spans 0`` in the metric's display units."""
    if paired is None:
        return ""
    scale, digits = metric_of(metric).scale, metric_of(metric).digits
    text = f"{paired.mean * scale:+.{digits}f}"
    if not paired.has_interval:
        why = "no interval" if paired.n < 2 else "no spread, no interval"
        return f"{text} ({paired.n} pair{'s' * (paired.n != 1)}, {why})"
    text += f" [{paired.low * scale:+.{digits}f}, {paired.high * scale:+.{digits}f}] ({paired.n})"
    return text + (", spans 0" if paired.spans_zero else "")


def delta_cell(diff: float | None, paired: PairedDelta | None, metric: str) -> str:
    """The paired difference with its interval; the difference of means, marked unpaired, where
    no fold and data seed was run by both rows."""
    if paired is not None:
        return format_paired(paired, metric)
    return "" if diff is None else f"{format_delta(diff, metric)} (unpaired)"
