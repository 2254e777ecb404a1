"""The format of a run's ``run.json``, shared by the callback that writes it
(:class:`mtl.training.summary.RunSummary`) and the readers that compare runs
(:mod:`mtl.experiments.report`, :mod:`mtl.experiments.cv`). Plain Python: reading a results
table never imports torch or Lightning.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from mtl.tasks import parse_metric_key

RUN_FILE = "run.json"
MODELS = {"test": "final", "test_ens": "ensemble"}
"""Metric prefix of a test -> the model it evaluated."""

HOW_KEYS = ("epochs", "fit_seconds", "ran", "ensemble_members")
"""The keys of ``run.json`` that say how a run ran (epochs trained, fit time, hardware and
precision, how many members its ensemble averaged), not what it measured or was asked to do.
A W&B run's config carries them too, so ``mtl report`` reads them there as from ``run.json``,
and never takes them for a setting that tells experiments apart."""


def result_rows(metrics: dict[str, float]) -> list[dict]:
    """Rows model, source, task, metric, value of test metrics (``""`` source: all sources)."""
    rows = []
    for key, value in sorted(metrics.items()):
        parsed = parse_metric_key(key)
        if parsed and parsed[0] in MODELS and parsed[3] != "loss" and not math.isnan(value):
            stage, source, task, metric = parsed
            rows.append({"model": MODELS[stage], "source": source or "all", "task": task,
                         "metric": metric, "value": value})  # fmt: skip
    return rows


def fit_ran_beside(checkpoint: str | Path | None) -> dict[str, Any] | None:
    """How the fit that wrote ``checkpoint`` ran (``ran``), from the ``run.json`` of the run
    folder it was saved in, for checkpoints written before they carried it. Only for the layout
    the project's checkpoints have (``<run>/checkpoints/x.ckpt``): a checkpoint moved elsewhere
    would otherwise take another run's hardware. None where there is no such file or it holds
    no ``ran``."""
    if not checkpoint or Path(checkpoint).parent.name != "checkpoints":
        return None
    try:
        record = json.loads((Path(checkpoint).parent.parent / RUN_FILE).read_text())
    except (OSError, ValueError):  # gone, unreadable, not JSON
        return None
    ran = record.get("ran") if isinstance(record, dict) else None
    return dict(ran) if isinstance(ran, dict) else None
