"""Run a teacher stage over one shard: batched, resumable, writing a layer file.

Frames are read from the packed shard file (and, for the segment stage,
from the depth and detect layers) by a DataLoader whose worker processes
decode the compressed chunks while the device works; batches are pinned
when the device is CUDA. A real teacher gets the source frame (the camera
image as captured, decoded from the shard's `rgb_encoded`, with the
intrinsics of that size); its depth and boxes are resampled onto the stored
grid here (grid.py), and every frame's layer row records the size the
teacher saw (`input_size`). A shard packed without source frames (by
another tool) is labelled at its stored size, and says so.

Resuming: results go into a partial layer file beside the output
(`<out>.partial`, a stable name outside the workflow's declared outputs,
which Snakemake deletes when a job fails) with a status per frame, flushed
after every batch. A re-run continues with the frames still pending, as long
as the partial file was made by the same settings from the same inputs (a
signature in its attributes); otherwise it starts over and says why. When
every frame is done the partial file is finalised: the finished layer is
written as a new file and renamed onto the output (partial.py), so a
finished-looking layer is always complete and a kill during the finalise
leaves the partial file for the retry.

A frame that a teacher fails on (an exception, non-finite output) is
recorded in the failures report with its reason and left without a value
(present flag false); the shard carries on. Fatal errors (a broken CUDA
context, out of memory, a model that does not load, configuration errors:
see faults.py) stop the run with a non-zero exit, so that the workflow
retries the job; what was labelled before stays in the partial file.
"""

from __future__ import annotations

import json
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import h5py
import numpy as np
import torch
from tqdm import tqdm

from distillery.ingest.frames import FrameError, decode_rgb
from distillery.manifest import LAYER_SCHEMA_NAME, SOURCE_FIELD, check_schema, open_shard
from distillery.select.shard import selected_mask
from distillery.teachers.base import FrameFailure, TeacherError
from distillery.teachers.faults import as_fatal, is_fatal, with_injected_faults
from distillery.teachers.grid import batch_grids, to_grid
from distillery.teachers.partial import PENDING, PartialLayer
from distillery.teachers.settings import BATCH_SIZE
from distillery.teachers.stages import LAYER_BOXES, check_result, layer_fields, slot_result

log = logging.getLogger(__name__)

SHARD_FIELDS = ("rgb", "tof_depth", "tof_confidence", "truth_depth", "truth_label")


def shard_name(path: str | os.PathLike) -> str:
    return Path(path).name.split(".")[0]


def partial_path(out: str | os.PathLike) -> Path:
    out = Path(out)
    return out.with_name(out.name + ".partial")


class ShardFrames(torch.utils.data.Dataset):
    """Frames of one shard as dicts of numpy arrays; files are opened lazily, once per process.

    `rgb` and `intrinsics` are the frame the teacher sees: the source frame when `source` (and the
    shard has it), else the stored one; `stored_rgb` and `stored_intrinsics` can be asked for too."""

    def __init__(self, shard: str, fields: tuple[str, ...], depth_layer: str | None = None,
                 detect_layer: str | None = None, source: bool = False):
        self.paths = {"shard": shard, "depth": depth_layer, "detect": detect_layer}
        self.fields = fields
        self._files, self._pid = {}, None
        with open_shard(shard) as f:
            self.keys = [k.decode() if isinstance(k, bytes) else str(k) for k in f["key"][:]]
            self.source = source and SOURCE_FIELD in f
        if source and not self.source:
            log.warning("%s has no source frames (packed by another tool): the teacher labels the stored "
                        "frames, and the layer records that size", shard)

    def _file(self, name: str) -> h5py.File:
        if self._pid != os.getpid():
            self._files, self._pid = {}, os.getpid()
        if name not in self._files:
            if not self.paths[name]:
                raise TeacherError(f"this stage reads the {name} layer, but none was given")
            self._files[name] = h5py.File(self.paths[name], "r")
        return self._files[name]

    def __getstate__(self):
        return dict(self.__dict__, _files={}, _pid=None)

    def __len__(self) -> int:
        return len(self.keys)

    def _slot(self, f: h5py.File, name: str, i: int):
        flag = {"truth_depth": "has_truth_depth", "truth_label": "has_truth_label",
                "teacher_depth": "has_teacher_depth"}.get(name)
        return f[name][i] if flag is None or f[flag][i] else None

    def _input_frame(self, shard: h5py.File, i: int) -> dict:
        """The frame the teacher sees, its intrinsics, its crop on the stored grid, the grid's size."""
        stored = shard["rgb"][i]
        grid_hw = stored.shape[:2]
        data = shard[SOURCE_FIELD][i] if self.source else ()
        if not len(data):
            return {"rgb": stored, "intrinsics": shard["intrinsics"][i], "grid_hw": grid_hw,
                    "crop": np.array([0, 0, grid_hw[1], grid_hw[0]], np.int32)}
        try:
            rgb = decode_rgb(data.tobytes(), self.paths["shard"])
        except FrameError as err:
            raise TeacherError(f"{self.paths['shard']}: the source frame of {self.keys[i]} does not decode "
                               f"({err.reason}); re-pack the shard (snakemake --forcerun pack_shard)") from None
        if rgb.shape[:2] != tuple(shard["original_size"][i]):
            raise TeacherError(f"{self.paths['shard']}: the source frame of {self.keys[i]} is {rgb.shape[:2]}, "
                               f"the shard says {tuple(shard['original_size'][i])}; re-pack the shard")
        return {"rgb": rgb, "intrinsics": shard["intrinsics_original"][i], "grid_hw": grid_hw,
                "crop": shard["source_crop"][i]}

    def __getitem__(self, i: int) -> dict:
        shard = self._file("shard")
        item = {"index": i, "key": self.keys[i], **self._input_frame(shard, i)}
        for name in self.fields:
            if name in ("rgb", "intrinsics"):  # always there: the frame the teacher sees
                continue
            if name == "stored_rgb":
                item[name] = shard["rgb"][i]
            elif name == "stored_intrinsics":
                item[name] = shard["intrinsics"][i].astype(np.float32)
            elif name in SHARD_FIELDS:
                value = self._slot(shard, name, i)
                item[name] = value.astype(np.float32) if name == "tof_confidence" else value
            elif name == "teacher_depth":
                value = self._slot(self._file("depth"), name, i)
                item[name] = None if value is None else value.astype(np.float32)
            elif name == "boxes":
                f = self._file("detect")
                lo, hi = f["box_offsets"][i:i + 2]
                item[name] = f["boxes"][lo:hi] if f["has_boxes"][i] else None
        return item


def collate(items: list[dict]) -> list[dict]:
    """Batches of frames of one input size (a shard's frames usually share one: then one batch).

    rgb and intrinsics are stacked into tensors (pinnable), crops into an array; every other field
    stays a per-frame list."""
    groups: dict[tuple, list[dict]] = {}
    for it in items:
        groups.setdefault((it["rgb"].shape, tuple(it["grid_hw"])), []).append(it)
    return [_stack(group) for group in groups.values()]


def _stack(items: list[dict]) -> dict:
    batch = {"index": np.array([it["index"] for it in items]), "key": [it["key"] for it in items],
             "rgb": torch.from_numpy(np.stack([it["rgb"] for it in items])),
             "intrinsics": torch.from_numpy(np.stack([it["intrinsics"] for it in items]).astype(np.float32)),
             "crop": np.stack([it["crop"] for it in items]), "grid_hw": tuple(int(v) for v in items[0]["grid_hw"])}
    for name in items[0]:
        if name not in batch:
            batch[name] = [it[name] for it in items]
    return batch


def split_batch(batch: dict) -> list[dict]:
    return [{k: v if k == "grid_hw" else v[i:i + 1] for k, v in batch.items()} for i in range(len(batch["key"]))]


def on_grid(stage, results: list, batch: dict) -> list:
    """Results resampled onto the stored grid, checked, keyed by slot, with the size the teacher saw."""
    checked = []
    for r, grid in zip(results, batch_grids(batch)):
        if isinstance(r, FrameFailure):  # the teacher's own verdict on this frame
            checked.append(r)
            continue
        r = to_grid(stage.task, r, grid)  # the segment stage puts its labels on the grid itself
        reason = r if isinstance(r, str) else check_result(stage.task, r, grid.grid_hw)
        checked.append(FrameFailure(reason) if reason else dict(slot_result(stage, r), input_size=grid.input_hw))
    return checked


def predict_raw(stage, batch: dict) -> list:
    """Per-frame results as the teacher gives them (at its input size); a batch that raises is retried
    frame by frame, so one bad frame fails alone."""
    try:
        results = stage.predict(batch)
    except TeacherError:
        raise
    except Exception as err:  # any model error: isolate the frame(s) that cause it
        if is_fatal(err):
            raise as_fatal(err, batch["key"]) from err
        if len(batch["key"]) == 1:
            log.warning("frame %s failed: %s: %s", batch["key"][0], type(err).__name__, err)
            return [FrameFailure(f"{type(err).__name__}: {err}")]
        log.warning("batch failed (%s: %s); retrying its frames one by one", type(err).__name__, err)
        return [r for sub in split_batch(batch) for r in predict_raw(stage, sub)]
    return results


def _fingerprint(path: str | None) -> list | None:
    if not path:
        return None
    st = Path(path).stat()
    return [str(Path(path).resolve()), st.st_size, st.st_mtime_ns]


def _check_layer(path: str, keys: list[str], what: str) -> h5py.File:
    f = h5py.File(path, "r")
    check_schema(f, path, LAYER_SCHEMA_NAME)
    if [k.decode() if isinstance(k, bytes) else str(k) for k in f["key"][:]] != keys:
        f.close()
        raise TeacherError(f"{path}: the {what} layer holds other frames than the shard (re-packed since?)")
    return f


def check_inputs(stage, shard: str, keys: list[str], depth_layer: str | None, detect_layer: str | None) -> None:
    """Fail before any inference when the inputs cannot serve this stage."""
    with open_shard(shard) as f:
        for name in ("truth_depth", "truth_label"):
            if name in stage.reads and stage.simulated:
                have = f["has_" + name][:]
                if not have.all():
                    raise TeacherError(
                        f"simulated teacher needs {name} (ground truth of a synthetic world), but shard {shard} "
                        f"has it for {int(have.sum())} of {len(have)} frames (e.g. {keys[int(np.argmin(have))]}): "
                        "configure a real backend for real data")
    if stage.task == "segment":
        with _check_layer(depth_layer, keys, "depth") as f:
            kind = str(f.attrs.get("depth_kind", ""))
        if kind != "metric":
            raise TeacherError(f"{depth_layer}: the labeller needs metric depth, this layer holds {kind or 'unknown'} "
                               "depth (a relative teacher such as da2 cannot drive the geometric labeller)")
        _check_layer(detect_layer, keys, "detect").close()


def stage_runtime(stage):
    return stage.masker.runtime if hasattr(stage, "masker") else stage.runtime


def make_loader(dataset, pending: np.ndarray, batch_size: int, workers: int, pin: bool):
    batches = [pending[i:i + batch_size].tolist() for i in range(0, len(pending), batch_size)]
    return torch.utils.data.DataLoader(dataset, batch_sampler=batches, num_workers=workers, collate_fn=collate,
                                       pin_memory=pin, prefetch_factor=2 if workers else None)


def _store(stage, partial: PartialLayer, batch: dict, results: list, bar) -> None:
    partial.write(batch["index"], on_grid(stage, results, batch))
    log.debug("wrote frames %s", batch["index"].tolist())
    bar.update(len(batch["index"]))


def run_shard(stage, shard: str, out: str, failures_out: str, batch_size: int = BATCH_SIZE, workers: int = 0,
              depth_layer: str | None = None, detect_layer: str | None = None, progress: bool = True,
              selection: str | None = None) -> dict:
    """Label every frame of `shard` (or those a `selection` JSON selects) with `stage` into the layer file
    `out`; resumes a killed run."""
    stage = with_injected_faults(stage)
    dataset = ShardFrames(shard, stage.reads, depth_layer, detect_layer, source=stage.sees() == "source")
    with open_shard(shard) as f:
        size = int(f.attrs["height"]), int(f.attrs["width"])
    check_inputs(stage, shard, dataset.keys, depth_layer, detect_layer)
    provenance = stage.describe()
    inputs = ((shard, depth_layer, detect_layer) if stage.task == "segment" else (shard,)) + (selection,)
    signature = json.dumps({"teacher": provenance, "inputs": [_fingerprint(p) for p in inputs]}, sort_keys=True)
    partial = PartialLayer.open(partial_path(out), shard_name(shard), dataset.keys, size, stage.task,
                                layer_fields(stage), LAYER_BOXES[stage.task], signature)
    try:
        chosen = selected_mask(selection, dataset.keys)
        if chosen is not None:
            partial.skip(np.flatnonzero(~chosen))
        pending = np.flatnonzero(partial.status == PENDING)
        loader = make_loader(dataset, pending, batch_size, workers, stage_runtime(stage).cuda)
        bar = tqdm(total=len(dataset), initial=len(dataset) - len(pending), unit="frame",
                   desc=f"{stage.task} {shard_name(shard)}", disable=not progress)
        # A batch's results are resampled onto the grid and written on a second thread while the next
        # batch runs on the device (numpy and HDF5 release the GIL); one batch in flight, in order.
        with ThreadPoolExecutor(max_workers=1) as post:
            previous = None
            for batches in loader:
                for batch in batches:
                    results = predict_raw(stage, batch)
                    if previous is not None:
                        previous.result()
                    previous = post.submit(_store, stage, partial, batch, results, bar)
            if previous is not None:
                previous.result()
        bar.close()
        failures = partial.finalise(out, failures_out, provenance)
    finally:
        partial.close()
    result = {"shard": shard_name(shard), "frames": len(dataset), "computed": int(len(pending)),
              "resumed": int(len(dataset) - len(pending)), "failed": len(failures)}
    if chosen is not None:  # frames not selected: neither computed nor resumed
        result["skipped"] = int((~chosen).sum())
        result["resumed"] -= result["skipped"]
    return result
