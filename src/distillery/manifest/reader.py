"""The reader API of manifest.h5: `Manifest`, and the manifest.jsonl records of a manifest."""

from __future__ import annotations

import json
import os
from pathlib import Path

import h5py
import numpy as np

from distillery.atomic import read_jsonl
from distillery.manifest.schema import (BOX_COLUMNS, IMAGE_FIELDS, ROW_FIELDS, STRING_FIELDS,  # noqa: F401
                                        check_schema)


def manifest_records(f: h5py.File) -> list[dict]:
    """The manifest.jsonl lines of an open manifest, one per row.

    Every column is read once, whole: per-row reads of a dozen datasets
    would cost more than the merge itself.
    """
    n = int(f.attrs["frame_count"])
    text = {name: f[name].asstr()[:] for name in STRING_FIELDS}
    flag = {name: f[name][:] for name in ("has_teacher_depth", "has_teacher_depth_relative", "has_teacher_label",
                                          "has_boxes", "has_truth_depth", "confidence_derived")}
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
        "has_teacher_depth_relative": bool(flag["has_teacher_depth_relative"][row]),
        "has_seg": bool(flag["has_teacher_label"][row]),
        "has_boxes": bool(flag["has_boxes"][row]),
        "has_truth": bool(flag["has_truth_depth"][row]),
        "tof_valid_share": round(float(shares[row]), 6),
        "confidence_derived": bool(flag["confidence_derived"][row]),
        "intrinsics": [round(float(v), 4) for v in intrinsics[row]],
    } for row in range(n)]


def open_rebuildable(path: str | os.PathLike, rule: str, target: str) -> h5py.File:
    """An HDF5 file a rule wrote, opened read-only; a truncated or corrupt one is one line naming
    the file and the `snakemake --forcerun` line that rebuilds it (not an h5py traceback)."""
    try:
        return h5py.File(path, "r")
    except OSError as exc:
        reason = str(exc).split("(")[0].strip().rstrip(":") or type(exc).__name__
        raise ValueError(f"{path}: truncated or corrupt HDF5 ({reason}); rebuild it with the {rule} rule: "
                         f"`snakemake --forcerun {rule} {target}`") from None


def open_manifest(path: str | os.PathLike) -> h5py.File:
    """manifest.h5 opened read-only (see `open_rebuildable`)."""
    return open_rebuildable(path, "merge_manifest", "results/manifest/manifest.h5")


def check_sources(f: h5py.File, path: str | os.PathLike) -> None:
    """Every shard and layer file the manifest's image fields map onto exists.

    The fields are HDF5 virtual datasets over those files (manifest/merge.py), by paths relative to
    the manifest's folder, and HDF5 reads a missing source as the fill value without an error: a
    manifest copied away from its shards would give zero images and no labels, silently."""
    folder = Path(path).resolve().parent
    missing: dict[str, list[str]] = {}
    for name, dataset in f.items():
        if isinstance(dataset, h5py.Dataset) and dataset.is_virtual:
            for source in {m.file_name for m in dataset.virtual_sources()}:
                if source != "." and not (folder / source).is_file():
                    missing.setdefault(source, []).append(name)
    if missing:
        first = sorted(missing)[0]
        raise FileNotFoundError(
            f"{path}: {len(missing)} shard or layer files its images map onto are missing, e.g. "
            f"{folder / first} (fields {', '.join(sorted(missing[first]))}); the manifest reads its images "
            "from results/shards/ and results/teachers/ by paths relative to its folder: move or copy the "
            "whole results/ folder, not manifest.h5 alone, or rebuild it with "
            "`snakemake --forcerun merge_manifest results/manifest/manifest.h5`")


def open_shard(path: str | os.PathLike) -> h5py.File:
    """A shard (results/shards/<name>.h5, the pack_shard rule's output) opened read-only (see `open_rebuildable`)."""
    return open_rebuildable(path, "pack_shard", f"results/shards/{Path(path).name}")


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
        self._handles: dict = {}  # per process: dataset handles, and small per-row columns held in memory
        check_schema(self.file, self.h5_path)
        check_sources(self.file, self.h5_path)
        self.records = read_jsonl(jsonl) if jsonl.is_file() else manifest_records(self.file)
        if len(self.records) != len(self):
            raise ValueError(f"{jsonl}: {len(self.records)} lines but {self.h5_path} has {len(self)} rows")

    @property
    def file(self) -> h5py.File:
        if self._file is None or self._pid != os.getpid():
            self._file = open_manifest(self.h5_path)
            self._pid = os.getpid()
            self._handles = {}
        return self._file

    def _dataset(self, name: str) -> h5py.Dataset:
        """A dataset handle, looked up once per process (a lookup by name costs as much as a small read)."""
        f = self.file
        if name not in self._handles:
            self._handles[name] = f[name]
        return self._handles[name]

    def _column(self, name: str) -> np.ndarray:
        """A small per-row dataset (a flag, the intrinsics), read whole once per process."""
        f, key = self.file, ("column", name)  # self.file first: it empties the cache in a new process
        if key not in self._handles:
            self._handles[key] = f[name][:]
        return self._handles[key]

    def __len__(self) -> int:
        return int(self.file.attrs["frame_count"])

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_file"], state["_handles"] = None, {}
        return state

    @property
    def teachers(self) -> list[dict]:
        """Every teacher that filled a slot: id, task, backend, kind, weights, weights_sha256, settings."""
        return json.loads(self.file.attrs.get("teachers", "[]"))

    def teacher(self, slot: str) -> dict | None:
        """The teacher of one slot: "metric_depth", "relative_depth", "detect" or "segment" (None if empty)."""
        task, kind = {"metric_depth": ("depth", "metric"), "relative_depth": ("depth", "relative"),
                      "detect": ("detect", None), "segment": ("segment", None)}[slot]
        return next((t for t in self.teachers if t["task"] == task and t.get("kind") == kind), None)

    @property
    def size(self) -> tuple[int, int]:
        return int(self.file.attrs["height"]), int(self.file.attrs["width"])

    @property
    def content_id(self) -> str:
        """The hex digest of what this manifest holds (written by the merge; see manifest/content.py)."""
        value = self.file.attrs.get("content_id")
        if value is None:
            raise ValueError(f"{self.h5_path}: no content_id (written by an older merge); re-run the merge")
        return value.decode() if isinstance(value, bytes) else str(value)

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
        out = {"row": row, "key": self.records[row]["key"]}
        for name in fields or tuple(IMAGE_FIELDS):
            flag = IMAGE_FIELDS[name].flag
            out[name] = self._dataset(name)[row] if flag is None or self._column(flag)[row] else None
        out["intrinsics"] = self._column("intrinsics")[row].copy()
        out["confidence_derived"] = bool(self._column("confidence_derived")[row])
        return out

    def boxes(self, row: int) -> np.ndarray:
        """Detections of a frame, [k, 6]: x1, y1, x2, y2, score, class_id."""
        lo, hi = self.file["box_offsets"][row:row + 2]
        return self.file["boxes"][lo:hi]

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
            self._handles = {}

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
