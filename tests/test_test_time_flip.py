"""Test-time flip (``--model.test_time_flip true``): in eval mode each face's outputs are averaged
with its mirror image's, as the checkpoint ensemble averages its members; training is unchanged,
and a saved, reloaded or exported model evaluates the same way."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from mtl.cli import main, run_cli
from mtl.inference.export import export_onnx, export_torchscript
from mtl.inference.model import (
    OnnxPredictor,
    TorchPredictor,
    TorchScriptPredictor,
    load_checkpoint_net,
)
from mtl.models import BKNet, MultiTaskNet
from mtl.tasks import build_tasks

from .conftest import tiny_fit_args

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


def fit(root: Path, *extra: str) -> Path:
    """A tiny fit in ``root`` (two epochs, validated with recomputed batch-norm statistics, the
    last epoch kept as an ensemble member, tested); returns its last checkpoint."""
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)
        main([*tiny_fit_args(train=32, val=16, test=16), "--trainer.max_epochs=2",
              "--model.precise_bn=16", "--ensemble=1", "--test_after_fit=true",
              *extra])  # fmt: skip
    return root / "runs/mtl/version_0/checkpoints/last.ckpt"


def retest_args(checkpoint: Path) -> list[str]:
    """``mtl test`` of the checkpoint, on the data it was fitted on."""
    return ["test", *tiny_fit_args(train=32, val=16, test=16)[1:], f"--ckpt_path={checkpoint}"]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return fit(tmp_path_factory.mktemp("flip"), "--model.test_time_flip=true")


@pytest.fixture(scope="module")
def plain_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return fit(tmp_path_factory.mktemp("plain"))


def test_training_and_batch_norm_recalibration_are_the_same_with_it(checkpoint, plain_checkpoint):
    """The flip changes evaluation only: the two fits end with the same weights and batch-norm
    statistics, bit for bit (recalibration sees each training image once)."""
    flipped = torch.load(checkpoint, weights_only=True)["state_dict"]
    plain = torch.load(plain_checkpoint, weights_only=True)["state_dict"]
    assert flipped.keys() == plain.keys()
    for key, value in plain.items():
        torch.testing.assert_close(flipped[key], value, rtol=0, atol=0, msg=key)


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
def test_the_onnx_and_torchscript_exports_flip_as_pytorch_does(checkpoint, tmp_path):
    net, preprocessing = load_checkpoint_net(checkpoint)
    exported = [
        OnnxPredictor(export_onnx(net, preprocessing, tmp_path / "model.onnx")),
        TorchScriptPredictor(export_torchscript(net, preprocessing, tmp_path / "model.pt")),
    ]
    faces = np.random.default_rng(0).random((3, *preprocessing.input_shape), dtype=np.float32)
    expected = TorchPredictor(net, preprocessing)(faces)
    for model in exported:  # given the mirror images, at another batch size than exported
        mirrored = model(np.ascontiguousarray(faces[..., ::-1]))
        for got, want in zip(mirrored, expected, strict=True):
            assert float(np.abs(got - want).max()) < 1e-4


ASKED = {
    "the checkpoint's": (True, []),
    "--model.K=V": (False, ["--model.test_time_flip=false"]),
    "--model.K V": (False, ["--model.test_time_flip", "false"]),
    "a value that names it": (True, ["--trainer.logger.init_args.name", "test_time_flip"]),
}


@pytest.mark.parametrize("case", sorted(ASKED))
def test_mtl_test_of_a_checkpoint_flips_as_the_command_line_asks(
    checkpoint, case, tmp_path, monkeypatch
):
    """Lightning builds a ``--ckpt_path`` run's model from the checkpoint's arguments, over the
    command line's; how the network runs (``mtl.cli.RUN_SETTINGS``) is the command line's
    where it names it (the checkpoint here was trained with the flip)."""
    flips, extra = ASKED[case]
    monkeypatch.chdir(tmp_path)
    cli = run_cli([*retest_args(checkpoint), *extra])
    assert cli.model.net.test_time_flip is flips


def test_a_config_file_asks_for_it_too_and_what_a_network_is_stays_the_checkpoints(
    plain_checkpoint, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    config = tmp_path / "evaluate.yaml"
    config.write_text(yaml.safe_dump({"model": {"test_time_flip": True, "channels_last": False}}))
    cli = run_cli([*retest_args(plain_checkpoint), "--config", str(config), "--model.init_std=.5"])
    assert cli.model.net.test_time_flip is True and cli.model.channels_last is False
    saved = torch.load(plain_checkpoint, weights_only=True)["hyper_parameters"]
    assert cli.model.hparams.init_std == saved["init_std"] != 0.5  # what it is: the checkpoint's


def test_a_test_of_a_checkpoint_in_a_folder_of_its_own_records_the_fit_it_tests(
    checkpoint, tmp_path, monkeypatch
):
    """``run.json`` of a re-test (with the flip, say) names the epochs and fit time of the
    model it tested, not the test's own nothing, so a report reads the row as that fit's."""
    monkeypatch.chdir(tmp_path)
    run_cli(retest_args(checkpoint))
    record = json.loads((tmp_path / "runs/mtl/version_0/run.json").read_text())
    fitted = json.loads((checkpoint.parents[1] / "run.json").read_text())
    assert record["epochs"] == fitted["epochs"] == 2
    assert record["tested_checkpoint"] == str(checkpoint)
    assert record["fit_seconds"] == pytest.approx(fitted["fit_seconds"], abs=0.5)
    assert record["ran"] == fitted["ran"] and record["ran"]["hardware"]  # the fit's, kept in it


def test_a_test_of_a_checkpoint_with_the_fit_s_config_joins_the_fit_s_group(
    checkpoint, tmp_path, monkeypatch
):
    """A run's group digests the config its folder saves, as ``mtl report`` rows it: a re-test
    with the fit's config.yaml is the fit's experiment; the flip or another ensemble is not."""
    fit_folder = checkpoint.parents[1]
    fitted = json.loads((fit_folder / "run.json").read_text())["identity"]["group"]
    base = ["test", "--config", str(fit_folder / "config.yaml"), f"--ckpt_path={checkpoint}"]
    cases = {
        "same": [],
        "no flip": ["--model.test_time_flip=false"],
        "no ensemble": ["--ensemble=0"],
    }
    groups = {}
    for name, extra in cases.items():
        folder = tmp_path / name
        folder.mkdir()
        monkeypatch.chdir(folder)
        run_cli([*base, *extra])
        (record,) = [json.loads(p.read_text()) for p in folder.rglob("run.json")]
        groups[name] = record["identity"]["group"]
    assert groups["same"] == fitted
    for other in ("no flip", "no ensemble"):
        assert groups[other] != fitted
        assert groups[other].rsplit("|", 1)[0] == fitted.rsplit("|", 1)[0]  # one experiment


def test_a_config_that_cannot_be_digested_leaves_the_run_unlabelled_not_failed(
    checkpoint, tmp_path, monkeypatch
):
    import mtl.cli

    def broken(config: dict) -> str:
        raise TypeError("unhashable")

    monkeypatch.setattr(mtl.cli, "settings_digest", broken)
    monkeypatch.chdir(tmp_path)
    with pytest.warns(UserWarning, match="no settings digest .TypeError: unhashable"):
        run_cli(retest_args(checkpoint))
    record = json.loads((tmp_path / "runs/mtl/version_0/run.json").read_text())
    assert record["identity"]["settings"] is None and "test" in record


BESIDE = {  # a checkpoint's state and the run.json of its folder -> the ran a re-test records
    "carried, moved alone": (True, None, "fit"),
    "older, its run folder kept": (False, "fit", "fit"),
    "older, moved alone": (False, None, None),
    "older, beside a malformed run.json": (False, "[]", None),
    "older, beside a file that is not JSON": (False, "{", None),
}


@pytest.mark.parametrize("case", sorted(BESIDE))
def test_a_re_test_records_the_fit_s_hardware_from_its_checkpoint_or_run_folder(
    checkpoint, case, tmp_path, monkeypatch
):
    """A checkpoint carries how its fit ran; one written before it did has its re-test read
    that from the ``run.json`` of the run folder it was saved in (``<run>/checkpoints/``), or
    record none: never another run's."""
    carried, beside, expected = BESIDE[case]
    saved = torch.load(checkpoint, weights_only=True)
    state = next(v for k, v in saved["callbacks"].items() if "RunReport" in k)
    fitted = json.loads((checkpoint.parents[1] / "run.json").read_text())
    assert state["ran"] == fitted["ran"] and state["ran"]["hardware"]
    if not carried:
        del state["ran"]
    folder = "old/version_0/checkpoints" if beside else "moved"
    moved = tmp_path / folder / "last.ckpt"
    moved.parent.mkdir(parents=True)
    torch.save(saved, moved)
    if beside:
        text = json.dumps(fitted) if beside == "fit" else beside
        (moved.parents[1] / "run.json").write_text(text)
    (tmp_path / "run.json").write_text(json.dumps({"ran": {"hardware": "another run's"}}))
    monkeypatch.chdir(tmp_path)
    run_cli(retest_args(moved))
    record = json.loads((tmp_path / "runs/mtl/version_0/run.json").read_text())
    assert record["epochs"] == 2 and record["tested_checkpoint"] == str(moved)
    assert record.get("ran") == (fitted["ran"] if expected else None)
