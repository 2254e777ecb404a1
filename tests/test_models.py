import pytest
import torch

from mtl.models import BKNet, BranchHead, HeadConfig, MBKNet, MultiTaskNet
from mtl.models.network import init_normal_
from mtl.tasks import build_tasks


def test_multitask_bknet_shapes_and_size():
    tasks = build_tasks(["smile", "emotion", "gender"])
    net = MultiTaskNet(tasks, BKNet())
    assert net.backbone.num_features == 256 * 3 * 3
    out = net(torch.zeros(2, 1, 48, 48))
    assert {k: tuple(v.shape) for k, v in out.items()} == {
        "smile": (2, 2),
        "emotion": (2, 7),
        "gender": (2, 2),
    }
    params = sum(p.numel() for p in net.parameters())
    assert 3.70e6 < params < 3.76e6  # "about 3.73 M" (Sang & Cuong) with C = 2 / 7 / 2


def test_bknet_structure_follows_the_paper():
    convs = [m for m in BKNet().modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [32, 32, 64, 64, 128, 128, 256, 256, 256]
    assert all(
        c.kernel_size == (3, 3) and c.stride == (1, 1) and c.padding == (1, 1) for c in convs
    )
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in BKNet().modules()) == 9
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in BKNet(batch_norm=False).modules())


def test_branch_is_fc256_fc256_fc_c_with_bn_relu_dropout():
    layers = [type(m).__name__ for m in BranchHead(2304, 7)]
    assert layers == ["Linear", "BatchNorm1d", "ReLU", "Dropout"] * 2 + ["Linear"]


def test_bknet_rejects_indivisible_input():
    with pytest.raises(ValueError, match="divisible"):
        BKNet(input_size=50)


def test_normal_init_has_the_requested_std():
    net = BKNet()
    init_normal_(net, 0.01)
    w = torch.cat([m.weight.flatten() for m in net.modules() if isinstance(m, torch.nn.Conv2d)])
    assert w.std().item() == pytest.approx(0.01, rel=0.05) and abs(w.mean().item()) < 1e-3


def _rohani_params(task_names, backbone_cls):
    """Rohani et al. Table 3 setting: no batch norm anywhere; smile 2, gender 2, age 6."""
    tasks = build_tasks(task_names)
    head = HeadConfig(batch_norm=False)
    net = MultiTaskNet(tasks, backbone_cls(batch_norm=False), head)
    return sum(p.numel() for p in net.parameters())


def test_rohani_table3_parameter_counts_exactly():
    assert _rohani_params(["smile"], BKNet) == 2_418_146  # Config A: single-task BKNet
    assert _rohani_params(["smile", "gender", "age"], BKNet) == 3_731_946  # Config B
    assert _rohani_params(["smile", "gender", "age"], MBKNet) == 3_953_130  # Config C: MBKNet


def test_mbknet_concatenates_pooled_first_block_with_last_block():
    net = MBKNet()
    assert net.num_features == 2304 + 32 * 3 * 3
    x = torch.randn(2, 1, 48, 48)
    features = net(x)
    assert features.shape == (2, 2592)
    assert torch.equal(features[:, 288:], BKNet.forward(net, x))  # the plain BKNet part


def test_channels_last_is_the_bknet_familys_default_and_is_saved_resolved():
    """NHWC where ``mtl bench train`` measured it faster (BKNet; MBKNet has the same
    convolutions); other backbones keep NCHW; a run's explicit choice wins; the saved
    hyperparameters say what ran."""
    from mtl.models.backbones import LeNet, ResNetV2
    from mtl.training.module import MultiTaskModule

    tasks = ["smile", "gender"]
    narrow = {"channels": [[4], [8], [8], [8]]}
    defaults = {
        "BKNet": MultiTaskModule(tasks, backbone=BKNet(**narrow)),
        "MBKNet": MultiTaskModule(tasks, backbone=MBKNet(**narrow)),
        "LeNet": MultiTaskModule(tasks, backbone=LeNet(input_size=48)),
        "ResNetV2": MultiTaskModule(tasks, backbone=ResNetV2()),
    }
    chosen = {name: (m.channels_last, m.hparams.channels_last) for name, m in defaults.items()}
    assert chosen == {
        "BKNet": (True, True),
        "MBKNet": (True, True),
        "LeNet": (False, False),
        "ResNetV2": (False, False),
    }
    assert MultiTaskModule(tasks).channels_last  # the default backbone: BKNet
    off = MultiTaskModule(tasks, backbone=BKNet(**narrow), channels_last=False)
    assert not off.channels_last and off.hparams.channels_last is False

    module = defaults["BKNet"]
    module.configure_model()  # what the trainer calls once the model is on its device
    conv = module.net.backbone.blocks[1][0].weight  # second block's conv: 8 x 4 x 3 x 3
    assert conv.is_contiguous(memory_format=torch.channels_last)
    assert not conv.is_contiguous()  # really NHWC, not a 1x1 shape that is both
