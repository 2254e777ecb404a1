"""W&B sweep parameters, as W&B defines them: grid points and random draws (pure functions).

A parameter is the dict a sweep file gives under ``parameters:``. Distributions follow W&B's
sweeps engine: ``value`` (constant), ``values`` (categorical, optionally with
``probabilities``), ``int_uniform``, ``uniform``, ``q_uniform``, ``log_uniform`` (bounds are
natural logs), ``log_uniform_values``, ``q_log_uniform``, ``q_log_uniform_values``,
``inv_log_uniform``, ``inv_log_uniform_values``, ``normal``, ``q_normal``, ``log_normal``,
``q_log_normal``, ``beta`` and ``q_beta``. A quantized value is ``round(x / q) * q``, an integer
when ``q`` is one. Grid search takes the product of ``values`` (``int_uniform`` and
``q_uniform`` become their values), parameters in name order, as W&B does.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

Spec = Mapping[str, Any]

GRIDDABLE = ("constant", "categorical", "int_uniform", "q_uniform")


def distribution(spec: Spec) -> str:
    """The distribution a parameter spec names or implies (W&B's defaults)."""
    if "distribution" in spec:
        name = spec["distribution"]
        return "categorical" if name == "categorical_w" else name
    if "value" in spec:
        return "constant"
    if "values" in spec:
        return "categorical"
    if isinstance(spec.get("min"), int) and isinstance(spec.get("max"), int):
        return "int_uniform"
    if "min" in spec and "max" in spec:
        return "uniform"
    raise ValueError(f"cannot tell the distribution of parameter spec {dict(spec)}")


def quantize(x: float, q: float) -> float | int:
    """``round(x / q) * q``, an int when ``q`` is one (W&B's quantized distributions)."""
    value = round(x / q) * q
    return int(value) if isinstance(q, int) else float(value)


def sample(spec: Spec, rng: np.random.Generator) -> Any:
    """One random draw of a parameter."""
    kind, q = distribution(spec), spec.get("q", 1)
    lo, hi = spec.get("min"), spec.get("max")
    mu, sigma = spec.get("mu", 0.0), spec.get("sigma", 1.0)
    if kind == "constant":
        return spec["value"]
    if kind == "categorical":
        values, p = spec["values"], spec.get("probabilities")
        probs = None if p is None else np.asarray(p, dtype=float) / np.sum(p)
        return values[int(rng.choice(len(values), p=probs))]
    draws = {
        "int_uniform": lambda: int(rng.integers(lo, hi + 1)),
        "uniform": lambda: float(rng.uniform(lo, hi)),
        "q_uniform": lambda: quantize(rng.uniform(lo, hi), q),
        "log_uniform": lambda: math.exp(rng.uniform(lo, hi)),
        "log_uniform_values": lambda: math.exp(rng.uniform(math.log(lo), math.log(hi))),
        "q_log_uniform": lambda: quantize(math.exp(rng.uniform(lo, hi)), q),
        "q_log_uniform_values": lambda: quantize(
            math.exp(rng.uniform(math.log(lo), math.log(hi))), q
        ),
        "inv_log_uniform": lambda: math.exp(-rng.uniform(lo, hi)),
        "inv_log_uniform_values": lambda: (
            1 / math.exp(rng.uniform(math.log(1 / hi), math.log(1 / lo)))
        ),
        "normal": lambda: float(rng.normal(mu, sigma)),
        "q_normal": lambda: quantize(rng.normal(mu, sigma), q),
        "log_normal": lambda: float(rng.lognormal(mu, sigma)),
        "q_log_normal": lambda: quantize(rng.lognormal(mu, sigma), q),
        "beta": lambda: float(rng.beta(spec.get("a", 1.0), spec.get("b", 1.0))),
        "q_beta": lambda: quantize(rng.beta(spec.get("a", 1.0), spec.get("b", 1.0)), q),
    }
    if kind not in draws:
        raise ValueError(f"unknown distribution {kind!r}")
    return draws[kind]()


def grid_values(name: str, spec: Spec) -> list[Any]:
    """The values a grid search takes for one parameter."""
    kind = distribution(spec)
    if kind == "constant":
        return [spec["value"]]
    if kind == "categorical" and "probabilities" not in spec:
        return list(spec["values"])
    if kind == "int_uniform":
        return list(range(spec["min"], spec["max"] + 1))
    if kind == "q_uniform":
        return np.arange(spec["min"], spec["max"], spec.get("q", 1)).tolist()
    raise ValueError(
        f"parameter {name!r}: grid search takes only {', '.join(GRIDDABLE)} parameters "
        f"(without probabilities), not {kind}"
    )


def grid(parameters: Mapping[str, Spec]) -> list[dict[str, Any]]:
    """Every grid point, parameters in name order (the product of their values)."""
    names = sorted(parameters)
    axes = [grid_values(n, parameters[n]) for n in names]
    return [dict(zip(names, point, strict=True)) for point in itertools.product(*axes)]


def draw(parameters: Mapping[str, Spec], rng: np.random.Generator) -> dict[str, Any]:
    """One random-search point: every parameter drawn independently, in name order."""
    return {name: sample(parameters[name], rng) for name in sorted(parameters)}
