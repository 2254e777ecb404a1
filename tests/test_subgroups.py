"""Test accuracy per subgroup (fairlearn's MetricFrame): the arithmetic against a hand count,
subgroup names from the faces' attributes, splits unchanged by the race column, and the run's
report (run.json, test/subgroups.csv, the model card)."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from huggingface_hub import ModelCard

from mtl.cli import main
from mtl.data.datasets import ATTRIBUTES, attributes_for
from mtl.data.splits import strata
from mtl.tasks import LABEL_COLUMNS
from mtl.training.subgroups import group_names, subgroup_metrics
from tests.conftest import tiny_fit_args


def test_accuracy_per_subgroup_and_the_gap_match_a_hand_count():
    groups = np.array(["a"] * 4 + ["b"] * 3 + ["c"] * 1 + [None] * 2, dtype=object)
    truth = np.array([0, 1, 1, 0, 1, 1, 0, 1, 0, 0])
    predicted = np.array([0, 1, 0, 0, 1, 0, 0, 0, 1, 1])  # a: 3/4, b: 2/3, c: 0/1
    rows, gap = subgroup_metrics("utk", "gender", "race", truth, predicted, groups, min_faces=2)
    by = {r.group: r for r in rows}
    assert set(by) == {"a", "b", "c"}  # unknown attributes: in no subgroup
    assert (by["a"].count, by["a"].value) == (4, pytest.approx(0.75))
    assert (by["b"].count, by["b"].value) == (3, pytest.approx(2 / 3))
    assert (by["c"].count, by["c"].value) == (1, None)  # too few faces: no verdict
    assert (gap.best, gap.worst, gap.groups) == ("a", "b", 2)
    assert gap.gap == pytest.approx(0.75 - 2 / 3)  # c stays out of the gap
    _, alone = subgroup_metrics("utk", "gender", "race", truth, predicted, groups, min_faces=4)
    assert (alone.gap, alone.groups) == (None, 1)  # one judged subgroup: no gap
    one = np.array(["a"], dtype=object)  # a single face (a tiny test split) still works
    rows, _ = subgroup_metrics("utk", "gender", "race", truth[:1], predicted[:1], one, 1)
    assert [(r.count, r.value) for r in rows] == [(1, 1.0)]


def test_subgroup_names_cross_gender_and_age_group_and_name_races():
    table = {"gender": np.array([0, 1, 1, -1]), "age": np.array([3.0, 40.9, np.nan, 20.0]),
             "race": np.array([2, -1, 4, 0])}  # fmt: skip
    attributes = attributes_for(table, 4)  # 4 x A
    assert attributes.tolist() == [[0, 3, 2], [1, 40, -1], [1, -1, 4], [-1, 20, 0]]
    assert list(group_names(attributes, ("gender", "age"), (16, 26, 36, 46, 61))) == [
        "female, 0-15", "male, 36-45", None, None]  # fmt: skip
    assert list(group_names(attributes, ("race",), (16,))) == ["asian", None, "other", "white"]
    assert ATTRIBUTES == ("gender", "age", "race")


def test_the_race_column_does_not_change_any_split():
    rng = np.random.default_rng(0)
    table = {n: rng.integers(-1, 2, 50) for n, c in LABEL_COLUMNS.items() if c.dtype == "class"}
    table["age"] = rng.uniform(0, 90, 50)
    with_race = strata(table)
    table["race"] = rng.integers(0, 5, 50)
    assert (strata(table) == with_race).all()
    assert not LABEL_COLUMNS["race"].stratify


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("subgroups")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)
        main(tiny_fit_args(train=32, val=16, test=64) + ["--test_after_fit=true"])
    return root / "runs/mtl/version_0"


def test_a_test_reports_subgroups_in_run_json_csv_and_the_model_card(run, tmp_path):
    record = json.loads((run / "run.json").read_text())["subgroups"]
    groups, gaps = record["groups"], record["gaps"]
    # The synthetic gender+age source draws gender and age: its 64 test faces, per task.
    for task in ("gender", "age"):
        counted = [g["count"] for g in groups if g["task"] == task]
        assert sum(counted) == 64 and all(g["partition"] == "gender x age" for g in groups)
    assert {(g["source"], g["task"]) for g in gaps} == {("s_gender_age", "gender"),
                                                        ("s_gender_age", "age")}  # fmt: skip
    assert all(g["value"] is None for g in groups if g["count"] < 30)
    with (run / "test" / "subgroups.csv").open() as f:
        assert len(list(csv.DictReader(f))) == len(groups)
    main(["publish", str(run), "--out", str(tmp_path / "hub")])
    card = ModelCard.load(tmp_path / "hub" / "README.md").text
    assert "### Per subgroup" in card and "| s_gender_age | gender | gender x age |" in card


def test_mtl_report_shows_subgroups_as_tables_and_a_plot(run, tmp_path):
    main(["report", str(run), "--out", str(tmp_path / "report")])
    text = (tmp_path / "report" / "report.md").read_text()
    assert "## Accuracy per subgroup" in text
    assert "| s_gender_age | gender | gender x age | female, 0-15 |" in text
    assert (tmp_path / "report" / "subgroups.png").stat().st_size > 0
