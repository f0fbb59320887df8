"""A teacher's provenance: what the layer file's attributes and the manifest's `teachers` record.

Kept out of the `Teacher` base class: provenance hashes the weights files
(`weights.py`), and the base class, which every backend and the registry
import, stays free of file handling.
"""

from __future__ import annotations

import dataclasses

from distillery.teachers.weights import weights_sha256


def describe(teacher) -> dict:
    """Id, task, backend, depth kind, weights and their SHA-256, simulated flag and settings of `teacher`."""
    out = {"id": teacher.id or teacher.backend, "task": teacher.task, "backend": teacher.backend,
           "kind": teacher.kind(), "weights": teacher.weights or "",
           "weights_sha256": weights_sha256(teacher.backend, teacher.weights, teacher.simulated),
           "simulated": teacher.simulated, "settings": dataclasses.asdict(teacher.settings)}
    if teacher.depth_kind:
        out["depth_kind"] = teacher.depth_kind
    return out
