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


def _steps_against_the_loop(options: dict) -> tuple[MomentumSGD, list, list]:
    """20 steps of MomentumSGD(**options) and of torch's per-parameter loop on the same
    gradients, with a weight-decay and a no-decay group (the second given as an iterator),
    sizes with and without a vector tail. Returns the optimiser and both parameter lists."""
    torch.manual_seed(0)
    shapes = [(8, 3, 3, 3), (8,), (20, 10), (7,), (67, 33)]
    loop = [torch.randn(s, requires_grad=True) for s in shapes]
    each = [p.detach().clone().requires_grad_(True) for p in loop]

    def groups(params):
        return [{"params": params[:2]}, {"params": iter(params[2:]), "weight_decay": 0.0}]

    nesterov = options.get("nesterov", False)
    reference = torch.optim.SGD(
        groups(loop), lr=0.01, momentum=0.9, weight_decay=0.01, foreach=False, nesterov=nesterov
    )
    optimizer = MomentumSGD(groups(each), **options)
    assert [len(g["params"]) for g in optimizer.param_groups] == [2, 3]  # the iterator, read
    for _ in range(20):
        grads = [torch.randn(s) for s in shapes]
        for params in (loop, each):
            for p, g in zip(params, grads, strict=True):
                p.grad = g.clone()
        reference.step()
        optimizer.step()
    return optimizer, loop, each


@pytest.mark.parametrize("nesterov", [False, True])
def test_foreach_updates_equal_the_per_parameter_loop_bitwise(nesterov):
    """MomentumSGD's one-call-per-operation update gives exactly the loop's numbers."""
    optimizer, loop, each = _steps_against_the_loop({"foreach": True, "nesterov": nesterov})
    assert (optimizer.defaults["fused"], optimizer.defaults["foreach"]) == (False, True)
    assert all(torch.equal(a, b) for a, b in zip(loop, each, strict=True))


@pytest.mark.parametrize("nesterov", [False, True])
def test_fused_updates_equal_the_per_parameter_loop_to_rounding(nesterov):
    """The fused update, MomentumSGD's default on a CPU, is the loop's arithmetic: bitwise
    the same on some kernel paths, and elsewhere (with AVX-512, torch's fused kernel rounds
    the elements past its last full vector differently) within a rounding error per step."""
    optimizer, loop, each = _steps_against_the_loop({"nesterov": nesterov})
    assert (optimizer.defaults["fused"], optimizer.defaults["foreach"]) == (True, False)
    for a, b in zip(loop, each, strict=True):
        torch.testing.assert_close(b, a, rtol=0, atol=1e-6)


def test_fused_only_where_every_parameter_is_on_a_fused_device():
    meta = torch.nn.Parameter(torch.zeros(2, device="meta"))
    optimizer = MomentumSGD([torch.nn.Parameter(torch.zeros(2)), meta], lr=0.1)
    assert (optimizer.defaults["fused"], optimizer.defaults["foreach"]) == (False, True)
