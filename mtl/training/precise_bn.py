"""Precise batch norm: evaluate with the batch statistics of the current weights.

Batch norm evaluates with running averages of its training batches' statistics, each taken
under the weights of its own step. While the weights still move fast (early, or at a high
learning rate) those averages lag behind the network being evaluated, and the evaluation
measures the lag rather than the network: the 2-epoch main job (docs: guide/getting-started.md)
scored emotion 0.30 with them and 0.76 with statistics recomputed from its last 1,024 training
images (Wu & Johnson, "Rethinking 'Batch' in BatchNorm", 2021, call the recomputation Precise BN).

:class:`PreciseBatchNorm` keeps references to the epoch's latest training inputs (already on
the device and augmented) and, before a validation, recomputes every batch norm's running mean
and variance from them with the current weights: batch norms in training mode, every other
layer (dropout) in evaluation mode, no gradients. Training itself is untouched (its forward
passes normalise with batch statistics, and the recomputation draws no random numbers) unless
something reads the validation results: a plateau scheduler, early stopping.
Under DDP every rank recomputes from its own inputs and the statistics are averaged over the
ranks in one all-reduce, which every rank enters (the number of batches used is agreed first).
"""

from __future__ import annotations

from collections import deque

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_warn
from torch.nn.modules.batchnorm import _BatchNorm


def batch_norms(module: torch.nn.Module) -> list[_BatchNorm]:
    """The module's batch norms that keep running statistics, in a fixed order."""
    return [m for m in module.modules() if isinstance(m, _BatchNorm) and m.track_running_stats]


class PreciseBatchNorm:
    """Remembers the latest ``images`` training inputs of the epoch and recomputes batch-norm
    statistics from them on demand."""

    def __init__(self, images: int) -> None:
        if images < 0:
            raise ValueError(f"precise_bn must be >= 0 images, got {images}")
        self.images = images
        self.batches: deque[torch.Tensor] = deque()

    def forget(self) -> None:
        """Drop the remembered inputs: at each epoch start (a run resumed at an epoch boundary
        recomputes from exactly the batches an uninterrupted run would) and when a fit ends
        (they would hold device memory)."""
        self.batches.clear()

    def remember(self, images: torch.Tensor) -> None:
        """Keep a reference to a training batch (B x C x H x W), dropping the oldest batches
        that the newer ones no longer need to reach ``images``."""
        if not self.images:
            return
        self.batches.append(images.detach())
        while self.held() - len(self.batches[0]) >= self.images:
            self.batches.popleft()

    def held(self) -> int:
        """Images in the remembered batches."""
        return sum(len(b) for b in self.batches)

    def recalibrate(self, module: L.LightningModule) -> int:
        """Recompute the running statistics of ``module``'s batch norms from the remembered
        batches; returns how many batches were used. 0: nothing changed, because the network
        has no batch norm, or because fewer than ``images`` inputs were seen since the epoch
        began on some rank (statistics from a batch or two can be worse than the running
        averages; a warning says so)."""
        norms = batch_norms(module)
        if not self.images or not norms:  # the same on every rank: no collective
            return 0
        trainer = module.trainer
        held = torch.tensor([float(self.held()), float(len(self.batches))], device=module.device)
        if trainer.world_size > 1:  # every rank enters, whatever it holds
            held = trainer.strategy.reduce(held, reduce_op="min")
        images, used = (int(v) for v in held.tolist())
        if images < self.images:
            rank_zero_warn(
                f"model.precise_bn: fewer than {self.images} training images since the epoch "
                "began; this validation uses batch norm's running averages"
            )
            return 0
        modes = {m: m.training for m in module.modules()}
        saved = [(m.momentum, m.num_batches_tracked.clone()) for m in norms]
        # Validation runs under inference mode; the statistics must stay ordinary tensors,
        # which training updates in place later.
        try:
            with (
                torch.inference_mode(False),
                torch.no_grad(),
                trainer.precision_plugin.forward_context(),
            ):
                module.eval()
                for m in norms:
                    m.reset_running_stats()
                    m.momentum = None  # a cumulative average over the batches
                    m.train()
                for batch in list(self.batches)[-used:]:  # the same count on every rank
                    module(batch)
                if trainer.world_size > 1:
                    self._average_over_ranks(norms, trainer)
        finally:
            for m, (momentum, tracked) in zip(norms, saved, strict=True):
                m.momentum = momentum
                m.num_batches_tracked.copy_(tracked)
            for m, training in modes.items():
                m.train(training)
        return used

    @staticmethod
    def _average_over_ranks(norms: list[_BatchNorm], trainer: L.Trainer) -> None:
        """One all-reduce of every batch norm's mean and variance (C each), in place."""
        stats = [s for m in norms for s in (m.running_mean, m.running_var)]
        flat = torch.cat([s.flatten() for s in stats])
        flat = trainer.strategy.reduce(flat, reduce_op="mean")
        for s, new in zip(stats, flat.split([s.numel() for s in stats]), strict=True):
            s.copy_(new.view_as(s))
