"""Test-time flip (``--model.test_time_flip true``): in eval mode each face's outputs are averaged
with its mirror image's, as the checkpoint ensemble averages its members; training is unchanged,
and a saved, reloaded or exported model evaluates the same way."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from mtl.cli import main, run_cli
from mtl.inference.export import export_onnx
from mtl.inference.model import OnnxPredictor, TorchPredictor, load_checkpoint_net
from mtl.models import BKNet, MultiTaskNet
from mtl.tasks import build_tasks
from tests.conftest import tiny_fit_args

TASKS = ["smile", "emotion", "age_years"]  # two classifications and a regression


def tiny_net(test_time_flip: bool) -> MultiTaskNet:
    torch.manual_seed(0)
    backbone = BKNet(channels=[[4], [8]], input_size=16)
    return MultiTaskNet(build_tasks(TASKS), backbone, init_std=None, test_time_flip=test_time_flip)


def test_eval_averages_the_probabilities_of_a_face_and_its_mirror_image():
    net, plain = tiny_net(True).eval(), tiny_net(False).eval()
    image = torch.rand(5, 1, 16, 16)  # B x C x H x W
    out = net(image)
    views = plain(image), plain(image.flip(-1))
    for name in ("smile", "emotion"):
        expected = (views[0][name].softmax(-1) + views[1][name].softmax(-1)) / 2  # B x C
        torch.testing.assert_close(out[name].softmax(-1), expected)
    years = (views[0]["age_years"] + views[1]["age_years"]) / 2  # B
    torch.testing.assert_close(out["age_years"], years)


def test_a_face_and_its_mirror_image_get_the_same_outputs():
    net = tiny_net(True).eval()
    image = torch.rand(4, 1, 16, 16)
    for name, value in net(image).items():
        torch.testing.assert_close(net(image.flip(-1))[name], value)


def test_training_mode_runs_one_view():
    net, plain = tiny_net(True).train(), tiny_net(False).train()
    image = torch.rand(4, 1, 16, 16)
    torch.manual_seed(1)  # the same dropout masks on both sides
    out = net(image)
    torch.manual_seed(1)
    expected = plain(image)
    for name in TASKS:
        torch.testing.assert_close(out[name], expected[name])


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("flip")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)
        main([*tiny_fit_args(train=32, val=16, test=16), "--model.test_time_flip=true",
              "--ensemble=1", "--test_after_fit=true"])  # fmt: skip
    return root / "runs/mtl/version_0/checkpoints/last.ckpt"


def test_a_fit_keeps_it_in_the_checkpoint_and_tests_with_it(checkpoint):
    saved = torch.load(checkpoint, weights_only=True)
    assert saved["hyper_parameters"]["test_time_flip"] is True
    tested = json.loads((checkpoint.parents[1] / "run.json").read_text())["test"]
    assert {"test/smile/acc", "test_ens/smile/acc"} <= tested.keys()
    for ensemble in (0, 1):  # the model and the checkpoint ensemble's member both flip
        net, preprocessing = load_checkpoint_net(checkpoint, ensemble=ensemble)
        image = torch.rand(3, *preprocessing.input_shape)  # B x C x H x W
        for a, b in zip(net(image), net(image.flip(-1)), strict=True):
            torch.testing.assert_close(a, b)


@pytest.mark.numeric
def test_the_onnx_export_flips_as_pytorch_does(checkpoint, tmp_path):
    net, preprocessing = load_checkpoint_net(checkpoint)
    onnx = OnnxPredictor(export_onnx(net, preprocessing, tmp_path / "model.onnx"))
    faces = np.random.default_rng(0).random((3, *preprocessing.input_shape), dtype=np.float32)
    expected = TorchPredictor(net, preprocessing)(faces)
    mirrored = onnx(np.ascontiguousarray(faces[..., ::-1]))
    for got, want in zip(mirrored, expected, strict=True):
        assert float(np.abs(got - want).max()) < 1e-4


@pytest.mark.parametrize("named", [None, "false", "true"])
def test_mtl_test_takes_it_from_the_checkpoint_unless_the_command_line_names_it(
    checkpoint, named, tmp_path, monkeypatch
):
    """Lightning builds a ``--ckpt_path`` run's model from the checkpoint's arguments, over the
    command line's; how the network runs (``mtl.cli.RUN_SETTINGS``) is the command line's."""
    monkeypatch.chdir(tmp_path)
    args = ["test", *tiny_fit_args(train=32, val=16, test=16)[1:], f"--ckpt_path={checkpoint}"]
    if named is not None:
        args.append(f"--model.test_time_flip={named}")
    cli = run_cli(args)
    assert cli.model.net.test_time_flip is (named != "false")  # the checkpoint's: true


def test_a_test_of_a_checkpoint_in_a_folder_of_its_own_records_the_fit_it_tests(
    checkpoint, tmp_path, monkeypatch
):
    """``run.json`` of a re-test (with the flip, say) names the epochs and fit time of the
    model it tested, not the test's own nothing, so a report reads the row as that fit's."""
    monkeypatch.chdir(tmp_path)
    args = ["test", *tiny_fit_args(train=32, val=16, test=16)[1:], f"--ckpt_path={checkpoint}"]
    run_cli(args)
    record = json.loads((tmp_path / "runs/mtl/version_0/run.json").read_text())
    fitted = json.loads((checkpoint.parents[1] / "run.json").read_text())
    assert record["epochs"] == fitted["epochs"] == 1
    assert record["fit_seconds"] == pytest.approx(fitted["fit_seconds"], abs=0.5)
