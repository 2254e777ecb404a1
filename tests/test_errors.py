"""Mistakes a user makes end in one line naming what to fix (exit status 2), never a
traceback; flags that contradict the project's defaults just work."""

from __future__ import annotations

import pytest
import yaml

from mtl.cli import main, run_cli
from tests import raw_fixtures as F

from .conftest import NARROW_BKNET, tiny_fit_args


def one_line_error(args: list[str], capsys: pytest.CaptureFixture) -> str:
    """Run ``mtl`` expecting a user error; return its one line."""
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    last = err.strip().splitlines()[-1]
    assert last.startswith("mtl: error: "), err
    return last


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ("--data.tasks=[smiles]", "smiles"),  # a task that does not exist
        ("--data.batch_size=0", "batch_size"),
        ("--model.weighting.weights={gender_typo: 2}", "gender_typo"),
        ("--data.balance=weights", "one weight per source"),  # found once the data is known
        ("--model.backbone.input_size=50", "not divisible"),
        ("--model.optimizer.lr=-1", "model.optimizer"),  # only built once fit starts
        # faces the network cannot take: found once the data is known, before any step
        ("--data.image_size=64", "--model.backbone.input_size=64"),
        ("--model.backbone.in_chans=3", "--model.backbone.in_chans=1"),
    ],
)
def test_a_value_the_classes_refuse_is_one_line(override, named, in_tmp, capsys):
    assert named in one_line_error([*tiny_fit_args(), override], capsys)


def test_a_missing_dataset_folder_is_one_line(in_tmp, capsys):
    args = ["fit", "--data=Genki4kDataModule", f"--data.root={in_tmp / 'nowhere'}"]
    assert "labels.txt not found" in one_line_error(args, capsys)


def test_settings_lightning_rejects_are_one_line(in_tmp, capsys):
    args = [
        *tiny_fit_args(),
        "--model.lr_scheduler=torch.optim.lr_scheduler.ReduceLROnPlateau",
        "--trainer.limit_val_batches=0",  # nothing to monitor
    ]
    assert "val/loss" in one_line_error(args, capsys)


def test_a_larger_input_trains_once_the_backbone_is_told(in_tmp):
    cli = run_cli([*tiny_fit_args(), "--data.image_size=64", "--model.backbone.input_size=64"])
    assert cli.trainer.state.finished and cli.model.input_shape == (1, 64, 64)


def test_a_pooling_backbone_is_told_the_face_size_too(in_tmp, capsys):
    """LightweightCNN pools to any size: it used to train on other faces and record a false
    input, whose checkpoints mtl analyze and mtl export refuse."""
    args = [a for a in tiny_fit_args() if a not in NARROW_BKNET]
    args += ["--model.backbone=LightweightCNN", "--data.image_size=64"]
    error = one_line_error(args, capsys)
    assert "--model.backbone=LightweightCNN --model.backbone.input_size=64" in error
    assert not list(in_tmp.rglob("*.ckpt"))  # refused before any step


def test_a_checkpoint_is_tested_only_on_faces_like_its_own(in_tmp, capsys):
    cli = run_cli(tiny_fit_args())
    last = next(in_tmp.rglob("last.ckpt"))
    config = f"{cli.trainer.log_dir}/config.yaml"
    args = ["test", "--config", config, f"--ckpt_path={last}", "--data.image_size=64"]
    error = one_line_error(args, capsys)
    assert "1 x 64 x 64 (grey)" in error and "1 x 48 x 48 (grey)" in error
    assert "a trained network's input cannot change" in error and "--model.backbone" not in error


def test_no_checkpointing_just_works(in_tmp):
    cli = run_cli([*tiny_fit_args(), "--trainer.enable_checkpointing=false"])
    assert cli.trainer.state.finished and cli.trainer.checkpoint_callback is None
    assert not list(in_tmp.rglob("*.ckpt"))


def test_a_checkpoint_callback_of_ones_own_replaces_the_default(in_tmp):
    own = {
        "class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
        "init_args": {"monitor": "val/loss", "filename": "best"},
    }
    config = in_tmp / "own.yaml"
    config.write_text(yaml.safe_dump({"trainer": {"callbacks": [own]}}))
    cli = run_cli([*tiny_fit_args(), "--config", str(config)])
    checkpoints = cli.trainer.checkpoint_callbacks
    assert len(checkpoints) == 1 and checkpoints[0].monitor == "val/loss"
    assert cli.trainer.state.finished


def test_a_command_of_the_project_reports_a_wrong_folder_in_one_line(tmp_path, capsys):
    args = ["prepare", "genki4k", "--root", str(tmp_path), "--progress", "false"]
    assert "labels.txt not found" in one_line_error(args, capsys)


def test_tracebacks_on_request(in_tmp, monkeypatch):
    monkeypatch.setenv("MTL_TRACEBACK", "1")
    F.write_genki(in_tmp / "raw")
    with pytest.raises(FileNotFoundError, match="labels.txt"):
        main(["prepare", "genki4k", "--root", str(in_tmp), "--progress", "false"])
