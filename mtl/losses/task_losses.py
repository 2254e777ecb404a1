"""Masked per-task losses as pure functions (Sang & Cuong 2018, Eq. 1 and Eq. 2).

Every head runs on every sample; a sample's loss counts for a task only where ``mask`` is
True. Unlabelled rows are removed with ``torch.where`` (not a multiply), so a task with no
labelled sample in the batch gives an exact, graph-connected zero with zero gradient, and
never a NaN, whatever the ignored targets hold.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch
import torch.nn.functional as F

from mtl.losses.distributed import sum_over_ranks, world_size

Normalization = Literal["batch", "labelled"]


def labelled_count(mask: torch.Tensor) -> torch.Tensor:
    """Labelled samples of the task in the *global* batch (all-reduced under DDP), at least 1."""
    count = sum_over_ranks(mask.sum().to(torch.float32))  # every rank: the same denominator
    return count.clamp(min=1)


def _normalize(per_sample: torch.Tensor, mask: torch.Tensor, normalization: Normalization):
    """Sum the masked per-sample losses and divide by N (Eq. 1) or by the labelled count.

    ``labelled`` under DDP divides by the count over all ranks and multiplies by the world
    size, because DDP averages gradients over ranks: the result equals one device seeing the
    whole global batch, however the task's labels happen to fall on the ranks.
    """
    total = torch.where(mask, per_sample, 0.0).sum()
    if normalization == "batch":
        return total / per_sample.shape[0]
    if normalization == "labelled":
        return total * world_size() / labelled_count(mask)
    raise ValueError(f"normalization must be 'batch' or 'labelled', got {normalization!r}")


def _check(logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor) -> None:
    if logits.ndim != 2 or targets.shape != logits.shape[:1] or mask.shape != targets.shape:
        raise ValueError(
            f"expected logits B x C, targets B, mask B; got {tuple(logits.shape)}, "
            f"{tuple(targets.shape)}, {tuple(mask.shape)}"
        )


def _class_indices(targets: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """B long class indices: the target where labelled, 0 (any valid index) elsewhere."""
    return torch.where(mask, targets, 0).long()


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
    safe_targets = _class_indices(targets, mask)
    per_sample = F.cross_entropy(logits, safe_targets, reduction="none")  # B
    return _normalize(per_sample, mask, normalization)


def masked_squared_hinge(
    logits: torch.Tensor,
    targets: torch.Tensor,
    mask: torch.Tensor,
    normalization: Normalization = "batch",
) -> torch.Tensor:
    """Multi-class squared hinge ("SVM") loss of Sang & Cuong Eq. 2, labelled rows only.

    Per sample: sum over wrong classes j of max(0, s_j - s_label + 1)^2, on raw scores.
    Same arguments and return as :func:`masked_cross_entropy`.
    """
    _check(logits, targets, mask)
    safe_targets = _class_indices(targets, mask)
    true_score = logits.gather(1, safe_targets[:, None])  # B x 1
    margins = (logits - true_score + 1).clamp(min=0).square()  # B x C
    wrong = F.one_hot(safe_targets, logits.shape[1]) == 0  # B x C
    per_sample = torch.where(wrong, margins, 0.0).sum(dim=1)  # B
    return _normalize(per_sample, mask, normalization)


def masked_euclidean_gaussian(
    pred: torch.Tensor,
    target: torch.Tensor,
    mask: torch.Tensor,
    lam: float = 0.0,
    sigma: float = 3.0,
    normalization: Normalization = "batch",
) -> torch.Tensor:
    """Jassim et al.'s regression loss (their Eq. 6) on the labelled rows.

    L = (1 - lam) * (y - a)^2 / 2 + lam * (1 - exp(-(y - a)^2 / (2 sigma^2))): the Euclidean
    term drives early training; the Gaussian term (lam = 1 later) stops far-off values from
    dominating. ``pred``, ``target`` and ``mask`` are B; ``target`` may be NaN where unmasked.
    """
    if pred.shape != target.shape or pred.ndim != 1 or mask.shape != target.shape:
        raise ValueError(
            f"expected B predictions, targets and mask, got {tuple(pred.shape)}, "
            f"{tuple(target.shape)}, {tuple(mask.shape)}"
        )
    diff2 = (pred - torch.where(mask, target, pred.detach())).square()  # B, 0 where unlabelled
    per_sample = (1 - lam) * diff2 / 2 + lam * (1 - torch.exp(-diff2 / (2 * sigma**2)))
    return _normalize(per_sample, mask, normalization)


TaskLoss = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, Normalization], torch.Tensor]
CLASSIFICATION_LOSSES: dict[str, TaskLoss] = {
    "cross_entropy": masked_cross_entropy,
    "squared_hinge": masked_squared_hinge,
}
"""Selectable per-task classification losses (``--model.task_loss``)."""
