"""One trial as a process: start it in its own process group, read its metrics, stop it whole.

A trial may be a multi-GPU run whose ranks are its children; they share its process group,
which :func:`kill_group` ends entirely (SIGTERM, a grace period, then SIGKILL to the group
whatever the leader did: a rank blocked in a collective ignores SIGTERM).
"""

from __future__ import annotations

import contextlib
import csv
import os
import signal
import subprocess
from pathlib import Path

KILL_GRACE_S = 10.0


def metric_values(metrics_csv: Path, metric: str) -> list[float]:
    """Every value of ``metric`` logged so far, in order (cells that do not parse, such as a
    row being written, are skipped)."""
    if not metrics_csv.is_file():
        return []
    with metrics_csv.open(newline="") as f:
        rows = list(csv.DictReader(f))
    values = []
    for row in rows:
        try:
            values.append(float(row.get(metric) or ""))
        except ValueError:
            continue
    return values


def summary(metrics_csv: Path) -> dict[str, float]:
    """The last logged value of every validation metric (what a trial table shows)."""
    last: dict[str, float] = {}
    if metrics_csv.is_file():
        with metrics_csv.open(newline="") as f:
            for row in csv.DictReader(f):
                for key, value in row.items():
                    if key and key.startswith("val/") and value:
                        try:
                            last[key] = float(value)
                        except ValueError:
                            continue
    return last


def kill_group(process: subprocess.Popen, grace_s: float = KILL_GRACE_S) -> None:
    """Stop a trial and every process of its group (DDP ranks included)."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=grace_s)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        pass
    with contextlib.suppress(ProcessLookupError):  # what ignored SIGTERM or outlived the leader
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def alive(pid: int) -> bool:
    """Whether a process of this host still runs (another user's included: signalling it is
    refused, but it exists)."""
    try:
        os.kill(pid, 0)
    except PermissionError:
        return True
    except (ProcessLookupError, OverflowError):
        return False
    return True
