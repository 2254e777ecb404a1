"""Mixed precision chosen per machine: bf16 autocast where the kernels run it natively, fp32
elsewhere.

On a CPU with native bf16 (AVX512-BF16, AMX) bf16 autocast trains Multi-task BKNet about twice
as fast as fp32; on a CPU without it, oneDNN emulates bf16 and the same autocast runs about ten
times *slower*. CPU flags alone cannot tell the two apart (``ONEDNN_MAX_CPU_ISA`` caps the
kernels oneDNN dispatches, whatever the CPU has), so on a CPU the choice is made by timing what
the kernels really do: a small convolution's forward, in fp32 and under bf16 autocast (about
0.1 s with native bf16, 0.5 s without). On a CUDA GPU it is bf16 where the GPU has
native bf16 (Ampere and later), fp32 elsewhere.

A run resolves it once, before anything is built (:func:`resolve`), and the saved config
records the result, so a resumed or replayed run uses the same precision whatever machine it
lands on. ``--trainer.precision=32-true`` (or any Lightning precision) always wins.
"""

from __future__ import annotations

import functools
import os
import time
from dataclasses import dataclass

import torch
from lightning.pytorch.accelerators import MPSAccelerator, XLAAccelerator
from torch import nn

FP32, BF16 = "32-true", "bf16-mixed"
SPEEDUP_REQUIRED = 1.25
"""bf16 is chosen on a CPU only when the probe's bf16 convolution is at least this much faster
than its fp32 one (eager, not compiled: what decides is which kernels oneDNN runs).
The probe measured 1.9 with native bf16, 0.17-0.72 with emulated bf16: the bar is far from
both."""

INHERITED = "MTL_AUTO_PRECISION"
"""Set by the process that resolved the precision, read by the DDP ranks it launches (which
re-run its command line), so every rank trains in the same precision without probing again."""


@dataclass(frozen=True)
class Choice:
    """A resolved precision (Lightning's name) and why, for the run's log."""

    precision: str
    reason: str


def _seconds(net: nn.Module, x: torch.Tensor, bf16: bool) -> float:
    start = time.perf_counter()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        net(x)
    return time.perf_counter() - start


def cpu_bf16_speedup(repeats: int = 10) -> float:
    """fp32 seconds / bf16-autocast seconds of a BKNet-sized convolution's forward on this CPU,
    as its kernels run it now. Native bf16 measured 1.9 here (AVX512-BF16), emulated 0.17-0.72
    (oneDNN capped at AVX2, AVX-512 without bf16 or SSE4.1), the same with another process
    keeping both cores busy; a convolution separates the two far better
    than a whole training step, whose backward and element-wise parts gain less.

    Made to hold on a busy machine (a sweep's workers start together): one thread (no waits on
    threads another process has descheduled), fp32 and bf16 alternated, and the best of
    ``repeats`` each. Draws its random numbers from a forked generator: a seeded run's stream is
    untouched."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net = nn.Conv2d(64, 128, 3, padding=1).to(memory_format=torch.channels_last)
        x = torch.randn(32, 64, 12, 12).contiguous(memory_format=torch.channels_last)  # BxCxHxW
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for bf16 in (False, True):  # oneDNN builds its kernels on first use: not counted
            _seconds(net, x, bf16)
        pairs = [(_seconds(net, x, False), _seconds(net, x, True)) for _ in range(repeats)]
    finally:
        torch.set_num_threads(threads)
    return min(fp32 for fp32, _ in pairs) / min(bf16 for _, bf16 in pairs)


@functools.cache
def _cpu_choice() -> Choice:
    if not torch.backends.mkldnn.is_available():
        return Choice(FP32, "this torch has no oneDNN (bf16 would be emulated)")
    speedup = cpu_bf16_speedup()
    verdict = BF16 if speedup >= SPEEDUP_REQUIRED else FP32
    side = "native" if verdict == BF16 else "not native (emulated)"
    return Choice(
        verdict, f"bf16 is {side} on this CPU: a bf16 convolution ran {speedup:.2f}x fp32's speed"
    )


def _gpu_choice() -> Choice:
    if not torch.cuda.is_available():  # --trainer.accelerator=gpu without one: Lightning says so
        return Choice(FP32, "no CUDA GPU found")
    if torch.cuda.is_bf16_supported(including_emulation=False):
        return Choice(BF16, f"{torch.cuda.get_device_name()} has native bf16")
    return Choice(FP32, f"{torch.cuda.get_device_name()} has no native bf16")


def _on_gpu(accelerator: str | None) -> bool | None:
    """True for a CUDA run, False for a CPU run, None for another accelerator (``auto`` in
    Lightning's order: TPU, then Apple MPS, then CUDA, then CPU)."""
    name = str(accelerator or "auto").lower()
    if name in ("gpu", "cuda"):
        return True
    if name == "auto":
        if XLAAccelerator.is_available() or MPSAccelerator.is_available():
            return None
        return torch.cuda.is_available()
    return False if name == "cpu" else None


def choose(accelerator: str | None = "auto") -> Choice:
    """The precision a run on ``accelerator`` (Lightning's name; ``auto`` as the Trainer
    resolves it) trains in by default."""
    inherited = os.environ.get(INHERITED)
    if inherited and os.environ.get("LOCAL_RANK", "0") != "0":
        return Choice(inherited, "as the launching process chose")
    gpu = _on_gpu(accelerator)
    if gpu is None:
        return Choice(FP32, f"accelerator {accelerator!r}: bf16 is chosen only on CPU and CUDA")
    if gpu:
        return _gpu_choice()
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not inherited:
        # Processes started by an outside launcher (torchrun, srun) would each time the CPU on
        # their own, and could disagree: every rank must train in the same precision.
        return Choice(FP32, "several processes started together: each would time the CPU alone")
    return _cpu_choice()


def resolve(accelerator: str | None = "auto") -> Choice:
    """:func:`choose`, remembered for the DDP ranks this process launches."""
    choice = choose(accelerator)
    os.environ[INHERITED] = choice.precision
    return choice
