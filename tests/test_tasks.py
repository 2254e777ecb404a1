import numpy as np
import pytest

from mtl.tasks import (
    DEFAULT_AGE_EDGES,
    DEFAULT_TASK_NAMES,
    EMOTIONS,
    TASK_NAMES,
    age_group_names,
    build_tasks,
    make_task,
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
    assert {t: task_kind(t) for t in TASK_NAMES} == {
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
