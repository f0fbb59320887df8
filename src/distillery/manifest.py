"""The HDF5 manifest: schema, a writer for shard files, and the reader API.

A manifest (and every shard file, which is a manifest of its own frames)
holds one row per frame. Image-like fields are chunked one frame per chunk
and Zstd-compressed, so that a random frame is one chunk read and shards
merge by copying compressed chunks. Teacher and truth fields are slots with
a per-frame present flag: a manifest with ToF only is valid, and teachers
fill their slots later. The schema is documented in docs/manifest.md; bump
SCHEMA_VERSION on any incompatible change.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import h5py
import hdf5plugin
import numpy as np

from distillery.classes import IGNORE_LABEL

SCHEMA_NAME = "distillery-manifest"
LAYER_SCHEMA_NAME = "distillery-layer"
SCHEMA_VERSION = 1


@dataclass(frozen=True)
class ImageField:
    """A per-frame image dataset of shape [N, H, W, *channels]."""

    dtype: str
    channels: tuple[int, ...] = ()
    fill: float = 0
    flag: str | None = None  # name of the present flag, None if always present


IMAGE_FIELDS: dict[str, ImageField] = {
    "rgb": ImageField("uint8", (3,)),
    "tof_depth": ImageField("float32"),
    "tof_confidence": ImageField("float16"),
    "teacher_depth": ImageField("float16", flag="has_teacher_depth"),
    "teacher_label": ImageField("uint8", fill=IGNORE_LABEL, flag="has_teacher_label"),
    "truth_depth": ImageField("float32", flag="has_truth_depth"),
    "truth_label": ImageField("uint8", fill=IGNORE_LABEL, flag="has_truth_label"),
}

# Small per-frame fields: name -> (dtype, trailing shape, fill).
ROW_FIELDS: dict[str, tuple[str, tuple[int, ...], float]] = {
    "intrinsics": ("float32", (4,), 0),  # fx, fy, cx, cy at the stored size
    "intrinsics_original": ("float32", (4,), 0),  # at the source size
    "original_size": ("int32", (2,), 0),  # source height, width
    "timestamp": ("float64", (), np.nan),
    "tof_valid_share": ("float32", (), 0),
    "confidence_derived": ("bool", (), 0),
    "has_teacher_depth": ("bool", (), 0),
    "has_teacher_label": ("bool", (), 0),
    "has_boxes": ("bool", (), 0),
    "has_truth_depth": ("bool", (), 0),
    "has_truth_label": ("bool", (), 0),
}

STRING_FIELDS = ("key", "dataset", "sequence", "split", "rgb_source")
BOX_COLUMNS = ("x1", "y1", "x2", "y2", "score", "class_id")


def zstd(level: int = 3) -> dict:
    return dict(hdf5plugin.Zstd(clevel=level))


def create_layout(f: h5py.File, n: int, height: int, width: int, level: int = 3) -> None:
    """Create every dataset of the schema for n frames, unwritten slots at their fill."""
    f.attrs.update(schema=SCHEMA_NAME, schema_version=SCHEMA_VERSION, height=height, width=width, frame_count=n)
    for name, spec in IMAGE_FIELDS.items():
        shape = (n, height, width, *spec.channels)
        f.create_dataset(name, shape=shape, dtype=spec.dtype, chunks=(1, *shape[1:]) if n else None,
                         fillvalue=spec.fill, **(zstd(level) if n else {}))
    for name, (dtype, trailing, fill) in ROW_FIELDS.items():
        f.create_dataset(name, shape=(n, *trailing), dtype=dtype, fillvalue=fill)
    str_dt = h5py.string_dtype()
    for name in STRING_FIELDS:
        f.create_dataset(name, shape=(n,), dtype=str_dt)
    create_boxes(f, n)


def create_boxes(f: h5py.File, n: int) -> None:
    f.create_dataset("box_offsets", data=np.zeros(n + 1, dtype=np.int64))
    f.create_dataset("boxes", shape=(0, len(BOX_COLUMNS)), maxshape=(None, len(BOX_COLUMNS)),
                     dtype="float32", chunks=(4096, len(BOX_COLUMNS)))
    f["boxes"].attrs["columns"] = list(BOX_COLUMNS)


def create_layer(f: h5py.File, shard: str, keys: list[str], height: int, width: int, fields: tuple[str, ...],
                 boxes: bool = False, level: int = 3) -> None:
    """Create a layer file: some image fields (+ their present flags) for the frames of one shard.

    Teachers write layers instead of touching shard files; the merge copies
    every layer's fields into the manifest rows of its shard. `keys` must be
    the shard's keys in shard order; the merge checks it.
    """
    n = len(keys)
    f.attrs.update(schema=LAYER_SCHEMA_NAME, schema_version=SCHEMA_VERSION, shard=shard, height=height,
                   width=width, frame_count=n)
    f.create_dataset("key", data=np.asarray(keys, dtype=object), dtype=h5py.string_dtype())
    for name in fields:
        spec = IMAGE_FIELDS[name]
        if spec.flag is None:
            raise ValueError(f"{name} is a sensor field, not a slot a layer can fill")
        shape = (n, height, width, *spec.channels)
        f.create_dataset(name, shape=shape, dtype=spec.dtype, chunks=(1, *shape[1:]) if n else None,
                         fillvalue=spec.fill, **(zstd(level) if n else {}))
        f.create_dataset(spec.flag, shape=(n,), dtype=bool, fillvalue=False)
    if boxes:
        create_boxes(f, n)
        f.create_dataset("has_boxes", shape=(n,), dtype=bool, fillvalue=False)


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


def check_schema(f: h5py.File, path: str | os.PathLike, schema: str = SCHEMA_NAME) -> None:
    if f.attrs.get("schema") != schema:
        raise ValueError(f"{path}: not a Distillery manifest (schema attribute {f.attrs.get('schema')!r})")
    version = int(f.attrs.get("schema_version", -1))
    if version != SCHEMA_VERSION:
        raise ValueError(f"{path}: manifest schema version {version}, this Distillery reads version {SCHEMA_VERSION}")


def manifest_records(f: h5py.File) -> list[dict]:
    """The manifest.jsonl lines of an open manifest, one per row.

    Every column is read once, whole: per-row reads of a dozen datasets
    would cost more than the merge itself.
    """
    n = int(f.attrs["frame_count"])
    text = {name: f[name].asstr()[:] for name in STRING_FIELDS}
    flag = {name: f[name][:] for name in ("has_teacher_depth", "has_teacher_label", "has_boxes",
                                          "has_truth_depth", "confidence_derived")}
    timestamps, shares, intrinsics = f["timestamp"][:], f["tof_valid_share"][:], f["intrinsics"][:]
    return [{
        "row": row,
        "key": text["key"][row],
        "rgb": text["rgb_source"][row],
        "dataset": text["dataset"][row],
        "sequence": text["sequence"][row],
        "split": text["split"][row],
        "timestamp": None if np.isnan(timestamps[row]) else float(timestamps[row]),
        "has_teacher_depth": bool(flag["has_teacher_depth"][row]),
        "has_seg": bool(flag["has_teacher_label"][row]),
        "has_boxes": bool(flag["has_boxes"][row]),
        "has_truth": bool(flag["has_truth_depth"][row]),
        "tof_valid_share": round(float(shares[row]), 6),
        "confidence_derived": bool(flag["confidence_derived"][row]),
        "intrinsics": [round(float(v), 4) for v in intrinsics[row]],
    } for row in range(n)]


class Manifest:
    """Read access to manifest.h5 (+ manifest.jsonl) for training and evaluation.

    The HDF5 file is opened lazily and re-opened after a fork, so one
    instance can be handed to DataLoader worker processes.

        m = Manifest("results/manifest/manifest.h5")
        train = m.indices(split="train")
        sample = m.read(train[0])          # dict of numpy arrays
    """

    def __init__(self, h5_path: str | os.PathLike, jsonl_path: str | os.PathLike | None = None):
        self.h5_path = Path(h5_path)
        if not self.h5_path.is_file():
            raise FileNotFoundError(f"manifest not found: {self.h5_path}")
        jsonl = Path(jsonl_path) if jsonl_path else self.h5_path.with_suffix(".jsonl")
        self._file: h5py.File | None = None
        self._pid = None
        check_schema(self.file, self.h5_path)
        self.records = read_jsonl(jsonl) if jsonl.is_file() else manifest_records(self.file)
        if len(self.records) != len(self):
            raise ValueError(f"{jsonl}: {len(self.records)} lines but {self.h5_path} has {len(self)} rows")

    @property
    def file(self) -> h5py.File:
        if self._file is None or self._pid != os.getpid():
            self._file = h5py.File(self.h5_path, "r")
            self._pid = os.getpid()
        return self._file

    def __len__(self) -> int:
        return int(self.file.attrs["frame_count"])

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_file"] = None
        return state

    @property
    def size(self) -> tuple[int, int]:
        return int(self.file.attrs["height"]), int(self.file.attrs["width"])

    def indices(self, split: str | None = None, dataset: str | None = None, require: tuple[str, ...] = ()) -> np.ndarray:
        """Rows matching a split / dataset and having every present flag in `require`."""
        rows = [r["row"] for r in self.records
                if (split is None or r["split"] == split) and (dataset is None or r["dataset"] == dataset)]
        rows = np.asarray(rows, dtype=np.int64)
        for flag in require:
            rows = rows[self.file[flag][:][rows]]
        return rows

    def read(self, row: int, fields: tuple[str, ...] | None = None) -> dict:
        """One frame as a dict of arrays; absent slots come back as None."""
        f = self.file
        out = {"row": row, "key": self.records[row]["key"]}
        for name in fields or tuple(IMAGE_FIELDS):
            flag = IMAGE_FIELDS[name].flag
            out[name] = f[name][row] if flag is None or f[flag][row] else None
        out["intrinsics"] = f["intrinsics"][row]
        out["confidence_derived"] = bool(f["confidence_derived"][row])
        return out

    def boxes(self, row: int) -> np.ndarray:
        """Detections of a frame, [k, 6]: x1, y1, x2, y2, score, class_id."""
        lo, hi = self.file["box_offsets"][row:row + 2]
        return self.file["boxes"][lo:hi]

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
