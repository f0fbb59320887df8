"""Content ids: what a manifest holds, as one hex digest that does not depend on where it lives.

The merge writes `content_id` into manifest.h5's root attributes. It is the
SHA-256 of the ordered list of (role, SHA-256 of the file's bytes) over the
shard files and teacher layer files the manifest was merged from. Hashing
the inputs' bytes costs one sequential read of data the merge reads anyway
(about a second per GB), and is exact: a relabelled shard, a re-packed
shard with other settings, a new shard or a dropped one all give a new id;
moving or copying the manifest keeps it.

Training fingerprints read it (`Manifest.content_id`), so a run resumes
only on the very data it started on.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable

BLOCK = 1 << 22  # 4 MiB reads


def file_sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file's bytes, read in blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(BLOCK), b""):
            digest.update(block)
    return digest.hexdigest()


def combine(parts: Iterable[tuple[str, str]]) -> str:
    """One hex digest of an ordered list of (role, digest) pairs."""
    digest = hashlib.sha256()
    for role, part in parts:
        digest.update(f"{role}:{part}\n".encode())
    return digest.hexdigest()


def content_id(shard_paths: Iterable[str | os.PathLike], layer_paths: Iterable[str | os.PathLike] = ()) -> str:
    """The content id of a manifest merged from these shards (in order) and teacher layers (any order)."""
    shards = [("shard", file_sha256(p)) for p in shard_paths]
    layers = sorted(("layer", file_sha256(p)) for p in layer_paths)
    return combine(shards + layers)
