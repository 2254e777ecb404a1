"""Masked per-task losses as pure functions (Sang & Cuong 2018, Eq. 1).

Every head runs on every sample; a sample's loss counts for a task only where ``mask`` is
True. Unlabelled rows are removed with ``torch.where`` (not a multiply), so a task with no
labelled sample in the batch gives an exact, graph-connected zero with zero gradient, and
never a NaN, whatever the ignored targets hold.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

Normalization = Literal["batch", "labelled"]


def _normalize(per_sample: torch.Tensor, mask: torch.Tensor, normalization: Normalization):
    """Sum the masked per-sample losses and divide by N (Eq. 1) or by the labelled count."""
    total = torch.where(mask, per_sample, torch.zeros_like(per_sample)).sum()
    if normalization == "batch":
        return total / per_sample.shape[0]
    if normalization == "labelled":
        return total / mask.sum().clamp(min=1)
    raise ValueError(f"normalization must be 'batch' or 'labelled', got {normalization!r}")


def masked_cross_entropy(
    logits: torch.Tensor,
    targets: torch.Tensor,
    mask: torch.Tensor,
    normalization: Normalization = "batch",
) -> torch.Tensor:
    """Softmax cross-entropy over the labelled rows only.

    Args:
        logits: B x C raw class scores (no softmax applied).
        targets: B class indices; any value where ``mask`` is False.
        mask: B bool, True where the sample is labelled for this task.
        normalization: ``"batch"`` divides by B as in the paper's Eq. 1; ``"labelled"`` by the
            number of labelled rows.

    Returns:
        A scalar tensor.
    """
    if logits.ndim != 2 or targets.shape != logits.shape[:1] or mask.shape != targets.shape:
        raise ValueError(
            f"expected logits B x C, targets B, mask B; got {tuple(logits.shape)}, "
            f"{tuple(targets.shape)}, {tuple(mask.shape)}"
        )
    safe_targets = torch.where(mask, targets, torch.zeros_like(targets))  # valid class index
    per_sample = F.cross_entropy(logits, safe_targets, reduction="none")  # B
    return _normalize(per_sample, mask, normalization)
