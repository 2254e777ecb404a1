"""``mtl bench train``: images/s of the whole framework against a bare PyTorch loop.

Both sides train the same network (Multi-task BKNet by default: a fresh
:class:`~mtl.training.module.MultiTaskModule` with the same seed) with the same batch size and the
same speed-ups, one after the other in one process:

* **framework**: ``Trainer.fit`` exactly as ``mtl fit`` runs it, minus checkpoint files and the
  progress bar: real cached faces (GENKI-4K, FER-2013, UTKFace), augmentation, the balancing
  sampler, masked per-task losses, the weighting, metrics, the project's callbacks and the CSV
  logger; the training data path ``mtl fit`` would choose (faces in memory and augmented in
  batches where they fit, :func:`~mtl.data.device.choose_data_path`) unless ``device_data`` sets
  it;
* **bare**: a hand-written loop over batches of the same real faces already in memory (on the
  device), no augmentation, hand-written masked cross-entropy and ``torch.optim.SGD``.

The ratio framework / bare says what the framework costs (or saves). Warm-up steps (which also
absorb ``torch.compile``) are not timed.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from jsonargparse import Namespace

from mtl.data.datamodules import DATAMODULES, CachedDataModule, MultiSourceDataModule
from mtl.data.device import channels_first, face_arrays
from mtl.data.preprocessing import Preprocessing, describe_input
from mtl.errors import UserError
from mtl.experiments.bench.common import autocast, measured_on, synchronize, timed
from mtl.experiments.bench.result import BenchResult, Column, Table, verdict
from mtl.models import BKNet
from mtl.tasks import REGRESSION, Task
from mtl.training.module import MultiTaskModule

DATASETS = ("genki4k", "fer2013", "utkface")


@dataclass(frozen=True)
class Speedups:
    """What both sides of the comparison use."""

    channels_last: bool = False
    compile: bool = False
    precision: str = "32-true"  # Lightning's names: 32-true, bf16-mixed, 16-mixed

    @property
    def label(self) -> str:
        parts = [
            p for p, on in (("channels_last", self.channels_last), ("compile", self.compile)) if on
        ]
        return (
            "+".join(parts + ([] if self.precision == "32-true" else [self.precision]))
            or "eager fp32"
        )


def real_datamodules(
    data_root: Path, caches: dict[str, Path], cache_dir: Path
) -> list[CachedDataModule]:
    """One DataModule per dataset: from a cache folder given in ``caches``, else from the raw
    dataset under ``data_root`` (its cache built or reused in ``cache_dir``)."""
    children = []
    for name in DATASETS:
        if name in caches:
            children.append(DATAMODULES[name](cache_path=caches[name]))
        elif (data_root / name).is_dir():
            children.append(DATAMODULES[name](root=data_root / name, cache_dir=cache_dir))
    if not children:
        raise UserError(f"no datasets under {data_root} and no --caches; see mtl bench train -h")
    return children


class StepTimer(L.Callback):
    """Wall time from the start of step ``warmup`` to the end of step ``warmup + steps``."""

    def __init__(self, warmup: int, steps: int) -> None:
        self.warmup, self.steps = warmup, steps
        self.start = self.seconds = 0.0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step == self.warmup:
            synchronize(pl_module.device)
            self.start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step == self.warmup + self.steps:
            synchronize(pl_module.device)
            self.seconds = time.perf_counter() - self.start


def input_shape(dm: MultiSourceDataModule) -> tuple[int, int, int]:
    """C x H x W of the faces ``dm`` holds (``--caches`` may have been prepared at another size
    or in colour), the default faces' (the papers' 1 x 48 x 48) where its data does not say."""
    face = dm.face_settings()
    return (Preprocessing(face) if face else Preprocessing()).input_shape


def make_module(dm: MultiSourceDataModule, speedups: Speedups, seed: int) -> MultiTaskModule:
    """Multi-task BKNet built for the faces ``dm`` holds: bench takes no backbone options, so
    its network follows the faces it is given."""
    c, size, _ = shape = input_shape(dm)
    try:
        backbone = BKNet(in_chans=c, input_size=size)
    except ValueError as e:  # a side BKNet's pooling cannot halve four times
        raise UserError(
            f"--caches: faces of {describe_input(shape)}, which BKNet cannot take: {e}"
        ) from e
    torch.manual_seed(seed)
    return MultiTaskModule(
        dm.task_names,
        dm.age_edges,
        backbone=backbone,
        channels_last=speedups.channels_last,
        compile=speedups.compile,
    )


def framework_throughput(
    dm: MultiSourceDataModule,
    speedups: Speedups,
    steps: int,
    warmup: int,
    accelerator: str,
    seed: int = 0,
) -> float:
    """Images/s of ``Trainer.fit`` as ``mtl fit`` runs it (no checkpoint files, no bar)."""
    from mtl.training.defaults import default_callbacks
    from mtl.training.loggers import CSVLogger
    from mtl.training.profiler import NoProfiler

    module = make_module(dm, speedups, seed)
    timer = StepTimer(warmup, steps)
    callbacks = default_callbacks(Namespace(enable_checkpointing=False)) + [timer]
    with tempfile.TemporaryDirectory(prefix="mtl-bench-train-") as logs:
        trainer = L.Trainer(
            accelerator=accelerator,
            devices=1,
            precision=speedups.precision,
            max_steps=warmup + steps,
            limit_val_batches=0,
            num_sanity_val_steps=0,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            logger=CSVLogger(save_dir=logs, name="bench"),
            profiler=NoProfiler(),
            callbacks=callbacks,
            default_root_dir=logs,
        )
        trainer.fit(module, datamodule=dm)
    return steps * dm.batch_size / timer.seconds


def memory_batches(
    dm: MultiSourceDataModule, count: int, device: torch.device, seed: int = 0
) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """``count`` batches of real training faces (no augmentation) already on ``device``:
    (images B x C x H x W, targets B x T, mask B x T)."""
    dm.setup("fit")
    arrays = [face_arrays(s.train) for s in dm.sources]
    images = np.concatenate([a.images for a in arrays])  # N x H x W (x C)
    targets = torch.cat([a.targets for a in arrays])  # N x T
    order = np.random.default_rng(seed).permutation(len(images))[: count * dm.batch_size]
    batches = []
    for chunk in np.array_split(order, count):
        x = channels_first(torch.from_numpy(images[np.sort(chunk)])).float().div(255.0)
        y = targets[np.sort(chunk)]
        batches.append((x.to(device), y.to(device), (~torch.isnan(y)).to(device)))
    return batches


def bare_loss(
    outputs: dict[str, torch.Tensor], targets, mask, tasks: Sequence[Task]
) -> torch.Tensor:
    """Sum over tasks of the masked mean cross-entropy (absolute error for a regression),
    written out by hand."""
    total = torch.zeros((), device=targets.device)
    for j, task in enumerate(tasks):
        target = torch.nan_to_num(targets[:, j])  # B (0 where unlabelled; masked out)
        out = outputs[task.name].float()
        if task.kind is REGRESSION:  # written out by hand, as a bare loop would
            loss = (out - target).abs()  # B
        else:
            loss = F.cross_entropy(out, target.long(), reduction="none")  # B
        total = total + (loss * mask[:, j]).sum() / len(target)
    return total


def bare_throughput(
    dm: MultiSourceDataModule,
    speedups: Speedups,
    steps: int,
    warmup: int,
    device: torch.device,
    seed: int = 0,
) -> float:
    """Images/s of a hand-written training loop over in-memory batches of real faces."""
    module = make_module(dm, speedups, seed)
    batches = memory_batches(dm, 8, device, seed)
    return loop_throughput(module, batches, speedups, steps, warmup, device)


def loop_throughput(
    module: MultiTaskModule,
    batches: Sequence[tuple[torch.Tensor, torch.Tensor, torch.Tensor]],
    speedups: Speedups,
    steps: int,
    warmup: int,
    device: torch.device,
) -> float:
    """Images/s of a hand-written training loop of ``module``'s network (SGD with the paper's
    settings, :func:`bare_loss`) cycling through ``batches`` (images B x C x H x W, targets
    B x T, mask B x T) on ``device``."""
    net, tasks = module.net.to(device).train(), module.tasks
    if speedups.channels_last:
        net.to(memory_format=torch.channels_last)
    if speedups.compile:
        net.compile()
    optimizer = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9, weight_decay=0.01)
    scaler = torch.amp.GradScaler(device.type, enabled=speedups.precision == "16-mixed")
    fmt = torch.channels_last if speedups.channels_last else torch.contiguous_format
    batches = [
        (x.to(device).contiguous(memory_format=fmt), y.to(device), m.to(device))
        for x, y, m in batches
    ]
    step = 0

    def train_step() -> None:
        nonlocal step
        x, y, m = batches[step % len(batches)]
        step += 1
        optimizer.zero_grad(set_to_none=True)
        with autocast(device, speedups.precision):
            outputs = net(x)
        loss = bare_loss(outputs, y, m, tasks)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()

    timed(train_step, device, warmup)
    return steps * len(batches[0][0]) / timed(train_step, device, steps)


TRAIN_REQUIRED = 0.95
"""The framework must train at no less than this fraction of the bare loop's images/s."""


def parse_variant(text: str) -> Speedups:
    """``channels_last+compile+bf16`` -> Speedups (``eager``: none)."""
    parts = set(text.split("+")) - {"eager", ""}
    unknown = parts - {"channels_last", "compile", "bf16", "fp16"}
    if unknown:
        raise UserError(f"--variants: unknown speed-up(s) {sorted(unknown)} in {text!r}")
    chosen = "bf16-mixed" if "bf16" in parts else "16-mixed" if "fp16" in parts else "32-true"
    return Speedups("channels_last" in parts, "compile" in parts, chosen)


def bench_train(
    variants: Sequence[Speedups],
    data_root: Path,
    caches: dict[str, Path],
    cache_dir: Path,
    batch_size: int = 128,
    steps: int = 60,
    warmup: int = 10,
    workers: int = 2,
    accelerator: str = "auto",
    device_data: bool | None = None,
    rounds: int = 1,
    seed: int = 0,
    echo: Callable[[str], None] = print,
) -> BenchResult:
    """Each variant on both sides, ``rounds`` times alternated (a drift of the machine hits both
    sides); medians compared."""
    from mtl.training import precision

    gpu = accelerator == "gpu" or (accelerator == "auto" and torch.cuda.is_available())
    device = torch.device("cuda" if gpu else "cpu")
    chosen = precision.choose("gpu" if gpu else "cpu")
    rows = []
    for speedups in variants:
        dm = MultiSourceDataModule(
            real_datamodules(data_root, caches, cache_dir),
            batch_size=batch_size,
            num_workers=workers,
            seed=seed,
            device_data=device_data,
        )
        dm.device_data_option = "--device_data"  # mtl bench's own option
        dm.prepare_data()
        bares, frameworks = [], []
        for r in range(rounds):
            echo(f"[bold]{speedups.label}[/] round {r + 1}/{rounds}: bare loop …")
            bares.append(bare_throughput(dm, speedups, steps, warmup, device, seed))
            echo(f"[bold]{speedups.label}[/] round {r + 1}: framework (Lightning) …")
            accel = "gpu" if gpu else "cpu"
            frameworks.append(framework_throughput(dm, speedups, steps, warmup, accel, seed))
        framework, bare = statistics.median(frameworks), statistics.median(bares)
        rows.append(
            {
                "variant": speedups.label,
                "framework_images_per_s": round(framework, 1),
                "bare_images_per_s": round(bare, 1),
                "ratio": round(framework / bare, 3),
                "rounds": {
                    "framework": [round(v, 1) for v in frameworks],
                    "bare": [round(v, 1) for v in bares],
                },
                "default_precision_here": speedups.precision == chosen.precision,
            }
        )
    sources = ", ".join(dm.source_names)
    path = dm.training_data_path()
    data = "in memory" if path.in_memory else f"{workers} workers"
    where = measured_on(device)
    faces = describe_input(input_shape(dm))
    title = (
        f"mtl bench train: Multi-task BKNet on {faces} faces, batch {batch_size}, {steps} timed "
        f"steps per side (median of {rounds}), {where}; framework data: {sources} ({data})"
    )
    columns = [
        Column("speed-ups", lambda r: r["variant"], left=True),
        Column("framework img/s", lambda r: f"{r['framework_images_per_s']:.0f}"),
        Column("bare loop img/s", lambda r: f"{r['bare_images_per_s']:.0f}"),
        Column("framework / bare", lambda r: f"{r['ratio']:.2f}"),
        Column(f"≥ {TRAIN_REQUIRED:g}", lambda r: verdict(r["ratio"] >= TRAIN_REQUIRED)),
        Column("mtl fit's precision here", lambda r: "yes" if r["default_precision_here"] else ""),
    ]
    record = {
        "device": where,
        "input": faces,
        "batch_size": batch_size,
        "steps": steps,
        "device_data": path.in_memory,
        "training_data": path.describe(),
        "workers": 0 if path.in_memory else workers,
        "default_precision": {"precision": chosen.precision, "reason": chosen.reason},
        "sources": dm.source_names,
        "results": rows,
    }
    note = f"mtl fit's default precision here: {chosen.precision} ({chosen.reason})"
    return BenchResult([Table(title, columns, rows)], record, [note])
