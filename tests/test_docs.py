"""The documentation: the site builds with warnings as errors, the README stays short, the
architecture page shows the layers the import contracts enforce, and every example command in the
README and the docs is still a valid command: those that only print (``--help``) run; the others
are parsed by their own command's parser, a trainer command through ``--print_config``, which
validates every key and value without training. (The ``mtl report`` line of docs/results.md also
runs, in tests/test_results_doc.py.)"""

from __future__ import annotations

import importlib
import os
import re
import shlex
import subprocess
import sys

import pytest
from importlinter.api import read_configuration

from mtl.cli import main
from mtl.cli.commands import COMMANDS

from .conftest import REPO

DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md")),
        *sorted((REPO / "docs" / "guide").glob("*.md"))]  # fmt: skip
TRAINER = ("fit", "validate", "test", "predict")
LAUNCHERS = re.compile(r"^(?:\w+=\S+\s+)*(?:(?:srun|torchrun)\s.*?(?:\s-m)?\s)?mtl\s")
"""What may stand before ``mtl``: environment variables, a launcher (``srun …``,
``torchrun … -m``)."""


def example_commands() -> list[tuple[str, list[str]]]:
    """(document, argv after ``mtl``) of every ``mtl …`` line in the docs' bash blocks, with the
    shell variables the block sets expanded and optional parts (``[--flag]``) included."""
    found = []
    for doc in DOCS:
        for block in re.findall(r"```bash\n(.*?)```", doc.read_text(), re.S):
            text = re.sub(r"\\\n\s*", " ", block)
            variables = dict(re.findall(r'^(\w+)="([^"]*)"', text, re.M))
            for line in text.splitlines():
                match = LAUNCHERS.match(line.strip())
                if not match:
                    continue
                line = line.strip()[match.end() :]
                for name, value in variables.items():
                    line = line.replace(f"${name}", value)
                line = re.sub(r"\[(--[^\]]*)\]", r"\1", line)  # [--device_data true]
                argv = [a for a in shlex.split(line, comments=True) if a != "&"]
                found.append((doc.relative_to(REPO).as_posix(), argv))
    return found


EXAMPLES = example_commands()


def test_the_docs_have_examples_of_every_command():
    shown = {argv[0] for _, argv in EXAMPLES}
    assert shown >= {"fit", "test", "prepare", "cv", "report", "sweep", "analyze", "export"}
    assert shown >= {"bench", "models", "dashboard"}


@pytest.mark.parametrize(("doc", "argv"), EXAMPLES, ids=lambda v: " ".join(v)[:80])
def test_an_example_command_is_valid(doc, argv, monkeypatch, capsys):
    monkeypatch.chdir(REPO)  # the examples are run from the repository root
    name, rest = argv[0], argv[1:]
    if name in TRAINER or "--help" in rest:  # parse (and print) only: nothing trains
        extra = [] if "--help" in rest else ["--print_config"]
        with pytest.raises(SystemExit) as stop:
            main([*argv, *extra])
        assert stop.value.code in (0, None), capsys.readouterr().err
        return
    parser = importlib.import_module(COMMANDS[name].module).build_parser()
    if name == "cv":  # its own options, then the rest is a fit
        _, fit_args = parser.parse_known_args(rest)
        with pytest.raises(SystemExit) as stop:
            main(["fit", *fit_args, "--data.k_folds=4", "--data.val_fold=0", "--print_config"])
        assert stop.value.code in (0, None), capsys.readouterr().err
    else:
        parser.parse_args(rest)


def test_the_site_builds_with_warnings_as_errors(tmp_path):
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=REPO, capture_output=True, text=True, env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert (tmp_path / "site" / "reference" / "training" / "index.html").is_file()


def test_the_readme_is_what_a_visitor_reads_in_two_minutes():
    assert len((REPO / "README.md").read_text().splitlines()) < 200


def test_the_architecture_page_shows_the_contracts_layers(monkeypatch):
    monkeypatch.chdir(REPO)  # where import-linter finds pyproject.toml
    contracts = read_configuration()["contracts_options"]
    contract = next(c for c in contracts if c["type"] == "layers")
    page = (REPO / "docs" / "architecture.md").read_text()
    diagram = re.search(r"```text\n(mtl\..*?)```", page, re.S).group(1)
    assert diagram.strip().splitlines() == contract["layers"]
    documented = set(re.findall(r"^\| `(mtl\.\w+)`", page, re.M))
    layers = {m.strip() for layer in contract["layers"] for m in layer.split("|")}
    assert layers - {"mtl.tasks", "mtl.errors"} <= documented
