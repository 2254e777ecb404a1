"""The ``mtl`` command: shipped configs, argument validation, checkpoints and resume."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from mtl.cli import main, run_cli
from mtl.cli.parsing import expand_class_aliases
from tests import raw_fixtures as F

from .conftest import CONF_DIR, tiny_fit_args

CONFIGS = sorted(CONF_DIR.rglob("*.yaml"))


def test_configs_exist():
    assert CONFIGS, "conf/ ships no config"


# Configs of real datasets run on tiny fixtures in each dataset's own format (CI has no data):
# every real source's root is pointed at a fixture and its cache into tmp.
FIXTURES = {
    "Genki4kDataModule": (F.write_genki, {"face": {"detector": "none"}}),
    "Fer2013DataModule": (F.write_fer_folders, {}),
    "UTKFaceDataModule": (F.write_utkface, {}),
}


def _localize(node: object, tmp: Path) -> bool:
    """Point every real source in a config tree at a fixture; True if there was one."""
    found = False
    if isinstance(node, dict):
        kind = str(node.get("class_path", "")).rsplit(".", 1)[-1]
        if kind in FIXTURES and "root" in node.get("init_args", {}):
            write, extra = FIXTURES[kind]
            root = tmp / kind
            if not root.exists():
                write(root)
            node["init_args"].update(root=str(root), cache_dir=str(tmp / "cache"), **extra)
            found = True
        found = any([_localize(v, tmp) for v in node.values()]) or found
    elif isinstance(node, list):
        found = any([_localize(v, tmp) for v in node])
    return found


def localized(config: Path, tmp: Path) -> Path:
    tree = yaml.safe_load(config.read_text())
    if not _localize(tree, tmp):
        return config
    out = tmp / config.name
    out.write_text(yaml.safe_dump(tree))
    return out


def test_every_real_data_config_is_localized(tmp_path):
    for config in CONFIGS:
        if "root:" in config.read_text():
            assert localized(config, tmp_path) != config, config.name


def configs_to_run(config: Path) -> list[str]:
    """``--config`` arguments that run ``config``: an add-on (no data class, e.g. W&B logging or
    the GPU speed-ups) runs after the main job's config, as its header says to use it."""
    if "class_path" in (yaml.safe_load(config.read_text()).get("data") or {}):
        return ["--config", str(config)]
    return ["--config", str(CONF_DIR / "bknet_synthetic.yaml"), "--config", str(config)]


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: str(p.relative_to(CONF_DIR)))
def test_every_shipped_config_parses_and_runs_fast_dev_run(config, in_tmp):
    config = localized(config, in_tmp)
    cli = run_cli(["fit", *configs_to_run(config), "--trainer.fast_dev_run=true"])
    assert cli.trainer.state.finished
    assert cli.model.tasks, "the model got no tasks from the data"


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ("--model.no_such_option=1", "no_such_option"),
        ("--trainer.max_epochs=three", "max_epochs"),
        ("--data.batch_size=big", "batch_size"),
        ("--model.normalization=mean", "normalization"),
    ],
)
def test_bad_keys_and_types_fail_before_training_naming_the_key(override, named, in_tmp, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([*tiny_fit_args(), override])
    assert exit_info.value.code != 0
    assert named in capsys.readouterr().err
    assert not (in_tmp / "runs").exists(), "nothing may be written before validation passes"


def test_unknown_key_in_a_config_file_is_rejected(in_tmp, capsys):
    bad = in_tmp / "bad.yaml"
    bad.write_text(yaml.safe_dump({"model": {"weighting_typo": 1}}))
    with pytest.raises(SystemExit) as exit_info:
        main([*tiny_fit_args(), "--config", str(bad)])
    assert exit_info.value.code != 0 and "weighting_typo" in capsys.readouterr().err


def test_fit_writes_config_metrics_and_checkpoints_with_the_config(in_tmp):
    cli = run_cli(tiny_fit_args())
    run_dir = in_tmp / "runs" / "mtl" / "version_0"
    assert (run_dir / "config.yaml").is_file() and (run_dir / "metrics.csv").is_file()
    header = (run_dir / "metrics.csv").read_text().splitlines()[0].split(",")
    for task in ("smile", "emotion", "gender", "age"):
        assert f"val/{task}/acc" in header
    ckpt = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    assert "SyntheticDataModule" in ckpt["mtl_config"]
    assert ckpt["hyper_parameters"]["tasks"] == ["smile", "emotion", "gender", "age"]
    assert cli.trainer.global_step > 0


def test_ckpt_path_last_resumes_the_latest_run(in_tmp):
    first = run_cli(tiny_fit_args())
    steps_per_epoch = first.trainer.global_step
    second = run_cli([*tiny_fit_args(), "--trainer.max_epochs=2", "--ckpt_path=last"])
    assert second.trainer.global_step == 2 * steps_per_epoch  # continued, not restarted
    assert second.trainer.current_epoch == 2
    assert sorted(p.name for p in (in_tmp / "runs" / "mtl").iterdir()) == ["version_0"]


def test_ckpt_path_last_without_a_checkpoint_starts_fresh(in_tmp):
    with pytest.warns(UserWarning, match="no last.ckpt"):
        cli = run_cli([*tiny_fit_args(), "--ckpt_path=last"])
    assert cli.trainer.current_epoch == 1


def test_validate_test_and_predict_from_a_checkpoint(in_tmp):
    run_cli(tiny_fit_args())
    ckpt = str(in_tmp / "runs" / "mtl" / "version_0" / "checkpoints" / "last.ckpt")
    common = tiny_fit_args()[1:]  # the same data and model arguments, without "fit"
    common = [a for a in common if not a.startswith("--trainer.max_epochs")]
    for sub in ("validate", "test", "predict"):
        cli = run_cli([sub, *common, f"--ckpt_path={ckpt}"])
        assert cli.trainer.state.finished, sub


def test_python_dash_m_mtl_lists_every_command():
    out = subprocess.run(
        [sys.executable, "-m", "mtl", "--help"], capture_output=True, text=True, check=True
    )
    for sub in ("fit", "validate", "test", "predict", "prepare", "bench", "models"):
        assert f"    {sub} " in out.stdout, sub


@pytest.mark.parametrize("command", ["prepare genki4k", "bench data", "models"])
def test_every_command_takes_typed_options_and_config_files(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([*command.split(), "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "--config" in out and "type:" in out  # jsonargparse, like mtl fit


def test_a_command_reads_its_options_from_a_config_file(tmp_path, capsys):
    config = tmp_path / "models.yaml"
    config.write_text(yaml.safe_dump({"batch_size": 2, "iters": 1, "markdown": True}))
    main(["models", "lightweight", "--config", str(config)])
    assert capsys.readouterr().out.startswith("| backbone |")


@pytest.mark.parametrize(
    ("override", "optimizer", "scheduler"),
    [
        ([], "MomentumSGD", "ExponentialDecay"),
        (["--model.optimizer=Adam", "--model.optimizer.lr=0.001"], "Adam", "ExponentialDecay"),
        (["--model.lr_scheduler=null"], "MomentumSGD", None),
        (
            ["--model.lr_scheduler=torch.optim.lr_scheduler.ReduceLROnPlateau"],
            "MomentumSGD",
            "ReduceLROnPlateau",
        ),
    ],
)
def test_optimizer_and_schedule_are_selectable_from_config(override, optimizer, scheduler, in_tmp):
    cli = run_cli([*tiny_fit_args(train=16, val=8, test=8), *override])
    assert type(cli.trainer.optimizers[0]).__name__ == optimizer
    configs = cli.trainer.lr_scheduler_configs
    assert [type(c.scheduler).__name__ for c in configs] == ([scheduler] if scheduler else [])
    if scheduler == "ExponentialDecay":
        assert configs[0].interval == "step"
    if scheduler == "ReduceLROnPlateau":
        assert configs[0].monitor == "val/loss"


@pytest.mark.parametrize(
    ("override", "profiler"),
    [([], "NoProfiler"), (["--trainer.profiler=simple"], "SimpleProfiler")],
)
def test_fit_profiles_nothing_cheaply_unless_a_profiler_is_asked_for(override, profiler, in_tmp):
    cli = run_cli([*tiny_fit_args(train=16, val=8, test=8), *override])
    assert type(cli.trainer.profiler).__name__ == profiler
    assert cli.trainer.state.finished


def test_a_timm_backbone_is_selectable_from_the_command_line(in_tmp):
    args = [a for a in tiny_fit_args(train=16, val=8, test=8) if not a.startswith("--model.")]
    cli = run_cli([*args, "--model.backbone=TimmBackbone", "--model.backbone.model_name=resnet18"])
    assert type(cli.model.net.backbone).__name__ == "TimmBackbone"
    assert cli.trainer.state.finished


def test_lightnings_short_logger_names_mean_the_projects_loggers(capsys):
    config = str(CONF_DIR / "bknet_synthetic.yaml")
    for value, expected in (
        ("WandbLogger", ["mtl.training.loggers.WandbLogger"]),
        ("CSVLogger", ["mtl.training.loggers.CSVLogger"]),
        (
            "[WandbLogger, CSVLogger]",
            ["mtl.training.loggers.WandbLogger", "mtl.training.loggers.CSVLogger"],
        ),
    ):
        with pytest.raises(SystemExit) as exit_info:  # --print_config exits 0
            main(["fit", "--config", config, f"--trainer.logger={value}", "--print_config"])
        assert exit_info.value.code in (0, None)
        loggers = yaml.safe_load(capsys.readouterr().out)["trainer"]["logger"]
        loggers = loggers if isinstance(loggers, list) else [loggers]
        assert [lg["class_path"] for lg in loggers] == expected
    assert expand_class_aliases(["fit", "--trainer.logger", "WandbLogger", "--x=CSVLogger"]) == [
        "fit", "--trainer.logger", "mtl.training.loggers.WandbLogger", "--x=CSVLogger",
    ]  # fmt: skip
    (dict_form,) = expand_class_aliases(
        ["--trainer.logger={class_path: CSVLogger, init_args: {name: CSVLogger}}"]
    )
    assert yaml.safe_load(dict_form.partition("=")[2]) == {
        "class_path": "mtl.training.loggers.CSVLogger",
        "init_args": {"name": "CSVLogger"},
    }  # fmt: skip  (only the class is renamed, not a run called CSVLogger)
    assert expand_class_aliases(["--trainer.logger.class_path=WandbLogger"]) == [
        "--trainer.logger.class_path=mtl.training.loggers.WandbLogger"
    ]


def test_a_short_name_two_classes_share_is_one_line_saying_what_to_write(in_tmp, capsys):
    (in_tmp / "logger.yaml").write_text("trainer: {logger: WandbLogger}\n")  # in a config file
    config = str(CONF_DIR / "bknet_synthetic.yaml")
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--config", config, "--config", str(in_tmp / "logger.yaml")])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "usage:" not in err
    assert err.splitlines()[0] == (
        "mtl: error: trainer.logger: WandbLogger could be lightning.pytorch.loggers.WandbLogger "
        "or mtl.training.loggers.WandbLogger; write the full class path"
    )


@pytest.mark.parametrize(
    ("args", "first_line"),
    [
        (["--trainer.max_epochs=abc"], "trainer.max_epochs: expected int or null, got abc"),
        (["--data.batch_size=big"], "data.batch_size: Expected a <class 'int'>. Got value: big"),
        (["--model.normalization=mean"], "model.normalization: Expected a typing.Literal"),
        (["--model.no_such=1"], "unrecognized arguments: --model.no_such=1"),
    ],
)
def test_a_bad_value_is_a_short_message_without_the_usage_text(args, first_line, in_tmp, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([*tiny_fit_args(), *args])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "usage:" not in err and len(err.splitlines()) == 2
    assert err.startswith(f"mtl: error: {first_line}")
    assert err.splitlines()[1] == "(`mtl fit --help` lists the options)"


@pytest.mark.parametrize(
    "args",
    [
        ["prepare", "genki4k", "--face.detector", "dlib"],
        ["cv", "--folds", "x"],
        ["sweep", "a.yaml", "--poll", "soon"],
        ["report", "runs", "--stage", "train"],
        ["bench", "train", "--rounds", "many"],
        ["no-such-command"],
    ],
)
def test_no_command_answers_a_bad_value_with_its_usage(args, in_tmp, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "usage:" not in err and err.startswith("mtl: error: ")
