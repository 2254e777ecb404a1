"""``mtl report`` over fake finished runs: local run folders and W&B offline runs."""

from __future__ import annotations

import csv
import json
import shutil
import statistics
import zlib
from pathlib import Path

import pytest
import yaml

from mtl.cli import main
from mtl.experiments.report.cells import format_paired
from mtl.experiments.report.comparison import delta_m, deltas, loose_keys, paired_deltas
from mtl.experiments.report.figures import legend_label
from mtl.experiments.report.runs import find_runs
from mtl.experiments.report.table import Column, Experiment, experiments
from mtl.experiments.report.wandb_file import (
    BLOCK,
    CHUNK,
    FIRST,
    FULL,
    HEADER,
    LAST,
    MIDDLE,
    Damage,
    read_wandb_file,
    records,
)

from .conftest import wandb_run_file

SMILE, PUBLIC, PRIVATE = "genki4k/smile", "fer2013_public/emotion", "fer2013_private/emotion"


def identity(tasks: list[str], fold: int) -> dict:
    return {"tasks": tasks, "backbone": "BKNet", "weighting": "FixedWeighting", "fold": fold,
            "loss": "cross_entropy", "seed": 0, "task_set": "+".join(tasks),
            "job_type": "multi-task" if len(tasks) > 1 else "single-task"}  # fmt: skip


def metrics(prefix: str, values: dict[str, float]) -> dict[str, float]:
    return {f"{prefix}/{key}/acc": value for key, value in values.items()}


def local_run(folder: Path, tasks: list[str], fold: int, test: dict, ens: dict | None = None,
              wandb_id: str | None = None, how: dict | None = None) -> None:  # fmt: skip
    folder.mkdir(parents=True)
    record = {"identity": identity(tasks, fold), "test": metrics("test", test)} | (how or {})
    record["test"] |= metrics("test_ens", ens or {})
    record["run_ids"] = {"csv": folder.name} | ({"wandb": wandb_id} if wandb_id else {})
    (folder / "run.json").write_text(json.dumps(record))
    with (folder / "metrics.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["epoch", "step", f"val/{tasks[0]}/acc"])
        writer.writerows([[0, 10, 0.5], [1, 20, 0.7]])


def wandb_offline_run(
    folder: Path,
    tasks: list[str],
    fold: int,
    test: dict,
    run_id: str,
    ran: dict | None = None,
    seed_everything: int | None = None,
) -> None:
    import wandb

    config = {"mtl": identity(tasks, fold)} | ({"ran": ran} if ran else {})
    config |= {} if seed_everything is None else {"seed_everything": seed_everything}
    run = wandb.init(project="p", dir=folder, mode="offline", id=run_id, config=config)
    for epoch, value in ((0, 0.55), (1, 0.75)):
        run.log({f"val/{tasks[0]}/acc": value, "epoch": epoch})
    run.log(metrics("test", test))
    run.finish()
    wandb_run_file(folder)  # written to its end


@pytest.fixture(scope="module")
def runs_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("runs")
    local_run(root / "st-smile" / "f0", ["smile"], 0, {SMILE: 0.90})
    local_run(root / "st-smile" / "f1", ["smile"], 1, {SMILE: 0.92})
    local_run(root / "st-emotion" / "f0", ["emotion"], 0, {PUBLIC: 0.60, PRIVATE: 0.62})
    local_run(root / "st-emotion" / "f1", ["emotion"], 1, {PUBLIC: 0.64, PRIVATE: 0.62})
    mt = {SMILE: 0.94, PUBLIC: 0.61, PRIVATE: 0.63}
    local_run(root / "mt" / "f0", ["smile", "emotion"], 0, mt, {SMILE: 0.95}, wandb_id="mtfold0")
    # The same run's W&B copy (logged to CSV and W&B at once): counted once.
    wandb_offline_run(root / "mt" / "f0", ["smile", "emotion"], 0, mt, "mtfold0")
    # Fold 1 logged to W&B only.
    mt1 = {SMILE: 0.96, PUBLIC: 0.65, PRIVATE: 0.65}
    ran = {"precision": "bf16-mixed", "data_path": "in memory", "hardware": "Intel Xeon"}
    wandb_offline_run(root / "mt" / "f1", ["smile", "emotion"], 1, mt1, "mtfold1", ran)
    return root


def test_an_offline_wandb_run_file_is_read_without_a_server(runs_dir):
    (path,) = (runs_dir / "mt" / "f1").rglob("run-mtfold1.wandb")
    content = read_wandb_file(path)
    assert content.run_id == "mtfold1"
    assert content.config["mtl"]["task_set"] == "smile+emotion"
    assert content.summary["test/genki4k/smile/acc"] == 0.96
    assert [row["val/smile/acc"] for row in content.history if "val/smile/acc" in row] == [
        0.55,
        0.75,
    ]


def test_runs_are_found_once_each(runs_dir):
    runs = find_runs([str(runs_dir)])
    assert len(runs) == 6  # 4 single-task, 2 multi-task (one of them only in W&B)
    assert sorted(r.identity["fold"] for r in runs if len(r.tasks) == 2) == [0, 1]


def test_how_a_wandb_run_ran_is_read_from_its_config_not_taken_for_a_setting(runs_dir):
    (run,) = [r for r in find_runs([str(runs_dir)]) if r.wandb_id == "mtfold1"]
    assert run.how["ran"]["data_path"] == "in memory" and run.how["ran"]["hardware"] == "Intel Xeon"
    assert "ran" not in run.config  # not a config key that would split the experiment


def test_table_cells_deltas_and_delta_m(runs_dir):
    found = experiments(find_runs([str(runs_dir)]))
    labels = [e.label for e in found]
    assert labels == [
        "single-task emotion",
        "single-task smile",
        "multi-task smile+emotion",
        "multi-task smile+emotion · + ensemble",
    ]
    st_emotion, st_smile, mt, ens = found
    smile = Column("smile", "genki4k", "acc")
    public = Column("emotion", "fer2013_public", "acc")
    private = Column("emotion", "fer2013_private", "acc")
    stats = mt.stats()
    assert stats[smile].mean == pytest.approx(0.95) and stats[smile].n == 2
    assert stats[smile].std == pytest.approx(statistics.stdev([0.94, 0.96]))
    diff = deltas(mt, found)
    assert diff[smile] == pytest.approx(0.04)
    assert diff[public] == pytest.approx(0.01) and diff[private] == pytest.approx(0.02)
    # per task first (emotion: its two FER test sets), then over the tasks
    expected = 100 * statistics.fmean([0.04 / 0.91, (0.01 / 0.62 + 0.02 / 0.62) / 2])
    assert delta_m(mt, found) == pytest.approx(expected)
    assert ens.stats()[smile].n == 1 and deltas(ens, found) == {}  # no single-task ensemble
    assert deltas(st_smile, found) == {} and delta_m(st_emotion, found) is None


def test_report_command_writes_markdown_csv_and_plots(runs_dir, tmp_path, capsys):
    out = tmp_path / "report"
    main(["report", str(runs_dir), "--out", str(out), "--references", "true"])
    text = (out / "report.md").read_text()
    # columns: emotion on FER private, on FER public, smile on GENKI-4K
    row = "| multi-task smile+emotion | 64.00 ± 1.41 (2) | 63.00 ± 2.83 (2) | 95.00 ± 1.41 (2) |"
    assert row in text
    # Δ vs single-task, paired by fold: FER private 1 and 3 points (t with 1 degree of freedom:
    # 12.706), public 1 and 1, smile 4 and 4 (no spread: Student's t gives no interval)
    deltas_row = (
        "| +2.00 [-10.71, +14.71] (2), spans 0 | +1.00 (2 pairs, no spread, no interval) "
        "| +4.00 (2 pairs, no spread, no interval) |"
    )
    assert deltas_row in text
    dm = 100 * statistics.fmean([0.04 / 0.91, (0.01 / 0.62 + 0.02 / 0.62) / 2])
    assert f"{dm:+.2f} %" in text
    assert "paper: Sang & Cuong: single-task BKNet + softmax" in text and "95.08 ± 0.29" in text
    rows = list(csv.DictReader((out / "report.csv").open()))
    assert len(rows) == 2 + 1 + 3 + 1  # st emotion (2 columns), st smile, mt (3), ensemble
    assert (out / "bars.png").stat().st_size > 0 and (out / "curves.png").stat().st_size > 0
    assert (out / "deltas.png").stat().st_size > 0
    mt_smile = next(r for r in rows if r["experiment"] == "multi-task smile+emotion"
                    and r["task"] == "smile")  # fmt: skip
    assert float(mt_smile["paired_delta"]) == pytest.approx(0.04) and mt_smile["pairs"] == "2"
    assert mt_smile["single_task_row"] == "single-task smile"
    assert "multi-task smile+emotion" in capsys.readouterr().out


def test_report_writes_into_a_documents_marked_block(runs_dir, tmp_path, capsys):
    from mtl.experiments.report.render import BEGIN, END

    docs = tmp_path / "docs"
    docs.mkdir()
    doc = docs / "results.md"
    doc.write_text(f"# Results\n\nprose before\n\n{BEGIN}\nold table\n{END}\n\nprose after\n")
    argv = ["report", str(runs_dir), "--out", str(docs / "results"), "--into", str(doc)]
    main(argv)
    text = doc.read_text()
    assert text.startswith("# Results\n\nprose before\n\n" + BEGIN)
    assert text.endswith(f"{END}\n\nprose after\n") and "old table" not in text
    assert "| multi-task smile+emotion | 64.00 ± 1.41 (2) |" in text
    assert "![bars](results/bars.png)" in text and "![deltas](results/deltas.png)" in text
    assert "### How each row ran" in text
    main(argv)  # regenerating from the same runs changes nothing
    assert doc.read_text() == text

    for broken in ("# no block\n", f"{BEGIN}\n{END}\n{BEGIN}\n{END}\n", f"{END}\n{BEGIN}\n"):
        doc.write_text(broken)
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        assert exit_info.value.code == 2 and "needs one '<!-- mtl report" in capsys.readouterr().err
        assert doc.read_text() == broken


def test_how_each_row_ran_and_the_baseline_with_the_same_settings(tmp_path):
    from mtl.experiments.report.render import how_rows

    cpu = {"hardware": "AMD EPYC", "devices": 1, "threads": 2, "torch": "2.14.1"}
    bf16 = cpu | {"precision": "bf16-mixed", "data_path": "in memory"}
    fp32 = cpu | {"precision": "32-true"}  # recorded no data path: its config's is read
    for fold, smile in ((0, 0.90), (1, 0.92)):
        how = {"epochs": 60, "fit_seconds": 300.0 + 60 * fold, "ran": bf16}
        local_run(tmp_path / f"st{fold}", ["smile"], fold, {SMILE: smile}, how=how)
        mt = {SMILE: smile + 0.02, PUBLIC: 0.6}
        local_run(tmp_path / f"mt{fold}", ["smile", "emotion"], fold, mt, how=how)
    fp32_how = {"epochs": 60, "fit_seconds": 600.0, "ran": fp32}
    local_run(tmp_path / "st-fp32", ["smile"], 0, {SMILE: 0.50}, how=fp32_how)  # parity run
    for name, precision in (("st0", "bf16-mixed"), ("st1", "bf16-mixed"), ("mt0", "bf16-mixed"),
                            ("mt1", "bf16-mixed"), ("st-fp32", "32-true")):  # fmt: skip
        data = {"init_args": {"device_data": False}}
        config = {"trainer": {"precision": precision}, "data": data}
        (tmp_path / name / "config.yaml").write_text(yaml.safe_dump(config))
    found = experiments(find_runs([str(tmp_path)]))
    labels = [e.label for e in found]
    assert labels == [
        "single-task smile · trainer.precision=32-true",
        "single-task smile · trainer.precision=bf16-mixed",
        "multi-task smile+emotion",
    ]
    smile = Column("smile", "genki4k", "acc")
    # the baseline is the single-task row with the multi-task row's precision, not the fp32 one
    assert deltas(found[2], found) == {smile: pytest.approx(0.02)}
    rows = how_rows(found)
    assert rows[1] == [
        labels[1], "2", "bf16-mixed", "in memory", "60", "5.5 min (× 2)", "AMD EPYC, 2 threads"
    ]  # fmt: skip
    assert rows[0][2:6] == ["32-true", "DataLoader", "60", "10.0 min"]


def test_report_without_runs_says_so(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["report", str(tmp_path)])
    assert exit_info.value.code == 2 and "no finished runs" in capsys.readouterr().err


def test_a_wandb_project_is_read_through_the_public_api(monkeypatch):
    import wandb

    class FakeRun:
        def __init__(self, run_id: str, tasks: list[str], smile: float) -> None:
            self.id, self.name = run_id, f"run-{run_id}"
            self.config = {"mtl": identity(tasks, 0)}
            self.summary = {"test/genki4k/smile/acc": smile, "val/smile/acc": smile, "_step": 9}

        def scan_history(self):
            yield from ({"epoch": e, "val/smile/acc": 0.5 + e / 10} for e in range(2))

    class FakeApi:
        def runs(self, path: str, filters: dict):
            assert path == "me/mtl" and filters == {"state": "finished"}
            return [FakeRun("a", ["smile"], 0.9), FakeRun("b", ["smile", "gender"], 0.93)]

    monkeypatch.setattr(wandb, "Api", FakeApi)
    runs = find_runs(["wandb:me/mtl"])
    assert [r.origin for r in runs] == ["wandb:me/mtl/a", "wandb:me/mtl/b"]
    assert runs[0].curves["val/smile/acc"] == [(0.0, 0.5), (1.0, 0.6)]
    single, multi = experiments(runs)
    smile = Column("smile", "genki4k", "acc")
    assert deltas(multi, [single, multi]) == {smile: pytest.approx(0.03)}


def test_a_repeated_fold_counts_once_and_config_differences_split_experiments(tmp_path):
    local_run(tmp_path / "a", ["smile"], 0, {SMILE: 0.90})
    local_run(tmp_path / "a2", ["smile"], 0, {SMILE: 0.80})  # the same fold tested again
    local_run(tmp_path / "b", ["smile"], 1, {SMILE: 0.92})
    local_run(tmp_path / "c", ["smile"], 0, {SMILE: 0.70})  # another config: 5 epochs, no BN
    config = {"model": {"backbone": {"class_path": "mtl.models.backbones.BKNet",
                                     "init_args": {"batch_norm": True}}},
              "trainer": {"max_epochs": 30, "logger": {"save_dir": "a"}},
              "data": {"init_args": {"root": "/x", "val_fold": 0}}}  # fmt: skip
    no_profiler = {"class_path": "mtl.training.profiler.NoProfiler"}  # mtl fit's default now
    fed = (("a", None, False, 1), ("a2", None, True, 5), ("b", no_profiler, None, 10))
    for name, profiler, device_data, every in fed:
        config["trainer"]["profiler"] = profiler  # how a run was profiled is not an experiment
        config["trainer"]["check_val_every_n_epoch"] = every  # nor how often it was validated
        config["data"]["init_args"]["device_data"] = device_data  # nor where its data was made
        (tmp_path / name / "config.yaml").write_text(yaml.safe_dump(config))
    config["model"]["backbone"]["init_args"]["batch_norm"] = False
    config["trainer"] |= {
        "max_epochs": 5,
        "logger": {"save_dir": "c"},
        "check_val_every_n_epoch": 5,
    }
    config["data"]["init_args"] |= {"root": "/y"}  # paths and loggers are not experiments
    (tmp_path / "c" / "config.yaml").write_text(yaml.safe_dump(config))
    notes: list[str] = []
    found = experiments(find_runs([str(tmp_path)]), notes=notes)
    assert [e.label for e in found] == [
        "single-task smile · model.backbone.batch_norm=False · trainer.max_epochs=5",
        "single-task smile · model.backbone.batch_norm=True · trainer.max_epochs=30",
    ]
    smile = Column("smile", "genki4k", "acc")
    assert found[1].values[smile] == [0.90, 0.92]  # "a2" left out, with a note
    assert len(notes) == 1 and "a2" in notes[0] and "same experiment, fold and seeds" in notes[0]


def test_seed_everything_makes_a_repetition_and_runs_pair_by_their_data_split(tmp_path):
    """Fold 0 (one data seed) under ``seed_everything`` 0, 1 and unseeded: three runs of the
    experiment, a second run of seed 1 left out as a repeated fold is. Pairs are data splits:
    each side's runs of fold 0 averaged, whatever their ``seed_everything``, so a multi-task
    run of seed 5 still pairs (same faces), and an unseeded run is not seed 0's repeat."""
    runs = {  # name: (tasks, seed_everything, smile accuracy)
        "st0": (["smile"], 0, 0.90), "st1": (["smile"], 1, 0.80), "st1again": (["smile"], 1, 0.10),
        "stfree": (["smile"], False, 0.70),
        "mt0": (["smile", "gender"], 0, 0.91), "mt5": (["smile", "gender"], 5, 0.84),
    }  # fmt: skip
    for name, (tasks, seed, value) in runs.items():
        local_run(tmp_path / name, tasks, 0, {SMILE: value})
        (tmp_path / name / "config.yaml").write_text(yaml.safe_dump({"seed_everything": seed}))
    notes: list[str] = []
    single, multi = experiments(find_runs([str(tmp_path)]), notes=notes)
    smile = Column("smile", "genki4k", "acc")
    assert sorted(single.values[smile]) == [0.70, 0.80, 0.90]
    assert sorted(multi.values[smile]) == [0.84, 0.91]
    assert len(notes) == 1 and "st1again" in notes[0]
    paired = paired_deltas(multi, [single, multi])[smile]
    assert paired.n == 1 and paired.mean == pytest.approx((0.91 + 0.84) / 2 - 0.80)


def test_a_wandb_run_s_seed_everything_makes_a_repetition(tmp_path):
    """A W&B run's config (the resolved one ``mtl fit`` sends) carries ``seed_everything`` too:
    two runs of fold 0 that differ in it both count."""
    for seed, value in ((0, 0.90), (1, 0.80)):
        folder = tmp_path / f"seed{seed}"
        wandb_offline_run(folder, ["smile"], 0, {SMILE: value}, f"s{seed}", seed_everything=seed)
    notes: list[str] = []
    (single,) = experiments(find_runs([str(tmp_path)], notes), notes=notes)
    assert sorted(single.values[Column("smile", "genki4k", "acc")]) == [0.80, 0.90] and not notes


def test_a_run_saved_before_an_option_existed_reads_as_its_default(tmp_path):
    """``model.test_time_flip`` (``mtl.training.settings.ADDED_OPTIONS``): a config without it
    groups with ``false`` and apart from ``true``; the layout a test resolves
    (``channels_last``) splits nothing."""
    flips = {"old": None, "new": False, "flipped": True}
    for fold, (name, flip) in enumerate(flips.items()):
        local_run(tmp_path / name, ["smile"], fold, {SMILE: 0.9})
        model = {"init_std": None} | ({} if flip is None else {"test_time_flip": flip})
        model["channels_last"] = None if name == "old" else True  # a fit's null, a test's True
        (tmp_path / name / "config.yaml").write_text(yaml.safe_dump({"model": model}))
    found = experiments(find_runs([str(tmp_path)]))
    labels = {e.label: len(e.values[Column("smile", "genki4k", "acc")]) for e in found}
    assert labels == {
        "single-task smile · model.test_time_flip=False": 2,  # "old" and "new"
        "single-task smile · model.test_time_flip=True": 1,
    }


def hand_experiment(task_set: str, by_run: dict[Column, dict[tuple, float]]) -> Experiment:
    fields = {"task_set": task_set, "backbone": "B", "weighting": "W", "loss": "L"}
    values = {c: list(v.values()) for c, v in by_run.items()}
    return Experiment(fields | {"model": "final"}, values=values, by_run=by_run)


SMILE_COLUMN = Column("smile", "genki4k", "acc")


@pytest.mark.parametrize(
    ("multi", "single", "mean", "low", "high", "spans"),
    [
        # differences 0.04, 0.01, 0.05, 0.01: mean 0.0275, sample sd 0.020616, se 0.010308,
        # t(0.975, 3) = 3.182446 (a t table): half-width 0.032804
        ([0.90, 0.85, 0.95, 0.88], [0.86, 0.84, 0.90, 0.87], 0.0275, -0.005304, 0.060304, True),
        # differences 0.04, 0.03, 0.05, 0.04: mean 0.04, sd 0.0081650, se 0.0040825: +-0.012992
        ([0.90, 0.85, 0.95, 0.88], [0.86, 0.82, 0.90, 0.84], 0.04, 0.027008, 0.052992, False),
    ],
)
def test_paired_difference_matches_a_hand_computation(multi, single, mean, low, high, spans):
    st = hand_experiment("smile", {SMILE_COLUMN: {(f, 0): v for f, v in enumerate(single)}})
    mt = hand_experiment("smile+gender", {SMILE_COLUMN: {(f, 0): v for f, v in enumerate(multi)}})
    paired = paired_deltas(mt, [st, mt])[SMILE_COLUMN]
    assert paired.n == 4 and paired.mean == pytest.approx(mean)
    assert (paired.low, paired.high) == (
        pytest.approx(low, abs=1e-6),
        pytest.approx(high, abs=1e-6),
    )
    assert paired.spans_zero is spans
    assert format_paired(paired, "acc").endswith(", spans 0") is spans


def test_runs_pair_by_fold_and_seed_only():
    # single-task ran folds 0-2 with seed 0 and fold 3 with seed 1; multi-task folds 0-3, seed 0
    st = hand_experiment("smile", {SMILE_COLUMN: {(0, 0): 0.80, (1, 0): 0.90, (2, 0): 0.70,
                                                  (3, 1): 0.10}})  # fmt: skip
    mt = hand_experiment("smile+gender", {SMILE_COLUMN: {(0, 0): 0.82, (1, 0): 0.93,
                                                         (2, 0): 0.71, (3, 0): 0.99}})  # fmt: skip
    paired = paired_deltas(mt, [st, mt])[SMILE_COLUMN]
    assert paired.n == 3 and paired.mean == pytest.approx((0.02 + 0.03 + 0.01) / 3)
    one = hand_experiment("smile+gender", {SMILE_COLUMN: {(0, 0): 0.85}})
    lone = paired_deltas(one, [st, one])[SMILE_COLUMN]
    assert lone.n == 1 and not lone.has_interval and lone.spans_zero
    assert format_paired(lone, "acc") == "+5.00 (1 pair, no interval)"
    nan = float("nan")  # a run that logged NaN: that pair is left out, not the column
    with_nan = hand_experiment("smile+gender", {SMILE_COLUMN: {(0, 0): 0.82, (1, 0): nan,
                                                               (2, 0): 0.75}})  # fmt: skip
    paired = paired_deltas(with_nan, [st, with_nan])[SMILE_COLUMN]
    assert paired.n == 2 and paired.mean == pytest.approx((0.02 + 0.05) / 2)
    other_seed = hand_experiment("smile+gender", {SMILE_COLUMN: {(0, 7): 0.85}})
    assert paired_deltas(other_seed, [st, other_seed]) == {}  # nothing in common: unpaired


def test_delta_m_flips_the_sign_of_lower_is_better_metrics_and_averages_within_a_task():
    def experiment(task_set: str, values: dict[Column, list[float]]) -> Experiment:
        fields = {"task_set": task_set, "backbone": "B", "weighting": "W", "loss": "L"}
        return Experiment(fields | {"model": "final"}, values=values)

    mae = Column("age_years", "utkface", "mae")
    acc_a, acc_b = Column("smile", "genki4k", "acc"), Column("smile", "celeba", "acc")
    single_age = experiment("age_years", {mae: [10.0]})
    single_smile = experiment("smile", {acc_a: [0.80], acc_b: [0.50]})
    multi = experiment("smile+age_years", {mae: [8.0], acc_a: [0.88], acc_b: [0.50]})
    found = [single_age, single_smile, multi]
    # age: MAE 10 -> 8 is a 20 % gain; smile: (+10 % on genki4k, 0 % on celeba) / 2 = 5 %
    assert delta_m(multi, found) == pytest.approx(100 * (0.20 + 0.05) / 2)


def test_a_truncated_or_unfinished_wandb_file_is_skipped_with_a_note(runs_dir, tmp_path):
    (path,) = (runs_dir / "mt" / "f1").rglob("run-mtfold1.wandb")
    cut = tmp_path / "offline-run-x" / "run-cut.wandb"
    cut.parent.mkdir()
    cut.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
    content = read_wandb_file(cut)  # the records before the cut
    assert content.run_id == "mtfold1" and not content.finished
    notes: list[str] = []
    assert find_runs([str(tmp_path)], notes) == []
    assert len(notes) == 1 and "has not finished" in notes[0]
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "run.json").write_text("{not json")
    notes.clear()
    assert find_runs([str(tmp_path)], notes) == [] and len(notes) == 2


# --- W&B run files are checked record by record ---------------------------------------------


def frame(payloads: list[bytes]) -> tuple[bytes, list[int]]:
    """A datastore file holding ``payloads`` as records, framed by hand from LevelDB's log format
    with W&B's checksum (CRC-32 of the chunk type byte, then the data); with each record's
    offset."""
    out, offsets = bytearray(HEADER.pack(b":W&B", 0xBEE1, 0)), []
    for payload in payloads:
        offsets.append(len(out))
        rest, first = payload, True
        while True:
            room = BLOCK - len(out) % BLOCK
            if room < CHUNK.size:  # trailer
                out += bytes(room)
                continue
            piece, rest = rest[: room - CHUNK.size], rest[room - CHUNK.size :]
            kind = (FULL if not rest else FIRST) if first else (LAST if not rest else MIDDLE)
            out += CHUNK.pack(zlib.crc32(bytes([kind]) + piece), len(piece), kind) + piece
            first = False
            if not rest:
                break
    return bytes(out), offsets


def test_every_record_is_checked_and_a_damaged_one_is_left_out_alone():
    payloads = [bytes([i]) * n for i, n in enumerate([100, 40_000, 100, 100, 70_000, 100], 1)]
    data, offsets = frame(payloads)
    assert list(records(data)) == payloads  # FULL records and FIRST/MIDDLE/LAST ones
    for index, at in ((0, 20), (1, 33_000), (4, 69_000)):  # a data byte of records 0, 1 (its
        bad = bytearray(data)  # second chunk) and 4 (its third chunk)
        bad[offsets[index] + at] ^= 0x01
        damaged: list[Damage] = []
        assert list(records(bytes(bad), damaged)) == payloads[:index] + payloads[index + 1 :]
        assert [(d.offset, d.after, d.reason) for d in damaged] == [
            (offsets[index], index, "checksum mismatch")
        ]


def test_a_damaged_length_loses_the_rest_of_its_block_only():
    payloads = [bytes([i]) * 5000 for i in range(1, 15)]  # about 2 blocks
    data, offsets = frame(payloads)
    bad = bytearray(data)
    bad[offsets[1] + 4] ^= 0x40  # record 1's length field
    damaged: list[Damage] = []
    got = list(records(bytes(bad), damaged))
    assert got[0] == payloads[0] and set(got) < set(payloads)  # only intact records come out
    assert payloads[-1] in got  # the next block is read again
    (damage,) = damaged
    assert damage.offset == offsets[1] and damage.after == 1
    assert damage.skipped == BLOCK - offsets[1]  # to the end of the first block
    # a length pointing past the end of the file is damage too, not a file cut short
    bad = bytearray(data)
    bad[offsets[1] + 5] ^= 0x80  # the length's high byte
    damaged.clear()
    got = list(records(bytes(bad), damaged))
    assert payloads[-1] in got and [d.offset for d in damaged] == [offsets[1]]


def test_a_damaged_length_landing_on_zero_bytes_is_not_taken_for_padding():
    payloads = [b"\x01" * 50 + bytes(40) + b"\x01" * 50, b"\x02" * 100]
    data, offsets = frame(payloads)
    bad = bytearray(data)
    bad[offsets[0] + 4] = 60  # length 140 -> 60: just past it are zeros inside its own data
    damaged: list[Damage] = []
    assert list(records(bytes(bad), damaged)) == []  # nothing made up from the zeros
    assert [(d.offset, d.reason) for d in damaged] == [(offsets[0], "checksum mismatch")]


def test_a_flipped_byte_in_a_wandb_file_is_reported_and_its_value_absent(runs_dir, tmp_path,
                                                                         capsys):  # fmt: skip
    copy = tmp_path / "runs"
    shutil.copytree(runs_dir, copy, symlinks=True)
    (path,) = (copy / "mt" / "f1").rglob("run-mtfold1.wandb")
    data = bytearray(path.read_bytes())
    at = summary_record_with(data, b"test/genki4k/smile/acc")
    value = data.index(b"0.96", at)
    data[value + 2] = ord("8")  # 0.96 -> 0.86: without the checksum, a wrong number
    path.write_bytes(bytes(data))

    content = read_wandb_file(path)
    assert "test/genki4k/smile/acc" not in content.summary  # absent, not 0.86
    assert content.finished and len(content.history) == 3  # the other records are read
    assert [d.offset for d in content.damaged] == [at]

    out = tmp_path / "report"
    main(["report", str(copy), "--out", str(out)])
    printed = capsys.readouterr().out.replace("\n", "")
    assert f"damaged record at byte {at:,}" in printed and "run-mtfold1.wandb" in printed
    text = (out / "report.md").read_text()
    assert f"damaged record at byte {at:,}" in text
    # multi-task smile: fold 0 only (94 %); the damaged fold-1 record gave nothing
    row = next(line for line in text.splitlines() if line.startswith("| multi-task smile+emo"))
    assert "| 94.00 (1) |" in row and "0.86" not in text and "86.00" not in text


def summary_record_with(data: bytes, key: bytes) -> int:
    """Offset of the (one-chunk) summary record of a run file that holds ``key``."""
    from wandb.proto import wandb_internal_pb2 as pb

    pos = HEADER.size
    while pos + CHUNK.size <= len(data):
        _, length, kind = CHUNK.unpack_from(data, pos)
        payload = bytes(data[pos + CHUNK.size : pos + CHUNK.size + length])
        record = pb.Record()
        if kind == FULL and key in payload:
            record.ParseFromString(payload)
            if record.WhichOneof("record_type") == "summary":
                return pos
        pos += CHUNK.size + length
    raise AssertionError(f"no summary record holds {key!r}")


def test_a_key_a_run_lacks_is_its_default_none_and_a_class_shows_its_arguments(tmp_path):
    """An option added after a run was made (absent there, ``None`` in later configs) splits
    nothing; a scheduler class that differs is named with its own arguments only; the
    multi-task row still finds its baseline among single-task rows that differ so."""
    cosine = {"class_path": "torch.optim.lr_scheduler.CosineAnnealingLR",
              "init_args": {"T_max": 30, "eta_min": 0.0}}  # fmt: skip
    decay = {"class_path": "mtl.training.optim.ExponentialDecay",
             "init_args": {"decay_steps": 10000, "rate": 0.8}}  # fmt: skip
    runs = {  # name: (tasks, fold, smile, lr_scheduler, compile_mode given, max_epochs)
        "old0": (["smile"], 0, 0.90, cosine, False, 30),  # before compile_mode existed
        "old1": (["smile"], 1, 0.92, cosine, True, 30),  # and old1 (compile_mode None): one row
        "new0": (["smile"], 0, 0.93, decay, True, 250),
        "mt0": (["smile", "emotion"], 0, 0.95, cosine, True, 30),
        "mt1": (["smile", "emotion"], 1, 0.94, cosine, True, 30),
    }
    for name, (tasks, fold, smile, scheduler, with_mode, epochs) in runs.items():
        local_run(tmp_path / name, tasks, fold, {SMILE: smile})
        model = {"lr_scheduler": scheduler} | ({"compile_mode": None} if with_mode else {})
        config = {"model": model, "trainer": {"max_epochs": epochs}}
        (tmp_path / name / "config.yaml").write_text(yaml.safe_dump(config))
    found = experiments(find_runs([str(tmp_path)]))
    assert [e.label for e in found] == [
        "single-task smile · model.lr_scheduler=CosineAnnealingLR(T_max=30, eta_min=0.0) · "
        "trainer.max_epochs=30",
        "single-task smile · model.lr_scheduler=ExponentialDecay(decay_steps=10000, rate=0.8) · "
        "trainer.max_epochs=250",
        "multi-task smile+emotion",
    ]
    assert len(found[0].values[Column("smile", "genki4k", "acc")]) == 2  # old0 (no compile_mode)
    paired = paired_deltas(found[2], found)
    assert paired[Column("smile", "genki4k", "acc")].n == 2  # against the cosine row


def test_a_row_whose_schedule_was_chosen_for_its_task_set_pairs_where_asked_and_says_so(
    tmp_path, capsys
):
    """Multi-task trained 60 epochs, single-task 30 (each length chosen on validation): no
    single-task row shares every key, so by default there is no Δ; with ``--baseline_ignoring``
    the multi-task row pairs with the 30-epoch row that shares every other key (batch 64; not
    the 250-epoch row of batch 128), the other task keeps its exact match, and the pairing is
    listed."""

    def scheduler(t_max: int) -> dict:
        return {"class_path": "torch.optim.lr_scheduler.CosineAnnealingLR",
                "init_args": {"T_max": t_max, "eta_min": 0.0}}  # fmt: skip

    runs = {  # name: (tasks, fold, values, epochs, batch size)
        "st30_0": (["smile"], 0, {SMILE: 0.90}, 30, 64),
        "st30_1": (["smile"], 1, {SMILE: 0.92}, 30, 64),
        "st250_b128": (["smile"], 0, {SMILE: 0.50}, 250, 128),
        "em30": (["emotion"], 0, {PUBLIC: 0.60}, 30, 64),
        "em60": (["emotion"], 0, {PUBLIC: 0.66}, 60, 64),
        "mt60_0": (["smile", "emotion"], 0, {SMILE: 0.95, PUBLIC: 0.58}, 60, 64),
        "mt60_1": (["smile", "emotion"], 1, {SMILE: 0.93, PUBLIC: 0.57}, 60, 64),
    }
    for name, (tasks, fold, values, epochs, batch) in runs.items():
        local_run(tmp_path / name, tasks, fold, values)
        config = {"model": {"lr_scheduler": scheduler(epochs)},
                  "trainer": {"max_epochs": epochs}, "data": {"batch_size": batch}}  # fmt: skip
        (tmp_path / name / "config.yaml").write_text(yaml.safe_dump(config))
    smile, public = Column("smile", "genki4k", "acc"), Column("emotion", "fer2013_public", "acc")
    found = experiments(find_runs([str(tmp_path)]))
    multi = found[-1]
    assert deltas(multi, found) == {public: pytest.approx(0.575 - 0.66)}  # smile: none shares 60

    ignoring = ["trainer.max_epochs", "model.lr_scheduler"]
    found = experiments(find_runs([str(tmp_path)]), baseline_ignoring=ignoring)
    multi = found[-1]
    paired = paired_deltas(multi, found)[smile]
    assert (paired.n, paired.mean) == (2, pytest.approx((0.05 + 0.01) / 2))  # the batch-64 row
    assert deltas(multi, found)[public] == pytest.approx(0.575 - 0.66)  # still the 60-epoch row
    assert loose_keys(multi, "smile", found) == ["model.lr_scheduler.T_max", "trainer.max_epochs"]
    assert loose_keys(multi, "emotion", found) == []

    out = tmp_path / "report"
    main(["report", str(tmp_path), "--out", str(out),
          "--baseline_ignoring", "[trainer.max_epochs, model.lr_scheduler]"])  # fmt: skip
    text = (out / "report.md").read_text()
    assert "‡ Δ taken against a single-task row that differs in config keys" in text
    assert ("smile Δ taken against single-task smile · data.batch_size=64 · "
            "model.lr_scheduler.T_max=30 · trainer.max_epochs=30 (model.lr_scheduler.T_max: "
            "multi-task 60, single-task 30; trainer.max_epochs: multi-task 60, single-task 30)"
            ) in text  # fmt: skip
    assert "emotion Δ taken against" not in text
    assert "(2), spans 0 ‡ |" in text or "(2) ‡ |" in text  # the smile cell says it, not emotion's


def test_a_single_task_row_of_one_length_pairs_only_with_the_multi_task_row_of_that_length(
    tmp_path, capsys
):
    """A single-task row run at 30 epochs only varies no key of its kind; the multi-task rows
    of 30 and 60 epochs do. The 30-epoch one pairs with it exactly, the 60-epoch one not at all
    by default, and with ``--baseline_ignoring`` loosely, marked and listed as such."""
    gender = "utkface/gender"
    runs = {  # name: (tasks, fold, values, epochs)
        "st30_0": (["gender"], 0, {gender: 0.88}, 30),
        "st30_1": (["gender"], 1, {gender: 0.90}, 30),
        "mt30_0": (["smile", "gender"], 0, {SMILE: 0.9, gender: 0.89}, 30),
        "mt30_1": (["smile", "gender"], 1, {SMILE: 0.9, gender: 0.92}, 30),
        "mt60_0": (["smile", "gender"], 0, {SMILE: 0.9, gender: 0.90}, 60),
        "mt60_1": (["smile", "gender"], 1, {SMILE: 0.9, gender: 0.93}, 60),
    }
    for name, (tasks, fold, values, epochs) in runs.items():
        local_run(tmp_path / name, tasks, fold, values)
        config = {"trainer": {"max_epochs": epochs}}
        (tmp_path / name / "config.yaml").write_text(yaml.safe_dump(config))
    column = Column("gender", "utkface", "acc")
    found = experiments(find_runs([str(tmp_path)]))
    labels = [e.label for e in found]
    assert labels == ["single-task gender", "multi-task smile+gender · trainer.max_epochs=30",
                      "multi-task smile+gender · trainer.max_epochs=60"]  # fmt: skip
    mt30, mt60 = found[1], found[2]
    assert paired_deltas(mt30, found)[column].mean == pytest.approx(0.015)
    assert deltas(mt60, found) == {}  # not silently against the 30-epoch row
    found = experiments(find_runs([str(tmp_path)]), baseline_ignoring=["trainer.max_epochs"])
    mt30, mt60 = found[1], found[2]
    assert loose_keys(mt30, "gender", found) == []
    assert loose_keys(mt60, "gender", found) == ["trainer.max_epochs"]
    assert paired_deltas(mt60, found)[column].mean == pytest.approx(0.025)

    out = tmp_path / "report"
    main(
        ["report", str(tmp_path), "--out", str(out), "--baseline_ignoring", "[trainer.max_epochs]"]
    )
    text = (out / "report.md").read_text()
    assert ("multi-task smile+gender · trainer.max_epochs=60: gender Δ taken against single-task "
            "gender (trainer.max_epochs: multi-task 60, single-task 30)") in text  # fmt: skip
    assert "trainer.max_epochs=30: gender Δ taken against" not in text


def test_what_only_a_multi_task_row_can_vary_does_not_refuse_its_baseline(tmp_path):
    """Multi-task rows that differ in their weighting's arguments or in the sources' shares
    pair exactly with a single-task row (one task, one source: nothing to weight or share),
    also one saved without a config (nothing to compare)."""
    gender = "utkface/gender"
    runs = {  # name: (tasks, values, config or None)
        "st": (["gender"], {gender: 0.88}, None),
        "mt_a": (["smile", "gender"], {SMILE: 0.9, gender: 0.89},
                 {"model": {"weighting": {"class_path": "mtl.losses.KangWeighting",
                                          "init_args": {"form": "log"}}},
                  "data": {"balance": "equal"}}),
        "mt_b": (["smile", "gender"], {SMILE: 0.9, gender: 0.90},
                 {"model": {"weighting": {"class_path": "mtl.losses.KangWeighting",
                                          "init_args": {"form": "softmax"}}},
                  "data": {"balance": "weights", "weights": [1, 2]}}),
    }  # fmt: skip
    for name, (tasks, values, config) in runs.items():
        local_run(tmp_path / name, tasks, 0, values)
        if config is not None:
            (tmp_path / name / "config.yaml").write_text(yaml.safe_dump(config))
    column = Column("gender", "utkface", "acc")
    found = experiments(find_runs([str(tmp_path)]))
    labels = [e.label for e in found]
    assert "data.balance=equal" in labels[1] and "model.weighting.form=log" in labels[1]
    assert "data.balance=weights" in labels[2] and "model.weighting.form=softmax" in labels[2]
    for multi, diff in zip(found[1:], (0.01, 0.02), strict=True):
        assert deltas(multi, found) == {column: pytest.approx(diff)}
        assert loose_keys(multi, "gender", found) == []
    (tmp_path / "st" / "config.yaml").write_text(yaml.safe_dump({"data": {"balance": "equal"}}))
    found = experiments(find_runs([str(tmp_path)]))  # a single-source run's own balance: moot
    assert deltas(found[2], found) == {column: pytest.approx(0.02)}


def test_how_often_runs_validated_splits_them_only_where_it_changes_what_they_report(tmp_path):
    cases = {  # name: (precise_bn, max_epochs, check_val_every_n_epoch)
        "a": (0, 30, 1), "b": (0, 30, 5),  # neutral: one experiment
        "c": (1024, 30, 1), "d": (1024, 30, 5),  # batch-norm statistics rewritten: two
        "e": (0, 30, 7),  # the last epoch not validated: its own
    }  # fmt: skip
    for fold, (name, (precise_bn, epochs, every)) in enumerate(cases.items()):
        local_run(tmp_path / name, ["smile"], fold, {SMILE: 0.9})
        config = {"model": {"precise_bn": precise_bn},
                  "trainer": {"max_epochs": epochs, "check_val_every_n_epoch": every}}  # fmt: skip
        (tmp_path / name / "config.yaml").write_text(yaml.safe_dump(config))
    found = experiments(find_runs([str(tmp_path)]))
    smile = Column("smile", "genki4k", "acc")
    assert sorted(len(e.values[smile]) for e in found) == [1, 1, 1, 2]
    assert "single-task smile · model.precise_bn=0" in [e.label for e in found]  # a and b


def test_a_key_absent_from_one_run_and_none_in_another_labels_both_alike(tmp_path):
    for fold, value in enumerate(("absent", None, 5)):
        local_run(tmp_path / f"r{fold}", ["smile"], fold, {SMILE: 0.9})
        model = {} if value == "absent" else {"k": value}
        (tmp_path / f"r{fold}" / "config.yaml").write_text(yaml.safe_dump({"model": model}))
    labels = [e.label for e in experiments(find_runs([str(tmp_path)]))]
    assert labels == ["single-task smile · model.k=5", "single-task smile · model.k=None"]


def test_how_the_optimiser_computes_its_update_splits_nothing(tmp_path):
    """Runs made before MomentumSGD's fused default saved ``foreach: true``, later runs
    ``foreach: null, fused: null``: the same update up to rounding, one experiment."""
    sgd = "mtl.training.optim.MomentumSGD"
    saved = ({"foreach": True}, {"foreach": None, "fused": None}, {"fused": False})
    for fold, args in enumerate(saved):
        local_run(tmp_path / f"r{fold}", ["smile"], fold, {SMILE: 0.9})
        optimizer = {"class_path": sgd, "init_args": {"lr": 0.01, **args}}
        config = {"model": {"optimizer": optimizer}}
        (tmp_path / f"r{fold}" / "config.yaml").write_text(yaml.safe_dump(config))
    found = experiments(find_runs([str(tmp_path)]))
    assert [len(e.values[Column("smile", "genki4k", "acc")]) for e in found] == [3]


def test_ensembles_of_different_sizes_are_different_rows_and_pair_by_size(tmp_path):
    """The ensemble's size is not an experiment for the final model (one row of 4 runs) but is
    for the ensemble: 5 and 10 members are two rows, each paired with the single-task ensemble
    of its own size; a fit of 3 epochs kept 3 members whatever it asked for; a size of 0 names
    none; a run.json that says how many members its test averaged is taken at its word."""
    fed = {  # name: (tasks, fold, ensemble, epochs, final, ensemble accuracy)
        "st5": (["smile"], 0, 5, 30, 0.90, 0.91), "st10": (["smile"], 1, 10, 30, 0.90, 0.93),
        "mt5": (["smile", "gender"], 0, 5, 30, 0.92, 0.95),
        "mt10": (["smile", "gender"], 1, 10, 30, 0.92, 0.94),
        "short": (["smile"], 2, 10, 3, 0.80, 0.81),
        "unsized": (["smile"], 3, 0, 30, 0.90, 0.85),  # no size to name: a row of its own
        "recorded": (["smile"], 4, 10, 30, 0.90, 0.92),  # run.json: the test averaged 5
    }  # fmt: skip
    for name, (tasks, fold, size, epochs, final, ens) in fed.items():
        how = {"epochs": epochs} | ({"ensemble_members": 5} if name == "recorded" else {})
        local_run(tmp_path / name, tasks, fold, {SMILE: final}, {SMILE: ens}, how=how)
        (tmp_path / name / "config.yaml").write_text(yaml.safe_dump({"ensemble": size}))
    found = experiments(find_runs([str(tmp_path)]))
    smile = Column("smile", "genki4k", "acc")
    assert {e.label: sorted(e.values[smile]) for e in found} == {
        "single-task smile": [0.80, 0.90, 0.90, 0.90, 0.90],
        "single-task smile · + ensemble": [0.85],
        "single-task smile · + ensemble of 3": [0.81],
        "single-task smile · + ensemble of 5": [0.91, 0.92],
        "single-task smile · + ensemble of 10": [0.93],
        "multi-task smile+gender": [0.92, 0.92],
        "multi-task smile+gender · + ensemble of 5": [0.95],
        "multi-task smile+gender · + ensemble of 10": [0.94],
    }
    assert [e.label.rsplit(" ", 1)[-1] for e in found if "ensemble" in e.label] == [
        "ensemble", "3", "5", "10", "5", "10"]  # fmt: skip
    by_label = {e.label: e for e in found}
    for size, diff in (("5", 0.95 - (0.91 + 0.92) / 2), ("10", 0.94 - 0.93)):
        ensemble = by_label[f"multi-task smile+gender · + ensemble of {size}"]
        assert deltas(ensemble, found)[smile] == pytest.approx(diff)


def test_a_checkpoint_re_tested_with_another_ensemble_size_counts_its_final_model_once(tmp_path):
    """``mtl test --ckpt_path … --ensemble=5`` after a fit with ``--ensemble=10``: the final
    model's result is the fit's own (counted once, no note), the 5 members are a row of their
    own; a repeat whose final model differs is still left out with a note."""
    fed = {"fit": (10, 0.89, 0.94), "retest": (5, 0.89, 0.95), "other": (5, 0.70, 0.96)}
    for name, (size, final, ens) in fed.items():
        local_run(tmp_path / name, ["smile"], 0, {SMILE: final}, {SMILE: ens})
        (tmp_path / name / "config.yaml").write_text(yaml.safe_dump({"ensemble": size}))
    notes: list[str] = []
    found = experiments(find_runs([str(tmp_path)]), notes=notes)
    smile = Column("smile", "genki4k", "acc")
    assert {e.label: e.values[smile] for e in found} == {
        "single-task smile": [0.89],
        "single-task smile · + ensemble of 5": [0.96],  # "other" sorts before "retest"
        "single-task smile · + ensemble of 10": [0.94],
    }
    assert len(notes) == 2 and all("same experiment, fold and seeds" in n for n in notes)
    assert {n.split()[2].split("/")[-2] for n in notes} == {"other", "retest"}


def test_a_long_row_label_is_broken_into_legend_lines_at_its_separators():
    label = " · ".join(["single-task smile", "data.batch_size=128", "x" * 90, "trainer.a=1"])
    lines = legend_label(label, width=40).splitlines()
    assert lines == ["single-task smile · data.batch_size=128", "x" * 90, "trainer.a=1"]
    short = "multi-task smile · + ensemble of 5"
    assert legend_label(short) == short
