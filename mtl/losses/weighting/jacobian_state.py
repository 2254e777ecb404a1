"""TorchJD's stateful aggregators (Nash-MTL, GradVac) with partially labelled batches.

Their TorchJD forms keep state sized by the rows they are given: Nash-MTL the previous step's
bargaining weights (one per row, warm-starting the next solve), GradVac an EMA of the cosine
between every pair of rows. With partial labels the rows change from step to step (only the
tasks labelled in the batch have one), and TorchJD would reset or misalign that state whenever
they do. Here the state belongs to the run's tasks instead: it is kept for all T tasks in a
buffer (so checkpoints carry it and a resumed run continues it), each step hands the
aggregator the part of the present tasks, with the rows in the order of the tasks' names (so
the order the run lists its tasks in changes nothing), and takes the updated part back. An
absent task's state is left as it was, until the task is labelled again. (This reads and
writes TorchJD's private state attributes: ``pyproject.toml`` holds TorchJD to 0.18.x, and the
tests compare each step with TorchJD's own aggregator.)

**DDP.** Each rank aggregates its own batch's Jacobian (as every TorchJD weighting here), and
the state is then averaged over the ranks, every rank at the same point of every training step
(one all-reduce), so every rank starts the next step from the same state. A task absent from
the global batch keeps its state; one labelled on another rank only gets that rank's update,
averaged.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any, ClassVar

import torch
from torch import nn

from mtl.errors import ConfigError
from mtl.losses.distributed import sum_over_ranks, world_size
from mtl.losses.weighting.gradient import _trainable
from mtl.losses.weighting.jacobian import JacobianAggregation, _aggregation, apply_aggregator


class TaskStateAggregation(JacobianAggregation):
    """A stateful aggregator whose state is kept per task (in the buffers ``state_names``), not
    per row. Subclasses say which aggregator serves K rows (:meth:`aggregator_for`) and how the
    present tasks' state goes in and out of it (:meth:`load_state`, :meth:`save_state`)."""

    state_names: ClassVar[tuple[str, ...]] = ()

    def aggregator_for(self, rows: int) -> nn.Module:
        """The aggregator for a Jacobian of ``rows`` rows."""
        return self.aggregator

    def load_state(self, aggregator: nn.Module, tasks: torch.Tensor, dtype: torch.dtype) -> None:
        """Give ``aggregator`` the state of ``tasks`` (K indices into the run's tasks), in the
        Jacobian's ``dtype`` (TorchJD keeps its state in it)."""

    def save_state(self, aggregator: nn.Module, tasks: torch.Tensor) -> None:
        """Keep ``aggregator``'s updated state for ``tasks``, and leave none in it."""

    def _aggregate(
        self, jacobian: torch.Tensor, names: Sequence[str]
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        order = sorted(range(len(names)), key=names.__getitem__)  # rows by task name
        tasks = torch.tensor([self.tasks.index(names[r]) for r in order])  # K
        aggregator = self.aggregator_for(len(order))
        self.load_state(aggregator, tasks, jacobian.dtype)
        try:
            direction, weights = apply_aggregator(aggregator, jacobian[order])  # P, K by name
        finally:
            self.save_state(aggregator, tasks)
        if weights is None:
            return direction, None
        restored = torch.empty_like(weights)
        restored[torch.tensor(order)] = weights  # K, in the rows' order again
        return direction, restored

    def combine(
        self, loss: torch.Tensor, present: torch.Tensor, shared: Sequence[nn.Parameter] | None
    ) -> tuple[torch.Tensor, torch.Tensor]:  # T losses -> (total, T weights)
        result = super().combine(loss, present, shared)
        if _trainable(shared, loss) and world_size() > 1:  # every rank, every training step
            states = [getattr(self, name) for name in self.state_names]
            mean = sum_over_ranks(torch.cat([s.flatten() for s in states])) / world_size()
            for state, part in zip(states, mean.split([s.numel() for s in states]), strict=True):
                state.copy_(part.view_as(state))
        return result


class NashMTL(TaskStateAggregation, name="nashmtl"):
    """Nash-MTL (Navon et al. 2022): the update is the Nash bargaining solution between the
    present tasks, solved by a sequence of convex problems warm-started from each task's
    previous bargaining weight (its state, 1 at the start). ``max_norm`` caps the update's norm
    (0: no cap). Its solver (cvxpy, ECOS) is the ``nashmtl`` extra. It draws nothing: ``seed``
    is only there as for every aggregator."""

    state_names = ("alpha",)

    def __init__(
        self, tasks: Sequence[str], max_norm: float = 1.0, optim_niter: int = 20, seed: int = 0
    ) -> None:
        super().__init__(tasks, seed, max_norm=max_norm, optim_niter=optim_niter)
        self.by_rows: dict[int, nn.Module] = {len(self.tasks): self.aggregator}
        self.register_buffer("alpha", torch.ones(len(self.tasks)))  # T bargaining weights

    def make_aggregator(self, **options: Any) -> nn.Module:
        return self._nash(len(self.tasks), **options)

    @staticmethod
    def _nash(rows: int, **options: Any) -> nn.Module:
        try:
            return _aggregation().NashMTL(n_tasks=rows, **options)
        except ImportError:  # its solver (cvxpy, ECOS) is an extra
            hint = "NashMTL needs cvxpy and ECOS: pip install 'mtl-faces[nashmtl]'"
            raise ConfigError(hint) from None

    def _aggregate(
        self, jacobian: torch.Tensor, names: Sequence[str]
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        with warnings.catch_warnings():  # TorchJD's problem is not DPP: nothing a user can do
            warnings.filterwarnings("ignore", message="You are solving a parameterized problem")
            return super()._aggregate(jacobian, names)

    def aggregator_for(self, rows: int) -> nn.Module:
        """One solver per number of rows: its convex problem is sized by it."""
        if rows not in self.by_rows:
            self.by_rows[rows] = self._nash(rows, **self.options)
        return self.by_rows[rows]

    def load_state(self, aggregator: nn.Module, tasks: torch.Tensor, dtype: torch.dtype) -> None:
        alpha = self.alpha.index_select(0, tasks.to(self.alpha.device))  # K
        aggregator.weighting.prvs_alpha = alpha.float().cpu().numpy()  # as TorchJD starts it

    def save_state(self, aggregator: nn.Module, tasks: torch.Tensor) -> None:
        alpha = torch.as_tensor(aggregator.weighting.prvs_alpha, dtype=self.alpha.dtype)  # K
        self.alpha.index_copy_(0, tasks.to(self.alpha.device), alpha.to(self.alpha.device))


class GradVac(TaskStateAggregation, name="gradvac"):
    """GradVac (Wang et al. 2021): each task's gradient is moved towards every other task's
    until their cosine reaches its target, an EMA (rate ``beta``) of the cosines seen for that
    pair (its state, 0 at the start). The order in which a task visits the others is drawn,
    seeded by the seed, the step and the present tasks."""

    random = True
    state_names = ("cosine_target",)

    def __init__(self, tasks: Sequence[str], beta: float = 0.5, seed: int = 0) -> None:
        super().__init__(tasks, seed, beta=beta)
        t = len(self.tasks)
        self.register_buffer("cosine_target", torch.zeros(t, t))  # T x T EMA targets

    def make_aggregator(self, beta: float) -> nn.Module:  # type: ignore[override]
        return _aggregation().GradVac(beta=beta)

    def load_state(self, aggregator: nn.Module, tasks: torch.Tensor, dtype: torch.dtype) -> None:
        index = tasks.to(self.cosine_target.device)
        part = self.cosine_target[index][:, index]  # K x K
        aggregator.gramian_weighting._phi_t = part.to("cpu", dtype, copy=True)
        aggregator.gramian_weighting._state_key = (len(tasks), dtype)  # TorchJD's, kept

    def save_state(self, aggregator: nn.Module, tasks: torch.Tensor) -> None:
        index = tasks.to(self.cosine_target.device)
        weighting = aggregator.gramian_weighting
        self.cosine_target[index[:, None], index] = weighting._phi_t.to(self.cosine_target)
        weighting.reset()  # the state is ours: none left in TorchJD's module (and its state dict)
