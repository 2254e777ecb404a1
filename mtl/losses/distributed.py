"""The DDP reductions of the training step: plain all-reduces, every rank at the same point."""

from __future__ import annotations

import torch
import torch.distributed as dist


def world_size() -> int:
    """Processes of the DDP run (1 without one)."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def max_over_ranks(tensor: torch.Tensor) -> torch.Tensor:
    """``tensor``'s element-wise maximum over every DDP rank (a copy; ``tensor`` itself in one
    process). A collective, like :func:`sum_over_ranks`; neither waits on a barrier first (as
    Lightning's ``strategy.reduce`` does), so the host never waits for the device."""
    if world_size() == 1:
        return tensor
    result = tensor.clone()
    dist.all_reduce(result, op=dist.ReduceOp.MAX)
    return result


def sum_over_ranks(tensor: torch.Tensor) -> torch.Tensor:
    """``tensor`` summed over every DDP rank (a copy; ``tensor`` itself in one process). A
    collective: every rank calls it at the same point, whatever its own batch held."""
    if world_size() == 1:
        return tensor
    total = tensor.clone()
    dist.all_reduce(total)
    return total
