"""``mtl models``: every backbone's parameters (total, shared, per task), FLOPs per image at its
native input size, and measured CPU inference throughput, as one table.

Counts are for the four tasks (smile 2, emotion 7, gender 2, age 6 classes) with each
backbone's default branch.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch
from jsonargparse import ActionConfigFile
from rich.console import Console
from rich.table import Table
from torch.utils.flop_counter import FlopCounterMode

from mtl.cli.commands import COMMANDS
from mtl.cli.parsing import ArgumentParser
from mtl.errors import UserError
from mtl.models import MultiTaskNet
from mtl.models.zoo import ZOO
from mtl.tasks import DEFAULT_TASK_NAMES, build_tasks


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def describe(name: str, batch_size: int, iters: int) -> dict:
    """Parameters, FLOPs and CPU images/s of one zoo entry in eval mode."""
    label, make = ZOO[name]
    torch.manual_seed(0)
    net = MultiTaskNet(build_tasks(DEFAULT_TASK_NAMES), make(), init_std=None).eval()
    size, chans = net.backbone.input_size, net.backbone.in_chans
    per_task = {
        t: count(net.heads[t]) + (count(net.task_trunks[t]) if t in net.task_trunks else 0)
        for t in net.task_names
    }
    x = torch.randn(batch_size, chans, size, size)
    with torch.no_grad():
        with FlopCounterMode(display=False) as flops:
            net(x[:1])
        net(x)  # warm-up
        start = time.perf_counter()
        for _ in range(iters):
            net(x)
        seconds = time.perf_counter() - start
    return {
        "name": name,
        "backbone": label,
        "input": f"{chans}x{size}x{size}",
        "params_total": count(net),
        "params_shared": count(net.backbone),
        "params_per_task": per_task,
        "gflops": flops.get_total_flops() / 1e9,
        "cpu_images_per_s": batch_size * iters / seconds,
    }


HELP = COMMANDS["models"].help


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(prog="mtl models", description=__doc__)
    parser.add_argument("-c", "--config", action=ActionConfigFile, help="options from a file")
    parser.add_argument("names", type=str, nargs="*", default=list(ZOO), help=", ".join(ZOO))
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--iters", type=int, default=3)
    parser.add_argument("--json", type=Path | None, default=None, help="also write rows here")
    parser.add_argument("--markdown", type=bool, default=False, help="print a Markdown table")
    return parser


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    unknown = set(args.names) - set(ZOO)
    if unknown:
        raise UserError(f"unknown backbone(s) {sorted(unknown)}; choose from {list(ZOO)}")
    rows = [describe(n, args.batch_size, args.iters) for n in args.names]
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    if args.markdown:
        print(markdown(rows), end="")
    else:
        Console(width=160).print(table(rows))
    return 0


HEADERS = ("backbone", "config", "input", "params total", "shared", "per task (s/e/g/a)",
           "GFLOPs/img", f"CPU img/s ({torch.get_num_threads()} threads)")  # fmt: skip


def _cells(r: dict) -> list[str]:
    per = "/".join(f"{v / 1e6:.2f}M" for v in r["params_per_task"].values())
    total, shared = f"{r['params_total']:,}", f"{r['params_shared']:,}"
    speed = f"{r['cpu_images_per_s']:.0f}"
    return [r["name"], r["backbone"], r["input"], total, shared, per, f"{r['gflops']:.3f}", speed]


def table(rows: list[dict]) -> Table:
    out = Table(title="backbones (4 tasks, default branches)")
    for h in HEADERS:
        out.add_column(h, justify="left" if h in ("backbone", "config", "input") else "right")
    for r in rows:
        out.add_row(*_cells(r))
    return out


def markdown(rows: list[dict]) -> str:
    lines = ["| " + " | ".join(HEADERS) + " |", "|" + "---|" * len(HEADERS)]
    lines += ["| " + " | ".join(_cells(r)) + " |" for r in rows]
    return "\n".join(lines) + "\n"
