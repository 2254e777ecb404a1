"""What a sweep runs next, decided from the sweep config and the trial records alone
(mtl.experiments.sweep.plan): no storage, no processes."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from mtl.experiments.sweep.config import SweepConfig
from mtl.experiments.sweep.params import grid
from mtl.experiments.sweep.plan import (
    TrialRecord,
    finished,
    planned_params,
    refusal,
    started,
)


def config(tmp_path: Path, method: str = "grid", run_cap: int | None = None) -> SweepConfig:
    spec = {
        "name": "s",
        "method": method,
        "metric": {"name": "val/loss", "goal": "minimize"},
        "parameters": {"lr": {"values": [0.1, 0.01]}, "seed": {"values": [0, 1]}}
        if method == "grid"
        else {"lr": {"distribution": "log_uniform_values", "min": 1e-4, "max": 1e-1}},
        "command": ["${program}", "${args}"],
        "program": "mtl",
    }
    if run_cap is not None:
        spec["run_cap"] = run_cap
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(spec))
    return SweepConfig.load(path)


def R(number: int, state: str, index: int | None = None, dropped: bool = False) -> TrialRecord:
    return TrialRecord(number, state, index, dropped)  # type: ignore[arg-type]


def test_a_grid_runs_while_points_wait_and_ends_when_none_do(tmp_path):
    cfg = config(tmp_path)
    queued = [R(i, "waiting", i) for i in range(4)]
    assert finished(cfg, queued, grid=True) is None
    done = [R(0, "complete", 0), R(1, "pruned", 1), R(2, "failed", 2), R(3, "running", 3)]
    assert finished(cfg, done, grid=True) == "every grid point is taken"
    retried = [*done, R(4, "waiting", 2)]  # a failed point queued again
    assert finished(cfg, retried, grid=True) is None


def test_a_grid_point_two_workers_took_at_once_runs_once(tmp_path):
    cfg = config(tmp_path)
    records = [R(0, "complete", 0), R(1, "running", 1), R(2, "running", 1)]
    why = refusal(cfg, records, R(2, "running", 1), grid=True)
    assert why is not None and why.why == "grid point 1 already taken" and not why.sweep_done
    assert refusal(cfg, records[:2], R(1, "running", 1), grid=True) is None
    after_failure = [R(0, "failed", 0), R(1, "running", 0)]  # a failed trial gives it back
    assert refusal(cfg, after_failure, R(1, "running", 0), grid=True) is None
    empty = refusal(cfg, [R(5, "running")], R(5, "running"), grid=True)  # asked, queue empty
    assert empty is not None and empty.sweep_done


def test_run_cap_counts_trials_that_ran_not_dropped_ones(tmp_path):
    cfg = config(tmp_path, "random", run_cap=2)
    records = [R(0, "complete"), R(1, "running", dropped=True), R(2, "failed")]
    assert started(records) == 2
    assert finished(cfg, records, grid=False) == "run_cap 2 reached"
    assert finished(cfg, records[:2], grid=False) is None
    # Two workers asked at the same moment for the last place: the later one is dropped.
    racing = [R(0, "complete"), R(3, "running"), R(4, "running")]
    late = refusal(cfg, racing, R(4, "running"), grid=False)
    assert late is not None and late.sweep_done and "run_cap" in late.why
    assert refusal(cfg, racing[:2], R(3, "running"), grid=False) is None


def test_params_are_the_grid_point_or_a_seeded_draw(tmp_path):
    grid_cfg = config(tmp_path)
    points = grid(grid_cfg.parameters)
    assert planned_params(grid_cfg, points, R(7, "running", 2), seed=0) == points[2]
    random_cfg = config(tmp_path, "random")
    one = planned_params(random_cfg, [], R(3, "running"), seed=0)
    assert one == planned_params(random_cfg, [], R(3, "running"), seed=0)  # per (seed, trial)
    assert one != planned_params(random_cfg, [], R(4, "running"), seed=0)
    assert one != planned_params(random_cfg, [], R(3, "running"), seed=1)
    assert 1e-4 <= one["lr"] <= 1e-1
    bayes_cfg = config(tmp_path, "bayes")
    assert planned_params(bayes_cfg, [], R(0, "running"), seed=0) is None  # Optuna suggests


@pytest.mark.parametrize("state", ["waiting", "running", "complete", "pruned", "failed"])
def test_only_trials_that_ran_count_as_started(state):
    assert started([R(0, state)]) == (state != "waiting")
