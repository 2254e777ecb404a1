"""W&B parameters as Optuna suggestions, for ``method: bayes`` (Optuna's TPE sampler).

Each W&B distribution maps to the Optuna suggestion over the same space: ``log_uniform``
bounds are natural logs, so it suggests between their exponentials; ``inv_log_uniform_values``
is log-uniform in 1/x, which is the same as log-uniform in x; quantized distributions suggest
the continuous value and round it as W&B does. Categorical values are suggested as their JSON
text, so lists and dicts store cleanly in any Optuna storage. Normal, log-normal and beta
distributions have no TPE equivalent and are refused with the parameter's name.
"""

from __future__ import annotations

import json
import math
from typing import Any

import optuna

from mtl.experiments.sweep.params import Spec, distribution, quantize


def suggest(trial: optuna.Trial, name: str, spec: Spec) -> Any:
    """The value of parameter ``name`` for this trial, suggested by the study's sampler."""
    kind, q = distribution(spec), spec.get("q", 1)
    lo, hi = spec.get("min"), spec.get("max")
    if kind == "constant":
        return spec["value"]
    if kind == "categorical":
        choice = trial.suggest_categorical(name, [json.dumps(v) for v in spec["values"]])
        return json.loads(choice)  # type: ignore[arg-type]
    if kind == "int_uniform":
        return trial.suggest_int(name, lo, hi)
    if kind in ("uniform", "q_uniform"):
        value = trial.suggest_float(name, lo, hi)
        return quantize(value, q) if kind == "q_uniform" else value
    log_kinds = ("log_uniform_values", "q_log_uniform_values", "inv_log_uniform_values")
    exp_kinds = ("log_uniform", "q_log_uniform", "inv_log_uniform")  # bounds in natural log
    if kind in log_kinds + exp_kinds:
        if lo is None or hi is None:
            raise ValueError(f"parameter {name!r}: {kind} needs min and max")
        bounds = (lo, hi)
        if kind in exp_kinds:
            bounds = (
                (math.exp(-hi), math.exp(-lo))
                if kind.startswith("inv")
                else (math.exp(lo), math.exp(hi))
            )
        value = trial.suggest_float(name, *bounds, log=True)
        return quantize(value, q) if kind.startswith("q_") else value
    raise ValueError(
        f"parameter {name!r}: method bayes takes constant, categorical, int_uniform, (q_)uniform "
        f"and the log-uniform distributions, not {kind}; use method random for it"
    )
