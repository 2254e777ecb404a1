"""Every backbone: shapes per task, gradients everywhere, single/multi task, 48 px and native."""

from __future__ import annotations

from functools import partial

import pytest
import torch

from mtl.models import HeadConfig, MultiTaskNet
from mtl.models.backbones import BKNet, LightweightCNN, ResNetV2
from mtl.models.zoo import ZOO
from mtl.tasks import build_tasks

NATIVE = {"lenet": 128, "alexnet": 224, "kang": 128, "timm:resnet18": 224}
SMALL_HEAD = HeadConfig(hidden=[16], batch_norm=True, dropout=0.0)  # keeps AlexNet's FCs small


def sizes(name: str) -> list[int]:
    return sorted({48, NATIVE.get(name, 48)})


@pytest.mark.parametrize(
    "task_names", [["smile"], ["smile", "emotion", "gender", "age"]], ids=["single", "multi"]
)
@pytest.mark.parametrize("name", sorted(ZOO))
def test_backbone_forward_backward(name, task_names):
    tasks = build_tasks(task_names)
    for size in sizes(name):
        torch.manual_seed(0)
        net = MultiTaskNet(tasks, ZOO[name][1](input_size=size), SMALL_HEAD, init_std=None)
        out = net(torch.randn(3, 1, size, size))
        assert {k: tuple(v.shape) for k, v in out.items()} == {
            t.name: (3, t.num_classes) for t in tasks
        }
        sum(o.square().mean() for o in out.values()).backward()
        missing = [n for n, p in net.named_parameters() if p.grad is None]
        assert not missing, f"{name}@{size}: no gradient for {missing[:5]}"


def test_resnet_ver2_gives_each_task_its_own_fourth_stage():
    tasks = build_tasks(["smile", "gender", "age"])
    net = MultiTaskNet(tasks, ResNetV2(2), init_std=None)
    ids = {name: {id(p) for p in trunk.parameters()} for name, trunk in net.task_trunks.items()}
    assert set(ids) == {"smile", "gender", "age"}
    assert ids["smile"].isdisjoint(ids["gender"]) and ids["gender"].isdisjoint(ids["age"])
    shared = {id(p) for p in net.backbone.parameters()}
    assert all(shared.isdisjoint(v) for v in ids.values())
    smile, gender = net.task_trunks["smile"], net.task_trunks["gender"]
    assert not torch.equal(next(smile.parameters()), next(gender.parameters()))  # own init
    head = net.heads["smile"]
    assert len(head) == 1 and isinstance(head[0], torch.nn.Linear)  # GAP -> classifier only


def test_resnet_ver1_shares_the_whole_trunk():
    tasks = build_tasks(["smile", "gender"])
    net = MultiTaskNet(tasks, ResNetV2(1), init_std=None)
    assert len(net.task_trunks) == 0
    assert len(net.backbone.trunk.stages) == 4  # all four stages in the shared trunk
    assert [m.out_features for m in net.heads["smile"] if isinstance(m, torch.nn.Linear)] == [
        256,
        256,
        2,
    ]


def test_lightweight_is_far_smaller_than_bknet():
    light = sum(p.numel() for p in LightweightCNN().parameters())
    bk = sum(p.numel() for p in BKNet().parameters())
    assert light * 5 < bk


def test_models_command_tabulates_the_zoo(tmp_path, capsys):
    from mtl.cli import main

    out = tmp_path / "models.json"
    main(["models", "lightweight", "kang", "--batch_size", "2", "--iters", "1", "--json", str(out)])
    import json

    rows = {r["name"]: r for r in json.loads(out.read_text())}
    assert rows["kang"]["input"] == "1x128x128"
    light = rows["lightweight"]
    assert light["params_total"] == light["params_shared"] + sum(light["params_per_task"].values())
    assert light["gflops"] > 0 and light["cpu_images_per_s"] > 0
    assert "lightweight" in capsys.readouterr().out


@pytest.mark.parametrize(
    "backbone",
    [
        ["--model.backbone=ResNetV2", "--model.backbone.version=2"],
        ["--model.backbone=LightweightCNN"],
        ["--model.backbone=KangCNN", "--model.backbone.input_size=48"],
    ],
    ids=["resnetv2-ver2", "lightweight", "kang"],
)
def test_backbones_are_selectable_from_the_cli(backbone, in_tmp):
    from mtl.cli import run_cli

    from .conftest import tiny_fit_args

    args = [a for a in tiny_fit_args(train=32, val=16, test=16) if not a.startswith("--model.")]
    cli = run_cli([*args, *backbone, "--trainer.fast_dev_run=true"])
    assert cli.trainer.state.finished


def test_every_registered_backbone_has_a_zoo_preset():
    """A backbone registers itself where it is defined; the zoo (and so the tests above, and
    `mtl models`) must name it, or it is untested."""
    from mtl.models.backbones import BACKBONES

    def built(factory) -> type:
        return factory.func if isinstance(factory, partial) else factory

    assert set(BACKBONES.values()) == {built(factory) for _, factory in ZOO.values()}
