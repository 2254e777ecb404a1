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
    assert (optimizer.defaults["fused"], optimizer.defaults["foreach"]) == (None, True)
    assert all(torch.equal(a, b) for a, b in zip(loop, each, strict=True))


@pytest.mark.parametrize("nesterov", [False, True])
def test_fused_updates_equal_the_per_parameter_loop_to_rounding(nesterov):
    """The fused update, MomentumSGD's default on a CPU, is the loop's arithmetic: bitwise
    the same on torch's unvectorised path, and with AVX2 or AVX-512 (torch's fused kernel
    rounds the elements past its last full vector differently) within rounding."""
    optimizer, loop, each = _steps_against_the_loop({"nesterov": nesterov})
    assert (optimizer.defaults["fused"], optimizer.defaults["foreach"]) == (True, False)
    for a, b in zip(loop, each, strict=True):
        torch.testing.assert_close(b, a, rtol=1e-6, atol=1e-7)


def test_the_update_is_this_process_choice_also_after_loading_a_checkpoint():
    """A checkpoint saved with the foreach update (as before fused became the default)
    restores its momentum into a fused optimiser, which stays fused; ``foreach=False`` is
    torch's loop, named parameters and both flags at once are handled."""
    net = torch.nn.Linear(4, 3)
    old = MomentumSGD(param_groups(net), foreach=True)
    net(torch.randn(2, 4)).sum().backward()
    old.step()
    new = MomentumSGD(param_groups(net))
    new.param_groups[1]["fused"], new.param_groups[1]["foreach"] = None, False  # its own
    new.load_state_dict(old.state_dict())
    assert [(g["fused"], g["foreach"]) for g in new.param_groups] == [(True, False), (None, False)]
    momentum = old.state[net.weight]["momentum_buffer"]
    assert torch.equal(new.state[net.weight]["momentum_buffer"], momentum)
    loop = MomentumSGD(net.parameters(), foreach=False)
    assert (loop.defaults["foreach"], loop.defaults["fused"]) == (False, None)
    assert MomentumSGD(net.named_parameters()).defaults["fused"] is True
    with pytest.raises(ValueError, match="foreach and fused"):
        MomentumSGD(net.parameters(), foreach=True, fused=True)


def test_a_gradient_scaler_unscales_before_the_fused_update_so_gradients_can_be_clipped():
    """Under a GradScaler (``16-mixed``) the fused update is the foreach update of unscaled,
    clipped gradients, and a step with an overflow is skipped as for any optimiser."""
    results = []
    for options in ({}, {"foreach": True}):
        torch.manual_seed(0)
        net = torch.nn.Linear(4, 3)
        optimizer = MomentumSGD(net.parameters(), **options)
        assert optimizer._step_supports_amp_scaling is False  # the scaler unscales, then steps
        scaler = torch.amp.GradScaler("cpu", init_scale=1024.0)
        for overflow in (False, True, False):
            optimizer.zero_grad()
            loss = net(torch.randn(8, 4)).square().sum() * (torch.inf if overflow else 1.0)
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
            scaler.step(optimizer)
            scaler.update()
        results.append([p.detach().clone() for p in net.parameters()])
    for fused, foreach in zip(*results, strict=True):
        torch.testing.assert_close(fused, foreach, rtol=1e-6, atol=1e-7)


def test_gradient_clipping_under_bf16_mixed_precision_fits(in_tmp):
    """Lightning refuses to clip for an optimiser that unscales inside its step; the fused
    MomentumSGD does not, so clipping works with the precision ``mtl fit`` picks."""
    from mtl.cli import run_cli

    from .conftest import tiny_fit_args

    args = [*tiny_fit_args(train=64, val=16, test=16), "--trainer.precision=bf16-mixed",
            "--trainer.gradient_clip_val=0.5"]  # fmt: skip
    cli = run_cli(args)
    assert cli.trainer.global_step > 0 and cli.trainer.state.finished
    assert cli.trainer.optimizers[0].defaults["fused"] is True


def test_fused_only_where_every_parameter_is_on_a_fused_device():
    meta = torch.nn.Parameter(torch.zeros(2, device="meta"))
    optimizer = MomentumSGD([torch.nn.Parameter(torch.zeros(2)), meta], lr=0.1)
    assert (optimizer.defaults["fused"], optimizer.defaults["foreach"]) == (False, True)


def test_under_16_mixed_the_scaler_unscales_before_clipping_and_the_fused_update():
    """Lightning's fp16 plugin with a GradScaler (on a CPU here): gradients are clipped and
    seen by callbacks unscaled, and the fused update runs."""
    import lightning as L
    from lightning.pytorch.plugins import MixedPrecision

    from mtl.experiments.bench.overhead import tiny_module
    from tests.conftest import fit_tiny

    norms = []

    class Norms(L.Callback):
        def on_before_optimizer_step(self, trainer, module, optimizer):
            norms.append(torch.nn.utils.get_total_norm([p.grad for p in module.parameters()
                                                        if p.grad is not None]))  # fmt: skip

    module = tiny_module()
    fit_tiny(module, 3, plugins=[MixedPrecision("16-mixed", "cpu")], gradient_clip_val=0.05,
             callbacks=[Norms()])  # fmt: skip
    assert module.trainer.optimizers[0].defaults["fused"] is True
    finite = [n for n in norms if torch.isfinite(n)]  # a step that overflowed is skipped
    assert finite and all(n < 1e3 for n in finite)  # unscaled (the scale is about 65536)
