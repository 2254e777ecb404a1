"""Property tests applied to every weighting, and what each one is for."""

from __future__ import annotations

import inspect

import pytest
import torch
import torchjd.aggregation
import yaml
from torch import nn

from mtl.losses import WEIGHTINGS as REGISTRY
from mtl.losses import (
    DynamicWeightAverage,
    FixedWeighting,
    GradNorm,
    KangWeighting,
    PCGrad,
    UncertaintyWeighting,
    Weighting,
    masked_cross_entropy,
)
from mtl.losses.weighting import (
    GeometricLossStrategy,
    JacobianAggregation,
    RandomLossWeighting,
    TaskStateAggregation,
)

TASKS = ["smile", "emotion", "age_years"]
VARIANTS = {
    "fixed": lambda t: FixedWeighting(t, {"emotion": 2.0}),  # unequal mu, not the default 1s
    "kang-published": lambda t: KangWeighting(t, "published"),
    "kang-softmax": lambda t: KangWeighting(t, "softmax"),
}
"""Settings tested beside each registered weighting's defaults."""
WEIGHTINGS = {**REGISTRY, **VARIANTS}
"""Every registered weighting (a new one is tested the moment it exists), and the variants."""


class Toy(nn.Module):
    """A shared layer and one head per task, with a fixed batch and per-task masks."""

    def __init__(self, tasks: list[str], absent: str | None = None) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.tasks = tasks
        self.shared = nn.Linear(4, 8)
        self.heads = nn.ModuleDict({t: nn.Linear(8, 3) for t in sorted(tasks)})
        g = torch.Generator().manual_seed(1)
        self.x = torch.randn(6, 4, generator=g)
        self.targets = {t: torch.randint(0, 3, (6,), generator=g) for t in sorted(tasks)}
        self.mask = {t: torch.tensor([t != absent] * 6) for t in tasks}

    def losses(self) -> dict[str, torch.Tensor]:
        h = torch.relu(self.shared(self.x))
        return {
            t: masked_cross_entropy(self.heads[t](h), self.targets[t], self.mask[t])
            for t in self.tasks
        }

    def present(self) -> torch.Tensor:
        return torch.stack([self.mask[t].any() for t in self.tasks])


def run(weighting, toy: Toy, steps: int = 3) -> torch.Tensor:
    """Train the toy and the weighting together (an "epoch" every two steps)."""
    opt = torch.optim.SGD([*toy.parameters(), *weighting.parameters()], lr=0.05)
    total = None
    for step in range(steps):
        opt.zero_grad()
        total = weighting(toy.losses(), toy.present(), list(toy.shared.parameters()))
        total.backward()
        opt.step()
        if step % 2 == 1:
            weighting.epoch_end()
    return total


def shared_grad(weighting, toy: Toy) -> torch.Tensor:
    """The gradient the weighting sends into the shared layer for the toy's current losses."""
    total = weighting(toy.losses(), toy.present(), list(toy.shared.parameters()))
    return torch.autograd.grad(total, toy.shared.weight)[0]


@pytest.fixture(params=sorted(WEIGHTINGS))
def name(request) -> str:
    return request.param


CONSTRAINED = sorted(set(WEIGHTINGS) - {"kang-published"})  # published Kang: see below


@pytest.mark.parametrize("constrained", CONSTRAINED)
def test_weights_are_finite_and_non_negative(constrained):
    weighting, toy = WEIGHTINGS[constrained](TASKS), Toy(TASKS)
    total = run(weighting, toy, steps=60)
    assert torch.isfinite(total)
    weights = torch.stack(list(weighting.weights().values()))
    assert torch.isfinite(weights).all() and (weights >= 0).all(), weights


def test_kang_as_published_collapses_when_trained_with_the_network():
    """d total / d w_t = L_t > 0: trained like the network, the published weights only ever
    fall, through zero, and the objective runs below zero: they learn to switch tasks off."""
    weighting, toy = WEIGHTINGS["kang-published"](TASKS), Toy(TASKS)
    totals = [run(weighting, toy, steps=1).item() for _ in range(60)]
    weights = torch.stack(list(weighting.weights().values()))
    assert (weights < 0).all() and totals[-1] < 0 < totals[0], (weights, totals[-1])
    assert all(b < a for a, b in zip(totals, totals[1:], strict=False))


def test_permuting_tasks_permutes_the_weights_and_the_training(name):
    """Listing the tasks in another order changes nothing: the same weights per task and the
    same shared-layer update (so gradient methods are exercised, not only reported weights)."""
    a, toy_a = WEIGHTINGS[name](TASKS), Toy(TASKS)
    run(a, toy_a, steps=4)
    permuted = [TASKS[2], TASKS[0], TASKS[1]]
    b, toy_b = WEIGHTINGS[name](permuted), Toy(permuted)
    run(b, toy_b, steps=4)
    wa, wb = a.weights(), b.weights()
    for t in TASKS:
        torch.testing.assert_close(wa[t], wb[t], rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(toy_a.shared.weight, toy_b.shared.weight, rtol=1e-4, atol=1e-6)
    assert not torch.equal(toy_a.shared.weight, Toy(TASKS).shared.weight)  # it did train


def test_state_dict_round_trip(name):
    """A weighting restored from its state dict combines and steers exactly like the original."""
    trained, toy = WEIGHTINGS[name](TASKS), Toy(TASKS)
    run(trained, toy, steps=4)
    fresh = WEIGHTINGS[name](TASKS)
    fresh.load_state_dict(trained.state_dict())
    torch.testing.assert_close(shared_grad(fresh, toy), shared_grad(trained, toy))
    losses = {t: torch.tensor(v.item()) for t, v in toy.losses().items()}
    torch.testing.assert_close(fresh(losses, toy.present()), trained(losses, toy.present()))
    torch.testing.assert_close(
        torch.stack(list(fresh.weights().values())), torch.stack(list(trained.weights().values()))
    )


def test_absent_task_is_handled(name):
    weighting, toy = WEIGHTINGS[name](TASKS), Toy(TASKS, absent="emotion")
    total = weighting(toy.losses(), toy.present(), list(toy.shared.parameters()))
    total.backward()
    assert torch.isfinite(total)
    for p in [*toy.parameters(), *weighting.parameters()]:
        assert p.grad is None or torch.isfinite(p.grad).all()
    head = toy.heads["emotion"].weight.grad
    assert head is None or torch.count_nonzero(head) == 0
    for p in weighting.parameters():  # the absent task's learned weight does not move
        assert p.grad is None or p.grad[TASKS.index("emotion")] == 0


def test_learnable_weights_receive_gradients(name):
    weighting, toy = WEIGHTINGS[name](TASKS), Toy(TASKS)
    params = list(weighting.parameters())
    if not params:
        pytest.skip(f"{name} has no learnable weights")
    weighting(toy.losses(), toy.present(), list(toy.shared.parameters())).backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in params)
    assert any(torch.count_nonzero(p.grad) > 0 for p in params)


def test_kang_log_form_converges_to_the_inverse_loss():
    losses = {"age": torch.tensor(2.0), "gender": torch.tensor(0.5)}
    log = KangWeighting(["age", "gender"], "log")
    opt = torch.optim.SGD(log.parameters(), lr=0.1)
    for _ in range(500):
        opt.zero_grad()
        log(losses).backward()
        opt.step()
    w = log.weights()  # stationary point exp(-s) = 1 / L
    assert w["age"].item() == pytest.approx(0.5, rel=1e-3)
    assert w["gender"].item() == pytest.approx(2.0, rel=1e-3)


def test_uncertainty_weighting_has_the_half_factor_for_regression():
    w = UncertaintyWeighting(["smile", "age_years"], init=0.0)  # the kind is the registry's
    total = w({"smile": torch.tensor(1.0), "age_years": torch.tensor(1.0)})
    assert total.item() == pytest.approx(1.5)  # 1 * e^0 * 1 + 0.5 * e^0 * 1 + 0 + 0
    assert w.weights()["age_years"].item() == 0.5


def test_dwa_weights_follow_the_loss_ratio():
    dwa = DynamicWeightAverage(["a", "b"], temperature=2.0)
    for epoch_losses in [(1.0, 1.0), (0.5, 1.0)]:
        dwa({"a": torch.tensor(epoch_losses[0]), "b": torch.tensor(epoch_losses[1])})
        dwa.epoch_end()
    dwa({"a": torch.tensor(1.0), "b": torch.tensor(1.0)})  # the third epoch's first step
    expected = 2 * torch.softmax(torch.tensor([0.5, 1.0]) / 2.0, dim=0)
    torch.testing.assert_close(torch.stack(list(dwa.weights().values())), expected)


def test_pcgrad_projects_conflicting_gradients():
    p = nn.Parameter(torch.zeros(2))
    a, b = torch.tensor([1.0, 0.0]), torch.tensor([-1.0, 1.0])  # a . b = -1 < 0
    losses = {"a": (p * a).sum() + 3.0, "b": (p * b).sum() + 4.0}
    total = PCGrad(["a", "b"])(losses, None, [p])
    total.backward()
    assert total.item() == pytest.approx(7.0)  # the value is the plain sum
    expected = (a - (a @ b) / (b @ b) * b) + (b - (a @ b) / (a @ a) * a)
    torch.testing.assert_close(p.grad, expected)


def test_gradnorm_takes_weight_from_the_task_with_the_larger_gradient():
    """GradNorm's purpose: equalise gradient norms on the last shared layer, so a task whose
    loss (and gradient) is ten times larger loses weight step by step."""
    torch.manual_seed(0)
    shared, heads = nn.Linear(4, 8), nn.ModuleDict({t: nn.Linear(8, 3) for t in ("big", "small")})
    x, y = torch.randn(32, 4), torch.randint(0, 3, (32,))
    weighting = GradNorm(["big", "small"], alpha=1.5)
    params = [*shared.parameters(), *heads.parameters(), *weighting.parameters()]
    opt = torch.optim.SGD(params, lr=0.05)
    history = []
    for _ in range(40):
        opt.zero_grad()
        h = torch.relu(shared(x))
        scale = {"big": 10.0, "small": 1.0}
        losses = {t: scale[t] * nn.functional.cross_entropy(heads[t](h), y) for t in heads}
        weighting(losses, None, list(shared.parameters())).backward()
        opt.step()
        history.append(weighting.weights()["big"].item())
    with torch.no_grad():
        weighting(losses)  # renormalises: positive weights summing to T
    assert sum(weighting.weights().values()).item() == pytest.approx(2.0, rel=1e-5)
    assert history[-1] < 0.5 < 1.0 == pytest.approx(history[0])
    falling = history[:30]  # then it settles where the two gradient norms balance
    assert all(b < a for a, b in zip(falling, falling[1:], strict=False)), falling


def test_geometric_loss_strategy_has_the_geometric_means_value_and_gradient():
    p = nn.Parameter(torch.tensor([1.0, 2.0, 3.0]))
    losses = {"a": p[0] ** 2 + 1, "b": 2 * p[1], "c": p[2] * 0 + 5}  # c absent below
    present = torch.tensor([True, True, False])
    total = GeometricLossStrategy(["a", "b", "c"])(losses, present)
    expected = ((p[0] ** 2 + 1) * (2 * p[1])).sqrt()  # c neither enters nor gets a weight
    assert total.item() == pytest.approx(expected.item())
    (grad,) = torch.autograd.grad(total, p)
    torch.testing.assert_close(grad, torch.autograd.grad(expected, p)[0])


def test_random_loss_weighting_draws_a_softmax_over_the_present_tasks():
    present = torch.tensor([True, False, True])
    a, b = RandomLossWeighting(TASKS, seed=3), RandomLossWeighting(TASKS, seed=3)
    draws = []
    for _ in range(3):
        losses = {t: torch.tensor(1.0, requires_grad=True) for t in TASKS}
        a(losses, present)
        b(losses, present)
        torch.testing.assert_close(a.last_weights, b.last_weights)  # seeded: every rank alike
        assert a.last_weights[1] == 0 and a.last_weights.sum().item() == pytest.approx(1.0)
        draws.append(a.last_weights.clone())
    assert not torch.equal(draws[0], draws[1])  # a new draw every step
    a.eval()
    a({t: torch.tensor(1.0) for t in TASKS}, present)
    assert a.last_weights.tolist() == [0.5, 0.0, 0.5]  # outside training: the expectation


AGGREGATORS = sorted(n for n, w in REGISTRY.items() if issubclass(w, JacobianAggregation))


@pytest.mark.parametrize("name", AGGREGATORS)
def test_an_aggregator_ignores_an_absent_task_as_if_the_run_lacked_it(name):
    """The absent task's row is not in the Jacobian: the shared gradient equals the one of a
    run without that task, and its recorded weight is 0."""
    with_absent, toy = REGISTRY[name](TASKS), Toy(TASKS, absent="emotion")
    kept = [t for t in TASKS if t != "emotion"]
    without, small = REGISTRY[name](kept), Toy(kept)
    small.load_state_dict(toy.state_dict(), strict=False)
    small.x, small.targets = toy.x, {t: toy.targets[t] for t in kept}
    torch.testing.assert_close(shared_grad(with_absent, toy), shared_grad(without, small))
    assert with_absent.weights()["emotion"] == 0


STATELESS = [n for n in AGGREGATORS if not issubclass(REGISTRY[n], TaskStateAggregation)]
STATEFUL = sorted(set(AGGREGATORS) - set(STATELESS))


@pytest.mark.parametrize("name", STATELESS)
def test_each_aggregator_moves_along_its_torchjd_direction(name):
    jacobian = torch.randn(3, 50, generator=torch.Generator().manual_seed(0))  # K x P
    weighting = REGISTRY[name](TASKS)
    direction, _ = weighting.aggregate(jacobian, TASKS)
    if weighting.random:  # GradDrop: the same seeded draw for the same step and tasks
        torch.testing.assert_close(direction, weighting.aggregate(jacobian, TASKS)[0])
    else:
        torch.testing.assert_close(direction, weighting.aggregator(jacobian))


@pytest.mark.parametrize("name", AGGREGATORS)
def test_a_task_labelled_only_on_another_rank_is_dropped_too(name):
    """Under DDP a task present in the global batch may be missing from this rank's part: its
    loss is an exact zero (an all-zero Jacobian row), and it is dropped like an absent task."""
    toy = Toy(TASKS, absent="emotion")
    everywhere = torch.ones(len(TASKS), dtype=torch.bool)  # "present" on another rank
    weighting = REGISTRY[name](TASKS)
    total = weighting(toy.losses(), everywhere, list(toy.shared.parameters()))
    grad = torch.autograd.grad(total, toy.shared.weight)[0]
    kept = [t for t in TASKS if t != "emotion"]
    without, small = REGISTRY[name](kept), Toy(kept)
    small.load_state_dict(toy.state_dict(), strict=False)
    small.x, small.targets = toy.x, {t: toy.targets[t] for t in kept}
    torch.testing.assert_close(grad, shared_grad(without, small))
    assert weighting.weights()["emotion"] == 0 and grad.abs().sum() > 0


def torchjd_direction(weighting, reference, jacobian: torch.Tensor, names: list[str]):
    """TorchJD's ``reference`` aggregator on the rows in the order of the tasks' names, drawing
    what ``weighting`` would."""
    order = sorted(range(len(names)), key=names.__getitem__)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(weighting.draw_seed(names))
        return reference(jacobian[order])


@pytest.mark.parametrize("name", STATEFUL)
@pytest.mark.filterwarnings("ignore:You are solving a parameterized problem")
def test_a_stateful_aggregator_carries_its_state_as_torchjd_does(name):
    """With every task present, step after step, the direction is TorchJD's own aggregator's
    (fed the rows in the order of the tasks' names), state included."""
    weighting = REGISTRY[name](TASKS)
    reference = weighting.make_aggregator(**weighting.options)
    g = torch.Generator().manual_seed(0)
    for step in range(4):
        jacobian = torch.randn(3, 50, generator=g) + torch.arange(3.0)[:, None]  # K x P
        ours, _ = weighting.aggregate(jacobian, TASKS)
        theirs = torchjd_direction(weighting, reference, jacobian, TASKS)
        torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-5, msg=f"step {step}")
        weighting.advance()


@pytest.mark.parametrize("name", STATEFUL)
@pytest.mark.filterwarnings("ignore:You are solving a parameterized problem")
def test_a_stateful_aggregator_hands_the_present_tasks_their_own_state(name):
    """After steps with every task, a step without one: TorchJD's aggregator for the two rows,
    given those two tasks' state, gives the same direction and the same new state, which is
    written back at those tasks' places."""
    weighting, toy = REGISTRY[name](TASKS), Toy(TASKS)
    run(weighting, toy, steps=3)
    names = [t for t in TASKS if t != "emotion"]  # smile, age_years
    index = [TASKS.index(t) for t in sorted(names)]  # by name: age_years, smile
    if name == "nashmtl":
        reference = torchjd.aggregation.NashMTL(n_tasks=2, **weighting.options)
        reference.weighting.prvs_alpha = weighting.alpha[index].numpy().copy()
    else:
        reference = weighting.make_aggregator(**weighting.options)
        reference.gramian_weighting._phi_t = weighting.cosine_target[index][:, index].clone()
        reference.gramian_weighting._state_key = (2, torch.float32)
    jacobian = torch.randn(2, 50, generator=torch.Generator().manual_seed(3))  # K x P
    theirs = torchjd_direction(weighting, reference, jacobian, names)
    ours, _ = weighting.aggregate(jacobian, names)
    torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-5)
    if name == "nashmtl":
        new = torch.as_tensor(reference.weighting.prvs_alpha).float()
        torch.testing.assert_close(weighting.alpha[index], new, rtol=1e-4, atol=1e-6)
    else:
        new = reference.gramian_weighting._phi_t
        torch.testing.assert_close(weighting.cosine_target[index][:, index], new)


@pytest.mark.parametrize("name", STATEFUL)
def test_an_absent_task_keeps_its_state_until_it_is_labelled_again(name):
    weighting, toy = REGISTRY[name](TASKS), Toy(TASKS)
    run(weighting, toy, steps=2)
    before = {k: v.clone() for k, v in weighting.state_dict().items()}
    toy.mask["emotion"][:] = False
    run(weighting, toy, steps=2)
    e = TASKS.index("emotion")
    if name == "nashmtl":
        alpha = weighting.alpha
        assert alpha[e] == before["alpha"][e] and not torch.equal(alpha, before["alpha"])
    else:
        target, old = weighting.cosine_target, before["cosine_target"]
        assert torch.equal(target[e], old[e]) and torch.equal(target[:, e], old[:, e])
        assert not torch.equal(target, old)
    assert weighting.weights()["emotion"] == 0


def test_upgrad_moves_along_the_aggregators_direction():
    from torchjd.aggregation import UPGrad as TorchJDUPGrad

    p = nn.Parameter(torch.zeros(2))
    a, b = torch.tensor([1.0, 0.0]), torch.tensor([-1.0, 1.0])  # conflicting
    total = REGISTRY["upgrad"](["a", "b"])({"a": p @ a + 3, "b": p @ b + 4}, None, [p])
    total.backward()
    assert total.item() == pytest.approx(7.0)  # the value is the plain sum
    torch.testing.assert_close(p.grad, TorchJDUPGrad()(torch.stack([a, b])))
    assert p.grad @ a >= -1e-6 and p.grad @ b >= -1e-6  # no task's loss rises


CLI_OPTIONS = {
    "uncertainty": ["--model.weighting.clamp=[-4, 4]"],
    "kang": ["--model.weighting.form=softmax"],
    "pcgrad": ["--model.task_loss=squared_hinge"],
}
"""Options beyond the class, where a weighting has one worth training from the command line."""


@pytest.mark.parametrize("registered", sorted(REGISTRY))
def test_every_weighting_trains_from_the_cli(registered, in_tmp):
    from mtl.cli import run_cli

    from .conftest import tiny_fit_args

    name = REGISTRY[registered].__name__
    weighting = [f"--model.weighting={name}", *CLI_OPTIONS.get(registered, [])]

    cli = run_cli(
        [
            *tiny_fit_args(train=64, val=16, test=16),
            *weighting,
            "--trainer.max_epochs=2",
            "--trainer.limit_train_batches=3",
        ]
    )
    logged = cli.trainer.logged_metrics
    assert all(f"train/{t}/weight" in logged for t in ("smile", "emotion", "gender", "age"))
    assert torch.isfinite(logged["val/loss"])
    groups = cli.model.optimizers().param_groups
    learned = {id(p) for p in cli.model.weighting.parameters()}
    assert all(g["weight_decay"] == 0 for g in groups if learned & {id(p) for p in g["params"]})


def test_the_registry_holds_every_weighting_and_its_contract():
    import mtl.losses.weighting as package

    classes = {
        c for c in vars(package).values() if isinstance(c, type) and issubclass(c, Weighting)
    }
    concrete = {c for c in classes if not inspect.isabstract(c)}  # not Weighting, bases
    assert set(REGISTRY.values()) == concrete  # each registered where defined
    for name, cls in REGISTRY.items():
        assert cls.name == name and cls.combine is not Weighting.combine  # the one contract
        weighting = cls(TASKS)
        total = weighting({t: torch.tensor(1.0) for t in TASKS})
        assert total.ndim == 0
        assert set(weighting.weights()) == set(TASKS)  # kept by the base class


SOLVER_EXTRAS = {"cagrad": "CAGrad", "nashmtl": "NashMTL"}
"""Weightings whose TorchJD class needs an extra, and that class."""


@pytest.mark.parametrize("name", sorted(SOLVER_EXTRAS))
def test_an_aggregator_without_its_solver_says_which_extra_to_install(name, monkeypatch):
    from mtl.errors import ConfigError

    def missing(**kwargs):
        raise ImportError(f"{SOLVER_EXTRAS[name]}Weighting requires ['cvxpy'] to be installed")

    monkeypatch.setattr(torchjd.aggregation, SOLVER_EXTRAS[name], missing)
    with pytest.raises(ConfigError, match=rf"mtl-faces\[{name}\]"):
        REGISTRY[name](TASKS)


def test_the_weightings_sweep_lists_every_weighting():
    from .conftest import REPO

    spec = yaml.safe_load((REPO / "sweeps" / "weightings.yaml").read_text())
    values = spec["parameters"]["model.weighting"]["values"]
    listed = {v if isinstance(v, str) else v["class_path"] for v in values}
    assert listed == {w.__name__ for w in REGISTRY.values()}
