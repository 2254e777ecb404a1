"""A ready-made W&B comparison dashboard: a saved workspace (and a report) that compares task
sets, backbones and loss weightings, built from the keys the project's loggers write.

The functions here only *build* ``wandb-workspaces`` models; saving them needs a W&B account
and the network, and is :mod:`mtl.cli.commands.dashboard`'s job, so the layout can be checked (and
printed by ``mtl dashboard --dry_run``) offline.

Runs are told apart by ``wandb.config["mtl"]`` (:mod:`mtl.training.identity`): ``mtl.group``
(the experiment: task set, backbone, weighting, loss and the digest of its other settings),
``mtl.task_set``, ``mtl.backbone``, ``mtl.weighting``. Panels group runs by one of those keys and
draw a group as its mean with a standard-deviation band. Grouped by ``mtl.group``, the folds and
seeds of one experiment make one line or bar, and runs of other lengths, learning rates or
ensemble sizes are not averaged into it; grouped by a backbone or weighting, a panel compares
that choice over everything else the runs vary.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import wandb_workspaces.reports.v2 as wr
import wandb_workspaces.workspaces as ws
from wandb_workspaces.reports.v2.interface import Panel

from mtl.tasks import DEFAULT_TASK_NAMES, metric_key, task_kind

EXPERIMENT = "mtl.group"
TASK_SET = "mtl.task_set"
BACKBONE = "mtl.backbone"
WEIGHTING = "mtl.weighting"
GROUPINGS: dict[str, str] = {
    "experiment": EXPERIMENT,
    "task set": TASK_SET,
    "backbone": BACKBONE,
    "weighting": WEIGHTING,
}
"""What the dashboard compares: a reader's name -> the ``wandb.config`` key that holds it."""

EPOCH = "epoch"
"""x of validation curves: Lightning logs ``epoch`` beside every metric, one validation each."""
STEP = "trainer/global_step"
"""x of training curves: the step metric Lightning's WandbLogger defines for every key."""

DEFAULT_NAME = "mtl comparison"
DEFAULT_TITLE = "mtl: task sets, backbones and loss weightings compared"


def quality(task: str) -> str:
    """The metric that says how good a task is: accuracy, or MAE for a regression (age_years).

    Raises ValueError for a task the registry does not know."""
    return task_kind(task).quality.name


def quality_label(task: str) -> str:
    return task_kind(task).quality.title


def grouping(by: str | None) -> dict:
    """Panel options that draw the runs sharing config key ``by`` as one mean line (or bar)
    with a standard-deviation band: the folds and seeds of one experiment; none when None."""
    if by is None:
        return {}
    return {"groupby": wr.Config(by), "groupby_aggfunc": "mean", "groupby_rangefunc": "stddev"}


def val_curve(task: str, by: str | None = EXPERIMENT) -> wr.LinePlot:
    """Validation accuracy (MAE) of ``task`` per epoch, one line per value of ``by``."""
    q = quality(task)
    title = f"{task}: validation {quality_label(task)}"
    return wr.LinePlot(title=title, x=EPOCH, y=[metric_key("val", task, q)], **grouping(by))


def source_curve(task: str) -> wr.LinePlot:
    """Validation accuracy (MAE) of ``task`` on each data source (``val/<source>/<task>/acc``).

    The sources depend on the run's data, so the panel matches them by a regular expression."""
    q = quality(task)
    return wr.LinePlot(
        title=f"{task}: validation {quality_label(task)} per source",
        x=EPOCH,
        metric_regex=rf"^val/[^/]+/{task}/{q}$",
    )


def accuracy_bars(task: str, by: str | None = EXPERIMENT) -> wr.BarPlot:
    """Test accuracy (MAE) of ``task``: the run's checkpoint beside the checkpoint ensemble
    (``test_ens``, when the run made one), one bar per value of ``by``."""
    q = quality(task)
    return wr.BarPlot(
        title=f"{task}: test {quality_label(task)} (checkpoint, ensemble)",
        metrics=[metric_key("test", task, q), metric_key("test_ens", task, q)],
        orientation="v",
        **grouping(by),
    )


def weight_curve(task: str) -> wr.LinePlot:
    """The effective loss weight of ``task`` (``train/<task>/weight``): what a weighting did."""
    return wr.LinePlot(
        title=f"{task}: loss weight",
        x=STEP,
        y=[metric_key("train", task, "weight")],
        **grouping(WEIGHTING),
    )


def loss_curve(task: str) -> wr.LinePlot:
    """Training and validation loss of ``task`` (over- or underfitting, per task)."""
    keys = [metric_key("train", task, "loss"), metric_key("val", task, "loss")]
    return wr.LinePlot(title=f"{task}: loss", x=STEP, y=keys, **grouping(EXPERIMENT))


def lr_and_total_loss() -> list[wr.LinePlot]:
    """The learning rate (``lr-<Optimizer>``, per parameter group: matched by a regular
    expression since the optimizer is the run's choice) and the total losses."""
    return [
        wr.LinePlot(title="learning rate", x=STEP, metric_regex=r"^lr-.*"),
        wr.LinePlot(
            title="total loss", x=STEP, y=["train/loss", "val/loss"], **grouping(EXPERIMENT)
        ),
    ]


def section(name: str, panels: Sequence[Panel], is_open: bool = False) -> ws.Section:
    """A workspace section; closed ones load no data until opened (a large project stays fast)."""
    return ws.Section(name=name, panels=list(panels), is_open=is_open)


def build_sections(tasks: Sequence[str]) -> list[ws.Section]:
    """The workspace's sections, top to bottom.

    Every panel has its own grouping (a line or bar plot's ``groupby``, the panel's Grouping tab
    in the app): the open sections draw an experiment (``mtl.group``) as one line or bar; "By
    task set", "By backbone" and "By weighting" repeat the validation panels grouped by that
    choice alone. A panel groups by one key, hence a section per comparison."""
    return [
        section("Validation accuracy", [val_curve(t) for t in tasks], is_open=True),
        section("Test accuracy", [accuracy_bars(t) for t in tasks], is_open=True),
        section("By task set", [val_curve(t, TASK_SET) for t in tasks]),
        section("By backbone", [val_curve(t, BACKBONE) for t in tasks]),
        section("By weighting", [val_curve(t, WEIGHTING) for t in tasks]),
        section("Validation accuracy per source", [source_curve(t) for t in tasks]),
        section("Loss weights", [weight_curve(t) for t in tasks]),
        section("Learning rate and losses", [*lr_and_total_loss(), *map(loss_curve, tasks)]),
    ]


def build_workspace(
    entity: str,
    project: str,
    tasks: Sequence[str] = DEFAULT_TASK_NAMES,
    name: str = DEFAULT_NAME,
) -> ws.Workspace:
    """A saved-workspace model comparing the project's runs (call ``.save()`` to create it).

    The runs table groups runs by task set (single- vs multi-task at a glance); the panels
    group by their own key. Only these panels are shown: W&B's automatic
    panel per logged key is off, since a multi-source run logs hundreds of keys."""
    return ws.Workspace(
        entity=entity,
        project=project,
        name=name,
        sections=build_sections(tasks),
        settings=ws.WorkspaceSettings(x_axis=STEP),
        runset_settings=ws.RunsetSettings(groupby=[ws.Config(TASK_SET)]),
    )


def panel_grid(entity: str, project: str, by: str, panels: Sequence[Panel]) -> wr.PanelGrid:
    """A report's grid of ``panels`` over the project's runs, grouped by config key ``by``."""
    runset = wr.Runset(
        entity=entity, project=project, name=f"runs by {by}", groupby=[f"config.{by}"]
    )
    return wr.PanelGrid(runsets=[runset], panels=list(panels))


def build_report(
    entity: str,
    project: str,
    tasks: Sequence[str] = DEFAULT_TASK_NAMES,
    title: str = DEFAULT_TITLE,
) -> wr.Report:
    """A report model (call ``.save()`` to create it): test accuracy per task as bars, grouped
    by experiment, then by task set, backbone and weighting, and the validation curves by
    experiment."""
    blocks: list = [
        wr.P(
            "Each bar is the mean over the runs (folds, seeds) that share the value; the band is "
            "their standard deviation. An experiment (mtl.group) is a task set, backbone, "
            "weighting and loss with the digest of its other settings (epochs, learning rate, "
            "ensemble size ...): the runs one row of mtl report holds. test_ens is the "
            "checkpoint ensemble, where a run made one."
        )
    ]
    for label, key in GROUPINGS.items():
        bars = [accuracy_bars(t, key) for t in tasks]
        blocks += [wr.H2(f"Test accuracy by {label}"), panel_grid(entity, project, key, bars)]
    curves = [val_curve(t, EXPERIMENT) for t in tasks]
    blocks += [
        wr.H2("Validation curves by experiment"),
        panel_grid(entity, project, EXPERIMENT, curves),
    ]
    return wr.Report(entity=entity, project=project, title=title, blocks=blocks)


def workspace_spec(workspace: ws.Workspace) -> dict:
    """The view ``Workspace.save()`` sends to W&B (its conversion to the API model, before the
    upload; the view's name is generated on save), as JSON-ready data."""
    return workspace._to_model().model_dump(mode="json", by_alias=True, exclude_none=True)


def report_outline(report: wr.Report) -> dict:
    """The report model as JSON-ready data, each block and panel named by its type. Not the API
    form: converting a run set to it looks the project's internal id up on the W&B server."""
    return outline(report)


def outline(value: Any) -> Any:
    """A library model as plain data: public fields that are set, plus each object's type."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = {f.name: outline(getattr(value, f.name)) for f in dataclasses.fields(value)}
        return {"type": type(value).__name__} | {
            k: v for k, v in fields.items() if not k.startswith("_") and not _empty(v)
        }
    if isinstance(value, list | tuple):
        return [outline(v) for v in value]
    if isinstance(value, dict):
        return {str(k): outline(v) for k, v in value.items()}
    return value


def _empty(value: Any) -> bool:
    return value in (None, "", {}) or (isinstance(value, list) and all(v is None for v in value))
