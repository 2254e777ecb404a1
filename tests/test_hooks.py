"""Per-step hooks our classes do not use are out of Lightning's loop; defined ones still run."""

from __future__ import annotations

from jsonargparse import Namespace

from mtl.experiments.bench.overhead import tiny_module
from mtl.training.defaults import default_callbacks
from mtl.training.hooks import BATCH_HOOKS, skip_unused_batch_hooks
from mtl.training.module import MultiTaskModule
from tests.conftest import fit_tiny


def test_unused_step_hooks_of_the_module_and_the_callbacks_are_none():
    callbacks = default_callbacks(Namespace(enable_checkpointing=False))
    ours = [c for c in callbacks if type(c).__module__.startswith("mtl.")]
    assert len(ours) >= 4
    for obj in [MultiTaskModule, *ours]:
        assert all(getattr(obj, hook) is None for hook in BATCH_HOOKS), obj


def test_a_subclass_that_defines_a_hook_gets_it_called():
    calls = []

    @skip_unused_batch_hooks
    class Counting(MultiTaskModule):
        def on_after_backward(self) -> None:
            calls.append(self.global_step)

    fit_tiny(tiny_module(module_class=Counting), 3)
    assert calls == [0, 1, 2]
    assert Counting.on_train_batch_start is None
