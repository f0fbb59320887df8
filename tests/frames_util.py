"""Small helpers that write raw frames and FrameRefs for the pack/merge tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from distillery.ingest.frames import FrameRef, Intrinsics
from distillery.atomic import write_jsonl_atomic


def write_frames(folder: Path, n: int, dataset: str = "ds", sequence: str = "seq", size=(48, 64), seed: int = 0,
                 split: str = "train") -> list[dict]:
    """n random RGB PNG + float depth .npy frames; returns their shard rows (FrameRef dicts + split)."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    h, w = size
    rows = []
    for i in range(n):
        rgb, depth = folder / f"{sequence}-{i:04d}.png", folder / f"{sequence}-{i:04d}.npy"
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(rgb)
        d = rng.uniform(0.3, 6.0, (h, w)).astype(np.float32)
        d[: h // 4] = 0.0
        np.save(depth, d)
        ref = FrameRef(dataset, sequence, f"{i:04d}", str(rgb), str(depth), timestamp=i / 30,
                       intrinsics=Intrinsics(w * 0.8, w * 0.8, w / 2, h / 2, w, h))
        rows.append(dict(ref.to_dict(), split=split))
    return rows


def write_shard_list(path: Path, rows: list[dict]) -> str:
    write_jsonl_atomic(path, rows)
    return str(path)


def truncate(path: str) -> None:
    data = Path(path).read_bytes()
    Path(path).write_bytes(data[: len(data) // 2])
