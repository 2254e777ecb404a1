"""What sets a run apart (mtl.training.settings): the digest in a W&B run's group is equal for
the repetitions of one experiment and differs for any setting ``mtl report`` tells apart."""

from __future__ import annotations

import copy

import pytest
import yaml

from mtl.training.settings import settings_digest, settings_items

from .conftest import REPO

DELETE = object()  # a key the config lacks


def config(**changes: object) -> dict:
    """A resolved config shaped like the ones ``mtl fit`` saves, with dotted keys changed."""
    base = {
        "seed_everything": 0,
        "ensemble": 5,
        "trainer": {"max_epochs": 30, "check_val_every_n_epoch": 5, "precision": "bf16-mixed",
                    "logger": {"init_args": {"save_dir": "runs/cv/a/fold0"}}},
        "model": {"backbone": {"class_path": "mtl.models.BKNet", "init_args": {"width": 1}},
                  "lr": 0.01, "test_time_flip": False, "compile_mode": None,
                  "lr_scheduler": {"class_path": "torch.optim.lr_scheduler.CosineAnnealingLR",
                                   "init_args": {"T_max": 30}}},
        "data": {"init_args": {"val_fold": 0, "seed": 0, "num_workers": 2, "batch_size": 64}},
    }  # fmt: skip
    result = copy.deepcopy(base)
    for dotted, value in changes.items():
        *path, last = dotted.split(".")
        node = result
        for key in path:
            node = node[key]
        if value is DELETE:
            del node[last]
        else:
            node[last] = value
    return result


@pytest.mark.parametrize(
    "repetition",
    [
        {"seed_everything": 1},  # other initial weights
        {"data.init_args.val_fold": 3, "data.init_args.seed": 2},  # another fold, data seed
        {"trainer.logger.init_args.save_dir": "elsewhere"},  # where it writes
        {"data.init_args.num_workers": 0},  # how it is fed
        {"trainer.check_val_every_n_epoch": 10},  # validation that changes nothing reported
        {"model.test_time_flip": DELETE},  # saved before the option existed: its default
        {"model.compile_mode": DELETE},  # saved before the option existed, whose default is null
    ],
)
def test_the_repetitions_of_one_experiment_share_a_digest(repetition):
    assert settings_digest(config(**repetition)) == settings_digest(config())


@pytest.mark.parametrize(
    "other",
    [
        {"trainer.max_epochs": 60},
        {"model.lr": 0.02},
        {"model.lr_scheduler.init_args.T_max": 60},
        {"model.backbone.init_args.width": 2},
        {"model.test_time_flip": True},
        {"trainer.precision": "32-true"},
        {"ensemble": 10},  # the test_ens bar beside the run's: another ensemble
        {"data.init_args.batch_size": 32},
    ],
)
def test_any_other_setting_gives_another_digest(other):
    assert settings_digest(config(**other)) != settings_digest(config())


def test_validation_counts_where_it_acts_on_training():
    """A plateau scheduler reads each validation: how often it validates is then a setting."""
    plateau = {"model.lr_scheduler": {"class_path": "torch.optim.lr_scheduler.ReduceLROnPlateau"}}
    every_10 = config(**plateau, **{"trainer.check_val_every_n_epoch": 10})
    assert settings_digest(every_10) != settings_digest(config(**plateau))
    assert settings_items(config())["trainer.check_val_every_n_epoch"] == "any"


def test_the_digest_is_pinned():
    """Eight hex digits, the same in every process and release: a change to what goes into the
    digest regroups every dashboard, so it must be made on purpose (here and in the changelog)."""
    assert settings_digest(config()) == "16bdf08d"


def test_the_committed_runs_group_as_the_report_rows_them():
    """The results' run files (docs/results/cv): the folds of a folder share a digest, the
    seeds of a row (saved by versions with and without later options) share their row's, and
    the ensemble of 5 re-tested from the 10-member run joins the 5-member rows."""
    digests = {}
    for folder in sorted((REPO / "docs" / "results" / "cv").iterdir()):
        found = {
            settings_digest(yaml.safe_load(c.read_text())) for c in folder.glob("*/config.yaml")
        }
        assert len(found) == 1, folder.name
        digests[folder.name] = found.pop()
    for row in ("multi_task", "single_smile", "single_smile_250"):
        assert digests[f"{row}_seed1"] == digests[row], row
    assert digests["multi_task_seed2"] == digests["multi_task"]
    assert digests["single_smile_250_seed2_ens5"] == digests["single_smile_250"]
    assert digests["single_smile_250_seed2"] != digests["single_smile_250"]  # 10 members
    assert digests["single_smile_flip"] != digests["single_smile"]
    assert digests["multi_task_60"] != digests["multi_task"]
    assert digests["single_age_60"] != digests["single_age"]
