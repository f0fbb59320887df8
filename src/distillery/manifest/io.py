"""JSON-lines reading, and the durable writers every stage uses (re-exported from distillery.atomic).

Writing lives in `distillery.atomic` (temporary sibling, fsync, rename, folder fsync);
the names stay importable from here and from `distillery.manifest`.
"""

from __future__ import annotations

import json
import os

from distillery.atomic import (atomic_target, atomic_write, fsync_path, replace_durable, write_jsonl_atomic,
                               write_text_atomic)

__all__ = ["atomic_target", "atomic_write", "fsync_path", "read_jsonl", "replace_durable", "write_jsonl_atomic",
           "write_text_atomic"]


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    with open(path) as fh:
        return [json.loads(line) for line in fh if line.strip()]
