"""Finished runs, wherever they were logged: local run folders, W&B offline run folders, and a
W&B project online.

Every source gives the same :class:`Run`: what the run is (its identity: task set, backbone,
weighting, loss, fold, seed; :mod:`mtl.identity`), its final metrics (``test/…``,
``test_ens/…``, ``val/…`` keys) and its validation curves.

* a local run folder is one with ``run.json`` (written by :class:`mtl.run_report.RunReport`),
  its curves read from ``metrics.csv`` beside it;
* a W&B offline run folder (``offline-run-*`` with ``run-<id>.wandb``) is read record by record
  (:mod:`mtl.report.wandb_file`): the run's ``mtl`` config, its history and its summary;
* ``wandb:ENTITY/PROJECT`` reads a project through W&B's public API (online).
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from mtl.errors import UserError
from mtl.report.wandb_file import read_wandb_file
from mtl.run_report import RUN_FILE

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

    @property
    def tasks(self) -> tuple[str, ...]:
        return tuple(self.identity.get("tasks") or ())


def _finite(value: object) -> float | None:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) else number


def csv_curves(path: Path) -> dict[str, Curve]:
    """Validation metrics by epoch from a Lightning ``metrics.csv`` (the last row per epoch)."""
    curves: dict[str, dict[float, float]] = {}
    if not path.is_file():
        return {}
    with path.open(newline="") as f:
        for row in csv.DictReader(f):
            epoch = _finite(row.get("epoch"))
            for key, value in row.items():
                number = _finite(value)
                if key.startswith(CURVE_PREFIX) and number is not None and epoch is not None:
                    curves.setdefault(key, {})[epoch] = number
    return {k: sorted(v.items()) for k, v in curves.items()}


def local_run(folder: Path) -> Run:
    record = json.loads((folder / RUN_FILE).read_text())
    metrics = {}
    for part in ("val", "test"):
        metrics |= {k: v for k, v in record.get(part, {}).items() if _finite(v) is not None}
    curves = csv_curves(folder / "metrics.csv")
    wandb_id = record.get("run_ids", {}).get("wandb")
    origin = str(folder / RUN_FILE)
    return Run(folder.name, record.get("identity", {}), metrics, curves, origin, wandb_id)


def wandb_offline_run(path: Path) -> Run:
    """A run from its ``run-<id>.wandb`` file."""
    content = read_wandb_file(path)
    identity = content.config.get("mtl") or {}
    metrics = {k: v for k, v in content.summary.items() if "/" in k and _finite(v) is not None}
    curves: dict[str, dict[float, float]] = {}
    for row in content.history:
        epoch = _finite(row.get("epoch"))
        for key, value in row.items():
            number = _finite(value)
            if key.startswith(CURVE_PREFIX) and number is not None and epoch is not None:
                curves.setdefault(key, {})[epoch] = number
    sorted_curves = {k: sorted(v.items()) for k, v in curves.items()}
    return Run(path.parent.name, identity, metrics, sorted_curves, str(path), content.run_id)


def wandb_project_runs(path: str) -> Iterator[Run]:
    """The finished runs of ``ENTITY/PROJECT`` through W&B's public API (needs network)."""
    import wandb

    try:
        runs = wandb.Api().runs(path, filters={"state": "finished"})
        for r in runs:
            identity = dict(r.config.get("mtl") or {})
            summary = {k: v for k, v in r.summary.items() if "/" in k and _finite(v) is not None}
            keys = [k for k in summary if k.startswith(CURVE_PREFIX)]
            curves: dict[str, Curve] = {}
            for row in r.scan_history(keys=["epoch", *keys]):
                for key in keys:
                    if _finite(row.get(key)) is not None and _finite(row.get("epoch")) is not None:
                        curves.setdefault(key, []).append((float(row["epoch"]), float(row[key])))
            yield Run(r.name, identity, summary, curves, f"wandb:{path}/{r.id}", r.id)
    except (wandb.errors.CommError, wandb.errors.UsageError, ValueError) as err:
        raise UserError(f"could not read W&B project {path}: {err}") from None


def find_runs(paths: Iterable[str]) -> list[Run]:
    """Every run under ``paths`` (folders searched recursively, ``wandb:ENTITY/PROJECT``)."""
    runs: list[Run] = []
    for given in paths:
        if given.startswith("wandb:"):
            runs += list(wandb_project_runs(given.removeprefix("wandb:")))
            continue
        root = Path(given)
        if not root.exists():
            raise UserError(f"no such run folder: {root}")
        for path in [root] if root.is_file() else [root, *sorted(root.rglob("*"))]:
            if path.is_dir() and (path / RUN_FILE).is_file():
                runs.append(local_run(path))
            elif path.is_file() and path.suffix == ".wandb" and path.name.startswith("run-"):
                runs.append(wandb_offline_run(path))
    # A run logged to CSV and W&B at once is one run: its W&B copy is dropped.
    logged = {run.wandb_id for run in runs if run.wandb_id and RUN_FILE in run.origin}
    return [r for r in runs if not (r.origin.endswith(".wandb") and r.wandb_id in logged)]
