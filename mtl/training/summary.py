"""What a finished run leaves on disk for people and for ``mtl report``.

:class:`RunSummary` (a default callback) writes, in the run's log folder:

* ``run.json``: what the run is (task set, backbone, weighting, loss, fold, seed), its final
  metrics (last validation epoch after fit; test results, final model and ensemble, after a
  test), and how it ran (precision, training data path, hardware, threads, devices, the
  fit's wall time), so runs are compared without re-reading their logs; how it ran goes to
  W&B's config too: ``ran`` once training starts, the epochs, fit time and ensemble size
  (``HOW_KEYS``) after a fit and after a test;
* after a test, ``test/results.csv`` (one row per model, source, task and metric) and
  ``test/confusion/<source>-<task>.csv`` / ``.png`` per classification task (and per source),
  the PNGs logged to W&B too when it is on; and a table of the results on the console.
"""

from __future__ import annotations

import csv
import json
import platform
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.loggers import WandbLogger
from lightning.pytorch.utilities import rank_zero_only
from rich.console import Console
from rich.table import Table

from mtl.tasks import metric_key
from mtl.training.callbacks import run_ids
from mtl.training.ensemble import CheckpointEnsemble
from mtl.training.evaluation import ConfusionMatrices, write_confusion_csv
from mtl.training.hooks import skip_unused_batch_hooks
from mtl.training.identity import RunIdentity
from mtl.training.loggers import update_wandb_config
from mtl.training.run_file import HOW_KEYS, MODELS, RUN_FILE, fit_ran_beside, result_rows
from mtl.training.subgroups import Gap, SubgroupMetrics, as_record


def scalars(metrics: dict, prefixes: tuple[str, ...]) -> dict[str, float]:
    """The finite-or-NaN float values of the metrics under ``prefixes``."""
    out = {}
    for key, value in metrics.items():
        if key.split("/", 1)[0] in prefixes:
            out[key] = float(value.item() if isinstance(value, torch.Tensor) else value)
    return out


def confusion_png(matrix: torch.Tensor, class_names: list[str], title: str, path: Path) -> None:
    """A confusion matrix (rows: actual) as a heat map with counts."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(class_names)
    fig, ax = plt.subplots(figsize=(1.0 + 0.7 * n, 0.8 + 0.6 * n))
    ax.imshow(matrix.numpy(), cmap="Blues")
    ax.set_xticks(range(n), class_names, rotation=45, ha="right")
    ax.set_yticks(range(n), class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("actual")
    ax.set_title(title)
    top = float(matrix.max()) or 1.0
    for i in range(n):
        for j in range(n):
            value = int(matrix[i, j])
            ax.text(j, i, value, ha="center", va="center",
                    color="white" if value > top / 2 else "black", fontsize=8)  # fmt: skip
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def hardware(trainer: L.Trainer) -> str:
    """The machine a run trained on, in words: the GPU's name, or the CPU's model."""
    return device_name(trainer.strategy.root_device)


def device_name(device: torch.device) -> str:
    """A device in words: a GPU's name, or this machine's CPU model (``/proc/cpuinfo``'s, else
    the platform's); what run files and benchmark records say a figure was measured on."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def how_it_ran(trainer: L.Trainer) -> dict:
    """The facts that make a run's speed and numerics, as ``run.json`` records them."""
    data_path = getattr(trainer.datamodule, "data_path", None)
    return {
        "precision": str(trainer.precision),
        "data_path": None if data_path is None else data_path.name,
        "training_data": None if data_path is None else data_path.describe(),
        "device": trainer.strategy.root_device.type,
        "hardware": hardware(trainer),
        "devices": trainer.num_devices * trainer.num_nodes,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__.split("+")[0],
    }


@skip_unused_batch_hooks
class RunSummary(L.Callback):
    """Writes ``run.json`` after fit and test, and the test's result files (rank 0 only).

    ``fit_seconds`` is the wall time of fitting. Checkpoints carry the time so far (a plain
    float), so a resumed run adds its own to the time up to the checkpoint it resumed from, also
    after an interruption that never reached the end of a fit; and how the fit ran (``ran``, a
    plain dict), so a later test of the checkpoint in a folder of its own records the fit's
    precision, data path and hardware rather than none."""

    @property
    def state_key(self) -> str:
        """The key of its state in checkpoints: the class's name before it was renamed, so a
        run checkpointed then resumes with its fit time."""
        return "RunReport"

    def __init__(self) -> None:
        self.fit_started: float | None = None
        self.earlier_seconds = 0.0  # fitting before the checkpoint this fit resumed from
        self.trained_epochs: int | None = None  # of the checkpoint a test or resume loaded
        self.fit_ran: dict[str, Any] | None = None  # this fit's, or a loaded checkpoint's fit's
        self.settings: str | None = None  # the run's settings digest (RunIdentity), from the CLI

    def fit_seconds(self) -> float:
        started = self.fit_started
        return self.earlier_seconds + (0.0 if started is None else time.perf_counter() - started)

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.fit_started = time.perf_counter()

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """How the run trains, once its data path is chosen: kept for its checkpoints (a later
        test of one records the fit's hardware, not its own) and put into W&B's config
        (``ran``), so a dashboard can group or filter runs by precision, data path and hardware,
        and ``mtl report`` reads it from W&B as from ``run.json``. Computed on every rank (local
        facts only, no collective), so the callback's state is the same on each."""
        self.fit_ran = how_it_ran(trainer)
        if trainer.is_global_zero:
            update_wandb_config(trainer, {"ran": self.fit_ran})

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {"fit_seconds": self.fit_seconds()}
        if self.fit_ran is not None:
            state["ran"] = self.fit_ran
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.earlier_seconds = float(state_dict.get("fit_seconds", 0.0))
        ran = state_dict.get("ran")
        self.fit_ran = dict(ran) if isinstance(ran, dict) else None

    def on_load_checkpoint(
        self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        """The epochs the checkpoint's model trained, as Lightning's fit loop counts those
        whose training steps all ran (one fewer in a checkpoint saved inside a validation that
        ends an epoch, which the project's checkpoints are not): what a test of it in a folder
        of its own records as ``epochs``, with the fit's time."""
        progress = checkpoint.get("loops", {}).get("fit_loop", {}).get("epoch_progress", {})
        self.trained_epochs = progress.get("current", {}).get("processed")

    @staticmethod
    def folder(trainer: L.Trainer) -> Path | None:
        """The run's folder, as ``trainer.log_dir`` finds it but without its DDP broadcast
        (this runs on rank 0 only): the first logger's folder; None for a run that has no
        logger or is a ``fast_dev_run`` (nothing to report on, nowhere of its own to write)."""
        if not trainer.loggers or trainer.fast_dev_run:
            return None
        logger = trainer.loggers[0]
        folder = getattr(logger, "log_dir", None) or logger.save_dir
        return Path(folder) if folder else None

    def update_run_file(
        self, folder: Path, trainer: L.Trainer, pl_module: L.LightningModule, **fields: object
    ) -> None:
        """Merge ``fields`` into the run's ``run.json``, and mirror how the run ran (its
        ``HOW_KEYS``: epochs, fit time, hardware, ensemble size) into each W&B run's config, so
        a report of W&B runs names an ensemble by the members it really averaged."""
        path = folder / RUN_FILE
        record = json.loads(path.read_text()) if path.is_file() else {}
        identity = RunIdentity.of(pl_module, trainer.datamodule, self.settings)
        record |= {"identity": identity.as_config()}
        if trainer.state.fn == "fit":
            record["epochs"] = trainer.current_epoch
        elif "epochs" not in record:  # a test of a checkpoint, in a folder of its own
            trained = self.trained_epochs
            record["epochs"] = trained if trained is not None else trainer.current_epoch
            record["tested_checkpoint"] = str(trainer.ckpt_path) if trainer.ckpt_path else None
            if self.earlier_seconds:
                record["fit_seconds"] = round(self.earlier_seconds, 1)
            ran = self.fit_ran or fit_ran_beside(trainer.ckpt_path)
            if ran:
                record["ran"] = ran
        record |= {"run_ids": run_ids(trainer)} | fields
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(record, indent=1, allow_nan=True))
        update_wandb_config(trainer, {k: record[k] for k in HOW_KEYS if k in record})

    @rank_zero_only
    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        folder = self.folder(trainer)
        if folder is not None:
            val = scalars(trainer.callback_metrics, ("val",))
            seconds = round(self.fit_seconds(), 1)
            fields = {"val": val, "fit_seconds": seconds, "ran": how_it_ran(trainer)}
            self.update_run_file(folder, trainer, pl_module, **fields)

    @rank_zero_only
    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        metrics = scalars(trainer.callback_metrics, tuple(MODELS))
        rows = result_rows(metrics)
        Console().print(results_table(rows))
        run_folder = self.folder(trainer)
        if run_folder is None:
            return
        subgroups = next((c for c in trainer.callbacks if isinstance(c, SubgroupMetrics)), None)
        fields: dict[str, object] = {"test": metrics}
        tested_on = getattr(trainer.datamodule, "tested_on", None)
        if callable(tested_on):  # which faces each source's test held, for the model card
            fields["tested_on"] = tested_on()
        ensemble = next((c for c in trainer.callbacks if isinstance(c, CheckpointEnsemble)), None)
        if ensemble is not None and ensemble.members:  # what test_ens averaged, for mtl report
            fields["ensemble_members"] = ensemble.members
        if subgroups is not None and subgroups.rows:
            Console().print(gaps_table(subgroups.gaps, subgroups.min_faces))
            fields["subgroups"] = as_record(subgroups.rows, subgroups.gaps)
        self.update_run_file(run_folder, trainer, pl_module, **fields)
        folder = run_folder / "test"
        folder.mkdir(parents=True, exist_ok=True)
        with (folder / "results.csv").open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=["model", "source", "task", "metric", "value"])
            writer.writeheader()
            writer.writerows(rows)
        self.write_confusions(trainer, folder / "confusion")
        if "subgroups" in fields:
            self.write_subgroups(trainer, fields["subgroups"], folder / "subgroups.csv")

    def write_subgroups(self, trainer: L.Trainer, record: dict, path: Path) -> None:
        """``test/subgroups.csv``, and two tables on W&B: every subgroup
        (``test/subgroups``) and the gaps (``test/subgroup_gaps``)."""
        groups, gaps = record["groups"], record["gaps"]
        with path.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(groups[0]))
            writer.writeheader()
            writer.writerows(groups)
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                for key, rows in (("test/subgroups", groups), ("test/subgroup_gaps", gaps)):
                    columns = list(rows[0]) if rows else []
                    data = [[r[c] for c in columns] for r in rows]
                    logger.log_table(key, columns=columns, data=data)

    def write_confusions(self, trainer: L.Trainer, folder: Path) -> None:
        matrices = next((c for c in trainer.callbacks if isinstance(c, ConfusionMatrices)), None)
        results = getattr(matrices, "results", {}).get("test", {})
        folder.mkdir(parents=True, exist_ok=True)
        images = []
        for (source, task), matrix in results.items():
            if matrix.sum() == 0:
                continue
            names = list(matrices.tasks[task].class_names)  # type: ignore[union-attr]
            stem = f"{source or 'all'}-{task}"
            write_confusion_csv(matrix, names, folder / f"{stem}.csv")
            title = f"{task} ({source or 'all sources'})"
            confusion_png(matrix, names, title, folder / f"{stem}.png")
            images.append((metric_key("test", task, "confusion_png", source), stem))
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                for key, stem in images:
                    logger.log_image(key, [str(folder / f"{stem}.png")], step=trainer.global_step)


def gaps_table(gaps: list[Gap], min_faces: int) -> Table:
    """Per task and partition: the best and worst subgroup and the gap between them."""
    table = Table(title=f"Test accuracy per subgroup (subgroups of {min_faces}+ faces)")
    for column in ("source", "task", "subgroups of", "best", "worst", "gap", "subgroups"):
        table.add_column(column, justify="right" if column in ("gap", "subgroups") else "left")
    for g in gaps:
        gap = "-" if g.gap is None else f"{g.gap:.4f}"
        table.add_row(g.source, g.task, g.partition, g.best or "-", g.worst or "-", gap,
                      str(g.groups))  # fmt: skip
    return table


def results_table(rows: list[dict]) -> Table:
    """Test results: one row per source and task, a column per model and metric."""
    columns = sorted({(r["model"], r["metric"]) for r in rows}, key=lambda c: (c[0] != "final", c))
    cells: dict[tuple[str, str], dict] = {}
    for r in rows:
        cells.setdefault((r["source"], r["task"]), {})[(r["model"], r["metric"])] = r["value"]
    table = Table(title="Test results")
    table.add_column("source")
    table.add_column("task")
    for model, metric in columns:
        table.add_column(metric if model == "final" else f"{metric} ({model})", justify="right")
    for (source, task), values in cells.items():
        shown = [f"{values[c]:.4f}" if c in values else "-" for c in columns]
        table.add_row(source, task, *shown)
    return table
