"""Finished runs, wherever they were logged: local run folders, W&B offline run folders, and a
W&B project online.

Every source gives the same :class:`Run`: what the run is (its identity: task set, backbone,
weighting, loss, fold, data seed; :mod:`mtl.training.identity`), its resolved config, its final
metrics (``test/…``, ``test_ens/…``, ``val/…`` keys) and its validation curves.

* a local run folder is one with ``run.json`` (written by :class:`mtl.training.summary.RunSummary`),
  its config and curves read from ``config.yaml`` and ``metrics.csv`` beside it;
* a W&B offline run folder (``offline-run-*`` with ``run-<id>.wandb``) is read record by record
  (:mod:`mtl.experiments.report.wandb_file`): the run's config, its history and its summary; a
  record whose checksum fails is left out and named in the notes;
* ``wandb:ENTITY/PROJECT`` reads a project's finished runs through W&B's public API (online).

A run that cannot be read is skipped with a note, never the whole report.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from mtl.errors import UserError
from mtl.experiments.report.wandb_file import read_wandb_file
from mtl.training.run_file import HOW_KEYS, RUN_FILE

CURVE_PREFIX = "val/"
Curve = list[tuple[float, float]]  # (epoch, value)


@dataclass
class Run:
    """One finished run, as the report sees it."""

    name: str
    identity: dict
    metrics: dict[str, float]
    curves: dict[str, Curve] = field(default_factory=dict)
    origin: str = ""  # the file it was read from
    wandb_id: str | None = None  # its W&B run id, if it logged to W&B
    config: dict = field(default_factory=dict)  # the resolved config (data, model, trainer)
    how: dict = field(default_factory=dict)  # epochs, fit_seconds, ran, ensemble_members
    subgroups: dict = field(default_factory=dict)  # run.json's: {groups: [...], gaps: [...]}

    @property
    def tasks(self) -> tuple[str, ...]:
        return tuple(self.identity.get("tasks") or ())


def _finite(value: object) -> float | None:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) else number


def curves_of(rows: Iterable[Mapping[str, object]]) -> dict[str, Curve]:
    """Validation metrics by epoch from logged rows (the last value of each epoch)."""
    curves: dict[str, dict[float, float]] = {}
    for row in rows:
        epoch = _finite(row.get("epoch"))
        for key, value in row.items():
            number = _finite(value)
            if key.startswith(CURVE_PREFIX) and number is not None and epoch is not None:
                curves.setdefault(key, {})[epoch] = number
    return {k: sorted(v.items()) for k, v in curves.items()}


def final_metrics(values: Mapping[str, object]) -> dict[str, float]:
    """The finite metric values (``stage/…`` keys) of a summary."""
    return {k: float(v) for k, v in values.items() if "/" in k and _finite(v) is not None}  # type: ignore[arg-type]


def local_run(folder: Path) -> Run:
    record = json.loads((folder / RUN_FILE).read_text())
    metrics = final_metrics(record.get("val", {}) | record.get("test", {}))
    curves: dict[str, Curve] = {}
    if (folder / "metrics.csv").is_file():
        with (folder / "metrics.csv").open(newline="") as f:
            curves = curves_of(csv.DictReader(f))
    config_file = folder / "config.yaml"
    config = (yaml.safe_load(config_file.read_text()) if config_file.is_file() else None) or {}
    wandb_id = record.get("run_ids", {}).get("wandb")
    origin = str(folder / RUN_FILE)
    how = {k: record[k] for k in HOW_KEYS if k in record}
    identity = record.get("identity", {})
    subgroups = record.get("subgroups") or {}
    return Run(folder.name, identity, metrics, curves, origin, wandb_id, config, how, subgroups)


def wandb_offline_run(path: Path, notes: list[str] | None = None) -> Run:
    """A run from its ``run-<id>.wandb`` file; each damaged record (left out) gets a line in
    ``notes``."""
    content = read_wandb_file(path)
    if notes is not None:
        notes += [f"{path}: {damage}" for damage in content.damaged]
    if not content.finished:
        raise ValueError("the run has not finished (no exit record)")
    identity = content.config.get("mtl") or {}
    config, how = wandb_config(content.config)
    metrics = final_metrics(content.summary)
    curves = curves_of(content.history)
    return Run(path.parent.name, identity, metrics, curves, str(path), content.run_id, config, how)


def wandb_config(config: Mapping[str, object]) -> tuple[dict, dict]:
    """A W&B run's resolved config, and how it ran (its :data:`HOW_KEYS`, as in ``run.json``;
    runs logged before they were mirrored there carry ``ran`` at most)."""
    resolved = {k: v for k, v in config.items() if k not in ("mtl", "_wandb", *HOW_KEYS)}
    how = {k: config[k] for k in HOW_KEYS if k in config}
    if "ran" in how:
        how["ran"] = dict(how["ran"]) if isinstance(how["ran"], Mapping) else None
    return resolved, {k: v for k, v in how.items() if v is not None}


def wandb_project_runs(path: str) -> Iterator[Run]:
    """The finished runs of ``ENTITY/PROJECT`` through W&B's public API (needs network)."""
    import wandb

    try:
        for r in wandb.Api().runs(path, filters={"state": "finished"}):
            config, how = wandb_config(r.config)
            rows = r.scan_history()  # every row: a key filter would drop rows lacking one key
            yield Run(r.name, dict(r.config.get("mtl") or {}), final_metrics(r.summary),
                      curves_of(rows), f"wandb:{path}/{r.id}", r.id, config, how)  # fmt: skip
    except (wandb.errors.CommError, wandb.errors.UsageError, ValueError) as err:
        raise UserError(f"could not read W&B project {path}: {err}") from None


def find_runs(paths: Iterable[str], notes: list[str] | None = None) -> list[Run]:
    """Every run under ``paths`` (folders searched recursively, ``wandb:ENTITY/PROJECT``); runs
    that cannot be read are skipped, each with a line in ``notes``."""
    notes = [] if notes is None else notes
    runs: list[Run] = []
    for given in paths:
        if given.startswith("wandb:"):
            runs += list(wandb_project_runs(given.removeprefix("wandb:")))
            continue
        root = Path(given)
        if not root.exists():
            raise UserError(f"no such run folder: {root}")
        for path in [root] if root.is_file() else [root, *sorted(root.rglob("*"))]:
            try:
                if path.is_dir() and (path / RUN_FILE).is_file():
                    runs.append(local_run(path))
                elif path.is_file() and path.suffix == ".wandb" and path.name.startswith("run-"):
                    runs.append(wandb_offline_run(path, notes))
            except (OSError, ValueError, yaml.YAMLError, UserError) as err:
                notes.append(f"skipped {path}: {err}")
    # A run logged to CSV and W&B at once is one run: its W&B copy is dropped.
    logged = {run.wandb_id for run in runs if run.wandb_id and run.origin.endswith(RUN_FILE)}
    return [r for r in runs if r.origin.endswith(RUN_FILE) or r.wandb_id not in logged]
