"""``model.compile=step``: the whole training computation (network, masked losses, weighting)
is one graph for ``torch.compile`` (so CUDA graphs can replay it), and training through it
gives the eager step's numbers."""

from __future__ import annotations

import functools

import pytest
import torch

from mtl.experiments.bench.overhead import tiny_batches, tiny_module
from mtl.losses import WEIGHTINGS
from mtl.training.module import MultiTaskModule
from tests.conftest import LOSS_VARIANTS, fit_tiny, tiny_module_with_years

CAPTURABLE = sorted(n for n, w in WEIGHTINGS.items() if w.captures_step)


@pytest.mark.parametrize("weighting", CAPTURABLE)
def test_the_objective_is_one_graph_without_breaks(weighting):
    module = tiny_module(weighting)
    batch = tiny_batches(module.tasks, 4)[0]
    torch._dynamo.reset()
    explained = torch._dynamo.explain(module.objective)(
        batch["image"], batch["targets"], batch["mask"], batch["mask"].any(0), 0, None
    )
    assert (explained.graph_count, explained.graph_break_count) == (1, 0), [
        str(r.reason) for r in explained.break_reasons
    ]


@pytest.mark.parametrize("variant", LOSS_VARIANTS)
def test_every_task_loss_is_in_the_one_graph(variant):
    """A regression task beside the classifications, each normalisation and loss."""
    module = tiny_module_with_years(**LOSS_VARIANTS[variant])
    batch = tiny_batches(module.tasks, 4)[0]
    torch._dynamo.reset()
    explained = torch._dynamo.explain(module.objective)(
        batch["image"], batch["targets"], batch["mask"], batch["mask"].any(0), 0, None
    )
    assert (explained.graph_count, explained.graph_break_count) == (1, 0), [
        str(r.reason) for r in explained.break_reasons
    ]


def fit(compile: bool | str, weighting: str, steps: int = 4) -> tuple[dict, MultiTaskModule]:
    module = tiny_module(weighting, compile=compile)
    fit_tiny(module, steps)
    state = {}
    for key, value in module.state_dict().items():  # DWA's epoch sums: a dict (extra state)
        items = value.items() if isinstance(value, dict) else [("", value)]
        state |= {f"{key}{name}": v.detach().clone() for name, v in items}
    return state, module


@pytest.mark.parametrize("weighting", ["uncertainty", "dwa"])
def test_training_through_the_compiled_step_matches_the_eager_step(weighting, monkeypatch):
    """Compiled with dynamo's ``eager`` backend (the graph capture and its guards, without
    code generation, which needs a C++ compiler and minutes on a CPU)."""
    monkeypatch.setattr(torch, "compile", functools.partial(torch.compile, backend="eager"))
    torch._dynamo.reset()
    eager, _ = fit(False, weighting)
    compiled, module = fit("step", weighting)
    assert module._compiled_objective is not None
    assert eager.keys() == compiled.keys()  # checkpoints keep the eager parameter names
    for key in eager:
        torch.testing.assert_close(compiled[key], eager[key], rtol=1e-5, atol=1e-6, msg=key)
    assert module.weighting.last_weights.shape == (4,)


@pytest.mark.parametrize("weighting", ["pcgrad", "rlw"])
def test_a_gradient_or_host_drawn_weighting_keeps_the_step_eager_and_says_so(
    weighting, monkeypatch
):
    monkeypatch.setattr(torch, "compile", functools.partial(torch.compile, backend="eager"))
    with pytest.warns(UserWarning, match="only the network is compiled"):
        _, module = fit("step", weighting, steps=1)
    assert module._compiled_objective is None


def test_only_gradient_and_host_drawn_weightings_stay_out_of_the_graph():
    eager = {n for n, w in WEIGHTINGS.items() if not w.captures_step}
    assert eager == {n for n, w in WEIGHTINGS.items() if w.needs_shared_params} | {"rlw"}
