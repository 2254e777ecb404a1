"""What a run is, in the words a dashboard groups by: task set, backbone, weighting, loss, fold.

W&B runs get their ``group`` (the experiment: task set, backbone, weighting, a non-default loss
and the digest of the settings that set it apart, :mod:`mtl.training.settings`, so the folds and
seeds of one experiment share a group and runs of other lengths or learning rates do not),
``job_type`` (single- or multi-task) and ``tags`` from here, and ``wandb.config["mtl"]`` holds
the same fields, so dashboards compare single- vs multi-task, backbones and weightings with no
hand-made names.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import lightning as L


def backbone_label(backbone: object) -> str:
    """A short name of a backbone: its class, and the choice that tells variants apart
    (a timm model's name, a ResNet-v2 version)."""
    name = type(backbone).__name__
    config = getattr(backbone, "config", None)
    args = config()["init_args"] if callable(config) else {}
    if "model_name" in args and name == "TimmBackbone":
        return f"timm:{args['model_name']}"
    if "version" in args:
        return f"{name}-ver{args['version']}"
    return name


def validation_fold(datamodule: object) -> int | None:
    """The k-fold the run validates on: the DataModule's ``val_fold``, or the one its children
    (a multi-source run's) share."""
    fold = getattr(datamodule, "val_fold", None)
    children = getattr(datamodule, "datamodules", [])
    folds = {getattr(child, "val_fold", None) for child in children} - {None}
    return fold if fold is not None or len(folds) != 1 else folds.pop()


DEFAULT_LOSS = "cross_entropy"


@dataclass(frozen=True)
class RunIdentity:
    """The experiment a run belongs to (tasks, backbone, weighting, loss, and the digest of its
    other settings where the run's config is known) and which repetition of it the run is (fold,
    data seed; ``seed_everything``, which draws the initial weights, is in the run's config)."""

    tasks: tuple[str, ...]
    backbone: str
    weighting: str
    fold: int | None = None
    loss: str = DEFAULT_LOSS
    seed: int | None = None
    settings: str | None = None  # mtl.training.settings.settings_digest of the run's config

    @classmethod
    def of(
        cls,
        model: L.LightningModule,
        datamodule: L.LightningDataModule | None,
        settings: str | None = None,
    ) -> RunIdentity:
        tasks = tuple(getattr(model, "task_names", ()))
        net = getattr(model, "net", None)
        backbone = backbone_label(getattr(net, "backbone", None)) if net is not None else "?"
        weighting = type(getattr(model, "weighting", None)).__name__
        loss = getattr(model, "hparams", {}).get("task_loss", DEFAULT_LOSS)
        seed = getattr(datamodule, "seed", None)
        return cls(tasks, backbone, weighting, validation_fold(datamodule), loss, seed, settings)

    @property
    def task_set(self) -> str:
        return "+".join(self.tasks)

    @property
    def job_type(self) -> str:
        return "multi-task" if len(self.tasks) > 1 else "single-task"

    @property
    def experiment(self) -> str:
        """Task set, backbone and weighting (and the loss when it is not the default)."""
        loss = "" if self.loss == DEFAULT_LOSS else f"|{self.loss}"
        return f"{self.task_set}|{self.backbone}|{self.weighting}{loss}"

    @property
    def group(self) -> str:
        """The experiment with its settings' digest: the runs one row of ``mtl report`` holds."""
        return self.experiment + ("" if self.settings is None else f"|{self.settings}")

    @property
    def tags(self) -> list[str]:
        tags = [self.job_type, f"tasks:{self.task_set}", f"backbone:{self.backbone}"]
        tags += [f"weighting:{self.weighting}", f"loss:{self.loss}"]
        return tags + ([f"fold:{self.fold}"] if self.fold is not None else [])

    def as_config(self) -> dict:
        derived = {"task_set": self.task_set, "job_type": self.job_type, "group": self.group}
        return asdict(self) | derived
