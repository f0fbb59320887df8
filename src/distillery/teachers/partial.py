"""The partial layer file of a running teacher stage: per-frame status, flushed per batch, then finalised.

Layout: a layer file (`create_layer`) of the stage's fields and the input
size of each frame (the frame the teacher saw), plus
`frame_status` (0 pending, 1 done, 2 failed) and `frame_failure` (reason),
and for the detect stage `partial_boxes` / `partial_box_source` (one
variable-length row per frame, so a frame's boxes are written with it and
never half-appended).

Finalising never edits the partial file: `finalise` writes the failures
report, then a new layer file (the stage's fields copied, the boxes in the
ragged layout the merge reads, no bookkeeping) through the durable writer
(distillery.atomic), and deletes the partial file only once the layer is in
place. A kill at any point of it leaves the partial file as it was (the
retry finalises again) or the finished layer, never a half-edited file.

Trust on resume: HDF5 (without SWMR) gives no order between a frame's data
chunk and its status reaching the file, so a kill during a flush can leave a
frame marked done whose data reads back as zeros. Each batch is therefore
written in two steps, data (flushed) and then, per frame, a checksum of the
stored bytes with the status (flushed). A resumed run reads every done frame
back, and a frame whose bytes do not match its checksum (or cannot be read)
is labelled again.
"""

from __future__ import annotations

import json
import logging
import os
import zlib
from pathlib import Path

import h5py
import numpy as np

from distillery.atomic import atomic_write, crash_point, fsync_path, write_jsonl_atomic
from distillery.manifest import create_boxes, create_layer
from distillery.teachers.base import FrameFailure

log = logging.getLogger(__name__)

PENDING, DONE, FAILED, SKIPPED = 0, 1, 2, 3  # SKIPPED: not selected for labelling (distillery select)
BOOKKEEPING = ("frame_status", "frame_failure", "frame_checksum", "partial_boxes", "partial_box_source")


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
                layer = cls(path, h5py.File(path, "r+"), task, fields, boxes)
                layer.verify()
                log.info("resuming %s: %d of %d frames already done", path, int((layer.status != PENDING).sum()),
                         len(keys))
                return layer
            log.warning("starting %s anew: %s", path, reason)
        with atomic_write(path) as tmp, h5py.File(tmp, "w") as f:  # a new partial file appears complete
            create_layer(f, shard, keys, *size, fields)
            f.attrs["signature"] = signature
            f.create_dataset("frame_status", shape=(len(keys),), dtype="int8", fillvalue=PENDING)
            f.create_dataset("frame_failure", shape=(len(keys),), dtype=h5py.string_dtype())
            f.create_dataset("frame_checksum", shape=(len(keys),), dtype="int64", fillvalue=-1)
            if boxes:
                f.create_dataset("partial_boxes", shape=(len(keys),), dtype=h5py.vlen_dtype(np.float32))
                f.create_dataset("partial_box_source", shape=(len(keys),), dtype=h5py.vlen_dtype(np.int32))
        return cls(path, h5py.File(path, "r+"), task, fields, boxes)

    @staticmethod
    def _stale_reason(path: Path, keys: list[str], signature: str) -> str | None:
        try:
            with h5py.File(path, "r") as f:
                if f.attrs.get("signature") != signature:
                    return "it was written with other settings or inputs"
                if _keys_of(f) != keys:
                    return "its frames differ from the shard's"
                if "frame_status" not in f or "frame_checksum" not in f or "input_size" not in f:
                    return "it has no frame status, checksums or input sizes (an older Distillery wrote it)"
        except OSError as err:  # truncated by a kill during a flush: nothing in it can be trusted
            return f"it is unreadable ({err})"
        return None

    @property
    def status(self) -> np.ndarray:
        return self.file["frame_status"][:]

    def _stored(self, r: dict) -> dict:
        """A result's arrays as they are stored (dataset dtypes), so the checksum sees what reads back."""
        out = {name: np.ascontiguousarray(r[name], dtype=self.file[name].dtype) for name in self.fields}
        if self.boxes:
            out["partial_boxes"] = np.asarray(r["boxes"], np.float32).ravel()
            out["partial_box_source"] = np.asarray(r["source_class"], np.int32)
        out["input_size"] = np.asarray(r["input_size"], np.int32)  # the size of the frame the teacher saw
        return out

    @staticmethod
    def checksum(index: int, arrays) -> int:
        """CRC-32 of a frame's stored bytes, seeded by its row (an unwritten slot never matches)."""
        crc = zlib.crc32(str(index).encode())
        for a in arrays:
            crc = zlib.crc32(np.ascontiguousarray(a).tobytes(), crc)
        return crc

    def write(self, indices, results) -> None:
        """Store one batch's results and flush, so that a kill after this returns loses none of them.

        Data first (flushed), then checksums and statuses (flushed): see the module docstring."""
        f = self.file
        done, failed = {}, {}
        for i, r in zip((int(i) for i in indices), results):
            if isinstance(r, dict) and not all(np.isfinite(r[n].astype(np.float16)).all() for n in self.fields
                                               if n.startswith("teacher_depth")):
                r = FrameFailure("depth does not fit float16")
            if isinstance(r, FrameFailure):
                failed[i] = r.reason
                continue
            stored = self._stored(r)
            for name, value in stored.items():
                f[name][i] = value
            for name in self.fields:
                f["has_" + name][i] = True
            done[i] = self.checksum(i, stored.values())
        f.flush()
        for i, crc in done.items():
            f["frame_checksum"][i], f["frame_status"][i] = crc, DONE
        for i, reason in failed.items():
            f["frame_status"][i], f["frame_failure"][i] = FAILED, reason
        f.flush()

    def _read_back(self, i: int) -> list:
        names = list(self.fields) + (["partial_boxes", "partial_box_source"] if self.boxes else []) + ["input_size"]
        return [np.asarray(self.file[name][i]) for name in names]

    def verify(self) -> list[int]:
        """Set every done frame whose stored bytes fail their checksum back to pending; returns those rows."""
        f = self.file
        status, sums = f["frame_status"][:], f["frame_checksum"][:]
        bad = []
        for i in np.flatnonzero(status == DONE):
            try:
                ok = self.checksum(int(i), self._read_back(int(i))) == int(sums[i])
            except OSError:  # a chunk cut short by the kill: unreadable
                ok = False
            if not ok:
                bad.append(int(i))
        if bad:
            keys = _keys_of(f)
            log.warning("re-labelling %d frame(s) marked done whose stored data fails its checksum: %s",
                        len(bad), ", ".join(keys[i] for i in bad[:10]))
            for i in bad:
                f["frame_status"][i] = PENDING
                for name in self.fields:
                    f["has_" + name][i] = False
            f.flush()
        return bad

    @staticmethod
    def _ragged_boxes(src: h5py.File, dst: h5py.File, status: np.ndarray) -> None:
        """The per-frame box rows of `src` as the merge's ragged layout (offsets, boxes, sources) in `dst`."""
        rows = [np.asarray(b, np.float32).reshape(-1, 6) for b in src["partial_boxes"][:]]
        source = [np.asarray(s, np.int32) for s in src["partial_box_source"][:]]
        create_boxes(dst, len(rows))
        dst["box_offsets"][1:] = np.cumsum([len(r) for r in rows])
        boxes = np.concatenate(rows) if rows else np.zeros((0, 6), np.float32)
        dst["boxes"].resize(len(boxes), axis=0)
        dst["boxes"][:] = boxes
        dst.create_dataset("box_source_class", data=np.concatenate(source) if source else np.zeros(0, np.int32))
        dst.create_dataset("has_boxes", data=status == DONE)

    def _write_layer(self, dst: h5py.File, status: np.ndarray, provenance: dict, failed: int) -> None:
        """The finished layer in `dst`: the partial file's layer fields and attributes, minus bookkeeping."""
        src = self.file
        for name in src:
            if name not in BOOKKEEPING:
                src.copy(src[name], dst, name)
        dst.attrs.update({k: v for k, v in src.attrs.items() if k != "signature"})
        if self.boxes:
            self._ragged_boxes(src, dst, status)
        dst.attrs.update(teacher=json.dumps(provenance, sort_keys=True), frames_failed=failed,
                         frames_skipped=int((status == SKIPPED).sum()), depth_kind=provenance.get("depth_kind", ""))

    def skip(self, indices) -> None:
        """Mark pending frames as not selected: they stay without a value, and are no failure."""
        status = self.file["frame_status"]
        for i in np.asarray(indices, int).tolist():
            if status[i] == PENDING:
                status[i] = SKIPPED
        self.file.flush()

    def finalise(self, out: str | os.PathLike, failures_out: str | os.PathLike, provenance: dict) -> list[dict]:
        """Write the failures report and the finished layer `out` (a new file, renamed into place), then
        delete the partial file; returns the failures. A kill anywhere leaves the partial file intact."""
        f = self.file
        status, keys = self.status, _keys_of(f)
        if (status == PENDING).any():
            raise RuntimeError(f"{self.path}: {int((status == PENDING).sum())} frames still pending")
        failures = [{"frame": keys[i], "stage": f"teacher_{self.task}", "backend": provenance.get("backend"),
                     "reason": f["frame_failure"][i].decode()} for i in np.flatnonzero(status == FAILED)]
        write_jsonl_atomic(failures_out, failures)
        crash_point("finalise:failures-written")
        with atomic_write(out) as tmp:
            with h5py.File(tmp, "w") as dst:
                self._write_layer(dst, status, provenance, len(failures))
            crash_point("finalise:layer-written")
        crash_point("finalise:layer-renamed")
        self.close()
        self.path.unlink()
        fsync_path(self.path.resolve().parent)
        return failures

    def close(self) -> None:
        if self.file.id.valid:
            self.file.close()
