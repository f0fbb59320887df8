"""Merge shard HDF5 files into manifest.h5 and manifest.jsonl.

Image fields are not copied: each is an HDF5 virtual dataset whose rows map
onto the shard files (and, for the teacher slots, onto the layer files), by
paths relative to the manifest's folder. The merge writes only the row
fields, keys and boxes, so it costs a small fraction of a copy and the
manifest adds almost nothing to the shards' disk; a read goes straight to
the shard's compressed chunk, as fast as from a copied manifest
(`benchmarks/bench_ingest.py` measures both). The shards and layer files
must therefore stay where they are while the manifest is used (the
workflow keeps them: they are its inputs).

The merge is also where quarantine reports meet: every reject of the
index and pack stages lands in one report, and the run fails when the share
of bad frames of any dataset passes the configured threshold.
"""

from __future__ import annotations

import json
import logging
import os
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

import h5py
from tqdm import tqdm

import numpy as np

from distillery.manifest.content import content_id
from distillery.manifest.provenance import collect_teachers
from distillery.manifest.reader import open_shard
from distillery.manifest.schema import COMPRESSION_LEVEL
from distillery.confidence import combine as combine_trusted
from distillery.manifest.failures import MAX_FAILED_SHARE, check_failures, failure_report
from distillery.atomic import atomic_target, read_jsonl, replace_durable, write_jsonl_atomic, write_text_atomic
from distillery.manifest import (IMAGE_FIELDS, INPUT_SIZE, LAYER_SCHEMA_NAME, ROW_FIELDS, STRING_FIELDS,
                                 check_schema, create_layout, manifest_records)

log = logging.getLogger(__name__)


class TooManyBadFrames(RuntimeError):
    """The share of quarantined frames passed the configured threshold."""


class VirtualFields:
    """Where each row range of each image field comes from: (first row, rows, file, dataset) mappings,
    made into one virtual dataset per field once every shard and layer has been seen."""

    def __init__(self, out_h5: str):
        self.folder = Path(out_h5).resolve().parent
        self.sources: dict[str, dict[int, tuple[int, str, h5py.Dataset]]] = {name: {} for name in IMAGE_FIELDS}

    def map(self, name: str, src: h5py.Dataset, offset: int) -> None:
        """Rows offset.. of field `name` are `src` (a later mapping of the same rows replaces it)."""
        path = os.path.relpath(Path(src.file.filename).resolve(), self.folder)
        self.sources[name][offset] = (src.shape[0], path, src.shape, src.dtype)

    def create(self, dst: h5py.File) -> None:
        for name, spec in IMAGE_FIELDS.items():
            shape, dtype = dst[name].shape, dst[name].dtype
            del dst[name]  # the placeholder create_layout made; never written, so it held no space
            layout = h5py.VirtualLayout(shape=shape, dtype=dtype)
            for offset, (n, path, src_shape, src_dtype) in sorted(self.sources[name].items()):
                if src_dtype != dtype or tuple(src_shape[1:]) != tuple(shape[1:]):
                    raise ValueError(f"{path}: field {name} is {src_dtype} {src_shape[1:]}, "
                                     f"the manifest's is {dtype} {shape[1:]}")
                layout[offset:offset + n] = h5py.VirtualSource(path, name, shape=src_shape)
            dst.create_virtual_dataset(name, layout, fillvalue=spec.fill)


def _copy_boxes(src: h5py.File, dst: h5py.File, offset: int, box_offset: int) -> int:
    n = int(src.attrs["frame_count"])
    boxes = src["boxes"][:]
    if len(boxes):
        dst["boxes"].resize(box_offset + len(boxes), axis=0)
        dst["boxes"][box_offset:] = boxes
    dst["box_offsets"][offset + 1:offset + n + 1] = src["box_offsets"][1:] + box_offset
    return box_offset + len(boxes)


def _copy_shard(src: h5py.File, dst: h5py.File, offset: int, fields: VirtualFields) -> None:
    n = int(src.attrs["frame_count"])
    for name in IMAGE_FIELDS:
        fields.map(name, src[name], offset)
    for name in (*ROW_FIELDS, *STRING_FIELDS):
        dst[name][offset:offset + n] = src[name][:]


def _copy_layer(layer: h5py.File, path: str, shard: h5py.File, dst: h5py.File, offset: int,
                fields: VirtualFields) -> None:
    """Map a layer's slots onto its shard's rows, and copy their present flags."""
    check_schema(layer, path, LAYER_SCHEMA_NAME)
    if not np.array_equal(layer["key"][:], shard["key"][:]):
        raise ValueError(f"{path}: its frames differ from those of shard {layer.attrs['shard']} "
                         "(was the shard re-packed after this layer was written?)")
    n = int(layer.attrs["frame_count"])
    slots = []
    for name, spec in IMAGE_FIELDS.items():
        if name in layer:
            fields.map(name, layer[name], offset)
            dst[spec.flag][offset:offset + n] = layer[spec.flag][:]
            slots.append(name)
    if "has_boxes" in layer:
        dst["has_boxes"][offset:offset + n] = layer["has_boxes"][:]
        slots.append("boxes")
    if "input_size" in layer:  # the size each frame's teacher saw, on the rows of every slot it filled
        sizes = layer["input_size"][:]
        for slot in slots:
            dst[INPUT_SIZE[slot]][offset:offset + n] = sizes


def _group_layers(shard_paths: list[str], layer_paths: list[str]) -> dict[str, list[str]]:
    """Layer files per shard path, matched by the layer's `shard` attribute and the shard's file stem."""
    by_name = {Path(p).name.split(".")[0]: p for p in shard_paths}
    groups: dict[str, list[str]] = {p: [] for p in shard_paths}
    for path in layer_paths:
        with h5py.File(path, "r") as f:
            shard = str(f.attrs.get("shard", ""))
        if shard not in by_name:
            raise ValueError(f"{path}: layer of shard {shard!r}, which is not among the merged shards")
        groups[by_name[shard]].append(path)
    return groups


def _shard_geometry(paths: list[str]) -> tuple[int, int, int]:
    total, size = 0, None
    for path in paths:
        with open_shard(path) as f:
            check_schema(f, path)
            total += int(f.attrs["frame_count"])
            this = (int(f.attrs["height"]), int(f.attrs["width"]))
            if size not in (None, this):
                raise ValueError(f"{path}: frames are {this[0]}x{this[1]}, other shards {size[0]}x{size[1]}")
            size = this
    if size is None:
        raise ValueError("no shard files to merge")
    return total, *size


def merge_shards(shard_paths: list[str], out_h5: str, level: int = COMPRESSION_LEVEL, progress: bool = True,
                 layer_paths: list[str] = ()) -> int:
    """Concatenate shard files, in the given order, into `out_h5`; return the frame count.

    Each layer file (teacher outputs of one shard) fills its slots on the
    rows of its shard; boxes come from the last layer that has them. The
    inputs' content id is hashed on a second thread while the chunks are
    copied (hashlib releases the GIL), so it costs no wall time on two cores.
    """
    total, height, width = _shard_geometry(shard_paths)
    layers = _group_layers(shard_paths, list(layer_paths))
    teachers = collect_teachers(layers)  # refuses layers that disagree, before anything is written
    tmp = atomic_target(out_h5)
    try:
        with h5py.File(tmp, "w") as dst, ThreadPoolExecutor(max_workers=1) as hasher:
            inputs_id = hasher.submit(content_id, list(shard_paths), list(layer_paths))
            create_layout(dst, total, height, width, level)
            dst.attrs["teachers"] = json.dumps(teachers, sort_keys=True)
            offset = box_offset = 0
            trusted = []  # per shard: valid and trusted depth counts (distillery.confidence)
            fields = VirtualFields(out_h5)
            for path in tqdm(shard_paths, desc="merge", unit="shard", disable=not progress):
                with ExitStack() as stack:
                    src = stack.enter_context(open_shard(path))
                    trusted.append(src.attrs.get("trusted_depth"))
                    _copy_shard(src, dst, offset, fields)
                    box_source = src
                    for layer_path in layers[path]:
                        layer = stack.enter_context(h5py.File(layer_path, "r"))
                        _copy_layer(layer, layer_path, src, dst, offset, fields)
                        if "boxes" in layer:
                            box_source = layer
                    box_offset = _copy_boxes(box_source, dst, offset, box_offset)
                    offset += int(src.attrs["frame_count"])
            fields.create(dst)
            keys = dst["key"][:]
            if len(set(keys)) != len(keys):
                dup = [k for k, c in Counter(keys).items() if c > 1][:3]
                raise ValueError(f"frames appear in more than one shard, e.g. {[k.decode() for k in dup]}")
            dst.attrs["trusted_depth"] = combine_trusted(trusted)
            dst.attrs["content_id"] = inputs_id.result()
        replace_durable(tmp, out_h5)
    finally:
        tmp.unlink(missing_ok=True)
    return total


def write_manifest_jsonl(h5_path: str, out_jsonl: str) -> None:
    with h5py.File(h5_path, "r") as f:
        write_jsonl_atomic(out_jsonl, manifest_records(f))


def bad_share_report(rejects: list[dict], packed_per_dataset: Counter, max_bad_share: float) -> dict:
    """Per dataset: frames seen, quarantined, share, and whether it passes."""
    bad = Counter(r["frame"].split("/", 1)[0] for r in rejects)
    report = {}
    for dataset in sorted(set(bad) | set(packed_per_dataset)):
        seen = bad[dataset] + packed_per_dataset[dataset]
        share = bad[dataset] / seen if seen else 0.0
        reasons = Counter(r["reason"].split(":")[0] for r in rejects if r["frame"].startswith(dataset + "/"))
        report[dataset] = {"frames": seen, "quarantined": bad[dataset], "bad_share": round(share, 6),
                           "ok": share <= max_bad_share, "reasons": dict(reasons.most_common())}
    return report


def _frames_per_shard(shard_paths: list[str]) -> dict[str, int]:
    frames = {}
    for path in shard_paths:
        with open_shard(path) as f:
            frames[Path(path).name.split(".")[0]] = int(f.attrs["frame_count"])
    return frames


def merge_manifest(shard_paths: list[str], quarantine_paths: list[str], out_h5: str, out_jsonl: str,
                   out_quarantine: str, out_summary: str, max_bad_share: float, level: int = COMPRESSION_LEVEL,
                   progress: bool = True, layer_paths: list[str] = (), failure_paths: list[str] = (),
                   max_failed_share: float = MAX_FAILED_SHARE) -> dict:
    """Merge shards and quarantine reports; raise TooManyBadFrames past the threshold, and
    TooManyFailedFrames when a teacher failed on too many frames of a shard (manifest/failures.py).

    The quarantine report and summary are written in both cases, so a failed
    run leaves the evidence; the manifest only when the data passes.
    """
    rejects = [r for path in quarantine_paths for r in read_jsonl(path)]
    write_jsonl_atomic(out_quarantine, rejects)
    packed = Counter()
    for path in shard_paths:
        with open_shard(path) as f:
            packed.update(d.decode() if isinstance(d, bytes) else d for d in f["dataset"][:])
    report = bad_share_report(rejects, packed, max_bad_share)
    teacher_failures = failure_report(list(failure_paths), _frames_per_shard(shard_paths), max_failed_share)
    summary = {"frames": sum(packed.values()), "quarantined": len(rejects), "max_bad_share": max_bad_share,
               "datasets": report, "manifest": str(out_h5), "quarantine_report": str(out_quarantine),
               "max_failed_share": max_failed_share, "teacher_failures": teacher_failures}
    write_text_atomic(out_summary, json.dumps(summary, indent=1) + "\n")
    check_failures(teacher_failures, max_failed_share)
    failing = {d: r for d, r in report.items() if not r["ok"]}
    if failing:
        lines = [f"  {d}: {r['quarantined']} of {r['frames']} frames quarantined ({r['bad_share']:.1%}), "
                 f"reasons {r['reasons']}" for d, r in failing.items()]
        examples = [f"  {r['frame']}: {r['field']} {r['file']}: {r['reason']}" for r in rejects[:5]]
        sources = [p for p in quarantine_paths if Path(p).stat().st_size]
        raise TooManyBadFrames(f"bad-frame share above max_bad_share={max_bad_share:.1%}:\n" + "\n".join(lines)
                               + "\nfirst quarantined frames:\n" + "\n".join(examples)
                               + "\nquarantine reports: " + " ".join(sources))
    merge_shards(shard_paths, out_h5, level=level, progress=progress, layer_paths=layer_paths)
    write_manifest_jsonl(out_h5, out_jsonl)
    return summary

