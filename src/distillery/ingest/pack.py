"""Pack one shard: decode, validate and resize its frames into a shard HDF5.

Every frame is decoded and checked (see `distillery.ingest.frames.load_frame`). A
frame that fails goes to the shard's quarantine report with its file, field
and reason; the rest of the shard is written. The shard file is written
under a temporary name and renamed when complete, so a killed job never
leaves a file that looks finished.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
from tqdm import tqdm

from distillery.ingest.frames import FrameError, FrameRef, Reject, load_frame
from distillery.manifest import atomic_target, create_layout, read_jsonl, replace_durable, write_jsonl_atomic
from distillery.ingest.resize import resize_frame

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PackSettings:
    height: int = 240
    width: int = 320
    fit: str = "crop"
    max_depth_m: float = 20.0
    compression_level: int = 3


def _decode(ref: FrameRef, settings: PackSettings):
    frame = load_frame(ref, settings.max_depth_m)
    return resize_frame(frame, ref.intrinsics, settings.height, settings.width, settings.fit)


def _write_row(f: h5py.File, row: int, ref: FrameRef, split: str, frame, k_small, original_shape) -> None:
    f["rgb"][row] = frame.rgb
    f["tof_depth"][row] = frame.depth
    f["tof_confidence"][row] = frame.confidence.astype(np.float16)
    if frame.truth_depth is not None:
        f["truth_depth"][row] = frame.truth_depth
        f["has_truth_depth"][row] = True
    if frame.truth_semantics is not None:
        f["truth_label"][row] = frame.truth_semantics
        f["has_truth_label"][row] = True
    f["intrinsics"][row] = k_small.as_list()
    f["intrinsics_original"][row] = ref.intrinsics.as_list()
    f["original_size"][row] = original_shape
    f["timestamp"][row] = np.nan if ref.timestamp is None else ref.timestamp
    f["tof_valid_share"][row] = float((frame.depth > 0).mean())
    f["confidence_derived"][row] = frame.confidence_derived
    for name, value in (("key", ref.key), ("dataset", ref.dataset), ("sequence", ref.sequence),
                        ("split", split), ("rgb_source", ref.rgb)):
        f[name][row] = value


def pack_shard(frame_list: str, out_h5: str, quarantine_out: str, settings: PackSettings = PackSettings(),
               progress: bool = True) -> dict:
    """Pack the frames of `frame_list` (a shard's jsonl) into `out_h5`.

    Returns counts {"frames", "packed", "quarantined"}. Frames are decoded
    once: good frames are buffered as arrays only long enough to know the
    shard's final row count, which keeps rows dense and in index order.
    """
    rows = read_jsonl(frame_list)
    good, rejects = [], []
    for item in tqdm(rows, desc=f"decode {Path(frame_list).stem}", unit="frame", disable=not progress):
        ref = FrameRef.from_dict(item)
        try:
            frame, k_small = _decode(ref, settings)
        except FrameError as err:
            rejects.append(Reject(ref.key, err.file, err.field, err.reason, stage="pack"))
            log.warning("quarantined %s: %s %s: %s", ref.key, err.field, err.file, err.reason)
            continue
        original = np.asarray(_original_shape(item, ref), dtype=np.int32)
        good.append((ref, item["split"], frame, k_small, original))
    tmp = atomic_target(out_h5)
    try:
        with h5py.File(tmp, "w") as f:
            create_layout(f, len(good), settings.height, settings.width, settings.compression_level)
            for row, (ref, split, frame, k_small, original) in enumerate(good):
                _write_row(f, row, ref, split, frame, k_small, original)
        replace_durable(tmp, out_h5)
    finally:
        tmp.unlink(missing_ok=True)
    write_jsonl_atomic(quarantine_out, [r.to_dict() for r in rejects])
    return {"frames": len(rows), "packed": len(good), "quarantined": len(rejects)}


def _original_shape(item: dict, ref: FrameRef) -> tuple[int, int]:
    return (ref.intrinsics.height, ref.intrinsics.width)
