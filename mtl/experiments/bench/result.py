"""What a benchmark returns, and the one renderer that shows it (console tables) and keeps it
(JSON): each benchmark measures and builds a :class:`BenchResult`; none formats output."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table as RichTable


@dataclass(frozen=True)
class Column:
    """A table column: its header and how a row (a dict of measured values) reads in it."""

    header: str
    cell: Callable[[dict[str, Any]], str]
    left: bool = False  # text columns; figures align right


@dataclass
class Table:
    title: str
    columns: list[Column]
    rows: list[dict[str, Any]]


@dataclass
class BenchResult:
    """Tables for people, the record ``--json`` writes, and notes printed after the tables."""

    tables: list[Table]
    record: dict[str, Any]
    notes: list[str] = field(default_factory=list)


def show(result: BenchResult, console: Console, json_path: Path | None = None) -> None:
    """Print the tables and notes; with ``json_path``, also write the record there."""
    for table in result.tables:
        rich = RichTable(title=table.title)
        for column in table.columns:
            rich.add_column(column.header, justify="left" if column.left else "right")
        for row in table.rows:
            rich.add_row(*(column.cell(row) for column in table.columns))
        console.print(rich)
    for note in result.notes:
        console.print(note)
    if json_path is not None:
        record = result.record | {"measured": provenance()}
        json_path.write_text(json.dumps(record, indent=2))


def provenance() -> dict[str, Any]:
    """When, and with which code, a record was measured, so that a figure quoted in the docs
    can be traced to it: UTC time, the git commit of the ``mtl`` source and whether its tracked
    files had uncommitted changes (both None where ``mtl`` is not run from a git checkout of
    itself, e.g. installed in a virtual environment that lies inside another repository), and
    the versions of mtl and torch."""
    import torch

    from mtl import __version__

    here = Path(__file__).resolve()
    package = here.parents[2]  # mtl/
    ours = _git(here.parent, "ls-files", "--error-unmatch", here.name) is not None
    commit = _git(package, "rev-parse", "HEAD") if ours else None
    changes = _git(package, "status", "--porcelain", "--untracked-files=no", "--", ".")
    return {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "commit": commit,
        "dirty": bool(changes) if commit is not None and changes is not None else None,
        "mtl": __version__,
        "torch": torch.__version__,
    }


def _git(folder: Path, *args: str) -> str | None:
    """A git command's output in ``folder``, or None where git or a checkout is missing."""
    env = {k: v for k, v in os.environ.items() if k not in ("GIT_DIR", "GIT_WORK_TREE")}
    command = ["git", "--no-optional-locks", *args]
    try:
        done = subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True,
                              timeout=10, check=True)  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip()


def verdict(ok: bool) -> str:
    """A pass/fail cell."""
    return "[green]yes" if ok else "[red]NO"
