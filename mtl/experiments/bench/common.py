"""Timing helpers shared by the benchmarks: device clocks, where a figure was measured, papers'
reference figures."""

from __future__ import annotations

import time
from collections.abc import Callable

import torch

PAPERS = {
    "sang_cuong": "Sang & Cuong (Multi-task BKNet): 0.02 s per image (50 images/s)",
    "rohani": "Rohani et al.: 12-20 frames/s on video",
}


def synchronize(device: torch.device | str) -> None:
    """Wait for queued device work, so a host clock measures it."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def measured_on(device: torch.device, threads: int | None = None) -> str:
    """Where a benchmark ran, in words: a GPU's name, or the CPU's model and the threads it used
    (``threads``, default torch's)."""
    from mtl.training.summary import device_name

    if device.type == "cuda":
        return device_name(device)
    return f"{device_name(device)} (CPU), {threads or torch.get_num_threads()} thread(s)"


def timed(fn: Callable[[], object], device: torch.device | str, repeats: int) -> float:
    """Seconds for ``repeats`` calls of ``fn`` (after one synchronisation each side)."""
    synchronize(device)
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    synchronize(device)
    return time.perf_counter() - start


def autocast(device: torch.device | str, precision: str) -> torch.autocast:
    """The autocast context of a Lightning precision name (``32-true``: disabled)."""
    kind = torch.device(device).type
    dtype = {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}.get(precision)
    return torch.autocast(kind, dtype=dtype or torch.float32, enabled=dtype is not None)
