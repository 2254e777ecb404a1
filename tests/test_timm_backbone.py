import pytest
import timm
import torch

from mtl.models import BKNet, MultiTaskNet
from mtl.models.backbones import TimmBackbone
from mtl.tasks import build_tasks


def test_timm_model_as_shared_backbone_forward_and_backward():
    tasks = build_tasks(["smile", "emotion"])
    net = MultiTaskNet(tasks, TimmBackbone("resnet18"))
    out = net(torch.randn(4, 1, 48, 48))
    assert {k: tuple(v.shape) for k, v in out.items()} == {"smile": (4, 2), "emotion": (4, 7)}
    sum(o.sum() for o in out.values()).backward()
    assert all(p.grad is not None for p in net.parameters())


def test_auto_init_keeps_timm_init_but_applies_the_paper_init_to_bknet():
    torch.manual_seed(0)
    untouched = TimmBackbone("resnet18")
    torch.manual_seed(0)
    timm_net = MultiTaskNet(build_tasks(["smile"]), TimmBackbone("resnet18"))
    for (name, p), q in zip(
        timm_net.backbone.named_parameters(), untouched.parameters(), strict=True
    ):
        assert torch.equal(p, q), f"{name} was re-initialised"  # timm's own (He) init kept
    bk_net = MultiTaskNet(build_tasks(["smile"]), BKNet())
    first = bk_net.backbone.blocks[0][0].weight
    assert first.std().item() == pytest.approx(0.01, rel=0.3)


def test_pretrained_weights_load_from_a_local_file_adapted_to_grayscale(tmp_path):
    rgb = timm.create_model(
        "resnet18", pretrained=False
    )  # an "ImageNet" checkpoint: 3 ch, 1000 classes
    path = tmp_path / "resnet18.pth"
    torch.save(rgb.state_dict(), path)
    gray = TimmBackbone("resnet18", pretrained_file=str(path))
    assert "pretrained_file" not in gray.config()["init_args"]  # a checkpoint has its weights
    expected = rgb.conv1.weight.sum(dim=1, keepdim=True)  # timm folds RGB into one channel
    assert torch.allclose(gray.model.conv1.weight, expected, atol=1e-6)
    assert torch.equal(gray.model.layer4[1].conv2.weight, rgb.layer4[1].conv2.weight)


def test_missing_weights_and_unknown_names_are_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        TimmBackbone("resnet18", pretrained_file=str(tmp_path / "nope.pth"))
    with pytest.raises(ValueError, match="resnet_nonexistent"):
        TimmBackbone("resnet_nonexistent")


def test_tagged_timm_names_are_accepted():
    """``timm.is_model`` names include a pretrained tag (weights still come from a local file)."""
    backbone = TimmBackbone("resnet18.a1_in1k")
    assert backbone.num_features == 512
    assert backbone.config()["init_args"]["model_name"] == "resnet18.a1_in1k"
