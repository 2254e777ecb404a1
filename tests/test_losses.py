import math

import pytest
import torch

from mtl.losses import FixedWeighting, masked_cross_entropy
from mtl.models import BKNet, MultiTaskNet
from mtl.tasks import build_tasks

NO = -1  # any value: the mask says the row is unlabelled


def _ce(scores, target):
    """-log softmax(scores)[target], by hand."""
    return -(scores[target] - math.log(sum(math.exp(s) for s in scores)))


def test_masked_cross_entropy_matches_hand_computed_eq1():
    logits = torch.tensor([[2.0, 0.5], [0.1, 0.3], [-1.0, 1.5]])
    targets = torch.tensor([0, NO, 1])
    mask = torch.tensor([True, False, True])
    expected = (_ce([2.0, 0.5], 0) + _ce([-1.0, 1.5], 1)) / 3  # Eq. 1 divides by N = 3
    got = masked_cross_entropy(logits, targets, mask)
    assert got.item() == pytest.approx(expected, rel=1e-6)
    per_labelled = masked_cross_entropy(logits, targets, mask, normalization="labelled")
    assert per_labelled.item() == pytest.approx(expected * 3 / 2, rel=1e-6)


def test_absent_task_gives_exact_zero_connected_to_the_graph_without_nan():
    logits = torch.randn(4, 7, requires_grad=True)
    targets = torch.full((4,), NO)
    mask = torch.zeros(4, dtype=torch.bool)
    for normalization in ("batch", "labelled"):
        loss = masked_cross_entropy(logits, targets, mask, normalization)
        assert loss.item() == 0.0 and loss.requires_grad
        (grad,) = torch.autograd.grad(loss, logits)
        assert torch.equal(grad, torch.zeros_like(grad))


def test_ignored_rows_never_leak_nan_even_with_garbage_targets():
    logits = torch.randn(3, 2, requires_grad=True)
    targets = torch.tensor([1, 99, -7])  # only row 0 is labelled
    mask = torch.tensor([True, False, False])
    loss = masked_cross_entropy(logits, targets, mask)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(logits.grad).all()
    assert torch.equal(logits.grad[1:], torch.zeros(2, 2))


def test_shape_mismatch_is_a_clear_error():
    with pytest.raises(ValueError, match="logits B x C"):
        masked_cross_entropy(
            torch.zeros(3, 2), torch.zeros(4, dtype=torch.long), torch.ones(4, dtype=torch.bool)
        )


def _tiny_net(tasks):
    return MultiTaskNet(tasks, BKNet(channels=[[4], [8]], input_size=16), init_std=None)


def _losses(net, tasks, targets, mask):
    logits = net(torch.randn(len(targets), 1, 16, 16))
    return {
        t.name: masked_cross_entropy(logits[t.name], targets[:, j], mask[:, j])
        for j, t in enumerate(tasks)
    }


def test_absent_task_head_gets_zero_gradient_but_no_nan():
    tasks = build_tasks(["smile", "emotion"])
    net = _tiny_net(tasks)
    targets = torch.tensor([[1, NO], [0, NO], [1, NO]])
    losses = _losses(net, tasks, targets, targets != NO)
    total = FixedWeighting([t.name for t in tasks])(losses)
    total.backward()
    assert losses["emotion"].item() == 0.0 and torch.isfinite(total)
    for name, p in net.heads["emotion"].named_parameters():
        assert p.grad is not None and torch.equal(p.grad, torch.zeros_like(p)), name
    assert all(torch.isfinite(p.grad).all() for p in net.parameters() if p.grad is not None)


def test_every_parameter_gets_a_gradient_when_all_tasks_are_present():
    tasks = build_tasks(["smile", "emotion", "gender", "age"])
    net = _tiny_net(tasks)
    targets = torch.tensor([[1, 3, 0, 2], [0, 6, 1, 5], [1, 0, 1, 0], [0, 2, 0, 1]])
    total = FixedWeighting([t.name for t in tasks])(_losses(net, tasks, targets, targets >= 0))
    total.backward()
    for name, p in net.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, f"{name} got no gradient"


def test_fixed_weighting_sums_with_mu():
    w = FixedWeighting(["smile", "emotion"], weights={"emotion": 0.5})
    total = w({"smile": torch.tensor(2.0), "emotion": torch.tensor(4.0)})
    assert total.item() == pytest.approx(2.0 + 0.5 * 4.0)
    assert {k: v.item() for k, v in w.weights().items()} == {"smile": 1.0, "emotion": 0.5}
    assert "mu" in w.state_dict()


def test_fixed_weighting_rejects_unknown_or_negative_weights():
    with pytest.raises(ValueError, match="unknown task"):
        FixedWeighting(["smile"], weights={"gender": 1.0})
    with pytest.raises(ValueError, match="non-negative"):
        FixedWeighting(["smile"], weights={"smile": -1.0})
    with pytest.raises(KeyError, match="emotion"):
        FixedWeighting(["smile", "emotion"])({"smile": torch.tensor(1.0)})


def test_squared_hinge_matches_hand_computed_eq2():
    from mtl.losses import masked_squared_hinge

    logits = torch.tensor([[2.0, 1.0, 0.0], [0.0, 1.0, 3.0], [9.0, 9.0, 9.0]])
    targets = torch.tensor([0, 0, NO])
    mask = torch.tensor([True, True, False])
    # row 0: margins max(0, 1-2+1)^2 + max(0, 0-2+1)^2 = 0; row 1: (1+1)^2 + (3+1)^2 = 20
    assert masked_squared_hinge(logits, targets, mask).item() == pytest.approx(20 / 3)
    labelled = masked_squared_hinge(logits, targets, mask, normalization="labelled")
    assert labelled.item() == pytest.approx(10.0)
    none = masked_squared_hinge(logits, targets, torch.zeros(3, dtype=torch.bool))
    assert none.item() == 0.0 and not torch.isnan(none)


def _ddp_loss(x, targets, layer, together: bool) -> torch.Tensor:
    """The "labelled"-normalised loss of one task (``targets`` B), or (``together``, B x 2)
    the module's losses of smile and emotion, masked and normalised at once."""
    if not together:
        return masked_cross_entropy(layer(x), targets, targets != NO, "labelled")
    from mtl.training.module import MultiTaskModule

    module = MultiTaskModule(["smile", "emotion"], normalization="labelled")
    scores = layer(x)  # B x 9: smile's 2 classes, then emotion's 7
    outputs = {"smile": scores[:, :2], "emotion": scores[:, 2:]}
    labelled = targets != NO  # B x 2
    values = torch.where(labelled, targets.float(), torch.nan)
    return module.task_losses(outputs, values, labelled, 0).sum()


def _ddp_grad(rank: int, world: int, port: int, together: bool, out: dict) -> None:
    import os

    import torch.distributed as dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    x, targets, layer = _ddp_problem(together)
    part = slice(0, 3) if rank == 0 else slice(3, 6)  # rank 0: 1 labelled row, rank 1: 3
    _ddp_loss(x[part], targets[part], layer, together).backward()
    grad = layer.weight.grad.clone()
    dist.all_reduce(grad)
    grad /= world  # what DDP does to gradients
    if rank == 0:
        out["grad"] = grad
    dist.destroy_process_group()


def _ddp_problem(together: bool):
    """6 rows; the task labels rows 0, 3, 4, 5; ``together`` (its columns: smile, then the
    task as emotion) adds smile, labelled on rows 3 and 4 only (none on rank 0's half)."""
    torch.manual_seed(0)
    x = torch.randn(6, 4)
    targets = torch.tensor([0, NO, NO, 2, 1, 1])
    if not together:
        return x, targets, torch.nn.Linear(4, 3)
    smile = torch.tensor([NO, NO, NO, 1, 0, NO])
    return x, torch.stack([smile, targets], 1), torch.nn.Linear(4, 9)


@pytest.mark.parametrize("together", [False, True], ids=["one task", "two tasks at once"])
def test_labelled_normalization_under_ddp_matches_one_device(together):
    """Two gloo processes, each with half the batch (rank 0 without a smile label), give one
    device's gradient: the module's losses take one all-reduce of every task's count."""
    import os

    import torch.multiprocessing as mp

    with mp.Manager() as manager:
        out = manager.dict()
        port = 29700 + os.getpid() % 1000 + together
        mp.spawn(_ddp_grad, args=(2, port, together, out), nprocs=2, join=True)
        ddp = out["grad"]
    x, targets, layer = _ddp_problem(together)
    _ddp_loss(x, targets, layer, together).backward()
    torch.testing.assert_close(ddp, layer.weight.grad)


def test_regression_loss_matches_jassim_eq6():
    from mtl.losses import masked_euclidean_gaussian

    pred = torch.tensor([30.0, 20.0, 50.0], requires_grad=True)
    years = torch.tensor([25.0, float("nan"), 50.0])
    known = ~torch.isnan(years)
    euclid = masked_euclidean_gaussian(pred, years, known, lam=0.0)
    assert euclid.item() == pytest.approx((25 / 2) / 3)  # (y - a)^2 / 2, divided by N = 3
    gauss = masked_euclidean_gaussian(pred, years, known, 1.0, 3.0, normalization="labelled")
    assert gauss.item() == pytest.approx((1 - math.exp(-25 / 18)) / 2)
    euclid.backward()
    assert pred.grad[1] == 0 and torch.isfinite(pred.grad).all()  # unknown age: no gradient


def test_age_in_years_trains_as_a_registered_regression_task(in_tmp):
    """Naming ``age_years`` in the data's tasks is all it takes: the registry says it is a
    regression, so the head, loss, metric and the weighting's 1/2 factor follow."""
    from mtl.cli import run_cli

    from .conftest import tiny_fit_args

    args = [
        *tiny_fit_args(train=64, val=32, test=16),
        "--data.tasks=[smile, emotion, gender, age, age_years]",
        "--model.regression_loss.switch_step=2",
        "--model.weighting=UncertaintyWeighting",
    ]
    cli = run_cli(args)
    logged = cli.trainer.logged_metrics
    assert "val/age_years/mae" in logged and "val/age/acc" in logged
    assert logged["train/age_years/weight"] < 1.0  # the regression factor 1/2 times exp(-s)
    preds = cli.model.predict_step(next(iter(cli.datamodule.predict_dataloader())), 0)
    assert preds["age_years"].ndim == 1 and preds["age"].shape[1] == 6


def test_age_in_years_is_opt_in_and_needs_age_labels():
    from mtl.data import SyntheticDataModule, SyntheticSource

    assert "age_years" not in SyntheticDataModule().task_names  # not in the default set
    with pytest.raises(ValueError, match="no labels for task"):
        SyntheticDataModule([SyntheticSource("a", ["smile"])], tasks=["age_years"])


@pytest.mark.parametrize("task_loss", ["cross_entropy", "squared_hinge"])
@pytest.mark.parametrize("normalization", ["batch", "labelled"])
def test_the_module_masks_every_task_at_once_as_each_task_alone(task_loss, normalization):
    """The module's losses (every task's per-sample losses masked and normalised in one
    B x T step) equal each task's own masked loss, with a regression task, a task absent
    from the batch (an exact zero) and NaN targets where unlabelled."""
    from mtl.losses import EuclideanGaussian, masked_euclidean_gaussian, masked_squared_hinge
    from mtl.training.module import MultiTaskModule

    names = ["smile", "emotion", "gender", "age_years"]
    module = MultiTaskModule(
        names, task_loss=task_loss, normalization=normalization,
        regression_loss=EuclideanGaussian(switch_step=5),
    )  # fmt: skip
    g = torch.Generator().manual_seed(0)
    outputs = {
        t.name: torch.randn(6, t.num_classes, generator=g).squeeze(1) * 3  # B x C; B: years
        for t in module.tasks
    }
    mask = torch.rand(6, 4, generator=g) < 0.6
    mask[:, 2] = False  # gender: absent from the batch
    targets = torch.stack(
        [torch.randint(0, 2, (6,), generator=g), torch.randint(0, 7, (6,), generator=g),
         torch.zeros(6), torch.rand(6, generator=g) * 60],
        dim=1,
    ).float()  # fmt: skip
    targets = torch.where(mask, targets, torch.nan)
    alone = {"cross_entropy": masked_cross_entropy, "squared_hinge": masked_squared_hinge}
    for step in (0, 5):  # the regression loss switches from Euclidean to Gaussian at 5
        got = module.task_losses(outputs, targets, mask, step)  # T
        expected = [
            alone[task_loss](outputs[n], targets[:, j], mask[:, j], normalization)
            for j, n in enumerate(names[:3])
        ]
        lam = float(step >= 5)
        expected.append(
            masked_euclidean_gaussian(
                outputs["age_years"], targets[:, 3], mask[:, 3], lam, 3.0, normalization
            )
        )
        torch.testing.assert_close(got, torch.stack(expected))
        assert got[2].item() == 0.0 and torch.isfinite(got).all()
    for out in outputs.values():
        out.requires_grad_(True)
    module.task_losses(outputs, targets, mask, 0).sum().backward()
    assert torch.equal(outputs["gender"].grad, torch.zeros(6, 2))  # absent: no gradient
    assert all(torch.isfinite(out.grad).all() for out in outputs.values())  # NaN targets out
