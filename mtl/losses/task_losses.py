"""Masked per-task losses as pure functions (Sang & Cuong 2018, Eq. 1 and Eq. 2).

Every head runs on every sample; a sample's loss counts for a task only where ``mask`` is
True. Unlabelled rows are removed with ``torch.where`` (not a multiply), so a task with no
labelled sample in the batch gives an exact, graph-connected zero with zero gradient, and
never a NaN, whatever the ignored targets hold.

Each loss comes in two parts: a per-sample loss (B) and :func:`masked_task_means`, which masks
and normalises. The training module stacks every task's per-sample losses into one B x T
tensor and masks and normalises all tasks at once: a handful of operations, forward and
backward, instead of a handful per task (``mtl bench overhead`` measures the host time). The
``masked_*`` functions are the same computation for one task (under autocast the module sums
each task's per-sample losses in the widest dtype among the tasks', float32 with a
cross-entropy or a regression task).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch
import torch.nn.functional as F

from mtl.losses.distributed import sum_over_ranks, world_size

Normalization = Literal["batch", "labelled"]


def labelled_count(mask: torch.Tensor) -> torch.Tensor:
    """Labelled samples of each task (``mask`` B x T -> T; B -> a scalar) in the *global*
    batch, at least 1: one all-reduce under DDP, so every rank divides by the same count."""
    count = sum_over_ranks(mask.sum(0).to(torch.float32))
    return count.clamp(min=1)


def masked_task_means(
    per_sample: torch.Tensor, mask: torch.Tensor, normalization: Normalization = "batch"
) -> torch.Tensor:
    """Sum each task's labelled per-sample losses and divide by B (Eq. 1) or by the task's
    labelled count: ``per_sample`` and ``mask`` B x T -> T (B -> a scalar).

    ``labelled`` under DDP divides by the count over all ranks and multiplies by the world
    size, because DDP averages gradients over ranks: the result equals one device seeing the
    whole global batch, however the task's labels happen to fall on the ranks.
    """
    total = torch.where(mask, per_sample, 0.0).sum(0)  # T: unlabelled rows, NaN or not, out
    if normalization == "batch":
        return total / per_sample.shape[0]
    if normalization == "labelled":
        return total * world_size() / labelled_count(mask)
    raise ValueError(f"normalization must be 'batch' or 'labelled', got {normalization!r}")


def class_indices(targets: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Long class indices, ``targets``' shape: the target where labelled, 0 (any valid
    index) elsewhere, so a per-sample loss of an unlabelled row is finite."""
    return torch.where(mask, targets, 0).long()


def cross_entropy_per_sample(logits: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
    """Softmax cross-entropy of each row: ``logits`` B x C raw scores, ``classes`` B long
    (valid everywhere, see :func:`class_indices`) -> B."""
    return F.cross_entropy(logits, classes, reduction="none")


def squared_hinge_per_sample(logits: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
    """Multi-class squared hinge ("SVM") loss of Sang & Cuong Eq. 2 of each row, on raw
    scores: sum over wrong classes j of max(0, s_j - s_label + 1)^2. B x C, B -> B."""
    true_score = logits.gather(1, classes[:, None])  # B x 1
    margins = (logits - true_score + 1).clamp(min=0).square()  # B x C
    wrong = F.one_hot(classes, logits.shape[1]) == 0  # B x C
    return torch.where(wrong, margins, 0.0).sum(dim=1)  # B


def euclidean_gaussian_per_sample(
    pred: torch.Tensor,
    target: torch.Tensor,
    mask: torch.Tensor,
    lam: float = 0.0,
    sigma: float = 3.0,
) -> torch.Tensor:
    """Jassim et al.'s regression loss (their Eq. 6) of each row, 0 where unlabelled.

    L = (1 - lam) * (y - a)^2 / 2 + lam * (1 - exp(-(y - a)^2 / (2 sigma^2))): the Euclidean
    term drives early training; the Gaussian term (lam = 1 later) stops far-off values from
    dominating. ``pred``, ``target`` and ``mask`` are B; ``target`` may be NaN where unmasked.
    """
    diff2 = (pred - torch.where(mask, target, pred.detach())).square()  # B, 0 where unlabelled
    return (1 - lam) * diff2 / 2 + lam * (1 - torch.exp(-diff2 / (2 * sigma**2)))


def _check(logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor) -> None:
    if logits.ndim != 2 or targets.shape != logits.shape[:1] or mask.shape != targets.shape:
        raise ValueError(
            f"expected logits B x C, targets B, mask B; got {tuple(logits.shape)}, "
            f"{tuple(targets.shape)}, {tuple(mask.shape)}"
        )


def masked_cross_entropy(
    logits: torch.Tensor,
    targets: torch.Tensor,
    mask: torch.Tensor,
    normalization: Normalization = "batch",
) -> torch.Tensor:
    """Softmax cross-entropy over the labelled rows only.

    Args:
        logits: B x C raw class scores (no softmax applied).
        targets: B class indices (long, or float as in the batch); any value (NaN) where
            ``mask`` is False.
        mask: B bool, True where the sample is labelled for this task.
        normalization: ``"batch"`` divides by B as in the paper's Eq. 1; ``"labelled"`` by the
            number of labelled rows.

    Returns:
        A scalar tensor.
    """
    _check(logits, targets, mask)
    per_sample = cross_entropy_per_sample(logits, class_indices(targets, mask))  # B
    return masked_task_means(per_sample, mask, normalization)


def masked_squared_hinge(
    logits: torch.Tensor,
    targets: torch.Tensor,
    mask: torch.Tensor,
    normalization: Normalization = "batch",
) -> torch.Tensor:
    """Multi-class squared hinge ("SVM") loss of Sang & Cuong Eq. 2, labelled rows only.

    Same arguments and return as :func:`masked_cross_entropy`.
    """
    _check(logits, targets, mask)
    per_sample = squared_hinge_per_sample(logits, class_indices(targets, mask))  # B
    return masked_task_means(per_sample, mask, normalization)


def masked_euclidean_gaussian(
    pred: torch.Tensor,
    target: torch.Tensor,
    mask: torch.Tensor,
    lam: float = 0.0,
    sigma: float = 3.0,
    normalization: Normalization = "batch",
) -> torch.Tensor:
    """:func:`euclidean_gaussian_per_sample` over the labelled rows, normalised."""
    if pred.shape != target.shape or pred.ndim != 1 or mask.shape != target.shape:
        raise ValueError(
            f"expected B predictions, targets and mask, got {tuple(pred.shape)}, "
            f"{tuple(target.shape)}, {tuple(mask.shape)}"
        )
    per_sample = euclidean_gaussian_per_sample(pred, target, mask, lam, sigma)  # B
    return masked_task_means(per_sample, mask, normalization)


PerSampleLoss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""A classification loss of each row: (B x C logits, B long class indices) -> B."""
CLASSIFICATION_LOSSES: dict[str, PerSampleLoss] = {
    "cross_entropy": cross_entropy_per_sample,
    "squared_hinge": squared_hinge_per_sample,
}
"""Selectable per-task classification losses (``--model.task_loss``), per sample."""
