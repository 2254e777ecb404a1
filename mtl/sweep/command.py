"""A trial's command line from a sweep file's ``command``, with W&B's macros (pure functions).

W&B's agent replaces ``${env}``, ``${interpreter}``, ``${program}``, ``${args}``,
``${args_no_hyphens}``, ``${args_json}`` and ``${args_json_file}`` in the sweep's ``command``;
so does the local runner. Values are written as JSON (``["smile", "emotion"]``, ``true``,
``null``), which the ``mtl`` CLI reads exactly; W&B's agent writes Python's ``str()`` instead
(``['smile', 'emotion']``, ``True``, ``None``), which :func:`mtl.cli.normalize_agent_args`
accepts too.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

DEFAULT_COMMAND = ("${env}", "${interpreter}", "${program}", "${args}")
"""W&B's command when a sweep file gives none."""


def format_value(value: Any) -> str:
    """A parameter value as the text of one ``--key=value`` argument."""
    return value if isinstance(value, str) else json.dumps(value)


def build_command(
    command: Sequence[str] | None,
    params: Mapping[str, Any],
    program: str | None = None,
    json_file: Path | None = None,
) -> list[str]:
    """The argv of one trial: ``command`` with its macros replaced by ``params``."""
    args = [f"--{k}={format_value(v)}" for k, v in params.items()]
    macros: dict[str, list[str]] = {
        "${env}": ["/usr/bin/env"],
        "${interpreter}": ["python"],
        "${program}": [program] if program else [],
        "${args}": args,
        "${args_no_hyphens}": [a[2:] for a in args],
        "${args_json}": [json.dumps(dict(params))],
        "${args_json_file}": [str(json_file)] if json_file else [],
    }
    argv: list[str] = []
    for part in command or DEFAULT_COMMAND:
        argv += macros.get(part, [part])
    return argv
