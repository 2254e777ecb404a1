"""A W&B sweep file, read for the local runner: method, metric, parameters, command, run cap and
hyperband early termination (:mod:`mtl.experiments.sweep.hyperband`), checked for what the runner
can do."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import optuna
import yaml

from mtl.errors import UserError
from mtl.experiments.sweep.hyperband import Hyperband, WandbHyperbandPruner
from mtl.experiments.sweep.params import grid

Method = Literal["grid", "random", "bayes"]
LEDGER_METRIC = "val/loss"
"""What the runner records as a trial's value when the sweep names no metric (W&B does not need
one for grid and random search); no trial is then called the best."""


@dataclass(frozen=True)
class SweepConfig:
    """What the local runner reads from a W&B sweep file."""

    name: str
    method: Method
    parameters: dict[str, dict[str, Any]]
    command: list[str] | None = None
    program: str | None = None
    metric: str | None = None
    goal: Literal["minimize", "maximize"] = "minimize"
    run_cap: int | None = None
    early_terminate: dict[str, Any] | None = None

    @classmethod
    def load(cls, path: Path) -> SweepConfig:
        try:
            raw = yaml.safe_load(Path(path).read_text())
        except (OSError, yaml.YAMLError) as err:
            raise UserError(f"cannot read the sweep file {path}: {err}") from None
        if not isinstance(raw, dict) or raw.get("method") not in ("grid", "random", "bayes"):
            raise UserError(f"{path}: method must be grid, random or bayes")
        metric = raw.get("metric") or {}
        config = cls(
            name=str(raw.get("name") or Path(path).stem),
            method=raw["method"],
            parameters=dict(raw.get("parameters") or {}),
            command=raw.get("command"),
            program=raw.get("program"),
            metric=metric.get("name"),
            goal=metric.get("goal", "minimize"),
            run_cap=raw.get("run_cap"),
            early_terminate=raw.get("early_terminate"),
        )
        config.check()
        return config

    def check(self) -> None:
        """Refuse what cannot run, naming the parameter (grid: only discrete parameters)."""
        if not self.parameters:
            raise UserError(f"sweep {self.name!r} has no parameters")
        if self.goal not in ("minimize", "maximize"):
            raise UserError(f"sweep {self.name!r}: metric goal must be minimize or maximize")
        if self.early_terminate and self.metric is None:
            raise UserError(f"sweep {self.name!r}: early_terminate needs a metric")
        try:
            if self.method == "grid":
                grid(self.parameters)
        except ValueError as err:
            raise UserError(f"sweep {self.name!r}: {err}") from None
        self.pruner()  # early_terminate checked here

    @property
    def ledger_metric(self) -> str:
        """The metric recorded as each trial's value."""
        return self.metric or LEDGER_METRIC

    def pruner(self) -> optuna.pruners.BasePruner:
        if not self.early_terminate:
            return optuna.pruners.NopPruner()
        rule = Hyperband.from_spec(self.early_terminate)
        return WandbHyperbandPruner(rule, maximize=self.goal == "maximize")
