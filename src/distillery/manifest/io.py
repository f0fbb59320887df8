"""Atomic file writes and JSON-lines helpers shared by every stage that writes results.

A file is written to a temporary sibling, flushed and fsynced, then renamed onto its
target, so a reader (or a killed job's retry) sees either the old file or the new one.
"""

from __future__ import annotations

import json
import os
from pathlib import Path


def atomic_target(path: str | os.PathLike) -> Path:
    """A temporary sibling of `path`; os.replace it onto `path` when complete."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def fsync_path(path: str | os.PathLike) -> None:
    """Flush a file's (or a folder's) data to disk: what a rename after it may rely on."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def replace_durable(tmp: str | os.PathLike, path: str | os.PathLike) -> None:
    """fsync `tmp`, rename it onto `path`, fsync the folder.

    Without the first fsync a crash (power loss, node failure) after the rename
    can leave `path` pointing at a file whose data never reached the disk: a
    complete-looking file of zeros. The folder fsync makes the rename itself last.
    """
    fsync_path(tmp)
    os.replace(tmp, path)
    fsync_path(Path(path).resolve().parent)


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    tmp = atomic_target(path)
    try:
        tmp.write_text(text)
        replace_durable(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_jsonl_atomic(path: str | os.PathLike, rows) -> None:
    write_text_atomic(path, "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows))


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    with open(path) as fh:
        return [json.loads(line) for line in fh if line.strip()]

