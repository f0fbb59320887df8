"""Real frames from a manifest, in the deployed graph's input format.

Parity, quantisation accuracy and the fused graph's check all run on frames
of the manifest's test split (calibration alone draws from train): never on
random noise, whose activations look nothing like a camera's.
"""

from __future__ import annotations

import os

import numpy as np

from distillery.deploy import spec
from distillery.atomic import atomic_write
from distillery.manifest import Manifest


def check_size(m: Manifest, path) -> None:
    """Refuse a manifest whose frames are not the size the graph is exported at."""
    if m.size != (spec.HEIGHT, spec.WIDTH):
        raise ValueError(f"{path}: frames are {m.size[0]}x{m.size[1]}, the deployed graph takes "
                         f"{spec.HEIGHT}x{spec.WIDTH}; set ingest.height/width to {spec.HEIGHT}/{spec.WIDTH}")


def spread(rows: np.ndarray, limit: int | None) -> np.ndarray:
    """At most `limit` rows, evenly spaced over the split so every sequence is represented."""
    if limit is None or len(rows) <= limit:
        return rows
    return rows[np.linspace(0, len(rows) - 1, limit).round().astype(np.int64)]


def rgb_nchw(rgb_hwc: np.ndarray) -> np.ndarray:
    """uint8 [..., H, W, 3] -> float32 [..., 3, H, W] in [0, 1], the graph's input."""
    x = np.asarray(rgb_hwc, dtype=np.float32) / 255.0
    return np.ascontiguousarray(np.moveaxis(x, -1, -3))


def load_frames(manifest: str | os.PathLike, split: str = "test", limit: int | None = None) -> dict:
    """Frames of a split: keys, rgb [N,3,H,W] float32, tof and confidence [N,1,H,W], teacher depth and
    labels (None per frame where absent). Fails, naming the manifest, when the split is empty."""
    with Manifest(manifest) as m:
        check_size(m, manifest)
        rows = spread(m.indices(split=split), limit)
        if len(rows) == 0:
            raise ValueError(f"{manifest}: no frames in the {split!r} split")
        fields = ("rgb", "tof_depth", "tof_confidence", "teacher_depth", "teacher_label")
        frames = [m.read(int(r), fields) for r in rows]
    return {
        "keys": [f["key"] for f in frames],
        "rgb": np.stack([rgb_nchw(f["rgb"]) for f in frames]),
        "tof": np.stack([f["tof_depth"].astype(np.float32) for f in frames])[:, None],
        "confidence": np.stack([f["tof_confidence"].astype(np.float32) for f in frames])[:, None],
        "teacher_depth": [None if f["teacher_depth"] is None else f["teacher_depth"].astype(np.float32)
                          for f in frames],
        "teacher_label": [f["teacher_label"] for f in frames],
    }


def batches(n: int, size: int):
    """Slices covering range(n) in batches of `size` (the last may be shorter)."""
    return [slice(i, min(i + size, n)) for i in range(0, n, size)]


def write_frames(manifest: str | os.PathLike, out: str | os.PathLike, split: str = "test",
                 limit: int | None = None) -> dict:
    """Write `limit` frames of a split, evenly spread, as the npz that engines are compared on (on the
    cluster and in the Jetson bundle, where there is no manifest): rgb uint8 [N,3,H,W], keys, split."""
    with Manifest(manifest) as m:
        check_size(m, manifest)
        rows = spread(m.indices(split=split), limit)
        if len(rows) == 0:
            raise ValueError(f"{manifest}: no frames in the {split!r} split")
        frames = [m.read(int(r), ("rgb",)) for r in rows]
    rgb = np.stack([np.moveaxis(f["rgb"], -1, 0) for f in frames])
    keys = np.array([f["key"] for f in frames])
    with atomic_write(out) as tmp, open(tmp, "wb") as fh:
        np.savez_compressed(fh, rgb=rgb, keys=keys, split=np.array(split))
    return {"frames": len(rows), "split": split, "keys": keys.tolist()}
