"""``mtl publish RUN``: a finished run as a Hugging Face Hub model folder.

RUN is a run's log folder (its ``checkpoints/last.ckpt`` and ``run.json``) or a checkpoint.
Writes ``--out`` (default ``RUN/hub``): ``model.safetensors`` (in ``--dtype``, half precision by
default: enough for inference, half the size), ``config.json`` (hyper-parameters and the face
preprocessing) and ``README.md``, the model card (tasks, data and the terms the weights
inherit, test metrics per task and dataset from ``run.json``, how it was trained, intended use
and limits). The folder loads offline with ``MultiTaskModule.from_pretrained(FOLDER)`` and runs
with ``mtl analyze --model FOLDER``. With ``--repo_id USER/NAME`` it is also pushed to the Hub
(needs an account: ``hf auth login`` or ``HF_TOKEN``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from jsonargparse import ActionConfigFile
from rich.console import Console

from mtl.cli.commands import COMMANDS
from mtl.cli.parsing import ArgumentParser

HELP = COMMANDS["publish"].help


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(prog="mtl publish", description=__doc__)
    parser.add_argument("-c", "--config", action=ActionConfigFile, help="options from a file")
    parser.add_argument("run", type=Path, help="a run's log folder, or a checkpoint")
    parser.add_argument("--out", type=Path | None, default=None, help="default: RUN/hub")
    parser.add_argument(
        "--dtype", type=Literal["float16", "bfloat16", "float32"], default="float16"
    )
    parser.add_argument("--repo_id", type=str | None, default=None, help="push to USER/NAME")
    parser.add_argument("--private", type=bool, default=False, help="a private Hub repository")
    return parser


def main(argv: list[str]) -> int:
    from huggingface_hub.constants import SAFETENSORS_SINGLE_FILE

    from mtl.experiments.publish import publish

    args = build_parser().parse_args(argv)
    folder = args.run if args.run.is_dir() else args.run.parent.parent
    out = args.out or folder / "hub"
    out, url = publish(args.run, out, args.dtype, args.repo_id, args.private)
    size = (out / SAFETENSORS_SINGLE_FILE).stat().st_size / 2**20
    console = Console(stderr=True)
    console.print(f"wrote {out} (weights {size:.1f} MiB in {args.dtype}; card {out / 'README.md'})")
    if url:
        console.print(f"pushed to https://huggingface.co/{args.repo_id}: {url}")
    return 0
