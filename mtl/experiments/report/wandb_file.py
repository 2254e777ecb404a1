"""Read a W&B offline run file (``run-<id>.wandb``) with no server, checking every record.

The file is a LevelDB-style log (W&B's "datastore"): a 7-byte header (``:W&B``, magic 0xBEE1,
version 0), then 32 KiB blocks of chunks, each with a 7-byte header (checksum, length, type:
full, first, middle, last) and a piece of a serialized ``wandb.proto.wandb_internal_pb2.Record``.
The checksum is the CRC-32 of the chunk's type byte followed by its data, as W&B's writers
compute it and its readers check it. Current wandb (its Go core writes the file) ships those
protobuf classes but no Python reader of the log, so the framing is read here.

A chunk whose checksum or header is wrong is :class:`Damage`: the record it belongs to is left
out. Reading goes on right after it when the chunk there checks out (only data was damaged, so
its length was right); otherwise the rest of its block is left out too, as LevelDB's own reader
does, and reading resumes at the next block. A record cut short at the end of the file (a run
still writing, or killed) is left out without a word.
"""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from mtl.errors import UserError

HEADER = struct.Struct("<4sHB")  # ident, magic, version
CHUNK = struct.Struct("<IHB")  # checksum, length, type
BLOCK = 32768
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4
TYPE_CRC = {kind: zlib.crc32(bytes([kind])) for kind in (FULL, FIRST, MIDDLE, LAST)}


@dataclass(frozen=True)
class Damage:
    """A damaged stretch of a run file: where it starts, what was wrong, what was skipped."""

    offset: int  # byte position of the damaged record (of its first chunk, when known)
    after: int  # records read intact before it
    reason: str
    skipped: int  # bytes left out from ``offset``

    def __str__(self) -> str:
        return (
            f"damaged record at byte {self.offset:,} (after record {self.after}): {self.reason}; "
            f"{self.skipped:,} bytes left out"
        )


@dataclass
class WandbRunContent:
    run_id: str = ""
    finished: bool = False  # the file holds the run's exit record
    config: dict = field(default_factory=dict)
    summary: dict = field(default_factory=dict)
    history: list[dict] = field(default_factory=list)
    damaged: list[Damage] = field(default_factory=list)


def _chunk_problem(data: bytes, pos: int, length: int, kind: int) -> str | None:
    """What is wrong with the chunk whose header is at ``pos``, or None (checksum included)."""
    if kind not in TYPE_CRC:
        return f"unknown chunk type {kind}"
    if pos % BLOCK + CHUNK.size + length > BLOCK:
        return f"length {length} runs past the end of its block"
    begin = pos + CHUNK.size
    checksum = CHUNK.unpack_from(data, pos)[0]
    if zlib.crc32(data[begin : begin + length], TYPE_CRC[kind]) != checksum:
        return "checksum mismatch"
    return None


def _resume_at(data: bytes, pos: int, length: int) -> int:
    """Where reading goes on after the damaged chunk at ``pos``: just past it when what follows
    checks out (a chunk that passes its checksum, the block's zero padding, or the end), else at
    the next block."""
    block_end = min(len(data), pos - pos % BLOCK + BLOCK)
    after = pos + CHUNK.size + length
    if after > block_end:
        return block_end
    if not any(data[after:block_end]):  # the rest of the block is padding (or the file ends)
        return after
    if block_end - after < CHUNK.size:  # no room for a header: what is there is damage
        return block_end
    _, n, kind = CHUNK.unpack_from(data, after)
    if after + CHUNK.size + n <= len(data) and _chunk_problem(data, after, n, kind) is None:
        return after
    return block_end


def records(data: bytes, damaged: list[Damage] | None = None) -> Iterator[bytes]:
    """The serialized records of a datastore file's bytes whose every chunk checks out; each
    damaged stretch is appended to ``damaged``."""
    damaged = [] if damaged is None else damaged
    ident, magic, _ = HEADER.unpack_from(data, 0)
    if ident != b":W&B" or magic != 0xBEE1:
        raise ValueError("not a W&B run file")
    pos, count = HEADER.size, 0
    parts: list[bytes] = []  # the chunks of the record being read
    start: int | None = None  # where that record began (None: no record begun)
    resynced = False  # reading resumed after damage: a record's tail there is not new damage
    while pos + CHUNK.size <= len(data):
        if BLOCK - pos % BLOCK < CHUNK.size:  # block trailer: padding
            pos += BLOCK - pos % BLOCK
            continue
        _, length, kind = CHUNK.unpack_from(data, pos)
        if kind == 0 and length == 0:  # zero padding
            pos += CHUNK.size
            continue
        fits = pos % BLOCK + CHUNK.size + length <= BLOCK  # else its length is damaged
        if fits and pos + CHUNK.size + length > len(data):  # the file ends inside this chunk
            return
        problem = _chunk_problem(data, pos, length, kind)
        if problem is not None:
            end, first = _resume_at(data, pos, length), pos if start is None else start
            damaged.append(Damage(first, count, problem, end - first))
            pos, parts, start, resynced = end, [], None, True
            continue
        chunk, here = data[pos + CHUNK.size : pos + CHUNK.size + length], pos
        pos += CHUNK.size + length
        if kind in (FULL, FIRST):
            if start is not None:  # the record begun before never ended
                lost = here - start
                damaged.append(Damage(start, count, "a record without its last chunk", lost))
            parts, start, resynced = [chunk], here, False
        elif start is None:  # the tail of a record whose beginning is missing
            if not resynced:
                damaged.append(Damage(here, count, "a record without its first chunk", pos - here))
            continue
        else:
            parts.append(chunk)
        if kind in (FULL, LAST):
            count += 1
            yield b"".join(parts)
            parts, start = [], None


def _items(updates) -> dict:
    """Config/summary/history items (``key`` or ``nested_key``) as a flat dict."""
    out = {}
    for item in updates:
        key = item.key or "/".join(item.nested_key)
        out[key] = json.loads(item.value_json)
    return out


def read_wandb_file(path: Path) -> WandbRunContent:
    """The run id, config, final summary and history rows of an offline run file; what a damaged
    record held is absent, and the damage is listed in ``damaged``."""
    from google.protobuf.message import DecodeError
    from wandb.proto import wandb_internal_pb2 as pb

    content = WandbRunContent()
    try:
        for raw in records(path.read_bytes(), content.damaged):
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
