"""Gradient aggregators from TorchJD (UPGrad, MGDA, CAGrad, IMTL-G, Aligned-MTL, DualProj,
GradDrop, ConFIG, FairGrad), as weightings that work with partially labelled batches.

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

**DDP.** They act per rank: each rank aggregates the Jacobian of its own batch, and DDP then
averages the ranks' directions. That is not the aggregation of the global batch's Jacobian (a
non-linear function of it), so a DDP run differs from one device; every rank keeps identical
weights, as with GradNorm and PCGrad (tests/test_ddp.py).
"""

from __future__ import annotations

import zlib
from abc import abstractmethod
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import torch
from torch import nn

from mtl.losses.weighting.base import Weighting
from mtl.losses.weighting.gradient import _grad, _trainable, _zero_valued


def _aggregation() -> Any:
    try:
        import torchjd.aggregation as aggregation
    except ImportError:  # pragma: no cover - a core dependency
        raise ImportError("the TorchJD weightings need torchjd: pip install torchjd") from None
    return aggregation


class JacobianAggregation(Weighting):
    """The shared parameters move along ``aggregator(J)``, J the present tasks' K x P Jacobian.
    Subclasses name the TorchJD aggregator (:meth:`make_aggregator`)."""

    needs_shared_params = True
    reads_host: ClassVar[bool] = True
    random: ClassVar[bool] = False  # draws random numbers: seeded per (seed, step, tasks)

    def __init__(self, tasks: Sequence[str], seed: int = 0) -> None:
        super().__init__(tasks)
        self.seed = seed
        self.aggregator = self.make_aggregator()
        self.register_buffer("step", torch.zeros((), dtype=torch.long))
        self._step = 0  # the same count on the host

    @abstractmethod
    def make_aggregator(self) -> nn.Module:
        """The TorchJD aggregator."""

    def _load_from_state_dict(
        self, state_dict: dict, prefix: str, *args: Any, **kwargs: Any
    ) -> None:
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        if prefix + "step" in state_dict:  # read once, when a checkpoint is loaded
            self._step = int(state_dict[prefix + "step"])

    def combine(
        self, loss: torch.Tensor, present: torch.Tensor, shared: Sequence[nn.Parameter] | None
    ) -> tuple[torch.Tensor, torch.Tensor]:  # T losses -> (total, T weights)
        total = loss.sum()
        weight = (present > 0).to(loss.dtype)  # T: 1 for every contributing task
        if not _trainable(shared, total):
            return total, weight
        rows = torch.nonzero(present > 0).flatten().tolist()  # host read: the present tasks
        if not rows:
            return total, weight
        params = list(shared)
        jacobian = torch.stack([torch.cat([g.reshape(-1) for g in _grad(loss[i], params)])
                                for i in rows])  # fmt: skip  # K x P
        with torch.autocast(jacobian.device.type, enabled=False):  # solvers need fp32
            direction, weights = self.aggregate(
                jacobian.detach().float(), [self.tasks[i] for i in rows]
            )  # P, K (or None)
        self.step += 1
        self._step += 1
        if weights is not None:
            index = torch.tensor(rows, device=loss.device)
            weight = torch.zeros_like(loss).index_put((index,), weights.detach().to(loss.dtype))
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
            key = f"{self.seed}:{self._step}:{','.join(sorted(names))}"
            devices = [jacobian.device] if jacobian.device.type == "cuda" else []
            with torch.random.fork_rng(devices=devices):
                torch.manual_seed(zlib.crc32(key.encode()))
                return self._aggregate(jacobian)
        return self._aggregate(jacobian)

    def _aggregate(self, jacobian: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        weighting: Callable | None = getattr(self.aggregator, "weighting", None)
        if weighting is None:  # GradDrop, ConFIG: not a weighted sum of the rows
            return self.aggregator(jacobian), None
        weights = weighting(jacobian)  # K
        return weights @ jacobian, weights


class UPGrad(JacobianAggregation, name="upgrad"):
    """UPGrad (Quinton & Rey 2024): each row projected onto the dual cone of all rows, then
    averaged: a direction that decreases no present task's loss."""

    def make_aggregator(self) -> nn.Module:
        return _aggregation().UPGrad()


class MGDA(JacobianAggregation, name="mgda"):
    """MGDA (Désidéri 2012; Sener & Koltun 2018): the minimum-norm point of the rows' convex
    hull."""

    def make_aggregator(self) -> nn.Module:
        return _aggregation().MGDA()


class CAGrad(JacobianAggregation, name="cagrad"):
    """CAGrad (Liu et al. 2021): the average gradient, moved within a ball of radius ``c``
    times its norm to raise the worst task's improvement."""

    def __init__(self, tasks: Sequence[str], c: float = 0.5, seed: int = 0) -> None:
        self.c = c
        super().__init__(tasks, seed)

    def make_aggregator(self) -> nn.Module:
        return _aggregation().CAGrad(c=self.c)


class IMTLG(JacobianAggregation, name="imtlg"):
    """IMTL-G (Liu et al. 2021): the combination whose projections on every task's unit
    gradient are equal."""

    def make_aggregator(self) -> nn.Module:
        return _aggregation().IMTLG()


class AlignedMTL(JacobianAggregation, name="alignedmtl"):
    """Aligned-MTL (Senushkin et al. 2023): the rows made orthogonal with equal norms (the
    smallest singular value's scale) before they are summed."""

    def make_aggregator(self) -> nn.Module:
        return _aggregation().AlignedMTL()


class DualProj(JacobianAggregation, name="dualproj"):
    """DualProj (Quinton & Rey 2024): the mean gradient projected onto the rows' dual cone."""

    def make_aggregator(self) -> nn.Module:
        return _aggregation().DualProj()


class GradDrop(JacobianAggregation, name="graddrop"):
    """GradDrop (Chen et al. 2020): per coordinate, keep only the positive or the negative
    parts of the rows, by a draw weighted by their sign purity."""

    random = True

    def make_aggregator(self) -> nn.Module:
        return _aggregation().GradDrop()


class ConFIG(JacobianAggregation, name="config"):
    """ConFIG (Liu et al. 2024): the direction with equal positive cosine to every row,
    scaled by the rows' projections on it."""

    def make_aggregator(self) -> nn.Module:
        return _aggregation().ConFIG()


class FairGrad(JacobianAggregation, name="fairgrad"):
    """FairGrad (Ban & Ji 2024): weights from alpha-fair utility maximisation over the tasks'
    improvements."""

    def __init__(self, tasks: Sequence[str], alpha: float = 1.0, seed: int = 0) -> None:
        self.alpha = alpha
        super().__init__(tasks, seed)

    def make_aggregator(self) -> nn.Module:
        return _aggregation().FairGrad(alpha=self.alpha)
