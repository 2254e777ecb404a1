"""The outcome of a sweep: a table of its trials, a CSV of them, and the best trial's config."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import optuna
import yaml
from optuna.trial import FrozenTrial, TrialState
from rich.table import Table

from mtl.experiments.sweep.config import SweepConfig

SHOWN = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL, TrialState.RUNNING)


def trials(study: optuna.Study) -> list[FrozenTrial]:
    """The sweep's trials that ran or run (not queued ones, not those dropped unrun)."""
    every = study.get_trials(deepcopy=False, states=SHOWN)
    return [t for t in every if "dropped" not in t.user_attrs]


def rows(study: optuna.Study) -> list[dict[str, Any]]:
    """One row per trial: number, state, metric value, parameters, final validation metrics."""
    out = []
    for t in trials(study):
        seconds = (t.datetime_complete - t.datetime_start).total_seconds() if t.duration else None
        row = {"trial": t.number, "state": t.state.name.lower(), "value": t.value}
        row |= json.loads(t.user_attrs.get("params", "{}"))
        row |= t.user_attrs.get("summary", {})
        row |= {"seconds": round(seconds, 1) if seconds else None}
        row |= {"dir": t.user_attrs.get("dir", ""), "note": t.user_attrs.get("failed", "")}
        out.append(row)
    return out


def best(study: optuna.Study) -> FrozenTrial | None:
    done = [t for t in trials(study) if t.state == TrialState.COMPLETE]
    if not done:
        return None
    return (
        max(done, key=lambda t: t.value)
        if study.direction.name == "MAXIMIZE"
        else min(done, key=lambda t: t.value)
    )


def table(study: optuna.Study, config: SweepConfig) -> Table:
    """Trials as a rich table: parameters, the sweep's metric, and the tasks' accuracies."""
    data = rows(study)
    varying = [p for p in sorted(config.parameters) if len({str(r.get(p)) for r in data}) > 1]
    params = varying or sorted(config.parameters)  # constant settings would only crowd it
    metric = config.ledger_metric
    accs = sorted({k for r in data for k in r if k.startswith("val/") and k.count("/") == 2
                   and k.endswith("/acc")})  # fmt: skip
    winner = best(study) if config.metric else None
    chosen = f"best by {metric}" if config.metric else "no metric: no best"
    out = Table(title=f"sweep {study.study_name}: {len(data)} trials ({chosen})")
    for column in ("trial", "state", *params, metric, *accs, "s"):
        out.add_column(column, justify="left" if column in ("state", *params) else "right")
    for r in data:
        mark = " *" if winner is not None and r["trial"] == winner.number else ""
        cells = [f"{r['trial']}{mark}", r["state"], *(str(r.get(p)) for p in params)]
        seconds = r.get("seconds")
        cells += [_fmt(r.get("value")), *(_fmt(r.get(a)) for a in accs)]
        cells.append("-" if seconds is None else f"{seconds:.0f}")
        out.add_row(*cells)
    return out


def _fmt(value: Any) -> str:
    return "-" if value is None else f"{value:.4f}" if isinstance(value, float) else str(value)


def write(study: optuna.Study, config: SweepConfig, folder: Path) -> Path | None:
    """``trials.csv`` (every trial) and, when the sweep names a metric, ``best.yaml`` (the best
    parameters, usable as a ``--config`` after the sweep's own); returns the best file."""
    data = rows(study)
    folder.mkdir(parents=True, exist_ok=True)
    columns = list(dict.fromkeys(k for r in data for k in r))
    with (folder / "trials.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(data)
    winner = best(study) if config.metric else None
    if winner is None:
        return None
    path = folder / "best.yaml"
    path.write_text(yaml.safe_dump(json.loads(winner.user_attrs["params"]), sort_keys=False))
    return path
