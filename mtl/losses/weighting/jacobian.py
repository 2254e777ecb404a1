"""Gradient aggregators from TorchJD (UPGrad, MGDA, CAGrad, IMTL-G, Aligned-MTL, DualProj,
GradDrop, ConFIG, FairGrad), as weightings that work with partially labelled batches; the
stateful ones (Nash-MTL, GradVac) are in :mod:`~mtl.losses.weighting.jacobian_state`.

Each training step takes the gradient of every task **labelled in the batch** with respect to
the shared parameters (one backward pass per such task), stacks them into a Jacobian (K x P, K
present tasks) and lets the aggregator turn it into the one update direction of the shared
parameters. An absent task has no row: it neither pulls the direction nor gets a weight (its
recorded weight is 0). Each task's own head still learns from its own loss. The returned total's
value is the plain sum of the task losses (logs stay comparable); its gradient on the shared
parameters is the aggregator's direction (the correction term is zero in value).

**Host reads.** Choosing the present rows reads the task mask, and TorchJD's aggregators solve
their small K x K problems on the host (quadratic programs, iterations to convergence): these
weightings wait for the device once per step (``reads_host``), unlike the loss-based ones.

**DDP.** They act per rank: each rank aggregates the Jacobian of its own batch (a task labelled
on another rank only has an all-zero row here, which is dropped like an absent task's), and DDP
then averages the ranks' directions. That is not the aggregation of the global batch's Jacobian (a
non-linear function of it), so a DDP run differs from one device; every rank keeps identical
weights, as with GradNorm and PCGrad (tests/test_ddp.py).
"""

from __future__ import annotations

import zlib
from abc import abstractmethod
from collections.abc import Sequence
from typing import Any, ClassVar

import torch
from torch import nn

from mtl.errors import ConfigError
from mtl.losses.weighting.base import CountsSteps, Weighting
from mtl.losses.weighting.gradient import _grad, _trainable, _zero_valued


def _aggregation() -> Any:
    import torchjd.aggregation as aggregation

    return aggregation


class JacobianAggregation(CountsSteps, Weighting):
    """The shared parameters move along ``aggregator(J)``, J the present tasks' K x P Jacobian.
    Subclasses name the TorchJD aggregator (:meth:`make_aggregator`)."""

    needs_shared_params = True
    captures_step = False  # gradients and host solvers inside the step
    reads_host: ClassVar[bool] = True
    random: ClassVar[bool] = False  # draws random numbers: seeded per (seed, step, tasks)

    def __init__(self, tasks: Sequence[str], seed: int = 0, **options: Any) -> None:
        super().__init__(tasks)
        self.seed, self.options = seed, options  # options: the aggregator's, as given
        self.aggregator = self.make_aggregator(**options)
        self.init_steps()

    @abstractmethod
    def make_aggregator(self, **options: Any) -> nn.Module:
        """The TorchJD aggregator, with the subclass's ``options``."""

    def combine(
        self, loss: torch.Tensor, present: torch.Tensor, shared: Sequence[nn.Parameter] | None
    ) -> tuple[torch.Tensor, torch.Tensor]:  # T losses -> (total, T weights)
        total = loss.sum()
        if not _trainable(shared, total):
            return total, (present > 0).to(loss.dtype)
        self.advance()  # every rank, every training step: the seeded draws stay in step
        params = list(shared)
        candidates = torch.nonzero(present > 0).flatten().tolist()  # host read: present tasks
        grads = [torch.cat([g.reshape(-1) for g in _grad(loss[i], params)]) for i in candidates]
        # A task present in the global batch but not in this rank's part (DDP) has an exact
        # zero loss and an all-zero row here: dropped, as if absent (a zero row would get a
        # weight, and stops MGDA and CAGrad).
        norms = torch.stack([g.norm() for g in grads]).tolist() if grads else []  # host read
        rows = [i for i, n in zip(candidates, norms, strict=True) if n > 0]
        weight = torch.zeros_like(loss)  # T: 0 for every task without a row
        if not rows:
            return total, weight
        jacobian = torch.stack([g for g, n in zip(grads, norms, strict=True) if n > 0])  # K x P
        with torch.autocast(jacobian.device.type, enabled=False):  # the solvers need fp32
            names = [self.tasks[i] for i in rows]
            direction, weights = self.aggregate(jacobian.detach().float(), names)  # P, K|None
        index = torch.tensor(rows, device=loss.device)
        applied = torch.ones(len(rows)) if weights is None else weights.detach()  # K
        weight = weight.index_put((index,), applied.to(loss.device, loss.dtype))
        correction = direction - jacobian.sum(0)  # P: what the plain sum's gradient lacks
        pieces = zip(correction.split([p.numel() for p in params]), params, strict=True)
        surrogate = sum((c.view_as(p) * p).sum() for c, p in pieces)
        return total + _zero_valued(surrogate), weight

    def aggregate(
        self, jacobian: torch.Tensor, names: Sequence[str]
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """K x P rows of tasks ``names`` -> (the P direction, the K row weights where the
        aggregator has them). A random aggregator draws from a generator seeded by the seed,
        the step and the present tasks' names: reproducible, the same on every DDP rank, and
        independent of the order the run lists its tasks in."""
        if self.random:
            devices = [jacobian.device] if jacobian.device.type == "cuda" else []
            with torch.random.fork_rng(devices=devices):
                torch.manual_seed(self.draw_seed(names))
                return self._aggregate(jacobian, names)
        return self._aggregate(jacobian, names)

    def draw_seed(self, names: Sequence[str]) -> int:
        """The seed of this step's draws for the present tasks ``names``."""
        return zlib.crc32(f"{self.seed}:{self._step}:{','.join(sorted(names))}".encode())

    def _aggregate(
        self, jacobian: torch.Tensor, names: Sequence[str]
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        return apply_aggregator(self.aggregator, jacobian)


def apply_aggregator(
    aggregator: nn.Module, jacobian: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """K x P -> (the P direction, the K row weights where ``aggregator`` has them)."""
    if not isinstance(aggregator, _aggregation().WeightedAggregator):
        return aggregator(jacobian), None  # GradDrop, ConFIG: not a weighted sum
    weights = aggregator.weighting(jacobian)  # K
    return weights @ jacobian, weights


class UPGrad(JacobianAggregation, name="upgrad"):
    """UPGrad (Quinton & Rey 2024): each row projected onto the dual cone of all rows, then
    averaged: a direction that decreases no present task's loss."""

    def make_aggregator(self, **options: Any) -> nn.Module:
        return _aggregation().UPGrad()


class MGDA(JacobianAggregation, name="mgda"):
    """MGDA (Désidéri 2012; Sener & Koltun 2018): the minimum-norm point of the rows' convex
    hull."""

    def make_aggregator(self, **options: Any) -> nn.Module:
        return _aggregation().MGDA()


class CAGrad(JacobianAggregation, name="cagrad"):
    """CAGrad (Liu et al. 2021): the average gradient, moved within a ball of radius ``c``
    times its norm to raise the worst task's improvement."""

    def __init__(self, tasks: Sequence[str], c: float = 0.5, seed: int = 0) -> None:
        super().__init__(tasks, seed, c=c)

    def make_aggregator(self, c: float) -> nn.Module:  # type: ignore[override]
        try:
            return _aggregation().CAGrad(c=c)
        except ImportError:  # its solver (cvxpy) is an extra
            raise ConfigError("CAGrad needs cvxpy: pip install 'mtl-faces[cagrad]'") from None


class IMTLG(JacobianAggregation, name="imtlg"):
    """IMTL-G (Liu et al. 2021): the combination whose projections on every task's unit
    gradient are equal."""

    def make_aggregator(self, **options: Any) -> nn.Module:
        return _aggregation().IMTLG()


class AlignedMTL(JacobianAggregation, name="alignedmtl"):
    """Aligned-MTL (Senushkin et al. 2023): the rows made orthogonal with equal norms (the
    smallest singular value's scale) before they are summed."""

    def make_aggregator(self, **options: Any) -> nn.Module:
        return _aggregation().AlignedMTL()


class DualProj(JacobianAggregation, name="dualproj"):
    """DualProj (Quinton & Rey 2024): the mean gradient projected onto the rows' dual cone."""

    def make_aggregator(self, **options: Any) -> nn.Module:
        return _aggregation().DualProj()


class GradDrop(JacobianAggregation, name="graddrop"):
    """GradDrop (Chen et al. 2020): per coordinate, keep only the positive or the negative
    parts of the rows, by a draw weighted by their sign purity."""

    random = True

    def make_aggregator(self, **options: Any) -> nn.Module:
        return _aggregation().GradDrop()


class ConFIG(JacobianAggregation, name="config"):
    """ConFIG (Liu et al. 2024): the direction with equal positive cosine to every row,
    scaled by the rows' projections on it."""

    def make_aggregator(self, **options: Any) -> nn.Module:
        return _aggregation().ConFIG()


class FairGrad(JacobianAggregation, name="fairgrad"):
    """FairGrad (Ban & Ji 2024): weights from alpha-fair utility maximisation over the tasks'
    improvements."""

    def __init__(self, tasks: Sequence[str], alpha: float = 1.0, seed: int = 0) -> None:
        super().__init__(tasks, seed, alpha=alpha)

    def make_aggregator(self, alpha: float) -> nn.Module:  # type: ignore[override]
        return _aggregation().FairGrad(alpha=alpha)
