"""Teachers: foundation models (or their simulations) that label every frame of a shard.

`build_teacher(cfg)` builds a backend from its config entry; `run_shard`
labels one shard into a layer file, resumably; `run_sanity` is the gate
before a full run. See docs/teachers.md.
"""

from distillery.teachers.base import FrameFailure, Runtime, Teacher, TeacherError
from distillery.teachers.registry import BACKENDS, build_teacher

__all__ = ["BACKENDS", "FrameFailure", "Runtime", "Teacher", "TeacherError", "build_teacher"]
