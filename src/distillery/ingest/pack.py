"""Pack one shard: decode, validate and resize its frames into a shard HDF5.

The shard keeps two pictures of each frame: the training frame (RGB, ToF,
confidence at the stored size) and the source frame, the camera image's file
as it is on disk (`rgb_encoded`: PNG or JPEG bytes, never decoded and
re-encoded), which the teachers label at full resolution. Keeping the bytes
in the shard rather than reading the dataset through the index costs
storage (7-Scenes' 640x480 JPEGs add 41 KB to the training fields' 313 KB
per frame, a shard 1.13x as large; a PNG camera adds more: see
benchmarks/bench_ingest.py) but makes the shard self-contained: a GPU
node that does not mount the dataset folder can label it, and teachers see
exactly the image that was validated and resized, even when a file in the
dataset is replaced later (a shard is named by its file names, not their
contents). The bytes are read once and decoded from memory for the training
frame, so the two pictures always come from the same read.

Every frame is decoded and checked (see `distillery.ingest.frames.load_frame`). A
frame that fails goes to the shard's quarantine report with its file, field
and reason; the rest of the shard is written. The shard file is written
under a temporary name and renamed when complete, so a killed job never
leaves a file that looks finished.

Confidence is checked as it is packed: the share of each dataset's valid depth
that confidence trusts (>= the gate of training and fusion,
`distillery.confidence`) is written to the shard's `trusted_depth` attribute,
which the merge sums into the manifest and `distillery info` prints; below
`trusted_floor` the job warns in its log.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
from tqdm import tqdm

from distillery.confidence import counts_json, trusted_counts, trusted_warning
from distillery.ingest.frames import FrameError, FrameRef, Reject, load_frame, read_rgb_bytes
from distillery.atomic import atomic_target, read_jsonl, replace_durable, write_jsonl_atomic
from distillery.manifest import SOURCE_FIELD, create_layout
from distillery.ingest.resize import crop_box, resize_frame
from distillery.ingest.settings import DEFAULTS
from distillery.manifest.schema import COMPRESSION_LEVEL

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PackSettings:
    """How a shard is packed: the config's ingest settings (their defaults: distillery.ingest.settings) and the
    manifest's compression level."""

    height: int = DEFAULTS.height
    width: int = DEFAULTS.width
    fit: str = DEFAULTS.fit
    max_depth_m: float = DEFAULTS.max_depth_m
    compression_level: int = COMPRESSION_LEVEL
    trusted_floor: float = DEFAULTS.trusted_floor  # warn when confidence trusts less of a dataset's valid depth


@dataclass
class Packed:
    """One frame ready for its shard row."""

    ref: FrameRef
    split: str
    frame: object  # DecodedFrame at the stored size
    k_small: object  # Intrinsics at the stored size
    original: np.ndarray  # source height, width
    crop: np.ndarray  # left, top, width, height of the source window shown at the stored size
    encoded: bytes  # the source RGB file's bytes


def _decode(ref: FrameRef, split: str, settings: PackSettings) -> Packed:
    encoded = read_rgb_bytes(ref)
    frame = load_frame(ref, settings.max_depth_m, rgb_bytes=encoded)
    h, w = frame.depth.shape
    box = crop_box(w, h, settings.width, settings.height, settings.fit)
    small, k_small = resize_frame(frame, ref.intrinsics, settings.height, settings.width, settings.fit)
    return Packed(ref, split, small, k_small, np.asarray((h, w), np.int32),
                  np.asarray((box.left, box.top, box.width, box.height), np.int32), encoded)


def _write_row(f: h5py.File, row: int, p: Packed) -> None:
    ref, split, frame, k_small = p.ref, p.split, p.frame, p.k_small
    f[SOURCE_FIELD][row] = np.frombuffer(p.encoded, np.uint8)
    f["source_crop"][row] = p.crop
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
    f["original_size"][row] = p.original
    f["timestamp"][row] = np.nan if ref.timestamp is None else ref.timestamp
    f["tof_valid_share"][row] = float((frame.depth > 0).mean())
    f["confidence_derived"][row] = frame.confidence_derived
    for name, value in (("key", ref.key), ("dataset", ref.dataset), ("sequence", ref.sequence),
                        ("split", split), ("rgb_source", ref.rgb)):
        f[name][row] = value


def _trusted_depth(good: list[Packed], floor: float, shard: str) -> str:
    """Valid and trusted depth per dataset (measured confidence only), warning below `floor`."""
    counts: dict[str, list[int]] = {}
    for p in good:
        if not p.frame.confidence_derived:
            total = counts.setdefault(p.ref.dataset, [0, 0])
            valid, trusted = trusted_counts(p.frame.depth, p.frame.confidence)
            total[0] += valid
            total[1] += trusted
    for dataset, (valid, trusted) in counts.items():
        warning = trusted_warning(trusted / valid if valid else 0.0, floor,
                                  f"check the camera's confidence images of dataset {dataset!r}")
        if warning:
            log.warning("%s: %s", shard, warning)
    return counts_json(counts, floor)


def pack_shard(frame_list: str, out_h5: str, quarantine_out: str, settings: PackSettings = PackSettings(),
               progress: bool = True) -> dict:
    """Pack the frames of `frame_list` (a shard's jsonl) into `out_h5`.

    Returns counts {"frames", "packed", "quarantined"}. Frames are decoded
    once: good frames are buffered (stored-size arrays and the source file's
    bytes) only long enough to know the shard's final row count, which keeps
    rows dense and in index order.
    """
    rows = read_jsonl(frame_list)
    good, rejects = [], []
    for item in tqdm(rows, desc=f"decode {Path(frame_list).stem}", unit="frame", disable=not progress):
        ref = FrameRef.from_dict(item)
        try:
            good.append(_decode(ref, item["split"], settings))
        except FrameError as err:
            rejects.append(Reject(ref.key, err.file, err.field, err.reason, stage="pack"))
            log.warning("quarantined %s: %s %s: %s", ref.key, err.field, err.file, err.reason)
    tmp = atomic_target(out_h5)
    try:
        with h5py.File(tmp, "w") as f:
            create_layout(f, len(good), settings.height, settings.width, settings.compression_level, source=True)
            for row, packed in enumerate(good):
                _write_row(f, row, packed)
            f.attrs["trusted_depth"] = _trusted_depth(good, settings.trusted_floor, Path(out_h5).name)
        replace_durable(tmp, out_h5)
    finally:
        tmp.unlink(missing_ok=True)
    write_jsonl_atomic(quarantine_out, [r.to_dict() for r in rejects])
    return {"frames": len(rows), "packed": len(good), "quarantined": len(rejects)}

