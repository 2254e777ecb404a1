"""The README's set-up is what CI runs; the package is installable under its own name."""

import importlib.metadata
import re
import sys

import pytest

import mtl
import mtl.experiments
from mtl.cli.commands import dashboard
from mtl.errors import UserError

from .conftest import REPO


def _readme_commands() -> list[str]:
    blocks = re.findall(r"```bash\n(.*?)```", (REPO / "README.md").read_text(), re.S)
    return [line.strip() for block in blocks[:3] for line in block.splitlines() if line.strip()]


def test_ci_runs_the_readme_install_and_test_commands_verbatim():
    install, main_job, test = _readme_commands()
    ci = (REPO / ".ci" / "run").read_text().splitlines()
    assert install.startswith("pip install") and install in ci
    assert test.startswith("pytest") and test in ci
    assert ci.index(install) < ci.index(test)
    assert main_job.startswith("mtl fit --config conf/")
    assert (REPO / main_job.split("--config ")[1].split()[0]).is_file()


def test_the_version_is_written_once_and_the_distribution_has_its_own_name():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert project["name"] == "mtl-faces" and "version" not in project
    assert project["dynamic"] == ["version"]
    assert importlib.metadata.version("mtl-faces") == mtl.__version__
    changelog = (REPO / "CHANGELOG.md").read_text()
    assert f"## [{mtl.__version__}]" in changelog


def test_the_dashboard_without_its_extra_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "wandb_workspaces", None)  # as if not installed
    monkeypatch.delitem(sys.modules, "mtl.experiments.dashboard", raising=False)
    monkeypatch.delattr(mtl.experiments, "dashboard", raising=False)
    with pytest.raises(UserError, match=r"mtl-faces\[dashboard\]"):
        dashboard._builder()
