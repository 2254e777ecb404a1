"""W&B's hyperband early stopping, as an Optuna pruner that applies W&B's own rule.

W&B's engine (``wandb/sweeps``, ``src/sweeps/hyperband_stopping.py``, the rule since its PR #99,
2023) keeps one bracket. A run's *history* is its finite values of the metric, in logging order
(negated when the goal is to maximize, so lower is better). *Bands* are history lengths:
``int(min_iter * eta**k)`` for ``k = 0..99``, or, given ``max_iter`` and ``s``, the integer parts
of ``max_iter / eta**j`` for ``j = 1..s`` that are at least 1, sorted.

A band ``b`` applies to a run once its history holds ``b`` values. Its threshold is taken from
every run of the sweep (finished, stopped, failed or running) whose history holds ``b`` values:
their values at index ``b - 1``, sorted, at position ``int(r * n)`` with ``r = 1 / eta`` (computed
so, as W&B does: for ``eta = 49`` and ``n = 49`` that is position 0, not 1). At the latest band
that applies, a running run is stopped when its value at index ``b - 1`` (``strict: true``, the
schema's default), or its best value so far (``strict: false``), is above the threshold.

:class:`Hyperband` is that rule as pure functions of the histories; :class:`WandbHyperbandPruner`
feeds it the trials' reported values (the runner reports value ``i`` of the metric as step
``i``). Optuna's own pruners differ: successive halving keeps at least the best trial even when
W&B would keep more, and ``HyperbandPruner`` runs several brackets.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.trial import FrozenTrial

from mtl.errors import UserError

KEYS = {"type", "min_iter", "max_iter", "s", "eta", "strict"}
"""The keys of W&B's ``hyperband_stopping`` schema (which allows no others)."""
MIN_ITER_BANDS = 100  # W&B lists this many bands from min_iter


def _number(spec: Mapping[str, Any], key: str) -> float:
    value = spec[key]
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise UserError(f"early_terminate: {key} must be a number, got {value!r}")
    return value


def _integer(spec: Mapping[str, Any], key: str, minimum: int) -> int:
    value = _number(spec, key)
    if value != int(value):
        raise UserError(f"early_terminate: {key} must be an integer, got {value!r}")
    if value < minimum:
        raise UserError(f"early_terminate: {key} must be at least {minimum}, got {value!r}")
    return int(value)


@dataclass(frozen=True)
class Hyperband:
    """W&B's hyperband rule: its bands, ``eta`` and ``strict`` (see the module docstring)."""

    bands: tuple[int, ...]
    eta: float = 3.0
    strict: bool = True

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> Hyperband:
        """The rule of an ``early_terminate`` section, checked against W&B's schema."""
        if not isinstance(spec, Mapping) or spec.get("type") != "hyperband":
            raise UserError(f"early_terminate: only type hyperband is known, got {spec!r}")
        unknown = sorted(set(spec) - KEYS)
        if unknown:
            raise UserError(f"early_terminate: unknown keys {unknown} (known: {sorted(KEYS)})")
        eta = _number(spec, "eta") if "eta" in spec else 3.0
        if not eta > 1:
            raise UserError(f"early_terminate: eta must be a number above 1, got {eta!r}")
        strict = spec.get("strict", True)
        if not isinstance(strict, bool):
            raise UserError(f"early_terminate: strict must be true or false, got {strict!r}")
        if "max_iter" in spec and "s" in spec:
            bands = _max_iter_bands(_integer(spec, "max_iter", 1), _integer(spec, "s", 1), eta)
        elif "min_iter" in spec:
            bands = _min_iter_bands(_integer(spec, "min_iter", 1), eta)
        else:
            raise UserError(f"early_terminate: give min_iter, or max_iter and s, got {dict(spec)}")
        if not bands:
            raise UserError(f"early_terminate: max_iter / eta is below 1: no band is left: {spec}")
        return cls(bands, float(eta), strict)

    def threshold(self, band: int, histories: Sequence[Sequence[float]]) -> float:
        """Band ``band``'s threshold over every run's history (inf where no run reached it)."""
        values = sorted(h[band - 1] for h in histories if len(h) >= band)
        return values[int(1.0 / self.eta * len(values))] if values else math.inf

    def should_stop(self, history: Sequence[float], histories: Sequence[Sequence[float]]) -> bool:
        """Whether a running run with ``history`` is stopped; ``histories`` are every run's, its
        own included (values to minimise, non-finite values already left out)."""
        applies = [band for band in self.bands if band <= len(history)]
        if not applies:
            return False
        band = applies[-1]  # the latest band this run has reached decides
        value = history[band - 1] if self.strict else min(history)
        return value > self.threshold(band, histories)


def _max_iter_bands(max_iter: int, s: int, eta: float) -> tuple[int, ...]:
    """``max_iter / eta**j`` for ``j = 1..s``, integer parts, while at least 1; sorted."""
    found, band = [], float(max_iter)
    for _ in range(s):
        band /= eta
        if band < 1:
            break
        found.append(int(band))
    return tuple(sorted(found))


def _min_iter_bands(min_iter: int, eta: float) -> tuple[int, ...]:
    """``min_iter * eta**k`` for ``k = 0..99``, integer parts, multiplied step by step as W&B
    does (so the float rounding is the same)."""
    found, band = [], float(min_iter)
    for _ in range(MIN_ITER_BANDS):
        found.append(int(band))
        band *= eta
    return tuple(found)


class WandbHyperbandPruner(optuna.pruners.BasePruner):
    """Stops a trial exactly when W&B's hyperband would (see the module docstring)."""

    def __init__(self, rule: Hyperband, maximize: bool = False) -> None:
        self.rule, self.sign = rule, -1.0 if maximize else 1.0

    def _history(self, trial: FrozenTrial) -> list[float]:
        values = [trial.intermediate_values[i] for i in sorted(trial.intermediate_values)]
        return [self.sign * v for v in values if math.isfinite(v)]

    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        # Every run counts, whatever its state (W&B's engine reads the whole sweep's runs).
        histories = [self._history(t) for t in study.get_trials(deepcopy=False)]
        return self.rule.should_stop(self._history(trial), [h for h in histories if h])
