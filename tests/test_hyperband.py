"""Hyperband early stopping decides exactly as W&B's engine does now (wandb/sweeps,
``src/sweeps/hyperband_stopping.py`` since PR #99): band ``b`` applies once ``b`` values are
logged, its threshold comes from the values at index ``b - 1``, and ``strict`` (default true)
compares the value there, otherwise the best so far.

Each case below was worked out by hand from the engine's source; most are cases where the rule
before PR #99 (index ``b``, once ``b + 1`` values exist, always the best so far) decides
otherwise, so each of them fails on that older rule."""

from __future__ import annotations

import optuna
import pytest

from mtl.errors import UserError
from mtl.experiments.sweep.config import SweepConfig
from mtl.experiments.sweep.hyperband import Hyperband, WandbHyperbandPruner

HALVING = {"type": "hyperband", "min_iter": 2, "eta": 2}  # bands 2, 4, 8, ...


def stopped(spec: dict, runs: dict[str, list[float]], goal: str = "minimize") -> set[str]:
    """The runs (all running) that W&B's rule stops; histories as logged, in the goal's sign."""
    rule, sign = Hyperband.from_spec(spec), -1.0 if goal == "maximize" else 1.0
    histories = {name: [sign * v for v in h] for name, h in runs.items()}
    return {n for n, h in histories.items() if rule.should_stop(h, list(histories.values()))}


def test_bands_follow_wandb():
    assert Hyperband.from_spec(HALVING).bands[:4] == (2, 4, 8, 16)
    assert len(Hyperband.from_spec(HALVING).bands) == 100
    assert Hyperband.from_spec({"type": "hyperband", "max_iter": 27, "s": 2}).bands == (3, 9)
    assert Hyperband.from_spec({"type": "hyperband", "max_iter": 81, "eta": 3, "s": 3}).bands == (
        3, 9, 27,
    )  # fmt: skip
    # 5/2 = 2.5 -> 2, 1.25 -> 1, then 0.625 < 1 ends the list
    assert Hyperband.from_spec({"type": "hyperband", "max_iter": 5, "eta": 2, "s": 3}).bands == (
        1, 2,
    )  # fmt: skip
    # eta 1.5 from min_iter 1: 1, 1.5, 2.25, 3.375, 5.06 -> integer parts, repeats kept
    assert Hyperband.from_spec({"type": "hyperband", "min_iter": 1, "eta": 1.5}).bands[:5] == (
        1, 1, 2, 3, 5,
    )  # fmt: skip


def test_strict_is_true_by_default_as_in_wandbs_schema():
    assert Hyperband.from_spec(HALVING).strict is True
    assert Hyperband.from_spec(HALVING | {"strict": False}).strict is False


def test_wandbs_docstring_example():
    # a and e have finished there; b, c and d are running. Band 2 over index 1: [6, 7, 8, 9,
    # 10] -> position int(5 / 2) = 2 -> 8. The docstring's comment that c fails band 2 dates
    # from the old rule (index 2: [6, 7, 8] -> 7); now c's 8 is not above 8 and it goes on.
    runs = {"a": [10, 9], "b": [10, 10], "c": [10, 8, 8], "d": [10, 7, 7], "e": [10, 6, 6]}
    spec = {"type": "hyperband", "max_iter": 5, "eta": 2, "s": 2}  # bands 1 and 2
    assert stopped(spec, runs) & {"b", "c", "d"} == {"b"}


def test_a_band_applies_once_that_many_values_are_logged():
    # Band 2 over index 1: values 1, 2, 3 -> threshold at int(3 / 2) = 1, i.e. 2; c is above.
    # The old rule waited for a third value: nobody stopped.
    assert stopped(HALVING, {"a": [3, 1], "b": [3, 2], "c": [3, 3]}) == {"c"}


def test_the_threshold_is_read_at_index_band_minus_one():
    # Index 1 ranks c last (threshold 2); the old rule read index 2, where a is last.
    runs = {"a": [5, 1, 9], "b": [5, 2, 2], "c": [5, 3, 1]}
    assert stopped(HALVING, runs) == {"c"}


def test_strict_compares_the_value_at_the_band_and_otherwise_the_best_so_far():
    runs = {"a": [1, 1], "b": [2, 2], "c": [0, 3]}  # c started best but is last at index 1
    assert stopped(HALVING, runs) == {"c"}
    assert stopped(HALVING | {"strict": False}, runs) == set()  # min(c) = 0 is below 2
    # Non-strict still stops a run whose best so far is above the threshold.
    assert stopped(HALVING | {"strict": False}, {"a": [1, 1], "b": [2, 2], "c": [4, 3]}) == {"c"}


def test_the_latest_band_a_run_reached_decides():
    # Bands 1 and 3 (max_iter 9, eta 3, s 2). d is best at band 1 but worst at band 3.
    # Band 1 over all five runs: [1, 2, 3, 4, 4] -> position int(5 / 3) = 1 -> 2; e has one
    # value, so band 1 decides for it (the old rule waited for a second value).
    # Band 3 over a, b, c, d: [1, 2, 3, 9] -> position int(4 / 3) = 1 -> 2: c and d stop.
    spec = {"type": "hyperband", "max_iter": 9, "eta": 3, "s": 2}
    runs = {"a": [2, 2, 1], "b": [3, 3, 2], "c": [4, 4, 3], "d": [1, 1, 9], "e": [4]}
    assert stopped(spec, runs) == {"c", "d", "e"}


def test_maximize_negates_the_metric():
    runs = {"a": [0.1, 0.9], "b": [0.1, 0.5], "c": [0.1, 0.2]}
    assert stopped(HALVING, runs, goal="maximize") == {"c"}
    assert stopped(HALVING, runs, goal="minimize") == {"a"}


def test_the_threshold_position_is_int_of_r_times_n_with_r_one_over_eta():
    # W&B computes r = 1 / eta first: (1 / 49) * 49 is just below 1, so position 0 (the best
    # value) is the threshold and every other run is stopped; 49 / 49 would give position 1.
    runs = {f"r{i:02d}": [float(i)] for i in range(49)}
    spec = {"type": "hyperband", "min_iter": 1, "eta": 49}
    assert stopped(spec, runs) == set(runs) - {"r00"}


def test_the_pruner_reads_every_trial_of_the_study_in_every_state():
    study = optuna.create_study()
    rule = Hyperband.from_spec(HALVING)
    for state, values in ((optuna.trial.TrialState.FAIL, [3, 1]),
                          (optuna.trial.TrialState.PRUNED, [3, 2])):  # fmt: skip
        trial = study.ask()
        for step, value in enumerate(values):
            trial.report(value, step)
        study.tell(trial, state=state)
    running = study.ask()
    for step, value in enumerate([3, 3, float("nan")]):  # NaN is left out, as W&B does
        running.report(value, step)
    frozen = study.get_trials(deepcopy=False)[-1]
    assert WandbHyperbandPruner(rule).prune(study, frozen)  # 3 > threshold 2 (the PRUNED run)
    assert not WandbHyperbandPruner(rule, maximize=True).prune(study, frozen)


def test_sweep_files_read_strict():
    config = SweepConfig(
        name="x",
        method="grid",
        parameters={"a": {"values": [1]}},
        metric="val/loss",
        early_terminate=HALVING | {"strict": False},
    )
    pruner = config.pruner()
    assert isinstance(pruner, WandbHyperbandPruner) and pruner.rule.strict is False


@pytest.mark.parametrize(
    "spec, message",
    [
        ({"type": "median"}, "only type hyperband"),
        ({"type": "hyperband", "min_iter": 2, "eta": 1}, "eta must be a number above 1"),
        ({"type": "hyperband", "min_iter": 0}, "min_iter must be at least 1"),
        ({"type": "hyperband", "min_iter": 2, "strict": "yes"}, "strict must be true or false"),
        ({"type": "hyperband", "min_iter": 2, "stric": False}, "unknown keys \\['stric'\\]"),
        ({"type": "hyperband", "max_iter": 2, "eta": 3, "s": 1}, "no band is left"),
        ({"type": "hyperband", "eta": 3}, "give min_iter, or max_iter and s"),
        ({"type": "hyperband", "min_iter": float("nan")}, "min_iter must be a number"),
        ({"type": "hyperband", "min_iter": 2, "eta": float("inf")}, "eta must be a number"),
    ],
)
def test_specs_w_and_b_would_refuse_are_one_line_errors(spec, message):
    with pytest.raises(UserError, match=message):
        Hyperband.from_spec(spec)
