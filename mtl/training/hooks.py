"""Per-step hooks a class does not use are taken out of Lightning's training loop.

Lightning calls every per-step hook (``on_train_batch_start``, ``on_before_backward``, …) of
the LightningModule and of every callback on every training step, each wrapped in a profiler
context, whether or not the class overrides it: with ``mtl fit``'s callbacks that is about 50
calls of empty methods a step, a tenth of a millisecond of host time (``mtl bench overhead``).
Lightning calls these hooks only through ``lightning.pytorch.trainer.call``, which skips a hook
whose attribute is not callable, so :func:`skip_unused_batch_hooks` sets to ``None`` those a
class inherits unchanged from Lightning's base classes. A hook the class or a subclass defines
is kept (a subclass's override must not call ``super()`` for a hook set to ``None``).
Evaluation batch hooks are left alone: Lightning inspects their signatures.
"""

from __future__ import annotations

from typing import TypeVar

from lightning.pytorch import Callback
from lightning.pytorch.core.hooks import ModelHooks

BATCH_HOOKS = (
    "on_train_batch_start",
    "on_train_batch_end",
    "on_before_backward",
    "on_after_backward",
    "on_before_optimizer_step",
    "on_before_zero_grad",
)
"""Hooks Lightning calls on every training step, through a ``callable`` check only."""

LIGHTNING_BASES = (Callback, ModelHooks)
"""Where the empty default hooks are defined."""

C = TypeVar("C", bound=type)


def skip_unused_batch_hooks(cls: C) -> C:
    """Class decorator: per-batch hooks ``cls`` inherits from Lightning's bases become None."""
    for name in BATCH_HOOKS:
        owner = next((k for k in cls.__mro__ if name in vars(k)), None)
        if owner in LIGHTNING_BASES:
            setattr(cls, name, None)
    return cls
