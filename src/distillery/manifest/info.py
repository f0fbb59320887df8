"""`distillery info`: what a manifest holds, as one dict (printed as JSON).

Frames per split and dataset, the stored size, the mean ToF valid share,
the share of valid depth that measured confidence trusts (with a warning per
dataset below the pack's `trusted_floor`, see distillery.confidence),
how many frames have each teacher slot filled (metric depth, relative depth,
labels, boxes), and which teacher filled each slot: id, backend, kind, the
SHA-256 of its weights (or, for simulated teachers, that they have none) and
the size of the frames it labelled ("480x640": frames), which says whether a
teacher saw the frames as captured or the stored training frames.
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from distillery.confidence import trust_summary
from distillery.manifest.reader import Manifest
from distillery.manifest.schema import INPUT_SIZE


def teacher_slot(teacher: dict) -> str:
    """The manifest slot a teacher fills."""
    if teacher["task"] == "depth":
        return "teacher_depth" if teacher.get("kind") == "metric" else "teacher_depth_relative"
    return {"detect": "boxes", "segment": "teacher_label"}[teacher["task"]]


def input_sizes(m: Manifest, slot: str) -> dict[str, int]:
    """Frames per input size ("HxW") of one slot, over the frames that have it."""
    flag = m.file["has_teacher_label" if slot == "teacher_label" else f"has_{slot}"][:]
    sizes = m.file[INPUT_SIZE[slot]][:][flag]
    values, counts = np.unique(sizes.reshape(-1, 2), axis=0, return_counts=True)
    return {f"{h}x{w}": int(c) for (h, w), c in zip(values, counts)}


def teacher_lines(m: Manifest) -> list[dict]:
    """One short entry per teacher of the manifest's provenance."""
    return [{"id": t["id"], "task": t["task"], "kind": t.get("kind"), "backend": t["backend"],
             "weights": t.get("weights", ""), "weights_sha256": t.get("weights_sha256", ""),
             "input_size": input_sizes(m, teacher_slot(t))} for t in m.teachers]


def manifest_info(m: Manifest) -> dict:
    """The summary `distillery info` prints."""
    recs = m.records
    count = lambda flag: sum(bool(r.get(flag)) for r in recs)  # noqa: E731
    return {
        "frames": len(m), "size": list(m.size),
        "splits": dict(Counter(r["split"] for r in recs)),
        "datasets": dict(Counter(r["dataset"] for r in recs)),
        "teacher_depth": count("has_teacher_depth"),
        "teacher_depth_relative": count("has_teacher_depth_relative"),
        "teacher_label": count("has_seg"),
        "boxes": count("has_boxes"),
        "tof_valid_share": round(sum(r["tof_valid_share"] for r in recs) / max(len(recs), 1), 4),
        "confidence": trust_summary(m.file.attrs.get("trusted_depth")),
        "teachers": teacher_lines(m),
    }
