"""``mtl export CKPT``: the model as ONNX (dynamic batch) and TorchScript, preprocessing inside.

Each file is checked against the checkpoint's PyTorch outputs on a random batch (largest
absolute difference in the table; exit status 1 if any format differs by more than 1e-4,
relative and absolute, or could not be exported). A format that cannot express the model is
reported and the others are still written. ``mtl analyze OUT/model.onnx PHOTOS…`` runs the
ONNX file with ONNX Runtime.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
from jsonargparse import ActionConfigFile
from rich.console import Console
from rich.table import Table

from mtl.cli.commands import COMMANDS
from mtl.cli.parsing import ArgumentParser
from mtl.inference.export import example_input, export_onnx, export_torchscript
from mtl.inference.model import (
    OnnxPredictor,
    TorchPredictor,
    TorchScriptPredictor,
    load_checkpoint_net,
)

HELP = COMMANDS["export"].help
FILES = {"onnx": "model.onnx", "torchscript": "model.pt"}
TOLERANCE = 1e-4
"""Relative and absolute: probabilities, and regression values in their own unit (years)."""


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(prog="mtl export", description=__doc__)
    parser.add_argument("-c", "--config", action=ActionConfigFile, help="options from a file")
    parser.add_argument("checkpoint", type=Path, help="a checkpoint written by mtl fit")
    parser.add_argument("--out", type=Path | None, default=None, help="default: beside it")
    parser.add_argument(
        "--formats",
        type=list[Literal["onnx", "torchscript"]],
        default=["onnx", "torchscript"],
    )
    parser.add_argument("--ensemble", type=int, default=0, help="export the last N members' mean")
    return parser


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    console = Console(stderr=True)
    net, preprocessing = load_checkpoint_net(args.checkpoint, args.ensemble)
    out = args.out or args.checkpoint.parent / f"{args.checkpoint.stem}-export"
    faces = example_input(preprocessing, batch=8).numpy()
    reference = TorchPredictor(net, preprocessing)(faces)
    exporters = {
        "onnx": (export_onnx, OnnxPredictor),
        "torchscript": (export_torchscript, TorchScriptPredictor),
    }
    table = Table(title=f"mtl export: {args.checkpoint}")
    for col in ("format", "file", "max |Δ| vs PyTorch", "status"):
        table.add_column(col)
    failed = 0
    for fmt in args.formats:
        export, predictor = exporters[fmt]
        path = out / FILES[fmt]
        try:
            export(net, preprocessing, path)
            outputs = predictor(path)(faces)
        except Exception as err:  # a format that cannot express this network
            failed += 1
            table.add_row(fmt, "-", "-", f"[red]not exported: {type(err).__name__}: {err}"[:200])
            continue
        pairs = list(zip(reference, outputs, strict=True))
        diff = max(float(np.abs(a - b).max()) for a, b in pairs)
        same = all(np.allclose(b, a, rtol=TOLERANCE, atol=TOLERANCE) for a, b in pairs)
        failed += not same
        table.add_row(fmt, str(path), f"{diff:.1e}", "[green]ok" if same else "[red]differs")
    console.print(table)
    console.print(f"preprocessing (in each file's metadata): {preprocessing.to_dict()}")
    return 1 if failed else 0
