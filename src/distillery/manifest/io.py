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


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    tmp = atomic_target(path)
    tmp.write_text(text)
    os.replace(tmp, path)


def write_jsonl_atomic(path: str | os.PathLike, rows) -> None:
    write_text_atomic(path, "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows))


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    with open(path) as fh:
        return [json.loads(line) for line in fh if line.strip()]

