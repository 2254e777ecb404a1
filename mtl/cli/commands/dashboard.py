"""``mtl dashboard --entity ME --project mtl``: create a ready-made W&B saved workspace that
compares task sets, backbones and loss weightings (``--report``: a W&B report too).

Sections: validation accuracy per task by task set, test accuracy (checkpoint and checkpoint
ensemble) as bars, the validation curves again by backbone and by weighting, per-source
validation accuracy, the effective loss weights, the learning rate and the losses
(:mod:`mtl.experiments.dashboard`). Saving needs a W&B account online (``wandb login``);
``--dry_run`` prints the workspace's spec as JSON and saves nothing.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from types import ModuleType
from typing import Any

from jsonargparse import ActionConfigFile, ActionYesNo

from mtl.cli.commands import COMMANDS
from mtl.cli.parsing import ArgumentParser
from mtl.errors import UserError
from mtl.tasks import DEFAULT_TASK_NAMES

HELP = COMMANDS["dashboard"].help


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(prog="mtl dashboard", description=__doc__)
    parser.add_argument("-c", "--config", action=ActionConfigFile, help="options from a file")
    parser.add_argument(
        "--entity", type=str | None, default=None, help="W&B entity (default: $WANDB_ENTITY)"
    )
    parser.add_argument("--project", type=str, default="mtl", help="W&B project of the runs")
    parser.add_argument(
        "--tasks", type=list[str], default=list(DEFAULT_TASK_NAMES), help="tasks to plot"
    )
    parser.add_argument("--name", type=str, default="mtl comparison", help="workspace name")
    parser.add_argument(
        "--report", action=ActionYesNo, default=False, help="also create a W&B report"
    )
    parser.add_argument(
        "--dry_run", action=ActionYesNo, default=False, help="print the spec, save nothing"
    )
    return parser


def resolve_entity(entity: str | None) -> str:
    """``--entity``, else ``$WANDB_ENTITY``: a workspace belongs to one entity's project."""
    entity = entity or os.environ.get("WANDB_ENTITY")
    if not entity:
        raise UserError("no W&B entity: pass --entity ME or set WANDB_ENTITY")
    return entity


def save(what: str, model: Any) -> str:
    """Save a workspace or report and return its URL; any failure (no API key, no network,
    no such entity) is one line for the user, not a traceback."""
    if os.environ.get("WANDB_MODE") in ("offline", "disabled"):
        raise UserError(
            f"WANDB_MODE={os.environ['WANDB_MODE']}: a {what} is saved on the W&B server; "
            "unset WANDB_MODE, or use --dry_run"
        )
    try:
        return model.save().url
    except Exception as err:  # wandb raises many kinds; each means "not saved"
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        where = f"{model.entity}/{model.project}"
        raise UserError(f"could not save the W&B {what} in {where}: {reason}") from err


def _builder() -> ModuleType:
    """:mod:`mtl.experiments.dashboard`, which needs the optional ``wandb-workspaces``."""
    try:
        from mtl.experiments import dashboard  # imports wandb; only this command needs it
    except ModuleNotFoundError as err:
        if (err.name or "").partition(".")[0] != "wandb_workspaces":
            raise
        raise UserError(
            "mtl dashboard builds W&B workspaces with wandb-workspaces: "
            "pip install 'mtl-faces[dashboard]'"
        ) from None
    return dashboard


def build(args: Any, entity: str) -> tuple[Any, Any]:
    """The workspace model and, with ``--report``, the report model (nothing saved)."""
    dashboard = _builder()
    try:
        workspace = dashboard.build_workspace(entity, args.project, args.tasks, args.name)
        report = dashboard.build_report(entity, args.project, args.tasks) if args.report else None
    except ValueError as err:  # an unknown task, a name W&B refuses
        raise UserError(f"invalid dashboard: {err}") from err
    return workspace, report


def dry_run(workspace: Any, report: Any, echo: Callable[[str], None] = print) -> None:
    dashboard = _builder()
    spec: dict[str, Any] = {"workspace": dashboard.workspace_spec(workspace)}
    if report is not None:
        spec["report"] = dashboard.report_outline(report)
    echo(json.dumps(spec, indent=2))


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    workspace, report = build(args, resolve_entity(args.entity))
    if args.dry_run:
        dry_run(workspace, report)
        return 0
    print(f"workspace: {save('workspace', workspace)}")
    if report is not None:
        print(f"report: {save('report', report)}")
    return 0
