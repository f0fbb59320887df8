"""The HDF5 manifest schema: fields, chunk layout and filters, shard and layer files.

A manifest (and every shard file, which is a manifest of its own frames) holds
one row per frame. Image-like fields are chunked one frame per chunk and
compressed (Zstd; LZ4 for RGB and ToF depth), so that a random frame is one
chunk read and shards merge by copying compressed chunks. Teacher and truth
fields are slots with a per-frame present flag: a manifest with ToF only is
valid, and teachers fill their slots later. The schema is documented in
docs/manifest.md; bump SCHEMA_VERSION on any incompatible change.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

import h5py
import hdf5plugin
import numpy as np

from distillery.classes import IGNORE_LABEL

SCHEMA_NAME = "distillery-manifest"
LAYER_SCHEMA_NAME = "distillery-layer"
SCHEMA_VERSION = 3
# What changed in each version: the reason an older file is refused, and what rebuilds it.
SCHEMA_CHANGES = {2: "a relative teacher-depth slot (teacher_depth_relative) and teacher provenance "
                     "(root attribute `teachers`)",
                  3: "the source frame in each shard (rgb_encoded: the camera image's file bytes, so that "
                     "teachers label the frame as captured), its crop (source_crop) and the input size of "
                     "every teacher slot (input_size_*)"}


@dataclass(frozen=True)
class ImageField:
    """A per-frame image dataset of shape [N, H, W, *channels]."""

    dtype: str
    channels: tuple[int, ...] = ()
    fill: float = 0
    flag: str | None = None  # name of the present flag, None if always present
    shuffle: bool = True  # byte-shuffle before Zstd (multi-byte dtypes only; zstd codec only)
    codec: str = "zstd"  # zstd, lz4 or lz4hc; see `compression`


IMAGE_FIELDS: dict[str, ImageField] = {
    "rgb": ImageField("uint8", (3,), codec="lz4"),
    "tof_depth": ImageField("float32", codec="lz4hc"),  # LZ4HC never shuffles: see `compression`
    "tof_confidence": ImageField("float16"),
    "teacher_depth": ImageField("float16", flag="has_teacher_depth"),  # metric teacher, metres
    "teacher_depth_relative": ImageField("float16", flag="has_teacher_depth_relative"),  # relative, unitless
    "teacher_label": ImageField("uint8", fill=IGNORE_LABEL, flag="has_teacher_label"),
    "truth_depth": ImageField("float32", flag="has_truth_depth"),
    "truth_label": ImageField("uint8", fill=IGNORE_LABEL, flag="has_truth_label"),
}

# Small per-frame fields: name -> (dtype, trailing shape, fill).
ROW_FIELDS: dict[str, tuple[str, tuple[int, ...], float]] = {
    "intrinsics": ("float32", (4,), 0),  # fx, fy, cx, cy at the stored size
    "intrinsics_original": ("float32", (4,), 0),  # at the source size
    "original_size": ("int32", (2,), 0),  # source height, width
    "source_crop": ("int32", (4,), 0),  # left, top, width, height of the source window the stored frame shows
    "timestamp": ("float64", (), np.nan),
    "tof_valid_share": ("float32", (), 0),
    "confidence_derived": ("bool", (), 0),
    "has_teacher_depth": ("bool", (), 0),
    "has_teacher_depth_relative": ("bool", (), 0),
    "has_teacher_label": ("bool", (), 0),
    "has_boxes": ("bool", (), 0),
    "has_truth_depth": ("bool", (), 0),
    "has_truth_label": ("bool", (), 0),
}
# The slots teachers fill, and the row field that says at which size (height, width) each frame's
# teacher saw it: the source size for real teachers, the stored size for simulated ones; 0, 0 where empty.
TEACHER_SLOTS = ("teacher_depth", "teacher_depth_relative", "teacher_label", "boxes")
INPUT_SIZE = {slot: f"input_size_{slot}" for slot in TEACHER_SLOTS}
ROW_FIELDS.update({name: ("int32", (2,), 0) for name in INPUT_SIZE.values()})
# Shard files only (the merge leaves it out of the manifest): each frame's camera image as its file's
# bytes (PNG, JPEG, ...: not decoded and re-encoded), what the teachers label.
SOURCE_FIELD = "rgb_encoded"

STRING_FIELDS = ("key", "dataset", "sequence", "split", "rgb_source")
BOX_COLUMNS = ("x1", "y1", "x2", "y2", "score", "class_id")
COMPRESSION_LEVEL = 3  # Zstd level of the image fields (manifest.compression_level's default)


def compression(spec: ImageField, level: int = COMPRESSION_LEVEL) -> dict:
    """Dataset filters of an image field: byte-shuffle (multi-byte dtypes, when `shuffle`) then Zstd at
    `level`, or LZ4 (`lz4`), or Blosc's LZ4HC level 5 without shuffle (`lz4hc`).

    Shuffle groups the bytes of equal significance, so smooth floats (rendered
    truth, network outputs, confidence) compress far better: float32 truth depth
    1.2x -> 2.0x, float16 confidence 2.9x -> 3.7x at Zstd-3 (benchmarks/bench_ingest.py).

    The two sensor fields, which every training sample reads, trade a little
    size for decoding speed (7-Scenes, 320 x 240, one core; random reads per
    second in benchmarks/bench_ingest.py):
    - Camera RGB: no lossless byte codec gets much out of sensor noise (Zstd-3
      1.16x, LZ4 1.05x), and Zstd spends about 250 us decoding a frame where
      LZ4 spends about 40 us.
    - ToF depth: a reading quantised to sensor units (mm) stored as float32
      repeats exact 4-byte values that a byte-oriented codec matches whole
      (shuffle would split them: Zstd-3 3.97x without, 2.32x with). Zstd-3
      decodes a frame in about 400 us, LZ4HC-5 (3.34x) in about 150 us, for
      3 ms more when packing.
    """
    if spec.codec == "lz4":
        return dict(hdf5plugin.LZ4())
    if spec.codec == "lz4hc":
        return dict(hdf5plugin.Blosc(cname="lz4hc", clevel=5, shuffle=hdf5plugin.Blosc.NOSHUFFLE))
    if spec.codec != "zstd":
        raise ValueError(f"unknown codec {spec.codec!r}: zstd, lz4 or lz4hc")
    return dict(hdf5plugin.Zstd(clevel=level), shuffle=spec.shuffle and np.dtype(spec.dtype).itemsize > 1)


def create_layout(f: h5py.File, n: int, height: int, width: int, level: int = COMPRESSION_LEVEL, source: bool = False) -> None:
    """Create every dataset of the schema for n frames, unwritten slots at their fill.

    `source` adds the shard-only `rgb_encoded` (one variable-length byte string per frame)."""
    f.attrs.update(schema=SCHEMA_NAME, schema_version=SCHEMA_VERSION, height=height, width=width, frame_count=n,
                   teachers="[]")  # provenance of the teacher slots; the merge fills it
    for name, spec in IMAGE_FIELDS.items():
        shape = (n, height, width, *spec.channels)
        f.create_dataset(name, shape=shape, dtype=spec.dtype, chunks=(1, *shape[1:]) if n else None,
                         fillvalue=spec.fill, **(compression(spec, level) if n else {}))
    for name, (dtype, trailing, fill) in ROW_FIELDS.items():
        f.create_dataset(name, shape=(n, *trailing), dtype=dtype, fillvalue=fill)
    str_dt = h5py.string_dtype()
    for name in STRING_FIELDS:
        f.create_dataset(name, shape=(n,), dtype=str_dt)
    if source:
        f.create_dataset(SOURCE_FIELD, shape=(n,), dtype=h5py.vlen_dtype(np.uint8))
    create_boxes(f, n)


def create_boxes(f: h5py.File, n: int) -> None:
    f.create_dataset("box_offsets", data=np.zeros(n + 1, dtype=np.int64))
    f.create_dataset("boxes", shape=(0, len(BOX_COLUMNS)), maxshape=(None, len(BOX_COLUMNS)),
                     dtype="float32", chunks=(4096, len(BOX_COLUMNS)))
    f["boxes"].attrs["columns"] = list(BOX_COLUMNS)


def create_layer(f: h5py.File, shard: str, keys: list[str], height: int, width: int, fields: tuple[str, ...],
                 boxes: bool = False, level: int = COMPRESSION_LEVEL, teacher: dict | None = None) -> None:
    """Create a layer file: some image fields (+ their present flags) for the frames of one shard.

    Teachers write layers instead of touching shard files; the merge copies
    every layer's fields into the manifest rows of its shard. `keys` must be
    the shard's keys in shard order; the merge checks it.
    """
    n = len(keys)
    f.attrs.update(schema=LAYER_SCHEMA_NAME, schema_version=SCHEMA_VERSION, shard=shard, height=height,
                   width=width, frame_count=n)
    if teacher is not None:  # the teacher's description (id, task, backend, ...); the merge gathers them
        f.attrs["teacher"] = json.dumps(teacher, sort_keys=True)
    f.create_dataset("key", data=np.asarray(keys, dtype=object), dtype=h5py.string_dtype())
    f.create_dataset("input_size", shape=(n, 2), dtype="int32", fillvalue=0)  # what the teacher saw, per frame
    for name in fields:
        spec = IMAGE_FIELDS[name]
        if spec.flag is None:
            raise ValueError(f"{name} is a sensor field, not a slot a layer can fill")
        shape = (n, height, width, *spec.channels)
        f.create_dataset(name, shape=shape, dtype=spec.dtype, chunks=(1, *shape[1:]) if n else None,
                         fillvalue=spec.fill, **(compression(spec, level) if n else {}))
        f.create_dataset(spec.flag, shape=(n,), dtype=bool, fillvalue=False)
    if boxes:
        create_boxes(f, n)
        f.create_dataset("has_boxes", shape=(n,), dtype=bool, fillvalue=False)


def check_schema(f: h5py.File, path: str | os.PathLike, schema: str = SCHEMA_NAME) -> None:
    if f.attrs.get("schema") != schema:
        raise ValueError(f"{path}: not a Distillery manifest (schema attribute {f.attrs.get('schema')!r})")
    version = int(f.attrs.get("schema_version", -1))
    if version < SCHEMA_VERSION:
        added = "; ".join(SCHEMA_CHANGES[v] for v in range(max(version + 1, 2), SCHEMA_VERSION + 1))
        raise ValueError(
            f"{path}: manifest schema version {version}, this Distillery reads version {SCHEMA_VERSION} "
            f"(which adds {added}). Rebuild it with this version: in the workflow, `snakemake --forcerun "
            "pack_shard` re-packs the shards and re-runs the teachers and the merge; outside it, re-run "
            "`distillery ingest` (and `distillery teach` for teacher layers)")
    if version != SCHEMA_VERSION:
        raise ValueError(f"{path}: manifest schema version {version}, this Distillery reads version "
                         f"{SCHEMA_VERSION}: it was written by a newer Distillery; update this one")
