"""What a benchmark returns, and the one renderer that shows it (console tables) and keeps it
(JSON): each benchmark measures and builds a :class:`BenchResult`; none formats output."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
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
        json_path.write_text(json.dumps(result.record, indent=2))


def verdict(ok: bool) -> str:
    """A pass/fail cell."""
    return "[green]yes" if ok else "[red]NO"
