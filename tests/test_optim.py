import pytest
import torch

from mtl.losses import FixedWeighting
from mtl.models import BKNet
from mtl.training.optim import ExponentialDecay, MomentumSGD, param_groups


def _sgd():
    return MomentumSGD([torch.nn.Parameter(torch.zeros(1))])


def test_paper_sgd_defaults():
    group = _sgd().param_groups[0]
    assert (group["lr"], group["momentum"], group["weight_decay"]) == (0.01, 0.9, 0.01)


@pytest.mark.parametrize(
    ("step", "staircase", "factor"),
    [(0, False, 1.0), (5000, False, 0.8**0.5), (20000, False, 0.64), (15000, True, 0.8)],
)
def test_exponential_decay_matches_the_paper_formula(step, staircase, factor):
    opt = _sgd()
    sched = ExponentialDecay(opt, rate=0.8, decay_steps=10_000, staircase=staircase)
    for _ in range(step):
        opt.step()
        sched.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(0.01 * factor, rel=1e-6)
    assert sched.interval == "step"


def test_weight_decay_skips_biases_norms_and_loss_weights():
    net = BKNet()
    weighting = FixedWeighting(["smile"])
    weighting.extra = torch.nn.Parameter(torch.zeros(1))
    decay, no_decay = param_groups(net, weighting.parameters())
    assert all(p.ndim > 1 for p in decay["params"])
    assert any(p is weighting.extra for p in no_decay["params"])
    assert no_decay["weight_decay"] == 0.0
    everything = param_groups(net, decay_norm_and_bias=True)[0]["params"]
    assert len(everything) == len(list(net.parameters()))
