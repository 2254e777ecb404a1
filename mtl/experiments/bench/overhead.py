"""``mtl bench overhead``: host milliseconds per training step that the framework adds to a bare
PyTorch loop, with a network so small that its compute hardly counts.

What a sweep pays in every step of every trial, on top of the network itself, is host time:
Python in Lightning's loop and hooks, and the framework's masked losses, weighting, metrics and
logging. On a GPU that time only costs throughput when the device waits for it, but it is
measurable on any CPU, with one thread, a tiny network and a tiny batch. Three sides train the
same tiny Multi-task network on the same in-memory batches (four tasks, each missing from some
rows, as in a multi-source batch), one after the other in one process, alternated over rounds:

* **bare**: a hand-written loop: forward, hand-written masked cross-entropy (absolute error for
  a regression), backward, ``torch.optim.SGD`` with torch's default update (a loop over the
  parameters on a CPU; ``--bare_update framework``: the framework's, fused where it can be,
  so that the overhead is the framework's loop, losses, metrics and callbacks alone);
* **Lightning**: ``Trainer.fit`` of a minimal LightningModule doing exactly the bare step: what
  Lightning's loop costs by itself;
* **framework**: ``Trainer.fit`` of :class:`~mtl.training.module.MultiTaskModule` as ``mtl fit``
  runs it (its callbacks, the CSV logger, a logging step every 50), minus checkpoint files and
  the progress bar.

The data path is not timed here (``mtl bench data`` and ``mtl bench train`` measure it): every
side iterates the same list of ready batches.

**How it is timed.** Host time is the training thread's CPU time (``time.thread_time``; with
one torch thread every side computes on that thread, so the guest's own other work does not
count; with more threads, wall time). What still varies is the machine under it: on a shared
virtual machine other guests slow everything down, for fractions of a second or for whole
rounds, and such a slow period moves a median by more than the differences measured here.
Interference only ever adds time, so the figures take the quiet end, as ``timeit`` advises for
the same reason: a round's figure is its quiet step, the 10th percentile of its steps (not its
minimum, which one lucky step sets); a side's figure is its quietest round; the overhead is
the difference of the quietest rounds. The JSON keeps every round's quiet and median step, and
``paired``: the median over rounds of each round's median-step difference to the bare loop,
the estimate of the first measurements (docs: guide/speed.md shows both).
"""

from __future__ import annotations

import itertools
import logging
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Literal, NamedTuple

import lightning as L
import torch
from jsonargparse import Namespace

from mtl.experiments.bench.common import measured_on
from mtl.experiments.bench.result import BenchResult, Column, Table, verdict
from mtl.experiments.bench.train import bare_loss
from mtl.losses import WEIGHTINGS
from mtl.models import BKNet, HeadConfig
from mtl.tasks import Task
from mtl.training.module import MultiTaskModule
from mtl.training.optim import MomentumSGD

TASKS = ("smile", "emotion", "gender", "age")
OVERHEAD_ALLOWED_MS = 0.5
"""The framework may add at most this many host milliseconds per step to the bare loop's."""

Batch = dict[str, torch.Tensor]


def tiny_module(
    weighting: str = "fixed",
    compile: bool | Literal["net", "step"] = False,
    module_class: type[MultiTaskModule] = MultiTaskModule,
    tasks: Sequence[str] = TASKS,
    **options: Any,
) -> MultiTaskModule:
    """Multi-task network small enough that its compute hardly counts: one 4-channel
    convolution on 8 x 8 inputs, an 8-unit branch per task; ``options``: more of the
    module's arguments (the tests vary its losses)."""
    torch.manual_seed(0)
    return module_class(
        list(tasks),
        backbone=BKNet(channels=((4,),), input_size=8),
        head=HeadConfig(hidden=[8]),
        weighting=WEIGHTINGS[weighting],
        channels_last=False,
        compile=compile,
        **options,
    )


def tiny_batches(tasks: Sequence[Task], batch_size: int, count: int = 8) -> list[Batch]:
    """``count`` batches in the batch contract (image B x 1 x 8 x 8, targets B x T with NaN
    where unlabelled, mask B x T, source B), each task unlabelled in about half the rows."""
    g = torch.Generator().manual_seed(0)
    batches = []
    for _ in range(count):
        mask = torch.rand(batch_size, len(tasks), generator=g) < 0.5  # B x T
        classes = [t.num_classes or 1 for t in tasks]
        targets = torch.stack(
            [torch.randint(0, c, (batch_size,), generator=g) for c in classes], dim=1
        ).float()  # B x T
        batches.append(
            {
                "image": torch.rand(batch_size, 1, 8, 8, generator=g),
                "targets": torch.where(mask, targets, torch.nan),
                "mask": mask,
                "source": torch.zeros(batch_size, dtype=torch.long),
            }
        )
    return batches


class Cycle:
    """``steps`` batches, cycling through ``batches``: the same iterable for every side."""

    def __init__(self, batches: Sequence[Batch], steps: int) -> None:
        self.batches, self.steps = list(batches), steps

    def __iter__(self) -> Iterator[Batch]:
        for i in range(self.steps):
            yield self.batches[i % len(self.batches)]

    def __len__(self) -> int:
        return self.steps


BareUpdate = Literal["torch", "framework"]
"""The bare sides' SGD update: torch's default for the device, or the framework's."""


def _sgd(params: Any, update: BareUpdate = "torch") -> torch.optim.SGD:
    """The bare sides' optimiser: the paper's SGD, updated as ``update`` says."""
    if update == "framework":
        return MomentumSGD(params, lr=0.01, momentum=0.9, weight_decay=0.01)
    return torch.optim.SGD(params, lr=0.01, momentum=0.9, weight_decay=0.01)


QUIET_QUANTILE = 0.1
"""A round's figure: this quantile of its step times (module docstring)."""


Clock = Callable[[], float]
"""Seconds: ``time.thread_time`` with one torch thread, ``time.perf_counter`` with more (the
other threads' CPU time would not count)."""


class Steps(NamedTuple):
    """One side's round, milliseconds per step."""

    quiet: float  # the QUIET_QUANTILE step: the figure compared (module docstring)
    median: float  # the typical step: what the paired estimate compares
    mean: float  # also the logging steps (one in 50) and the steps the machine slowed down


def step_ms(stamps: Sequence[float]) -> Steps:
    """The milliseconds between consecutive step starts, summarised."""
    steps = sorted(b - a for a, b in itertools.pairwise(stamps))
    quiet = steps[int(QUIET_QUANTILE * (len(steps) - 1))]
    return Steps(quiet * 1e3, statistics.median(steps) * 1e3, statistics.fmean(steps) * 1e3)


def bare_ms(
    batches: Sequence[Batch],
    steps: int,
    warmup: int,
    clock: Clock = time.thread_time,
    update: BareUpdate = "torch",
) -> Steps:
    """Milliseconds per step of the hand-written loop."""
    module = tiny_module()
    net, tasks = module.net.train(), module.tasks
    optimizer = _sgd(net.parameters(), update)
    stamps = []
    for i, batch in enumerate(Cycle(batches, warmup + steps + 1)):
        if i >= warmup:
            stamps.append(clock())
        optimizer.zero_grad(set_to_none=True)
        loss = bare_loss(net(batch["image"]), batch["targets"], batch["mask"], tasks)
        loss.backward()
        optimizer.step()
    return step_ms(stamps)


class StepClock(L.Callback):
    """The start time of every training step after ``warmup``."""

    def __init__(self, warmup: int, clock: Clock = time.thread_time) -> None:
        self.warmup, self.clock, self.stamps = warmup, clock, []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step >= self.warmup:
            self.stamps.append(self.clock())


class BareStepModule(L.LightningModule):
    """The bare loop's step as a LightningModule: what Lightning's loop adds by itself."""

    def __init__(self, update: BareUpdate = "torch") -> None:
        super().__init__()
        module = tiny_module()
        self.net, self.tasks, self.update = module.net, module.tasks, update

    def training_step(self, batch: Batch, batch_idx: int) -> torch.Tensor:
        return bare_loss(self.net(batch["image"]), batch["targets"], batch["mask"], self.tasks)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return _sgd(self.net.parameters(), self.update)


@contextmanager
def _quiet_fit() -> Iterator[None]:
    """No "GPU available" lines and no "no val_dataloader" warning for each of the many fits."""
    info = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    level = info.level
    info.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="You defined a `validation_step` but have no")
            yield
    finally:
        info.setLevel(level)


def fit_ms(
    module: L.LightningModule,
    batches: Sequence[Batch],
    steps: int,
    warmup: int,
    as_mtl_fit: bool,
    clock: Clock = time.thread_time,
) -> Steps:
    """Milliseconds per step of ``Trainer.fit`` (with ``mtl fit``'s callbacks, CSV logger and
    profiler when ``as_mtl_fit``; Lightning's defaults otherwise)."""
    from mtl.training.defaults import default_callbacks
    from mtl.training.loggers import CSVLogger
    from mtl.training.profiler import NoProfiler

    stamps = StepClock(warmup, clock)
    with tempfile.TemporaryDirectory(prefix="mtl-bench-overhead-") as logs, _quiet_fit():
        callbacks = default_callbacks(Namespace(enable_checkpointing=False)) if as_mtl_fit else []
        trainer = L.Trainer(
            accelerator="cpu",
            devices=1,
            max_steps=warmup + steps + 1,
            limit_val_batches=0,
            num_sanity_val_steps=0,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            logger=CSVLogger(save_dir=logs, name="bench") if as_mtl_fit else False,
            profiler=NoProfiler() if as_mtl_fit else None,
            callbacks=[*callbacks, stamps],
            default_root_dir=logs,
        )
        trainer.fit(module, train_dataloaders=Cycle(batches, warmup + steps + 2))
    return step_ms(stamps.stamps)


def bench_overhead(
    steps: int = 500,
    warmup: int = 100,
    batch_size: int = 4,
    rounds: int = 11,
    threads: int = 1,
    weightings: Sequence[str] = ("fixed",),
    compile: bool | Literal["net", "step"] = False,
    bare_update: BareUpdate = "torch",
    echo: Callable[[str], None] = print,
) -> BenchResult:
    """Each side ``rounds`` times, alternated (a slow period of the machine hits every side);
    a side's quietest round against the bare loop's is the overhead (module docstring).
    ``compile`` is the framework's ``model.compile`` (the bare sides stay eager)."""
    unknown = set(weightings) - set(WEIGHTINGS)
    if unknown:
        raise ValueError(f"unknown weighting(s) {sorted(unknown)}; known: {sorted(WEIGHTINGS)}")
    clock, clock_name = (
        (time.thread_time, "thread CPU time") if threads == 1 else (time.perf_counter, "wall time")
    )
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        batches = tiny_batches(tiny_module().tasks, batch_size)
        times: dict[str, list[Steps]] = {"bare": [], "lightning": []}
        times |= {w: [] for w in weightings}
        for r in range(rounds):
            echo(f"round {r + 1}/{rounds}: bare loop, Lightning alone, framework …")
            times["bare"].append(bare_ms(batches, steps, warmup, clock, bare_update))
            lightning = fit_ms(BareStepModule(bare_update), batches, steps, warmup, False, clock)
            times["lightning"].append(lightning)
            for w in weightings:
                module = tiny_module(w, compile)
                times[w].append(fit_ms(module, batches, steps, warmup, True, clock))
    finally:
        torch.set_num_threads(previous)
    rows = [_row("bare loop", "bare", times), _row("Lightning alone", "lightning", times)]
    rows += [_row(f"framework ({w})", w, times, framework=True) for w in weightings]
    title = (
        f"mtl bench overhead: host ms per training step, tiny Multi-task network, batch "
        f"{batch_size}, {len(TASKS)} tasks, {threads} thread(s), {clock_name}, quiet step "
        f"(10th percentile) of the quietest of {rounds} rounds of {steps} steps"
        + (f", framework compile={compile}" if compile else "")
        + (", the framework's SGD update on every side" if bare_update == "framework" else "")
    )
    columns = [
        Column("side", lambda r: r["side"], left=True),
        Column("ms / step", lambda r: f"{r['ms_per_step']:.3f}"),
        Column("mean", lambda r: f"{r['mean_ms_per_step']:.3f}"),
        Column("above bare, ms", lambda r: f"{r['above_bare_ms']:+.3f}"),
        Column("paired", lambda r: f"{r['above_bare_paired_ms']:+.3f}"),
        Column(
            f"≤ {OVERHEAD_ALLOWED_MS:g} ms above",
            lambda r: verdict(r["within"]) if r["within"] is not None else "",
        ),
    ]
    record = {
        "batch_size": batch_size,
        "steps": steps,
        "device": measured_on(torch.device("cpu"), threads),
        "threads": threads,
        "compile": compile,
        "bare_update": bare_update,
        "allowed_ms": OVERHEAD_ALLOWED_MS,
        "clock": clock_name,
        "quiet_quantile": QUIET_QUANTILE,
        "results": rows,
    }
    return BenchResult([Table(title, columns, rows)], record)


def _row(
    side: str, key: str, times: dict[str, list[Steps]], framework: bool = False
) -> dict[str, Any]:
    """A side's quietest round (its quiet step and that round's mean) and that round's excess
    over the bare loop's quietest round; also ``paired``, the median over rounds of the
    difference between this side's median step and the bare loop's in the same round (the
    estimate of the first measurements, kept for comparison)."""
    rounds, bare = times[key], times["bare"]
    quietest = min(rounds, key=lambda r: r.quiet)
    above = quietest.quiet - min(b.quiet for b in bare)
    paired = statistics.median(r.median - b.median for r, b in zip(rounds, bare, strict=True))
    return {
        "side": side,
        "ms_per_step": round(quietest.quiet, 4),
        "mean_ms_per_step": round(quietest.mean, 4),
        "above_bare_ms": round(above, 4),
        "above_bare_paired_ms": round(paired, 4),
        "within": (above <= OVERHEAD_ALLOWED_MS) if framework else None,
        "rounds_ms": [round(r.quiet, 4) for r in rounds],
        "rounds_median_ms": [round(r.median, 4) for r in rounds],
    }
