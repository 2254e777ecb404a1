"""``mtl publish RUN``: a finished run as a Hugging Face Hub model folder (weights, config,
model card from its ``run.json``), written locally and, with a repository id, pushed to the Hub
under the user's account (``hf auth login`` or ``HF_TOKEN``)."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from huggingface_hub import HfApi

from mtl.errors import UserError
from mtl.training.module import MultiTaskModule
from mtl.training.run_file import RUN_FILE

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def find_run(path: Path) -> tuple[Path, dict | None]:
    """The checkpoint of ``path`` (a run folder's ``checkpoints/last.ckpt``, or a ``.ckpt``)
    and the run's ``run.json`` (None if the run has none: the card then says so)."""
    if path.is_file() and path.suffix == ".ckpt":
        checkpoint, folder = path, path.parent.parent
    elif path.is_dir():
        checkpoint, folder = path / "checkpoints" / "last.ckpt", path
        if not checkpoint.is_file():
            found = sorted(path.glob("checkpoints/*.ckpt"), key=lambda p: p.stat().st_mtime)
            if not found:
                raise UserError(f"{path}: no checkpoints/*.ckpt in this run folder")
            checkpoint = found[-1]  # the latest written
    else:
        raise UserError(f"{path}: neither a run folder nor a .ckpt file")
    run_file = folder / RUN_FILE
    return checkpoint, json.loads(run_file.read_text()) if run_file.is_file() else None


def publish(
    run: Path,
    out: Path,
    dtype: str = "float16",
    repo_id: str | None = None,
    private: bool = False,
) -> tuple[Path, str | None]:
    """Write ``run`` as a model folder ``out``; with ``repo_id``, push it too. Returns the folder
    and the commit URL (None when nothing was pushed)."""
    if dtype not in DTYPES:
        raise UserError(f"--dtype {dtype}: choose one of {', '.join(DTYPES)}")
    checkpoint, record = find_run(run)
    module = MultiTaskModule.load_from_checkpoint(checkpoint, map_location="cpu", weights_only=True)
    module.save_pretrained(out, dtype=DTYPES[dtype], run=record)
    if repo_id is None:
        return out, None
    try:  # the folder just written, as it is (push_to_hub would save it again, in fp32)
        api = HfApi()
        repo = api.create_repo(repo_id, private=private, exist_ok=True).repo_id
        url = api.upload_folder(repo_id=repo, folder_path=out, commit_message="mtl publish")
    except Exception as err:  # no token, no network, no access: each means "not published"
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UserError(f"could not push to the Hub repository {repo_id}: {first}") from err
    return out, str(url)
