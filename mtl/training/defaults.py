"""The callbacks every ``mtl fit`` gets (and ``mtl bench train`` measures with), minus those
the trainer's options rule out."""

from __future__ import annotations

import importlib

from jsonargparse import Namespace
from lightning.pytorch.callbacks import Callback, LearningRateMonitor, ModelCheckpoint

from mtl.training.callbacks import ResultsTable, ResumeState
from mtl.training.ensemble import CheckpointEnsemble
from mtl.training.evaluation import ConfusionMatrices, PredictionSamples
from mtl.training.subgroups import SubgroupMetrics
from mtl.training.summary import RunSummary


def default_callbacks(trainer: Namespace, ensemble: int = 0) -> list[Callback]:
    """The project's callbacks, minus those the trainer options rule out: no checkpointing,
    or a ModelCheckpoint of the user's own, drops the default ModelCheckpoint; ``ensemble``
    epochs > 0 adds the checkpoint ensemble."""
    callbacks: list[Callback] = [ResultsTable(), ResumeState(), ConfusionMatrices(),
                                 SubgroupMetrics(), RunSummary()]  # fmt: skip
    if ensemble:
        callbacks.append(CheckpointEnsemble(ensemble))
    if trainer.get("logger") is not False:  # Lightning's LR monitor needs a logger
        callbacks += [LearningRateMonitor(), PredictionSamples()]
    own = [c for c in (trainer.get("callbacks") or []) if _is_checkpoint(c)]
    if trainer.get("enable_checkpointing") is not False and not own:
        checkpoint = ModelCheckpoint(
            save_last=True,
            filename="epoch{epoch:03d}",
            auto_insert_metric_name=False,
            save_on_train_epoch_end=True,  # after on_train_epoch_end: epoch state included
        )
        callbacks.insert(0, checkpoint)
    return callbacks


def _is_checkpoint(callback: object) -> bool:
    path = callback.get("class_path", "") if isinstance(callback, Namespace) else ""
    module, _, name = str(path).rpartition(".")
    try:
        cls = getattr(importlib.import_module(module), name) if module else None
    except (ImportError, AttributeError):
        return False
    return isinstance(cls, type) and issubclass(cls, ModelCheckpoint)
