"""W&B logging from config, offline (no account, no network): the full config, run identity,
learning rate, confusion matrices and sample predictions; one run per training run."""

from __future__ import annotations

import csv
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import wandb
import yaml

from mtl.cli import run_cli
from mtl.training.settings import settings_digest

from .conftest import CONF_DIR, tiny_fit_args, wandb_run_file

WANDB = ["--config", str(CONF_DIR / "wandb.yaml")]  # offline: WANDB_MODE (tests/conftest.py)


def test_a_run_logs_its_config_identity_and_evaluation_to_wandb(in_tmp):
    args = [*tiny_fit_args(), *WANDB, "--model.weighting=UncertaintyWeighting"]
    cli = run_cli(args)
    csv_logger, wandb_logger = cli.trainer.loggers
    run = wandb_logger.experiment
    try:
        config = dict(run.config)
        assert {"data", "model", "trainer", "seed_everything"} <= config.keys()  # everything
        assert config["data"]["init_args"]["batch_size"] == 32
        assert config["mtl"]["task_set"] == "smile+emotion+gender+age"
        ran = config["ran"]  # how it trains, once the data path is chosen (as in run.json)
        assert ran["precision"] == str(cli.trainer.precision)
        assert ran["data_path"] == cli.datamodule.data_path.name
        # the experiment and the digest of the settings its folder's config.yaml saves
        saved = yaml.safe_load((Path(csv_logger.log_dir) / "config.yaml").read_text())
        experiment = "smile+emotion+gender+age|BKNet|UncertaintyWeighting"
        assert run.group == f"{experiment}|{settings_digest(saved)}" == config["mtl"]["group"]
        assert run.job_type == "multi-task"
        assert {"multi-task", "backbone:BKNet", "weighting:UncertaintyWeighting"} <= set(run.tags)
        summary = dict(run.summary)
        assert "val/predictions" in summary and "val/smile/confusion_table" in summary
        assert "train/age/weight" in summary  # effective loss weights
        assert "lr-MomentumSGD/pg1" in summary  # learning rate (weights; no-decay group: pg2)
    finally:
        wandb.finish()
    identity = json.loads((Path(csv_logger.log_dir) / "run.json").read_text())["identity"]
    assert identity["group"] == run.group  # run.json names the same experiment
    matrix = Path(csv_logger.log_dir) / "confusion" / "val-smile-confusion.csv"
    with matrix.open(newline="") as f:
        rows = list(csv.reader(f))
    counts = sum(int(v) for row in rows[1:] for v in row[1:])
    assert rows[0] == ["actual \\ predicted", "non_smile", "smile"]
    assert counts == 32  # every labelled smile face of the validation split, once


def test_given_group_and_tags_win_over_derived_ones(in_tmp):
    args = [*tiny_fit_args(), *WANDB, "--trainer.limit_train_batches=1"]
    args += ["--trainer.logger.init_args.group=mine", "--trainer.logger.init_args.tags=[a]"]
    cli = run_cli(args)
    try:
        run = cli.trainer.loggers[1].experiment
        assert run.group == "mine" and list(run.tags) == ["a"]
        assert run.job_type == "multi-task"  # not given: derived
    finally:
        wandb.finish()


def test_ddp_runs_make_exactly_one_wandb_run_each_also_under_an_agent(tmp_path):
    """The agent's WANDB_RUN_ID reaches every rank; only rank 0 may start (this) run. Fit (with
    its test, the checkpoint ensemble and precise BN), validate and test under DDP (batches of
    two: a rank's batch misses tasks) each finish."""
    mtl = str(Path(sys.executable).with_name("mtl"))
    args = [a for a in tiny_fit_args(train=12, val=6, test=6) if a != "fit"]
    args += [*WANDB, "--data.batch_size=2", "--trainer.accelerator=cpu"]
    args += ["--trainer.devices=2", "--trainer.strategy=ddp"]

    def run(command: str, *more: str, env: dict[str, str] | None = None) -> None:
        done = subprocess.run(
            [mtl, command, *args, *more], cwd=tmp_path, env={**os.environ, **(env or {})},
            capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr[-3000:]

    more = ["--trainer.max_epochs=2", "--ensemble=2", "--test_after_fit=true"]
    more += ["--model.precise_bn=4"]  # recomputed batch norm, averaged over the ranks
    run("fit", *more, env={"WANDB_RUN_ID": "agentrun1"})
    runs = sorted(p.name for p in (tmp_path / "runs" / "wandb").glob("offline-run-*"))
    assert len(runs) == 1 and runs[0].endswith("-agentrun1"), runs
    with next((tmp_path / "runs" / "mtl").rglob("metrics.csv")).open(newline="") as f:
        last = [r for r in csv.DictReader(f) if r.get("val/loss")][-1]
    for key in ("val/smile/acc", "val/emotion/acc", "val/age/f1", "val/s_gender_age/gender/acc"):
        assert math.isfinite(float(last[key])), key  # synced over ranks that missed it
    record = json.loads(next((tmp_path / "runs" / "mtl").rglob("run.json")).read_text())
    for key in ("test/smile/acc", "test_ens/smile/acc", "test_ens/s_gender_age/age/acc"):
        assert math.isfinite(record["test"][key]), key
    # The test's confusion matrices (the metrics' own state) count both ranks' faces: the 6
    # smile-labelled test faces, 3 per rank.
    with next((tmp_path / "runs" / "mtl").rglob("confusion/all-smile.csv")).open() as f:
        counts = [int(v) for row in list(csv.reader(f))[1:] for v in row[1:]]
    assert sum(counts) == 6
    # So do the subgroups, gathered from both ranks at the test's end (one collective each).
    subgroups = record["subgroups"]["groups"]
    assert sum(g["count"] for g in subgroups if g["task"] == "gender") == 6
    checkpoint = next((tmp_path / "runs" / "mtl").rglob("last.ckpt"))
    run("validate", f"--ckpt_path={checkpoint}")
    run("test", f"--ckpt_path={checkpoint}", "--ensemble=2")
    assert len(list((tmp_path / "runs" / "wandb").glob("offline-run-*"))) == 3  # one each


def test_a_wandb_run_records_how_it_ran_for_mtl_report(in_tmp):
    """Epochs, fit time and the ensemble's real size reach the W&B run's config, so a report of
    W&B runs alone names the ensemble by what it averaged (2: the fit trained 3 epochs and kept
    2) and does not take them for settings."""
    from mtl.experiments.report.runs import find_runs
    from mtl.experiments.report.table import evaluated_model

    args = [*tiny_fit_args(), *WANDB, "--trainer.max_epochs=3", "--ensemble=2"]
    cli = run_cli([*args, "--test_after_fit=true"])
    wandb_dir = Path(cli.trainer.loggers[1].experiment.dir).parent
    wandb.finish()
    (run,) = find_runs([str(wandb_run_file(wandb_dir))])
    assert run.how["epochs"] == 3 and run.how["ensemble_members"] == 2
    assert run.how["fit_seconds"] > 0 and run.how["ran"]["precision"] == str(cli.trainer.precision)
    assert not {"epochs", "fit_seconds", "ensemble_members", "ran"} & run.config.keys()
    assert evaluated_model(run, "ensemble") == "ensemble of 2"  # (the --ensemble fallback agrees)
