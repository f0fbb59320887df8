"""Fatal teacher errors versus per-frame data errors, and the fault injection that tests both.

A frame the teacher cannot label (a corrupt image, a non-finite output) is a
per-frame failure: recorded in the shard's failure list, the shard carries on,
and the merge gates the share (manifest/failures.py). An error that says the
teacher itself is broken is fatal: the job exits non-zero so that the
workflow's retries run it again (on another node, with more memory), instead
of writing a layer whose every frame "failed". Fatal are:

- a broken CUDA context or device (CUDA/cuBLAS/cuDNN errors, device-side
  asserts, illegal memory access, NCCL), and running out of memory (host or GPU);
- errors of the environment: missing modules, I/O errors reading inputs;
- `TeacherError`: a teacher that cannot run as configured (weights that do not
  load, missing truth for a simulation, ...).

`DISTILLERY_TEACHER_FAULT` injects faults into a real run (what the Slurm
tests use; harmless unless set): `fatal` raises a CUDA error on the first
batch; `frames:<share>` fails that share of the frames (chosen by a hash of the
frame key, so the same frames on every run).
"""

from __future__ import annotations

import os
import zlib

from distillery.teachers.base import FrameFailure, TeacherError

FAULT_ENV = "DISTILLERY_TEACHER_FAULT"
FATAL_MESSAGES = ("CUDA error", "CUDA out of memory", "CUBLAS_STATUS", "CUDNN_STATUS", "cuDNN error",
                  "device-side assert", "illegal memory access", "NCCL", "CUDA driver", "out of memory")


class FatalTeacherError(TeacherError):
    """The teacher (model, device, environment) is broken: no frame can be trusted, the job must fail."""


def is_fatal(err: BaseException) -> bool:
    """True for errors of the teacher or its device, False for errors of one frame's data."""
    if isinstance(err, (TeacherError, MemoryError, ImportError, OSError)):
        return True
    return isinstance(err, RuntimeError) and any(m in str(err) for m in FATAL_MESSAGES)


def as_fatal(err: BaseException, keys: list[str]) -> FatalTeacherError:
    where = f"frames {keys[0]}..{keys[-1]}" if len(keys) > 1 else f"frame {keys[0]}"
    return FatalTeacherError(f"fatal teacher error on {where}: {type(err).__name__}: {err}. This is not a "
                             "problem of the frames: the job fails so that the workflow retries it")


class InjectedFaults:
    """Wraps a stage: raises or fails frames as `DISTILLERY_TEACHER_FAULT` says."""

    def __init__(self, stage, spec: str):
        self.stage, self.spec = stage, spec
        kind, _, value = spec.partition(":")
        if kind not in ("fatal", "frames"):
            raise TeacherError(f"{FAULT_ENV}={spec!r}: use `fatal` or `frames:<share>`")
        self.fault, self.share = kind, float(value or 0)

    def __getattr__(self, name):  # everything but predict is the wrapped stage's (task, reads, runtime, ...)
        return getattr(self.stage, name)

    def _fails(self, key: str) -> bool:
        return zlib.crc32(key.encode()) / 2**32 < self.share

    def predict(self, batch: dict) -> list:
        if self.fault == "fatal":
            raise RuntimeError(f"CUDA error: an illegal memory access was encountered (injected by {FAULT_ENV})")
        results = self.stage.predict(batch)
        return [FrameFailure(f"injected per-frame failure ({FAULT_ENV})") if self._fails(k) else r
                for k, r in zip(batch["key"], results)]


def with_injected_faults(stage):
    """The stage itself, or wrapped in InjectedFaults when DISTILLERY_TEACHER_FAULT is set."""
    spec = os.environ.get(FAULT_ENV, "").strip()
    return InjectedFaults(stage, spec) if spec else stage
