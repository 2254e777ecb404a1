"""W&B's hyperband early stopping, as an Optuna pruner that applies W&B's own rule.

W&B (``sweeps/hyperband_stopping.py``) keeps one bracket: *bands* are iterations (the index,
from 0, of a value in a run's metric history) ``min_iter * eta**k``, or, given ``max_iter`` and
``s``, ``max_iter / eta**j`` for ``j = 1..s``. At the latest band a run has passed, the
threshold is the value at position ``int(n / eta)`` of the sorted band values of all ``n`` runs
that reached it; a running run whose value there is worse than the threshold is stopped.
:func:`should_stop` is that rule, a pure function; :class:`WandbHyperbandPruner` feeds it the
trials' reported values (the runner reports value ``i`` of the metric as step ``i``). Optuna's
own pruners differ: successive halving keeps at least the best trial even when W&B would keep
more, and ``HyperbandPruner`` runs several brackets.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from mtl.errors import UserError


def bands(spec: dict[str, Any]) -> list[int]:
    """W&B's bands from an ``early_terminate`` section (``type: hyperband``)."""
    if spec.get("type") != "hyperband":
        raise UserError(f"early_terminate: only type hyperband is known, got {spec}")
    eta = float(spec.get("eta", 3))
    if eta <= 1:
        raise UserError(f"early_terminate: eta must be above 1, got {eta}")
    if "min_iter" in spec:
        return [int(spec["min_iter"] * eta**k) for k in range(40)]
    if "max_iter" in spec and "s" in spec:
        found = [int(spec["max_iter"] / eta**j) for j in range(1, int(spec["s"]) + 1)]
        found = sorted(b for b in found if b >= 1)
        if found:
            return found
    raise UserError(f"early_terminate: give min_iter, or max_iter and s, got {spec}")


def should_stop(
    history: Sequence[float], others: Sequence[Sequence[float]], bands: Sequence[int], eta: float
) -> bool:
    """W&B's rule for one running run (values to minimise, NaN and inf already left out of every
    history, as W&B does): ``others`` are every run's histories, this one's included."""
    passed = [b for b in bands if b < len(history)]
    if not passed:
        return False
    band = passed[-1]
    values = sorted(h[band] for h in others if len(h) > band)
    return history[band] > values[int(len(values) / eta)]


class WandbHyperbandPruner(optuna.pruners.BasePruner):
    """Stops a trial exactly when W&B's hyperband would (see the module docstring)."""

    def __init__(self, bands: Sequence[int], eta: float, maximize: bool = False) -> None:
        self.bands, self.eta, self.sign = list(bands), eta, -1.0 if maximize else 1.0

    def _history(self, trial: FrozenTrial) -> list[float]:
        values = [trial.intermediate_values[i] for i in sorted(trial.intermediate_values)]
        return [self.sign * v for v in values if math.isfinite(v)]

    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        states = (TrialState.RUNNING, TrialState.COMPLETE, TrialState.PRUNED)
        others = [self._history(t) for t in study.get_trials(deepcopy=False, states=states)]
        return should_stop(self._history(trial), others, self.bands, self.eta)
