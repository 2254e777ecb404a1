"""Training really learns: a short CPU run on the synthetic sources beats chance by far, on every
floating-point path."""

import pytest

from mtl.cli import run_cli

from .conftest import tiny_fit_args

pytestmark = pytest.mark.numeric

# What each task needs to count as learned: chance is 1/2 for smile and gender, 1/7 for emotion
# and 1/6 for age, and the synthetic data's majority class is at most ~0.56 (smile); so the binary
# tasks need 0.8 and the multi-class ones 0.5 (3.5x and 3x chance).
THRESHOLDS = {"smile": 0.80, "emotion": 0.50, "gender": 0.80, "age": 0.50}
# Measured (2026-12, torch 2.14): this run with seeds 0-3 on oneDNN's AVX-512 (native on the
# machine), AVX2 and SSE4.1 kernels, ATen's scalar kernels, and 1 and 2 threads: lowest smile
# 0.947, emotion 0.78, gender 0.97, age 0.653 (1 and 2 threads gave identical runs); in bf16
# autocast (mtl fit's default where bf16 is native, as on that machine) seeds 0-3 gave at lowest
# smile 0.957, emotion 0.877, gender 0.99, age 0.743. Two settings
# make that margin:
# - Adam instead of the paper's SGD (lr 0.01): with SGD the smile and emotion cues "take off" at
#   an epoch that depends on the seed and the kernel path (epoch 2 to 11 seen), so the same
#   8-epoch run ended anywhere from emotion 0.33 to 0.86; Adam learns them within 2-4 epochs on
#   every path tried.
# - precise_bn: validation with batch-norm statistics of the current weights. The running
#   averages lag them early in training (emotion 0.35 with them, 0.91 without the lag).
# The paper's SGD is what the main job trains with; test_main_job.py (slow) checks that it
# learns every task for five seeds.


def test_short_run_learns_every_task_far_above_chance(in_tmp):
    args = [
        *tiny_fit_args(train=800, val=300, test=10),
        "--data.batch_size=64",
        "--trainer.max_epochs=8",
        # PyTorch's default init: with batch norm after every layer, the paper's N(0, 0.01)
        # gives a far larger effective step size and learns the small mouth/eye cues slowly.
        "--model.init_std=null",
        "--model.optimizer=torch.optim.Adam",
        "--model.optimizer.lr=0.001",
        "--model.precise_bn=1024",
    ]
    cli = run_cli(args)
    metrics = cli.trainer.callback_metrics
    got = {task: float(metrics[f"val/{task}/acc"]) for task in THRESHOLDS}
    failing = {t: acc for t, acc in got.items() if acc < THRESHOLDS[t]}
    assert not failing, f"accuracy below threshold: {failing} (all: {got})"
