"""Every file in ``sweeps/`` is a valid W&B sweep, and every command line W&B's agent would run
from it is accepted by the ``mtl`` CLI: parsed, then trained for one batch."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import numpy as np
import pytest
import yaml
from wandb.sdk.launch.sweeps.utils import create_sweep_command, create_sweep_command_args

from mtl.cli import main
from mtl.experiments.sweep.params import distribution, grid_values, sample

from .conftest import REPO
from .test_cli import localized

SWEEPS = sorted((REPO / "sweeps").glob("*.yaml"))
# W&B's own sweep-config schema (github.com/wandb/sweeps, src/sweeps/config/schema.json, MIT);
# the registry's `sweeps` 0.2.0 package is older and rejects run_cap.
SCHEMA = json.loads((Path(__file__).parent / "assets" / "wandb-sweep-schema.json").read_text())


def test_the_project_ships_the_sweeps_its_users_run():
    names = {p.stem for p in SWEEPS}
    assert {"single_vs_multi", "backbones", "weightings", "lr_wd_bayes"} <= names


@pytest.mark.parametrize("path", SWEEPS, ids=lambda p: p.stem)
def test_sweep_file_is_valid_for_wandb(path):
    sweep = yaml.safe_load(path.read_text())
    jsonschema.validate(sweep, SCHEMA)
    command = sweep["command"]
    assert command[:2] == ["mtl", "fit"] and command[-1] == "${args}"
    assert command.index("--config") < command.index("${args}")  # the config first


def values_to_try(spec: dict) -> list:
    """Every grid value; for a distribution its bounds and a few draws."""
    kind = distribution(spec)
    if kind in ("constant", "categorical", "int_uniform"):
        return grid_values("p", spec)
    rng = np.random.default_rng(0)
    ends = [sample({**spec, "min": b, "max": b}, rng) for b in (spec["min"], spec["max"])]
    return ends + [sample(spec, rng) for _ in range(2)]


def agent_command_lines(path: Path) -> list[tuple[str, list[str]]]:
    """(label, argv) for each value of each parameter, as W&B's agent writes them."""
    sweep = yaml.safe_load(path.read_text())
    lines = []
    for name, spec in sweep["parameters"].items():
        for value in values_to_try(spec):
            args = create_sweep_command_args({"args": {name: {"value": value}}})["args"]
            command = create_sweep_command(list(sweep["command"]))
            argv = command[1 : command.index("${args}")] + args
            lines.append((f"{path.stem}:{name}={value}", argv))
    return lines


CASES = [case for path in SWEEPS for case in agent_command_lines(path)]


@pytest.fixture(scope="module")
def fixtures(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Tiny datasets in the real formats, prepared once for every command line."""
    return tmp_path_factory.mktemp("datasets")


@pytest.mark.parametrize(("label", "argv"), CASES, ids=[label for label, _ in CASES])
def test_every_agent_command_line_parses_and_trains_a_batch(label, argv, fixtures, in_tmp):
    configs = [i + 1 for i, a in enumerate(argv) if a == "--config"]
    for i in configs:  # the repo's configs, with real datasets pointed at tiny fixtures
        argv[i] = str(localized(REPO / argv[i], fixtures))
    main([*argv, "--trainer.fast_dev_run=true"])
