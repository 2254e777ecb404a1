"""The multi-task LightningModule: network, masked losses, weighting, metrics, optimisation."""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Literal

import lightning as L
import torch
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from lightning.pytorch.utilities import rank_zero_warn
from torch import nn

from mtl.data.preprocessing import PREPROCESSING_KEY, Preprocessing, describe_input
from mtl.errors import ConfigError
from mtl.losses import CLASSIFICATION_LOSSES, EuclideanGaussian, FixedWeighting, WeightingCallable
from mtl.losses.distributed import max_over_ranks, world_size
from mtl.losses.task_losses import Normalization, class_indices, masked_task_means
from mtl.models import Backbone, BKNet, HeadConfig, MultiTaskNet
from mtl.models.hparams import plain_hparams
from mtl.tasks import DEFAULT_AGE_EDGES, Task, build_tasks
from mtl.training.hooks import skip_unused_batch_hooks
from mtl.training.hub import HubModel
from mtl.training.metrics import EVAL_STAGES, STAGES, StageMetrics, evaluation_sources
from mtl.training.optim import ExponentialDecay, MomentumSGD, param_groups
from mtl.training.precise_bn import PreciseBatchNorm

_SYNCED_KEYS: set[str] = set()


def _already_synced(values: Mapping[str, torch.Tensor]) -> None:
    """Silence Lightning's advice to log these epoch values with ``sync_dist=True`` (a
    ``PossibleUserWarning`` under DDP): they were computed from state summed over every rank,
    so every rank logs the same values (an all-reduce of each would only cost collectives).
    One filter per new key, for these exact keys only."""
    new = set(values) - _SYNCED_KEYS
    if not new:
        return
    _SYNCED_KEYS.update(new)
    keys = "|".join(re.escape(k) for k in sorted(new))
    warnings.filterwarnings("ignore", message=rf"It is recommended to use `self\.log\('(?:{keys})'")


@skip_unused_batch_hooks
class MultiTaskModule(L.LightningModule, HubModel):
    """Learns every task of the run jointly from batches with per-task label masks. Saved and
    loaded also as a Hugging Face Hub folder (:class:`~mtl.training.hub.HubModel`:
    ``save_pretrained``, ``from_pretrained``, ``push_to_hub``)."""

    def __init__(
        self,
        tasks: Sequence[str],
        age_edges: Sequence[int] = DEFAULT_AGE_EDGES,
        backbone: Backbone | None = None,
        head: HeadConfig | None = None,
        init_std: float | Literal["auto"] | None = "auto",
        weighting: WeightingCallable = FixedWeighting,
        normalization: Normalization = "batch",
        task_loss: Literal["cross_entropy", "squared_hinge"] = "cross_entropy",
        regression_loss: EuclideanGaussian = EuclideanGaussian(),
        optimizer: OptimizerCallable = MomentumSGD,
        lr_scheduler: LRSchedulerCallable | None = ExponentialDecay,
        decay_norm_and_bias: bool = False,
        monitor: str = "val/loss",
        channels_last: bool | None = None,
        compile: bool | Literal["net", "step"] = False,
        compile_mode: str | None = None,
        precise_bn: int = 0,
        test_time_flip: bool = False,
    ) -> None:
        """
        Args:
            tasks: names of the run's tasks (the CLI links them from the data module).
            age_edges: age-group edges in years (linked from the data module too).
            backbone: shared trunk (default: Multi-task BKNet's, with batch norm).
            head: shape of every task branch (default FC 256 -> FC 256, BN, dropout 0.5).
            init_std: N(0, init_std) initialisation of all weights; "auto" takes the backbone's
                paper default (0.01 for BKNet/MBKNet), None keeps PyTorch's/timm's own.
            weighting: how per-task losses combine (default: fixed mu_t = 1).
            normalization: divide each task's summed loss by the batch size ("batch", the
                paper's Eq. 1) or by its labelled count ("labelled").
            task_loss: loss of classification tasks: softmax cross-entropy (Eq. 1) or the
                multi-class squared hinge "SVM" loss (Eq. 2).
            regression_loss: loss of regression tasks (``age_years``): Jassim et al.'s
                Euclidean -> Gaussian loss.
            optimizer: optimiser class and arguments (default: SGD, momentum 0.9, lr 0.01).
            lr_scheduler: schedule (default: the paper's exponential decay), or None.
            decay_norm_and_bias: also apply weight decay to biases and norm parameters.
            monitor: metric a plateau scheduler watches.
            channels_last: run convolutions on NHWC tensors; None: the backbone's default (on
                for the BKNet family, where ``mtl bench train`` measured the framework 1.14x
                faster on 2 CPU cores and 1.42x on an H100; docs: guide/speed.md).
            compile: ``torch.compile`` when the trainer starts (the first steps pay the
                compilation): ``true`` or ``"net"`` the network; ``"step"`` also the whole
                training computation, network, masked losses and weighting, as one graph
                (:meth:`objective`; a weighting that acts on gradients keeps it eager).
                ``mtl bench train --variants`` measures the first, ``mtl bench overhead
                --compile step`` the second.
            compile_mode: ``torch.compile``'s mode: ``"reduce-overhead"`` replays the step as
                CUDA graphs on a GPU (one launch instead of hundreds), ``"max-autotune"``.
            precise_bn: before each validation of a fit, recompute batch-norm statistics from
                this many of the epoch's latest training images under the current weights,
                instead of evaluating with running averages that lag behind fast-moving
                weights (``mtl.training.precise_bn``); 0: off. Training is unchanged unless
                something reads validation results (a plateau scheduler, early stopping).
            test_time_flip: validation, test and prediction (and a saved or exported model)
                average each face's outputs with its mirror image's: class probabilities
                averaged, as the checkpoint ensemble does, at twice the evaluation compute and
                activation memory. Training steps are unchanged, but validation results change,
                and so does training if something reads them (a plateau scheduler, early
                stopping, a checkpoint kept by a monitored metric).
        """
        if channels_last is None:  # resolved first, so the saved hyperparameters say what ran
            channels_last = (BKNet if backbone is None else type(backbone)).channels_last_default
        arguments = {k: v for k, v in locals().items() if k not in ("self", "__class__")}
        super().__init__()
        self.save_hyperparameters(plain_hparams(arguments))  # class paths, never objects
        self.tasks: tuple[Task, ...] = build_tasks(tasks, age_edges)
        self.task_names = [t.name for t in self.tasks]
        self.net = MultiTaskNet(self.tasks, backbone or BKNet(), head, init_std, test_time_flip)
        bb = self.net.backbone
        self.example_input_array = torch.zeros(1, bb.in_chans, bb.input_size, bb.input_size)
        self.weighting = weighting(self.task_names)
        self.normalization = normalization
        self.classification_loss = CLASSIFICATION_LOSSES[task_loss]
        self.regression_loss = regression_loss
        self.optimizer_factory, self.scheduler_factory = optimizer, lr_scheduler
        self.decay_norm_and_bias, self.monitor = decay_norm_and_bias, monitor
        self.channels_last, self.compile_net = channels_last, compile
        self.compile_mode = compile_mode
        self.precise_bn = PreciseBatchNorm(precise_bn)
        self.preprocessing: Preprocessing | None = None  # from a checkpoint or pretrained folder
        self._compiled = False
        self._compiled_objective: Callable | None = None  # compile="step": objective, compiled
        # What a logging step logs: total loss, then each task's loss, then each task's weight.
        self._step_log_names = ["train/loss", *(f"train/{t}/loss" for t in self.task_names)]
        self._step_log_names += [f"train/{t}/weight" for t in self.weighting.tasks]
        # Each task's loss family, read once: (task, whether its loss is a classification's).
        self._task_losses = [(t.name, t.kind.loss_family == "classification") for t in self.tasks]
        self._classifies = any(classifies for _, classifies in self._task_losses)
        # Metrics and mean losses of each stage, one state each (keyed by stage; a ModuleDict
        # key "train" would clash with Module.train). Epoch sums of the training losses live
        # there too, not in buffers, so DDP does not overwrite a rank's sums with rank 0's.
        self.metrics = nn.ModuleDict({f"{s}_metrics": StageMetrics(self.tasks, s) for s in STAGES})

    def __setattr__(self, name: str, value: object) -> None:
        # Lightning sets _current_fx_name around every hook, about 45 times a training step;
        # a plain string needs none of nn.Module.__setattr__'s checks.
        if name == "_current_fx_name":
            object.__setattr__(self, name, value)
        else:
            super().__setattr__(name, value)

    def setup(self, stage: str) -> None:
        """Refuse data whose faces the network cannot take, before any step runs; then
        per-source evaluation metrics (``val/<source>/<task>/acc``), also for one source, so
        every run's results name the dataset they were measured on."""
        self._check_input(self._data_preprocessing(), stage)
        for s in EVAL_STAGES:
            sources = evaluation_sources(self.trainer.datamodule, s)
            if not sources or self.metrics[f"{s}_metrics"].source_names == list(sources):
                continue
            self.metrics[f"{s}_metrics"] = StageMetrics(self.tasks, s, sources).to(self.device)

    def configure_model(self) -> None:
        """The speed-ups, applied once the trainer holds the model on its device. ``compile``
        compiles in place: parameter names, and so checkpoints, stay those of the eager net."""
        if self.channels_last:
            self.net.to(memory_format=torch.channels_last)
        if self.compile_net and not self._compiled:
            self.net.compile(mode=self.compile_mode)
            if self.compile_net == "step" and not self.weighting.captures_step:
                rank_zero_warn(
                    f"model.compile=step: the {self.weighting.name} weighting takes gradients "
                    "or draws on the host inside the step, which torch.compile cannot capture "
                    "as one graph; only the network is compiled"
                )
            elif self.compile_net == "step":
                self._compiled_objective = torch.compile(self.objective, mode=self.compile_mode)
            self._compiled = True

    def _data_preprocessing(self) -> Preprocessing | None:
        """How the trainer's data crops its faces; None for data that does not say."""
        face_settings = getattr(self.trainer.datamodule, "face_settings", None)
        settings = face_settings() if callable(face_settings) else None
        return Preprocessing(settings) if settings is not None else None

    def _check_input(self, data: Preprocessing | None, stage: str) -> None:
        """Refuse faces the network was not built for: a network that flattens fails in the
        first step with a matrix-shape error, and one that pools trains a model whose recorded
        input is false (``mtl analyze`` and ``mtl export`` refuse its checkpoints)."""
        if data is None or data.input_shape == self.input_shape:
            return
        have, want = data.input_shape, self.input_shape
        backbone = type(self.net.backbone).__name__
        if stage != "fit":  # a trained network (a checkpoint's, or the one just fitted)
            fix = "a trained network's input cannot change: give the data faces like its own"
        else:
            flags = [f"--model.backbone.input_size={have[1]}"] if have[1] != want[1] else []
            flags += [f"--model.backbone.in_chans={have[0]}"] if have[0] != want[0] else []
            fix = f"give --model.backbone={backbone} {' '.join(flags)}, or the data other faces"
        raise ConfigError(
            f"the data's faces are {describe_input(have)} but the {backbone} network takes "
            f"{describe_input(want)}: {fix}"
        )

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        """Record how the training faces were cropped: ``mtl analyze`` and ``mtl export`` read
        it, so new photos get exactly the training preprocessing."""
        preprocessing = self._data_preprocessing() or self.preprocessing
        if preprocessing is not None:
            checkpoint[PREPROCESSING_KEY] = preprocessing.to_dict()

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        """Keep the recorded preprocessing: ``save_pretrained`` writes it with the weights."""
        if PREPROCESSING_KEY in checkpoint:
            self.preprocessing = Preprocessing.from_dict(checkpoint[PREPROCESSING_KEY])

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """C x H x W of the faces the network takes."""
        bb = self.net.backbone
        return (bb.in_chans, bb.input_size, bb.input_size)

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        if self.channels_last:
            image = image.contiguous(memory_format=torch.channels_last)  # B x C x H x W, NHWC
        return self.net(image)  # {task: B x C_t (classification) or B (regression)}

    def task_losses(
        self,
        outputs: dict[str, torch.Tensor],
        targets: torch.Tensor,
        mask: torch.Tensor,
        step: int,
    ) -> torch.Tensor:
        """T masked losses, in task order (exact zero for a task with no label in the batch),
        from ``targets`` and ``mask`` (B x T each); ``step``: the optimisation step a
        step-dependent loss reads. Every task's per-sample losses are masked and normalised
        together, in a few operations whatever the number of tasks."""
        values, labelled = targets.unbind(1), mask.unbind(1)  # T of B each
        classes = class_indices(targets, mask).unbind(1) if self._classifies else values
        per_sample = torch.stack(
            [
                self.classification_loss(outputs[name], classes[j])  # B x C, B long -> B
                if classifies
                else self.regression_loss.per_sample(outputs[name], values[j], labelled[j], step)
                for j, (name, classifies) in enumerate(self._task_losses)
            ],
            dim=1,
        )  # B x T
        return masked_task_means(per_sample, mask, self.normalization)  # T

    def present(self, mask: torch.Tensor) -> torch.Tensor:
        """T bool: tasks labelled anywhere in the global batch. Under DDP every rank takes part
        in this all-reduce on every step, so a weighting treats a task the same on all ranks
        (a rank-local "absent" would, e.g., drop an uncertainty term on one rank only)."""
        present = mask.any(dim=0)  # B x T -> T
        return max_over_ranks(present.float()) > 0 if world_size() > 1 else present

    def objective(
        self,
        image: torch.Tensor,
        targets: torch.Tensor,
        mask: torch.Tensor,
        present: torch.Tensor,
        step: int,
        shared: list[nn.Parameter] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        """The step's computation, and nothing else (what ``compile="step"`` compiles):
        network, masked task losses, weighting. Returns the total loss, the T task losses,
        the T weights applied and the outputs."""
        outputs = self(image)
        loss = self.task_losses(outputs, targets, mask, step)  # T, in task order
        total, weights = self.weighting.combine(loss, present.to(loss.dtype), shared)
        return total, loss, weights, outputs

    def shared_step(self, batch: dict, stage: str) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Loss, logs and metrics of one batch; returns the total loss and the outputs. Nothing
        here waits for the device: values are read on the host only at logging steps."""
        present = self.present(batch["mask"])  # T: tasks labelled in this global batch
        shared = None
        if stage == "train" and self.weighting.needs_shared_params:
            shared = [p for p in self.net.backbone.parameters() if p.requires_grad]
        objective = self._compiled_objective if stage == "train" else None
        step = self.global_step if self._trainer is not None else 0
        total, loss, weights, outputs = (objective or self.objective)(
            batch["image"], batch["targets"], batch["mask"], present, step, shared
        )
        self.weighting.record(weights)
        step_losses = torch.cat([total.detach()[None], loss.detach()]).float()  # 1 + T
        self.metrics[f"{stage}_metrics"].update(outputs, batch, step_losses)
        if stage == "train":
            self._log_train_step(step_losses, batch["image"].shape[0])
        return total, outputs

    def _log_train_step(self, step_losses: torch.Tensor, n: int) -> None:
        """On logging steps (``trainer.log_every_n_steps``) only: the step's total loss (also
        on the progress bar), per-task losses and loss weights, read from the device in one
        copy. Every other step logs nothing: each ``self.log`` costs Python time, and a value
        the progress bar shows is read on the host at every refresh. Epoch means add up in the
        stage's metrics and are logged at the epoch end (``train/loss_epoch`` …; a run resumed
        mid-epoch averages that epoch's steps after the resume)."""
        every = self.trainer.log_every_n_steps
        if not every or (self.global_step + 1) % every:
            if every and self.global_step % every == 0:  # the step after a logging step
                self._forget_step_values()
            return
        values = torch.cat([step_losses, self.weighting.last_weights.float()]).cpu()  # 1 + 2T
        total, *others = self._step_log_names
        self.log(total, values[0], prog_bar=True, on_step=True, on_epoch=False, batch_size=n)
        self.log_dict(dict(zip(others, values[1:], strict=True)), on_step=True, on_epoch=False,
                      batch_size=n)  # fmt: skip

    def _forget_step_values(self) -> None:
        """Drop this module's step values (:attr:`_step_log_names`) from Lightning's store of
        logged values once they have reached the loggers, the progress bar and
        ``trainer.callback_metrics`` (which keep them). Lightning keeps a step's logged values
        until the epoch ends and collects every kept value again after every step, host time
        that ``mtl bench overhead`` counts. Values a subclass logs in ``training_step`` are
        left alone. The store is Lightning's private ``_ResultCollection`` (keys
        ``"<hook>.<name>"``), so ``tests/test_step_logging.py`` checks that the values are
        dropped, and that others are kept."""
        results = self.trainer._results
        if results is not None:
            for name in self._step_log_names:
                value = results.get(f"training_step.{name}")
                if value is not None:
                    value.reset()

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        self.precise_bn.remember(batch["image"])
        return self.shared_step(batch, "train")[0]

    def validation_step(self, batch: dict, batch_idx: int) -> dict[str, torch.Tensor]:
        return self.shared_step(batch, "val")[1]  # outputs, for callbacks (confusion matrices)

    def test_step(self, batch: dict, batch_idx: int) -> dict[str, torch.Tensor]:
        return self.shared_step(batch, "test")[1]

    def predict_step(self, batch: dict, batch_idx: int) -> dict[str, torch.Tensor]:
        """Class probabilities of classification tasks (B x C_t), values of regressions (B)."""
        out = self(batch["image"])
        return {t.name: t.kind.probabilities(out[t.name]) for t in self.tasks}

    def stage_metrics(self, stage: str) -> StageMetrics:
        """The metrics of ``train``, ``val`` or ``test`` (callbacks read their state)."""
        return self.metrics[f"{stage}_metrics"]

    def _log_epoch(self, stage: str) -> None:
        """Compute (synced over ranks), log and reset every metric and mean loss of the stage.
        Every rank does it, whatever it saw, and logs the same values."""
        metrics = self.metrics[f"{stage}_metrics"]
        values = metrics.compute()
        metrics.reset()
        if self.trainer.world_size > 1:
            _already_synced(values)
        self.log_dict(values, on_step=False, on_epoch=True)

    def on_fit_start(self) -> None:
        if self.precise_bn.images and not self.trainer.enable_validation:
            rank_zero_warn(
                "model.precise_bn recomputes batch-norm statistics before a validation, and "
                "this fit runs none: checkpoints keep the running averages"
            )

    def on_train_epoch_start(self) -> None:
        self.precise_bn.forget()

    def on_validation_epoch_start(self) -> None:
        """A fit's validation evaluates batch norm with the current weights' statistics,
        recomputed from the training images as training saw them (one view each)."""
        if self.trainer.state.fn == "fit" and not self.trainer.sanity_checking:
            with self.net.single_view():
                self.precise_bn.recalibrate(self)

    def on_fit_end(self) -> None:
        self.precise_bn.forget()

    def on_train_epoch_end(self) -> None:
        self._log_epoch("train")
        self.weighting.epoch_end()

    def on_validation_epoch_end(self) -> None:
        self._log_epoch("val")

    def on_test_epoch_end(self) -> None:
        self._log_epoch("test")

    def configure_optimizers(self) -> dict | torch.optim.Optimizer:
        groups = param_groups(self.net, self.weighting.parameters(), self.decay_norm_and_bias)
        try:  # built only now, during fit: a refused value is still the user's to fix
            optimizer = self.optimizer_factory(groups)
            schedule = self.scheduler_factory
            scheduler = None if schedule is None else schedule(optimizer)
        except ValueError as err:
            raise ConfigError(f"model.optimizer / model.lr_scheduler: {err}") from err
        if scheduler is None:
            return optimizer
        interval = getattr(scheduler, "interval", "epoch")
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": interval, "monitor": self.monitor},
        }
