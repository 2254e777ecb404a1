"""A trial's command line from a sweep file's ``command``, with W&B's macros (pure functions).

W&B's agent replaces ``${env}``, ``${interpreter}``, ``${program}``, ``${args}``,
``${args_no_hyphens}``, ``${args_json}``, ``${args_json_file}`` and ``${envvar:NAME}`` in the
sweep's ``command``; so does the local runner. Values are written as JSON
(``["smile", "emotion"]``, ``true``, ``null``), which the ``mtl`` CLI reads exactly; W&B's
agent writes Python's ``str()`` instead (``['smile', 'emotion']``, ``True``, ``None``), which
:func:`mtl.cli.parsing.normalize_agent_args` accepts too.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

DEFAULT_COMMAND = ("${env}", "${interpreter}", "${program}", "${args}")
"""W&B's command when a sweep file gives none."""
ENVVAR = re.compile(r"\$\{envvar:([^}]+)\}")


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
        part = ENVVAR.sub(lambda m: os.environ.get(m.group(1), m.group(1)), str(part))
        argv += macros.get(part, [part])
    return argv


def mtl_arguments(argv: Sequence[str]) -> list[str] | None:
    """The arguments of an ``mtl`` command line (``mtl …``, ``/usr/bin/env mtl …``,
    ``python -m mtl …``), or None for another program."""
    parts = list(argv)
    if parts and Path(parts[0]).name == "env":
        parts = parts[1:]
    if parts and Path(parts[0]).name == "mtl":
        return parts[1:]
    if len(parts) > 2 and parts[1:3] == ["-m", "mtl"]:
        return parts[3:]
    return None


def with_trial_loggers(
    argv: list[str], folder: Path, wandb: str, project: str, group: str | None, name: str
) -> list[str]:
    """An ``mtl`` trial runs as this Python's ``-m mtl`` (whatever the PATH) with its loggers
    in ``folder``: CSV, which the runner reads (``folder/logs``), and W&B (unless ``wandb`` is
    ``off``) in ``group`` (None: the experiment's own group, :mod:`mtl.training.identity`). Another
    program's argv is returned as it is."""
    rest = mtl_arguments(argv)
    if rest is None:
        return argv
    csv_logger = {
        "save_dir": str(folder),
        "name": "",
        "version": "logs",
        "flush_logs_every_n_steps": 1,
    }
    loggers: list[dict[str, Any]] = [
        {"class_path": "mtl.training.loggers.CSVLogger", "init_args": csv_logger}
    ]
    if wandb != "off":
        init = {"project": project, "save_dir": str(folder), "name": name}
        init |= {"group": group} if group is not None else {}
        loggers.append({"class_path": "mtl.training.loggers.WandbLogger", "init_args": init})
    return [sys.executable, "-m", "mtl", *rest, f"--trainer.logger={json.dumps(loggers)}"]
