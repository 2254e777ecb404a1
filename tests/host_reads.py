"""A detector of host reads of tensor values: the calls that, on a GPU, wait for the device.

On a CPU nothing waits, so the waits themselves cannot be seen; the calls that would cause them
can. :class:`HostReads` is a ``TorchFunctionMode`` that records, while it is active, every call
that copies a tensor's values to the host (``item``, ``tolist``, ``bool(t)``, ``int(t)``,
``.cpu()``, ``.numpy()``) or whose output shape depends on tensor values (boolean indexing,
``nonzero``, ``masked_select``, ``unique``, ``bincount``, ``repeat_interleave`` without its
output size): each is a device synchronisation on CUDA. The GPU test
(``torch.cuda.set_sync_debug_mode("error")``) checks the same where a GPU is present.
"""

from __future__ import annotations

import traceback
from typing import Any

import torch
from torch.overrides import TorchFunctionMode

READS = {
    torch.Tensor.item,
    torch.Tensor.tolist,
    torch.Tensor.__bool__,
    torch.Tensor.__int__,
    torch.Tensor.__float__,
    torch.Tensor.__index__,
    torch.Tensor.cpu,
    torch.Tensor.numpy,
    torch.Tensor.nonzero,
    torch.nonzero,
    torch.Tensor.masked_select,
    torch.masked_select,
    torch.Tensor.unique,
    torch.unique,
    torch.Tensor.bincount,
    torch.bincount,
    torch.equal,
    torch.allclose,
    torch.Tensor.allclose,
    torch.is_nonzero,
}
"""Calls that read tensor values on the host, or size their output by them."""


def _boolean_index(index: Any) -> bool:
    parts = index if isinstance(index, tuple) else (index,)
    return any(isinstance(p, torch.Tensor) and p.dtype == torch.bool for p in parts)


def _reads(func: Any, args: tuple, kwargs: dict) -> bool:
    if func in READS:
        return True
    if func in (torch.Tensor.__getitem__, torch.Tensor.__setitem__):
        return len(args) > 1 and _boolean_index(args[1])
    if func in (torch.repeat_interleave, torch.Tensor.repeat_interleave):
        return "output_size" not in kwargs
    return False


class HostReads(TorchFunctionMode):
    """Records (name, where) of every host read made while active."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[str, str]] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN204
        kwargs = kwargs or {}
        if _reads(func, args, kwargs):
            where = "".join(traceback.format_stack(limit=6)[:-1])
            self.found.append((getattr(func, "__name__", str(func)), where))
        return func(*args, **kwargs)
