"""What a sweep runs next, as functions of the sweep config and the trial records: no storage,
no processes (as W&B's own sweep logic is written), so each rule is tested on records alone.

The runner (:mod:`mtl.experiments.sweep.runner`) turns Optuna's trials into
:class:`TrialRecord`\\ s, asks these functions, and does what they say; what a running trial's
metric history means for stopping it is :class:`mtl.experiments.sweep.hyperband.Hyperband`'s.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from mtl.experiments.sweep.config import SweepConfig
from mtl.experiments.sweep.params import draw

State = Literal["waiting", "running", "complete", "pruned", "failed"]
STARTED: tuple[State, ...] = ("running", "complete", "pruned", "failed")
TAKEN: tuple[State, ...] = ("running", "complete", "pruned")
"""States of a trial that holds its grid point (a failed one gives it back)."""


@dataclass(frozen=True)
class TrialRecord:
    """One trial of the sweep, as every worker sees it in the shared storage."""

    number: int
    state: State
    grid_index: int | None = None
    dropped: bool = False  # closed without running (a duplicate, one past the run cap)


@dataclass(frozen=True)
class Refusal:
    """Why an asked-for trial does not run, and whether the sweep is over for this worker."""

    why: str
    sweep_done: bool


def started(records: Sequence[TrialRecord]) -> int:
    """Trials that ran or run (dropped ones never ran): what ``run_cap`` counts."""
    return sum(1 for r in records if r.state in STARTED and not r.dropped)


def finished(config: SweepConfig, records: Sequence[TrialRecord], grid: bool) -> str | None:
    """Why no further trial may start, before asking for one; None while one may."""
    if config.run_cap is not None and started(records) >= config.run_cap:
        return f"run_cap {config.run_cap} reached"
    if grid and not any(r.state == "waiting" for r in records):
        return "every grid point is taken"
    return None


def refusal(
    config: SweepConfig, records: Sequence[TrialRecord], trial: TrialRecord, grid: bool
) -> Refusal | None:
    """Whether ``trial``, just taken (and so in ``records`` as running), must not run after all:
    another worker took the same grid point or the last place under ``run_cap`` at the same
    moment. None: it runs."""
    if grid and trial.grid_index is None:  # the queue emptied between the check and the ask
        return Refusal("the grid was empty when asked", sweep_done=True)
    if grid and any(
        r.number != trial.number and r.grid_index == trial.grid_index and r.state in TAKEN
        for r in records
    ):
        return Refusal(f"grid point {trial.grid_index} already taken", sweep_done=False)
    if config.run_cap is not None and started(records) > config.run_cap:
        return Refusal(f"run_cap {config.run_cap} reached", sweep_done=True)
    return None


def planned_params(
    config: SweepConfig,
    points: Sequence[dict[str, Any]],
    trial: TrialRecord,
    seed: int,
) -> dict[str, Any] | None:
    """The parameters of ``trial`` for a grid (its point) or random sweep (drawn with W&B's
    distributions, seeded by (seed, trial number)); None for bayes, whose sampler suggests them
    from the finished trials."""
    if config.method == "grid":
        if trial.grid_index is None:
            raise ValueError(f"trial {trial.number} of a grid sweep holds no grid point")
        return dict(points[trial.grid_index])
    if config.method == "random":
        return draw(config.parameters, np.random.default_rng([seed, trial.number]))
    return None
