"""The partial layer file of a running teacher stage: per-frame status, flushed per batch, then finalised.

Layout: a layer file (`create_layer`) of the stage's fields, plus
`frame_status` (0 pending, 1 done, 2 failed) and `frame_failure` (reason),
and for the detect stage `partial_boxes` / `partial_box_source` (one
variable-length row per frame, so a frame's boxes are written with it and
never half-appended). `finalise` turns the boxes into the ragged layout the
merge reads, drops the bookkeeping, writes the failures report and renames
the file onto the layer path.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import h5py
import numpy as np

from distillery.manifest import create_boxes, create_layer, replace_durable, write_jsonl_atomic
from distillery.teachers.base import FrameFailure

log = logging.getLogger(__name__)

PENDING, DONE, FAILED = 0, 1, 2
BOOKKEEPING = ("frame_status", "frame_failure", "partial_boxes", "partial_box_source")


def _keys_of(f: h5py.File) -> list[str]:
    return [k.decode() if isinstance(k, bytes) else str(k) for k in f["key"][:]]


class PartialLayer:
    """An open partial layer file for one shard and stage."""

    def __init__(self, path: Path, f: h5py.File, task: str, fields: tuple[str, ...], boxes: bool):
        self.path, self.file, self.task, self.fields, self.boxes = path, f, task, fields, boxes

    @classmethod
    def open(cls, path: str | os.PathLike, shard: str, keys: list[str], size: tuple[int, int], task: str,
             fields: tuple[str, ...], boxes: bool, signature: str) -> "PartialLayer":
        """Resume `path` when it was written with `signature` for these frames, else start it anew."""
        path = Path(path)
        if path.exists():
            reason = cls._stale_reason(path, keys, signature)
            if reason is None:
                f = h5py.File(path, "r+")
                log.info("resuming %s: %d of %d frames already done", path, int((f["frame_status"][:] != PENDING)
                                                                               .sum()), len(keys))
                return cls(path, f, task, fields, boxes)
            log.warning("starting %s anew: %s", path, reason)
            path.unlink()
        path.parent.mkdir(parents=True, exist_ok=True)
        f = h5py.File(path, "w")
        create_layer(f, shard, keys, *size, fields)
        f.attrs["signature"] = signature
        f.create_dataset("frame_status", shape=(len(keys),), dtype="int8", fillvalue=PENDING)
        f.create_dataset("frame_failure", shape=(len(keys),), dtype=h5py.string_dtype())
        if boxes:
            f.create_dataset("partial_boxes", shape=(len(keys),), dtype=h5py.vlen_dtype(np.float32))
            f.create_dataset("partial_box_source", shape=(len(keys),), dtype=h5py.vlen_dtype(np.int32))
        f.flush()
        return cls(path, f, task, fields, boxes)

    @staticmethod
    def _stale_reason(path: Path, keys: list[str], signature: str) -> str | None:
        try:
            with h5py.File(path, "r") as f:
                if f.attrs.get("signature") != signature:
                    return "it was written with other settings or inputs"
                if _keys_of(f) != keys:
                    return "its frames differ from the shard's"
                if "frame_status" not in f:
                    return "it has no frame status"
        except OSError as err:  # truncated by a kill during a flush: nothing in it can be trusted
            return f"it is unreadable ({err})"
        return None

    @property
    def status(self) -> np.ndarray:
        return self.file["frame_status"][:]

    def write(self, indices, results) -> None:
        """Store one batch's results and flush, so that a kill after this returns loses none of them."""
        f = self.file
        for i, r in zip((int(i) for i in indices), results):
            if isinstance(r, dict) and not all(np.isfinite(r[n].astype(np.float16)).all() for n in self.fields
                                               if n.startswith("teacher_depth")):
                r = FrameFailure("depth does not fit float16")
            if isinstance(r, FrameFailure):
                f["frame_status"][i], f["frame_failure"][i] = FAILED, r.reason
                continue
            for name in self.fields:
                f[name][i] = r[name]
                f["has_" + name][i] = True
            if self.boxes:
                f["partial_boxes"][i] = r["boxes"].astype(np.float32).ravel()
                f["partial_box_source"][i] = np.asarray(r["source_class"], np.int32)
            f["frame_status"][i] = DONE
        f.flush()

    def _ragged_boxes(self, status: np.ndarray) -> None:
        f = self.file
        rows = [np.asarray(b, np.float32).reshape(-1, 6) for b in f["partial_boxes"][:]]
        source = [np.asarray(s, np.int32) for s in f["partial_box_source"][:]]
        create_boxes(f, len(rows))
        f["box_offsets"][1:] = np.cumsum([len(r) for r in rows])
        boxes = np.concatenate(rows) if rows else np.zeros((0, 6), np.float32)
        f["boxes"].resize(len(boxes), axis=0)
        f["boxes"][:] = boxes
        f.create_dataset("box_source_class", data=np.concatenate(source) if source else np.zeros(0, np.int32))
        f.create_dataset("has_boxes", data=status == DONE)

    def finalise(self, out: str | os.PathLike, failures_out: str | os.PathLike, provenance: dict) -> list[dict]:
        """Complete the layer, write the failures report, rename onto `out`; returns the failures."""
        f = self.file
        status, keys = self.status, _keys_of(f)
        if (status == PENDING).any():
            raise RuntimeError(f"{self.path}: {int((status == PENDING).sum())} frames still pending")
        failures = [{"frame": keys[i], "stage": f"teacher_{self.task}", "backend": provenance.get("backend"),
                     "reason": f["frame_failure"][i].decode()} for i in np.flatnonzero(status == FAILED)]
        if self.boxes:
            self._ragged_boxes(status)
        for name in BOOKKEEPING:
            if name in f:
                del f[name]
        del f.attrs["signature"]
        f.attrs.update(teacher=json.dumps(provenance, sort_keys=True), frames_failed=len(failures),
                       depth_kind=provenance.get("depth_kind", ""))
        f.close()
        write_jsonl_atomic(failures_out, failures)
        replace_durable(self.path, out)
        return failures

    def close(self) -> None:
        if self.file.id.valid:
            self.file.close()
