"""Teacher provenance of a manifest: which teacher filled which slot, with which weights and settings.

Every teacher layer file carries its teacher's description in the `teacher`
attribute (JSON, written by `distillery teach`): id, task, backend, kind
(depth: metric or relative), weights, weights_sha256 and settings. The merge
gathers them into the manifest's root attribute `teachers` (a JSON list, one
entry per teacher id), and refuses layers that cannot belong together:

- two layers of one teacher id that disagree (one shard relabelled with other
  settings or weights than the rest);
- two teacher ids filling the same slot (e.g. two metric depth teachers);
- two layers of one teacher for the same shard.

A teacher may label some shards and not others: the per-frame present flags
say which frames have its slot.
"""

from __future__ import annotations

import json
from pathlib import Path

import h5py

# The manifest slots a layer can fill, by the dataset that marks them in the layer.
SLOT_DATASETS = ("teacher_depth", "teacher_depth_relative", "teacher_label", "boxes")


def layer_teacher(f: h5py.File, path: str) -> dict:
    """The description of the teacher that wrote an open layer file."""
    text = f.attrs.get("teacher")
    if not text:
        raise ValueError(f"{path}: layer without a `teacher` attribute (not written by `distillery teach`); "
                         "re-run its teacher job")
    teacher = json.loads(text)
    if "id" not in teacher:
        raise ValueError(f"{path}: its teacher has no id (written by an older Distillery); re-run its teacher job")
    return teacher


def _disagreement(a: dict, b: dict) -> str:
    keys = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
    return ", ".join(f"{k}: {a.get(k)!r} vs {b.get(k)!r}" for k in keys)


def collect_teachers(layers_by_shard: dict[str, list[str]]) -> list[dict]:
    """The manifest's `teachers` list from the layer files of every shard; ValueError when they disagree."""
    seen: dict[str, tuple[dict, str]] = {}  # id -> (description, first layer path)
    coverage: dict[str, set[str]] = {}
    slot_owner: dict[str, str] = {}
    for shard, paths in layers_by_shard.items():
        for path in paths:
            with h5py.File(path, "r") as f:
                teacher = layer_teacher(f, path)
                slots = [name for name in SLOT_DATASETS if name in f]
            tid = teacher["id"]
            if tid in seen and seen[tid][0] != teacher:
                raise ValueError(f"teacher {tid!r}: layer {path} disagrees with layer {seen[tid][1]} "
                                 f"({_disagreement(seen[tid][0], teacher)}); re-run the teacher on every shard "
                                 "with one setting (in the workflow: `snakemake` re-labels what changed)")
            seen.setdefault(tid, (teacher, path))
            if shard in coverage.setdefault(tid, set()):
                raise ValueError(f"teacher {tid!r} has two layers for shard {Path(shard).name} (e.g. {path})")
            coverage[tid].add(shard)
            for slot in slots:
                if slot_owner.setdefault(slot, tid) != tid:
                    raise ValueError(f"slot {slot} is filled by two teachers, {slot_owner[slot]!r} and {tid!r} "
                                     f"(e.g. {path}); a manifest takes one teacher per slot (config teachers.use)")
    return [seen[tid][0] for tid in sorted(seen)]
