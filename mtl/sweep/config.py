"""A W&B sweep file, read for the local runner: method, metric, parameters, command, run cap and
hyperband early termination, checked for what the runner can do with them.

Hyperband → Optuna: W&B's hyperband (one bracket) compares runs at "iterations" (the index, from
0, of a metric value in the run's history) ``min_iter * eta**k`` and stops a run outside the best
``1/eta`` there. Optuna's ``SuccessiveHalvingPruner(min_resource=min_iter,
reduction_factor=eta)`` does the same when the runner reports value number ``i`` (from 0) of the
metric as step ``i``. ``max_iter`` with ``s`` gives W&B's bands ``max_iter / eta**j`` for
``j = 1..s``; the smallest becomes ``min_iter``. Optuna's ``HyperbandPruner`` runs several
brackets at once, which W&B's does not, so it is not used. W&B's ``strict`` has no counterpart
(Optuna's comparison is its strict form).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import optuna
import yaml

from mtl.errors import UserError
from mtl.sweep.params import grid

Method = Literal["grid", "random", "bayes"]


@dataclass(frozen=True)
class Hyperband:
    """W&B's hyperband settings, as the pruner that does the same."""

    min_iter: int
    eta: float = 3.0

    @classmethod
    def from_wandb(cls, spec: dict[str, Any]) -> Hyperband:
        if spec.get("type") != "hyperband":
            raise UserError(f"early_terminate: only type hyperband is known, got {spec}")
        eta = float(spec.get("eta", 3))
        if "min_iter" in spec:
            return cls(int(spec["min_iter"]), eta)
        if "max_iter" in spec and "s" in spec:
            bands = [int(spec["max_iter"] / eta**j) for j in range(1, int(spec["s"]) + 1)]
            bands = [b for b in bands if b >= 1]
            if bands:
                return cls(min(bands), eta)
        raise UserError(f"early_terminate: give min_iter, or max_iter and s, got {spec}")

    def pruner(self) -> optuna.pruners.BasePruner:
        return optuna.pruners.SuccessiveHalvingPruner(
            min_resource=self.min_iter, reduction_factor=max(2, round(self.eta))
        )


@dataclass(frozen=True)
class SweepConfig:
    """What the local runner reads from a W&B sweep file."""

    name: str
    method: Method
    parameters: dict[str, dict[str, Any]]
    command: list[str] | None = None
    program: str | None = None
    metric: str = "val/loss"
    goal: Literal["minimize", "maximize"] = "minimize"
    run_cap: int | None = None
    hyperband: Hyperband | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def load(cls, path: Path) -> SweepConfig:
        try:
            raw = yaml.safe_load(Path(path).read_text())
        except (OSError, yaml.YAMLError) as err:
            raise UserError(f"cannot read the sweep file {path}: {err}") from None
        if not isinstance(raw, dict) or raw.get("method") not in ("grid", "random", "bayes"):
            raise UserError(f"{path}: method must be grid, random or bayes")
        metric = raw.get("metric") or {}
        et = raw.get("early_terminate")
        config = cls(
            name=str(raw.get("name") or Path(path).stem),
            method=raw["method"],
            parameters=dict(raw.get("parameters") or {}),
            command=raw.get("command"),
            program=raw.get("program"),
            metric=metric.get("name", "val/loss"),
            goal=metric.get("goal", "minimize"),
            run_cap=raw.get("run_cap"),
            hyperband=Hyperband.from_wandb(et) if et else None,
            raw=raw,
        )
        config.check()
        return config

    def check(self) -> None:
        """Refuse what cannot run, naming the parameter (grid: only discrete parameters)."""
        if not self.parameters:
            raise UserError(f"sweep {self.name!r} has no parameters")
        try:
            if self.method == "grid":
                grid(self.parameters)
        except ValueError as err:
            raise UserError(f"sweep {self.name!r}: {err}") from None

    @property
    def direction(self) -> str:
        return "maximize" if self.goal == "maximize" else "minimize"
