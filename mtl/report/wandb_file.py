"""Read a W&B offline run file (``run-<id>.wandb``) with no server.

The file is a LevelDB-style log (W&B's "datastore"): a 7-byte header (``:W&B``, magic 0xBEE1,
version 0), then 32 KiB blocks of records, each with a 7-byte header (checksum, length, type:
full, first, middle, last) and a chunk of a serialized ``wandb.proto.wandb_internal_pb2.Record``.
Current wandb (its Go core writes the file) ships those protobuf classes but no Python reader
of the log, so the framing is read here; a record cut short at the end (a run still writing, or
killed) is left out.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from mtl.errors import UserError

HEADER = struct.Struct("<4sHB")  # ident, magic, version
RECORD = struct.Struct("<IHB")  # checksum, length, type
BLOCK = 32768
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


@dataclass
class WandbRunContent:
    run_id: str = ""
    finished: bool = False  # the file holds the run's exit record
    config: dict = field(default_factory=dict)
    summary: dict = field(default_factory=dict)
    history: list[dict] = field(default_factory=list)


def records(data: bytes) -> Iterator[bytes]:
    """The serialized records of a datastore file's bytes."""
    ident, magic, _ = HEADER.unpack_from(data, 0)
    if ident != b":W&B" or magic != 0xBEE1:
        raise ValueError("not a W&B run file")
    pos, parts = HEADER.size, []
    while pos + RECORD.size <= len(data):
        if BLOCK - pos % BLOCK < RECORD.size:  # block trailer: padding
            pos += BLOCK - pos % BLOCK
            continue
        _, length, kind = RECORD.unpack_from(data, pos)
        pos += RECORD.size
        if kind == 0 and length == 0:  # zero padding
            continue
        if pos + length > len(data):  # cut short: the file ends inside this record
            return
        parts.append(data[pos : pos + length])
        pos += length
        if kind in (FULL, LAST):
            yield b"".join(parts)
            parts = []


def _items(updates) -> dict:
    """Config/summary/history items (``key`` or ``nested_key``) as a flat dict."""
    out = {}
    for item in updates:
        key = item.key or "/".join(item.nested_key)
        out[key] = json.loads(item.value_json)
    return out


def read_wandb_file(path: Path) -> WandbRunContent:
    """The run id, config, final summary and history rows of an offline run file."""
    from google.protobuf.message import DecodeError
    from wandb.proto import wandb_internal_pb2 as pb

    content = WandbRunContent()
    try:
        for raw in records(path.read_bytes()):
            record = pb.Record()
            record.ParseFromString(raw)
            kind = record.WhichOneof("record_type")
            if kind == "run":
                content.run_id = record.run.run_id
                content.config |= _items(record.run.config.update)
            elif kind == "config":
                content.config |= _items(record.config.update)
            elif kind == "summary":
                content.summary |= _items(record.summary.update)
            elif kind == "history":
                content.history.append(_items(record.history.item))
            elif kind == "exit":
                content.finished = True
    except (OSError, ValueError, struct.error, DecodeError) as err:
        raise UserError(f"{path}: unreadable W&B run file ({err})") from None
    return content
