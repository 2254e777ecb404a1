"""``mtl dashboard``: the W&B workspace and report models, built and converted offline (nothing
is ever saved), and the command's dry run, errors and output."""

from __future__ import annotations

import json
import re
import socket
from types import SimpleNamespace

import pytest
import wandb_workspaces.reports.v2 as wr
import wandb_workspaces.workspaces as ws
from wandb_workspaces.reports.v2 import interface as report_interface
from wandb_workspaces.workspaces import internal as workspace_internal

from mtl.cli import main
from mtl.experiments import dashboard

TASKS = ("smile", "emotion", "gender", "age")


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any connection, W&B API object or save fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError("the network was used")

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr("wandb.Api", refuse)
    monkeypatch.setattr(ws.Workspace, "save", refuse)
    monkeypatch.setattr(wr.Report, "save", refuse)


@pytest.fixture
def workspace(no_network) -> ws.Workspace:
    return dashboard.build_workspace("me", "mtl")


def sections(workspace: ws.Workspace) -> dict[str, list]:
    return {s.name: s.panels for s in workspace.sections}


# --- the workspace model ------------------------------------------------------------------


def test_workspace_has_the_comparison_sections_in_order(workspace):
    assert list(sections(workspace)) == [
        "Validation accuracy",
        "Test accuracy",
        "By task set",
        "By backbone",
        "By weighting",
        "Validation accuracy per source",
        "Loss weights",
        "Learning rate and losses",
    ]
    assert (workspace.entity, workspace.project, workspace.name) == ("me", "mtl", "mtl comparison")
    assert workspace.auto_generate_panels is False  # only our panels, not one per logged key


@pytest.mark.parametrize(
    ("name", "key"),
    [("Validation accuracy", "mtl.group"), ("By task set", "mtl.task_set"),
     ("By backbone", "mtl.backbone"), ("By weighting", "mtl.weighting")],
)  # fmt: skip
def test_validation_curves_per_task_grouped_by_the_compared_key(workspace, name, key):
    panels = sections(workspace)[name]
    assert [p.y for p in panels] == [[f"val/{t}/acc"] for t in TASKS]
    for panel in panels:
        assert isinstance(panel, wr.LinePlot) and panel.x == "epoch"
        assert panel.groupby == wr.Config(key)
        assert (panel.groupby_aggfunc, panel.groupby_rangefunc) == ("mean", "stddev")


def test_test_accuracy_is_a_bar_plot_per_task_beside_the_ensemble(workspace):
    panels = sections(workspace)["Test accuracy"]
    assert all(isinstance(p, wr.BarPlot) for p in panels)
    assert [p.metrics for p in panels] == [[f"test/{t}/acc", f"test_ens/{t}/acc"] for t in TASKS]
    assert {p.groupby for p in panels} == {wr.Config("mtl.group")}  # one experiment, one bar


def test_loss_weights_learning_rate_and_losses(workspace):
    weights = sections(workspace)["Loss weights"]
    assert [p.y for p in weights] == [[f"train/{t}/weight"] for t in TASKS]
    assert {p.x for p in weights} == {"trainer/global_step"}
    lr, total, *per_task = sections(workspace)["Learning rate and losses"]
    assert lr.metric_regex and total.y == ["train/loss", "val/loss"]
    for key in ("lr-SGD", "lr-MomentumSGD", "lr-Adam/pg1"):
        assert re.search(lr.metric_regex, key), key
    assert not re.search(lr.metric_regex, "train/loss")
    assert [p.y for p in per_task] == [[f"train/{t}/loss", f"val/{t}/loss"] for t in TASKS]


def test_per_source_panels_match_every_source_and_only_their_task(workspace):
    smile = sections(workspace)["Validation accuracy per source"][0]
    assert re.search(smile.metric_regex, "val/genki4k/smile/acc")
    assert re.search(smile.metric_regex, "val/s_smile/smile/acc")
    for other in ("val/smile/acc", "val/fer2013/emotion/acc", "test/genki4k/smile/acc"):
        assert not re.search(smile.metric_regex, other), other


def test_runs_are_grouped_by_task_set_in_the_runs_table(workspace):
    assert workspace.runset_settings.groupby == [ws.Config("mtl.task_set")]


def test_a_regression_task_is_plotted_by_its_mae(no_network):
    built = dashboard.build_workspace("me", "mtl", tasks=["smile", "age_years"])
    panels = sections(built)
    assert panels["Validation accuracy"][1].y == ["val/age_years/mae"]
    assert panels["Test accuracy"][1].metrics == ["test/age_years/mae", "test_ens/age_years/mae"]


def test_an_unknown_task_is_refused(no_network):
    with pytest.raises(ValueError, match="unknown task"):
        dashboard.build_workspace("me", "mtl", tasks=["smile", "beard"])


def test_workspace_converts_to_the_view_that_save_uploads(workspace):
    """``Workspace.save()`` converts with ``_to_model()`` and uploads the spec; convert only."""
    spec = dashboard.workspace_spec(workspace)
    json.dumps(spec)  # JSON-ready
    assert (spec["entity"], spec["project"], spec["displayName"]) == ("me", "mtl", "mtl comparison")
    section = spec["spec"]["section"]
    (runset,) = section["runSets"]
    assert runset["grouping"] == [{"section": "config", "name": "mtl.value.task_set"}]
    assert section["settings"]["shouldAutoGeneratePanels"] is False
    by_name = {s["name"]: s["panels"] for s in section["panelBankConfig"]["sections"]}
    backbone = by_name["By backbone"][0]
    assert backbone["viewType"] == "Run History Line Plot"
    assert backbone["config"]["metrics"] == ["val/smile/acc"]
    assert backbone["config"]["groupBy"] == "mtl.value.backbone"
    assert backbone["config"]["aggregate"] is True
    assert by_name["Test accuracy"][0]["viewType"] == "Bar Chart"
    # the library reads its own output back: the spec is a valid view
    again = ws.Workspace._from_model(workspace_internal.View.model_validate(spec))
    assert [s.name for s in again.sections] == [s.name for s in workspace.sections]
    assert again.sections[4].panels[0].groupby == wr.Config("mtl.weighting")


# --- the report model ---------------------------------------------------------------------


def test_report_compares_test_accuracy_by_each_key_then_validation_curves(no_network):
    report = dashboard.build_report("me", "mtl", title="t")
    assert (report.entity, report.project, report.title) == ("me", "mtl", "t")
    headings = [b.text for b in report.blocks if isinstance(b, wr.H2)]
    assert headings == [
        "Test accuracy by experiment",
        "Test accuracy by task set",
        "Test accuracy by backbone",
        "Test accuracy by weighting",
        "Validation curves by experiment",
    ]
    grids = [b for b in report.blocks if isinstance(b, wr.PanelGrid)]
    keys = ["mtl.group", "mtl.task_set", "mtl.backbone", "mtl.weighting", "mtl.group"]
    for grid, key in zip(grids, keys, strict=True):
        (runset,) = grid.runsets
        assert (runset.entity, runset.project, runset.groupby) == ("me", "mtl", [f"config.{key}"])
        assert {p.groupby for p in grid.panels} == {wr.Config(key)}
    assert [p.metrics for p in grids[1].panels] == [
        [f"test/{t}/acc", f"test_ens/{t}/acc"] for t in TASKS
    ]
    assert [p.y for p in grids[4].panels] == [[f"val/{t}/acc"] for t in TASKS]


def test_report_converts_to_the_spec_that_save_uploads(no_network, monkeypatch):
    """``Report.save()`` converts with ``_to_model()``, whose one server call looks up each run
    set's project id; that call is faked here, the conversion is real."""
    asked = []

    def project_id(api, query, variables):
        asked.append((variables["entityName"], variables["projectName"]))
        return {"project": {"internalId": "UHJvamVjdDox"}}

    monkeypatch.setattr(report_interface, "execute_graphql", project_id)
    monkeypatch.setattr(report_interface, "_get_api", lambda: None)
    model = dashboard.build_report("me", "mtl")._to_model()
    spec = json.loads(model.spec.model_dump_json(by_alias=True, exclude_none=True))
    assert asked == [("me", "mtl")] * 5
    grids = [b for b in spec["blocks"] if b["type"] == "panel-grid"]
    assert len(grids) == 5
    groupings = [g["metadata"]["runSets"][0]["grouping"][0]["name"] for g in grids]
    assert groupings == ["mtl.value.group", "mtl.value.task_set", "mtl.value.backbone",
                         "mtl.value.weighting", "mtl.value.group"]  # fmt: skip
    bars = grids[0]["metadata"]["panelBankSectionConfig"]["panels"]
    assert [p["viewType"] for p in bars] == ["Bar Chart"] * len(TASKS)
    assert bars[0]["config"]["metrics"] == ["test/smile/acc", "test_ens/smile/acc"]
    assert bars[0]["config"]["groupBy"] == "mtl.value.group"


# --- the command --------------------------------------------------------------------------


def run(argv: list[str]) -> int:
    try:
        main(argv)
    except SystemExit as exit_info:
        return int(exit_info.code or 0)
    return 0


def test_dry_run_prints_the_spec_and_touches_no_network(no_network, capsys):
    status = run(["dashboard", "--dry_run", "--entity", "e", "--project", "p", "--report"])
    assert status == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["workspace"]["entity"] == "e" and printed["workspace"]["project"] == "p"
    sections_ = printed["workspace"]["spec"]["section"]["panelBankConfig"]["sections"]
    assert sections_[0]["name"] == "Validation accuracy"
    blocks = printed["report"]["blocks"]
    assert [b["type"] for b in blocks].count("PanelGrid") == 5
    assert blocks[2]["panels"][0]["type"] == "BarPlot"


def test_entity_comes_from_the_environment_else_is_required(no_network, monkeypatch, capsys):
    monkeypatch.setenv("WANDB_ENTITY", "team")
    assert run(["dashboard", "--dry_run", "--tasks", "[smile]"]) == 0
    printed = json.loads(capsys.readouterr().out)["workspace"]
    assert printed["entity"] == "team" and printed["project"] == "mtl"
    monkeypatch.delenv("WANDB_ENTITY")
    assert run(["dashboard", "--dry_run"]) == 2
    assert "pass --entity" in capsys.readouterr().err


def test_an_unknown_task_is_one_line(no_network, capsys):
    assert run(["dashboard", "--dry_run", "--entity", "e", "--tasks", "[beard]"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mtl: error:") and "beard" in err and err.count("\n") == 1


def test_saving_offline_or_without_credentials_is_one_line(no_network, monkeypatch, capsys):
    assert run(["dashboard", "--entity", "e"]) == 2  # WANDB_MODE=offline
    assert "WANDB_MODE=offline" in capsys.readouterr().err

    def no_key(self):
        raise RuntimeError("No API key configured. Use `wandb login` to log in.")

    monkeypatch.delenv("WANDB_MODE")
    monkeypatch.setattr(ws.Workspace, "save", no_key)
    assert run(["dashboard", "--entity", "e"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mtl: error: could not save the W&B workspace in e/mtl: No API key")
    assert err.count("\n") == 1


def test_saving_prints_the_urls(no_network, monkeypatch, capsys):
    saved = []

    def fake_save(kind):
        def save(self):
            saved.append(self)
            return SimpleNamespace(url=f"https://wandb.ai/e/p/{kind}")

        return save

    monkeypatch.delenv("WANDB_MODE")
    monkeypatch.setattr(ws.Workspace, "save", fake_save("workspace"))
    monkeypatch.setattr(wr.Report, "save", fake_save("report"))
    assert run(["dashboard", "--entity", "e", "--project", "p", "--report"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == [
        "workspace: https://wandb.ai/e/p/workspace",
        "report: https://wandb.ai/e/p/report",
    ]
    assert [type(m) for m in saved] == [ws.Workspace, wr.Report]
    assert saved[0].project == "p" and saved[1].entity == "e"


def test_help_lists_the_options(capsys):
    assert run(["dashboard", "--help"]) == 0
    out = capsys.readouterr().out
    for option in ("--entity", "--project", "--tasks", "--name", "--report", "--dry_run"):
        assert option in out, option
