"""``mtl cv``: every fold fitted and tested in its own process, the table at the end; a repeated
command leaves finished folds alone; ``--test_after_fit`` and the ensemble in one fit."""

from __future__ import annotations

import csv
import json
import subprocess
from pathlib import Path

import pytest
import torch

from mtl.cli import main, run_cli

from .conftest import tiny_fit_args


def test_fit_then_test_in_one_run_with_the_checkpoint_ensemble(in_tmp):
    args = ["--trainer.max_epochs=3", "--ensemble=2", "--test_after_fit=true"]
    cli = run_cli([*tiny_fit_args(), *args])
    run = in_tmp / "runs" / "mtl" / "version_0"
    members = sorted(p.name for p in (run / "checkpoints" / "ensemble").iterdir())
    assert members == ["epoch001.pt", "epoch002.pt"]  # the last two epochs only
    assert set(torch.load(run / "checkpoints" / "ensemble" / members[0], weights_only=True)) == {
        "epoch",
        "net",
    }
    record = json.loads((run / "run.json").read_text())
    assert record["identity"]["task_set"] == "smile+emotion+gender+age"
    assert {"test/s_smile/smile/acc", "test_ens/s_smile/smile/acc", "test/smile/acc"} <= set(
        record["test"]
    )
    assert "val/smile/acc" in record["val"]
    assert record["epochs"] == 3 and record["fit_seconds"] > 0  # how it ran, for mtl report
    assert record["ensemble_members"] == 2  # what test_ens averaged, for mtl report's rows
    assert record["ran"]["precision"] == str(cli.trainer.precision) and record["ran"]["hardware"]
    assert record["ran"]["devices"] == 1 and record["ran"]["threads"] >= 1
    rows = list(csv.DictReader((run / "test" / "results.csv").open()))
    assert {(r["model"], r["source"], r["task"]) for r in rows} >= {
        ("final", "s_emotion", "emotion"),
        ("ensemble", "s_gender_age", "age"),
    }
    assert (run / "test" / "confusion" / "s_gender_age-age.png").is_file()
    assert (run / "test" / "confusion" / "all-emotion.csv").is_file()
    header = (run / "metrics.csv").read_text().splitlines()[0]
    assert "test_ens/smile/acc" in header and "val/smile/acc" in header  # one history
    assert cli.trainer.state.fn == "test"

    # `mtl test` of a checkpoint finds the ensemble beside it.
    last = run / "checkpoints" / "last.ckpt"
    tested = run_cli(["test", "--config", str(run / "config.yaml"), f"--ckpt_path={last}",
                      "--ensemble=5"])  # fmt: skip
    assert "test_ens/smile/acc" in tested.trainer.callback_metrics
    retested = json.loads((Path(tested.trainer.log_dir) / "run.json").read_text())
    assert retested["ensemble_members"] == 2  # asked for 5; the fit kept 2


def test_cv_runs_every_fold_then_reports_and_skips_finished_folds(in_tmp, monkeypatch, capsys):
    args = tiny_fit_args(train=48, val=16, test=16)[1:]  # without "fit"
    out = in_tmp / "cv"
    main(["cv", "--folds", "2", "--out", str(out), *args])
    for fold in (0, 1):
        record = json.loads((out / f"fold{fold}" / "logs" / "run.json").read_text())
        assert record["identity"]["fold"] == fold and record["test"]
    report = (out / "report.md").read_text()
    assert "(2) |" in report  # mean ± std over two folds
    assert (out / "bars.png").is_file() and (out / "report.csv").is_file()

    def no_rerun(*a, **k):
        raise AssertionError(f"a finished fold ran again: {a}")

    monkeypatch.setattr(subprocess, "run", no_rerun)
    main(["cv", "--folds", "2", "--out", str(out), *args])
    assert "done earlier" in capsys.readouterr().err

    ran = []  # another command line (2 epochs): the folds are not "done", they run again
    monkeypatch.setattr(subprocess, "run", lambda argv, env: ran.append(argv) or FakeDone())
    main(["cv", "--folds", "2", "--out", str(out), *args, "--trainer.max_epochs=2"])
    folds = [next(x for x in argv if x.startswith("--data.val_fold")) for argv in ran]
    assert folds == ["--data.val_fold=0", "--data.val_fold=1"]
    assert all("--trainer.max_epochs=2" in argv for argv in ran)


class FakeDone:
    returncode = 0


def test_cv_reports_a_failing_fold_and_exits_non_zero(in_tmp, monkeypatch, capsys):
    class Failed:
        returncode = 2

    monkeypatch.setattr(subprocess, "run", lambda argv, env: Failed())
    with pytest.raises(SystemExit) as exit_info:
        main(["cv", "--folds", "2", "--fold", "1", "--out", "cv", *tiny_fit_args()[1:]])
    assert exit_info.value.code == 1
    assert "fold 1 failed (exit status 2)" in capsys.readouterr().err
