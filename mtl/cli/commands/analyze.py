"""``mtl analyze [MODEL] INPUT...``: every face in photos, folders and videos -> its attributes.

MODEL (first, or ``--model``) is a checkpoint (``.ckpt``; ``--ensemble N`` averages its last N
epochs' members), an exported ONNX model (``.onnx``, run by ONNX Runtime), a TorchScript file
(``.pt``), or a pretrained model folder (``mtl publish``); ``--model`` also takes a Hugging Face
Hub id. Without one, the pretrained Multi-task BKNet shipped with ``mtl`` analyses (offline;
its model card: ``mtl/inference/pretrained/multitask_bknet/README.md``). The faces
are cropped exactly as the model's training faces were (the preprocessing recorded in the
model file). Writes ``OUT/faces.csv`` and ``OUT/faces.jsonl`` (one row per face), annotated
copies under ``OUT/annotated/`` and, if anything could not be read, ``OUT/problems.csv``;
files and frames that cannot be read are reported and skipped.
"""

from __future__ import annotations

import csv
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

from jsonargparse import ActionConfigFile
from rich.console import Console
from rich.table import Table
from tqdm import tqdm

from mtl.cli.commands import COMMANDS
from mtl.cli.parsing import ArgumentParser
from mtl.data.faces import make_detector
from mtl.errors import UserError
from mtl.inference.analyze import Analyzer, Annotator, RowWriter
from mtl.inference.media import Frame, Problem, find_media, frame_count, read_frames
from mtl.inference.model import (
    MODEL_SUFFIXES,
    SHIPPED_MODEL,
    is_model,
    load_predictor,
    resolve_device,
)

HELP = COMMANDS["analyze"].help


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(prog="mtl analyze", description=__doc__)
    parser.add_argument("-c", "--config", action=ActionConfigFile, help="options from a file")
    parser.add_argument("inputs", type=str, nargs="+", help="[MODEL] then photos, folders, videos")
    parser.add_argument(
        "--model", type=str | None, default=None, help="model file, folder or Hub id"
    )
    parser.add_argument("--out", type=Path, default=Path("runs/analyze"), help="output folder")
    parser.add_argument(
        "--detector",
        type=Literal["auto", "mtcnn", "haar"],
        default="auto",
        help="auto: the detector the training faces were found with (MTCNN if they came "
        "pre-cropped)",
    )
    parser.add_argument("--device", type=str, default="auto", help="auto, cpu, cuda, cuda:1 …")
    parser.add_argument("--ensemble", type=int, default=0, help="checkpoint: average N members")
    parser.add_argument("--batch_size", type=int, default=16, help="frames per detector batch")
    parser.add_argument("--every", type=int, default=1, help="video: analyse every N-th frame")
    parser.add_argument(
        "--max_side", type=int, default=1280, help="detect on frames shrunk to this"
    )
    parser.add_argument("--min_score", type=float, default=0.0, help="drop weaker detections")
    parser.add_argument("--annotate", type=bool, default=True, help="write annotated copies")
    parser.add_argument("--compile", type=bool, default=False, help="torch.compile the model")
    return parser


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(lift_model(argv))
    if args.every < 1 or args.batch_size < 1:
        raise UserError("--every and --batch_size must be at least 1")
    console = Console(stderr=True)
    device = resolve_device(args.device)
    predictor = load_predictor(args.model, device, args.ensemble, args.compile)
    detector = choose_detector(args.detector, predictor.preprocessing.face.detector, console)
    analyzer = Analyzer(predictor, make_detector(detector, device), args.max_side, args.min_score)
    files, problems = find_media(args.inputs)
    if not files and not problems:
        raise UserError(f"no photos or videos found in {args.inputs}")
    tasks = [t.name for t in predictor.tasks]
    writer = RowWriter(args.out, tasks)
    annotator = Annotator(args.out, args.every) if args.annotate else None
    total = sum(frame_count(f, args.every) for f in files)
    frames_done = faceless = 0
    started = time.perf_counter()

    def frames(bar: tqdm) -> Iterator[Frame]:
        for file in files:
            bar.set_postfix_str(file.name[-40:])
            for item in read_frames(file, args.every):
                if isinstance(item, Problem):
                    problems.append(item)
                    bar.write(f"skipped {item.file}" + _at(item) + f": {item.reason}")
                else:
                    yield item

    try:
        with tqdm(total=total, unit="frame", desc="analyze", dynamic_ncols=True) as bar:
            for frame, faces in analyzer.run(frames(bar), args.batch_size):
                writer.write(frame, faces)
                if annotator is not None:
                    annotator.add(frame, faces)
                frames_done += 1
                faceless += not faces
                bar.update()
    finally:
        writer.close()
        if annotator is not None:
            annotator.close()
    seconds = time.perf_counter() - started
    problems += annotator.problems if annotator is not None else []
    _summary(console, args, predictor.name, len(files), frames_done, faceless, writer.rows, seconds)
    if problems:
        _problems(console, args.out, problems)
    return 0 if frames_done else 1


def lift_model(argv: list[str]) -> list[str]:
    """``argv`` with its first positional argument turned into ``--model`` when that is a model
    file or folder (``mtl analyze MODEL INPUT...``); otherwise unchanged, and the shipped model
    analyses. Every option here takes one value (``--key value`` or ``--key=value``)."""
    i = 0
    while i < len(argv) and argv[i] != "--":
        token = argv[i]
        if token.startswith("-"):
            i += 1 if token in ("-h", "--help") or "=" in token else 2
            continue
        if is_model(token):
            return [*argv[:i], "--model", token, *argv[i + 1 :]]
        if Path(token).suffix in MODEL_SUFFIXES:  # a mistyped model: never the shipped one
            raise UserError(f"model file not found: {token}")
        break
    return argv


def choose_detector(asked: str, trained: str, console: Console) -> str:
    """The detector to find faces with: the one asked for, else the training faces' own."""
    if asked != "auto":
        return asked
    if trained in ("mtcnn", "haar"):
        return trained
    how = "pre-cropped" if trained == "none" else f"from {trained}"
    console.print(
        f"[yellow]the model's training faces came {how}; finding faces with MTCNN and "
        "cropping them with the training margin"
    )
    return "mtcnn"


def _at(problem: Problem) -> str:
    return "" if problem.frame is None else f" (frame {problem.frame})"


def _summary(
    console, args, model: str, files: int, frames: int, faceless: int, faces: int, seconds: float
) -> None:
    table = Table(title=f"mtl analyze: {Path(args.model or SHIPPED_MODEL).name} ({model})")
    for col in ("files", "frames", "faces", "frames without a face", "frames/s", "output"):
        table.add_column(col, justify="right" if col != "output" else "left")
    fps = frames / seconds if seconds > 0 else float("nan")
    table.add_row(str(files), str(frames), str(faces), str(faceless), f"{fps:.1f}", str(args.out))
    console.print(table)


def _problems(console: Console, out: Path, problems: list[Problem]) -> None:
    with (out / "problems.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["file", "frame", "reason"])
        writer.writerows([p.file, "" if p.frame is None else p.frame, p.reason] for p in problems)
    console.print(
        f"[yellow]{len(problems)} file(s) or frame(s) could not be read and were skipped[/] "
        f"(listed in {out / 'problems.csv'}):"
    )
    for p in problems[:20]:
        console.print(f"  {p.file}{_at(p)}: {p.reason}")
    if len(problems) > 20:
        console.print(f"  … and {len(problems) - 20} more")
