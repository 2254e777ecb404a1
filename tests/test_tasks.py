import numpy as np
import pytest
import torch

from mtl.tasks import (
    CLASSIFICATION,
    DEFAULT_AGE_EDGES,
    DEFAULT_TASK_NAMES,
    EMOTIONS,
    KINDS,
    METRICS,
    REGRESSION,
    TASK_NAMES,
    age_group_names,
    build_tasks,
    make_task,
    metric_key,
    metric_of,
    parse_metric_key,
    task_kind,
)


def test_registry_class_counts_and_orders():
    tasks = {t.name: t for t in build_tasks(TASK_NAMES)}
    assert tasks["smile"].num_classes == 2
    assert tasks["emotion"].class_names == (
        "angry",
        "disgust",
        "fear",
        "happy",
        "sad",
        "surprise",
        "neutral",
    )  # FER-2013 csv order, not alphabetical
    assert tasks["gender"].class_names == ("female", "male")
    assert tasks["age"].class_names == ("0-15", "16-25", "26-35", "36-45", "46-60", "61+")
    assert tasks["emotion"].class_names == EMOTIONS


def test_build_tasks_uses_canonical_order_and_dedups():
    assert [t.name for t in build_tasks(["age", "smile", "age"])] == ["smile", "age"]


@pytest.mark.parametrize(
    ("years", "group"),
    [
        (0, 0),
        (15, 0),
        (15.9, 0),
        (16, 1),
        (25, 1),
        (26, 2),
        (45, 3),
        (46, 4),
        (60, 4),
        (61, 5),
        (116, 5),
    ],
)
def test_default_age_bins_are_half_open(years, group):
    assert make_task("age").targets(np.array([years]))[0] == group


def test_age_edges_are_configurable():
    task = make_task("age", age_edges=[30, 46, 60])  # Kang et al.'s code: <30, 30-45, 46-59, >=60
    assert task.class_names == ("0-29", "30-45", "46-59", "60+")
    groups = task.targets(np.array([29, 30, 45, 46, 59, 60]))
    assert groups.tolist() == [0, 1, 1, 2, 2, 3]


@pytest.mark.parametrize("edges", [[], [16, 16], [26, 16], [0, 10]])
def test_bad_age_edges_are_rejected(edges):
    with pytest.raises(ValueError, match="age_edges"):
        make_task("age", age_edges=edges)


def test_the_registry_knows_each_task_kind_column_and_missing_labels():
    assert {t: task_kind(t).name for t in TASK_NAMES} == {
        "smile": "classification",
        "emotion": "classification",
        "gender": "classification",
        "age": "classification",
        "age_years": "regression",
    }
    assert DEFAULT_TASK_NAMES == ("smile", "emotion", "gender", "age")  # age_years is opt-in
    years = np.array([12.0, np.nan, 70.5])
    np.testing.assert_array_equal(make_task("age_years").targets(years), years)
    assert np.isnan(make_task("age").targets(years)[1])  # unknown age: no target
    assert np.isnan(make_task("smile").targets(np.array([1, -1, 0]))).tolist() == [0, 1, 0]
    assert make_task("age_years").num_classes == 1 and make_task("age").column == "age"


def test_unknown_task_names_the_task():
    with pytest.raises(ValueError, match="'smiles'"):
        build_tasks(["smiles"])


def test_age_group_names_match_edges():
    assert age_group_names(DEFAULT_AGE_EDGES)[-1] == "61+"


def test_each_task_kind_owns_its_outputs_metrics_and_readings():
    smile, years = make_task("smile"), make_task("age_years")
    assert smile.kind is CLASSIFICATION and years.kind is REGRESSION
    assert set(KINDS.values()) == {CLASSIFICATION, REGRESSION}
    logits = torch.tensor([[0.0, 2.0], [1.0, 1.0]])  # B x C
    torch.testing.assert_close(smile.kind.probabilities(logits), logits.softmax(-1))
    members = torch.stack([logits, -logits])  # K x B x C: probabilities averaged, not logits
    torch.testing.assert_close(smile.kind.average(members), members.softmax(-1).mean(0))
    values = torch.tensor([[31.0], [7.5]])  # a regression head: B x 1
    torch.testing.assert_close(years.kind.from_head(values), torch.tensor([31.0, 7.5]))
    torch.testing.assert_close(
        years.kind.average(torch.tensor([[30.0], [32.0]])), torch.tensor([31.0])
    )
    reading = smile.kind.read(smile, np.array([0.25, 0.75]))
    assert (reading.label, reading.confidence) == ("smile", 0.75)
    assert reading.probabilities == {"non_smile": 0.25, "smile": 0.75}
    assert years.kind.read(years, np.array(31.456)).label == 31.46
    assert smile.kind.describe(smile, 1.0) == "smile" and years.kind.describe(years, 7.25) == "7.2"
    assert smile.kind.output_names(smile) == ["non_smile", "smile"]
    assert years.kind.output_names(years) == "years"
    assert [m for k in KINDS.values() for m in k.metrics] == ["acc", "f1", "mae"]
    assert (CLASSIFICATION.quality.name, REGRESSION.quality.name) == ("acc", "mae")
    assert CLASSIFICATION.uncertainty_scale == 1.0 and REGRESSION.uncertainty_scale == 0.5


def test_metrics_say_how_they_read_and_keys_round_trip():
    assert METRICS["mae"].lower_is_better and not METRICS["acc"].lower_is_better
    assert (METRICS["acc"].scale, METRICS["acc"].digits) == (100.0, 2)
    assert (METRICS["mae"].scale, METRICS["mae"].digits) == (1.0, 3)
    assert metric_of("loss").scale == 1.0  # another logged value: shown as is
    for args in (("val", "smile", "acc", ""), ("test", "emotion", "f1", "fer2013_public")):
        stage, task, metric, source = args
        key = metric_key(stage, task, metric, source)
        assert parse_metric_key(key) == (stage, source, task, metric)
    assert metric_key("val", "smile", "acc") == "val/smile/acc"
    assert parse_metric_key("val/loss") is None
