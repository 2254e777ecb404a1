"""Lightning's default no-op profiler, without its per-call cost."""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext

from lightning.pytorch.profilers import PassThroughProfiler

_NO_OP = nullcontext()


class NoProfiler(PassThroughProfiler):
    """Profiles nothing, as Lightning's default :class:`PassThroughProfiler`, for less: Lightning
    wraps every hook call in ``profiler.profile(name)`` (about 25 a training step), and the
    default builds a generator-based context manager for each; this one hands out one shared
    no-op context. ``mtl fit``'s default (``--trainer.profiler simple`` or ``advanced`` still
    profile)."""

    def profile(self, action_name: str) -> AbstractContextManager:
        return _NO_OP
