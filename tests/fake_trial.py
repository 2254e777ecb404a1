"""A stand-in for ``mtl fit`` in the sweep-runner tests: logs ``val/loss`` once per "epoch" to
``$MTL_TRIAL_DIR/logs/metrics.csv``, as the runner reads it, in a fraction of a second.

The loss falls with ``--lr`` (and is NaN for a diverging one, ``--lr`` above 1)."""

from __future__ import annotations

import argparse
import csv
import math
import os
import subprocess
import time
from pathlib import Path

parser = argparse.ArgumentParser()
parser.add_argument("--lr", type=float, default=0.01)
parser.add_argument("--epochs", type=int, default=3)
parser.add_argument("--seconds", type=float, default=0.05, help="per epoch")
parser.add_argument("--child", type=str, default="", help="start a child, write its pid here")
parser.add_argument("--hold", type=str, default="", help="wait (≤ 5 min) for this file")
args, _ = parser.parse_known_args()
deadline = time.monotonic() + 300
while args.hold and not Path(args.hold).exists() and time.monotonic() < deadline:
    time.sleep(0.05)  # a test holds the trial until every worker it starts has taken one
if args.child:  # like a DDP rank: a process of the trial's group that outlives its leader
    child = subprocess.Popen(["sleep", "600"])
    Path(args.child).write_text(str(child.pid))
metrics = Path(os.environ["MTL_TRIAL_DIR"]) / "logs" / "metrics.csv"
metrics.parent.mkdir(parents=True, exist_ok=True)
with metrics.open("w", newline="") as f:
    writer = csv.writer(f)
    writer.writerow(["epoch", "step", "val/loss", "val/x/acc"])
    for epoch in range(args.epochs):
        time.sleep(args.seconds)
        loss = math.nan if args.lr > 1 else 1 / (1 + args.lr * (epoch + 1))
        writer.writerow([epoch, epoch, loss, 1 - loss])
        f.flush()
