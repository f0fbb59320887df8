"""The contract every teacher backend keeps: what it reads, what it returns, on which device.

A backend labels a batch of frames of one shard. The runner hands it a dict:
`rgb` (torch uint8 [B, H, W, 3], pinned when the device is CUDA) and
`intrinsics` (torch float32 [B, 4]: fx, fy, cx, cy at H x W) of the frame the
backend sees (`sees()`): a real teacher sees the SOURCE frame, the camera
image as captured (e.g. 480x640), decoded from the shard's `rgb_encoded`; a
simulated one, which works from the stored ground truth, sees the stored
frame. Also `index`, `key`, `crop` and `grid_hw` (where the frame sits on the
stored grid, see grid.py) and, as lists with one numpy array (or None) per
frame, every other field named in the backend's `reads` (`tof_depth`,
`truth_label`, `teacher_depth` from the depth layer, `boxes` from the detect
layer, ...; these are at the stored size, boxes in the input frame's pixels).
Frames of one batch share one input size. It returns one entry per frame: a
dict of results, or a `FrameFailure` when that frame could not be labelled
(recorded, not fatal).

Results per task, at the input frame's size H x W (the runner resamples depth
and boxes onto the stored grid, grid.py; the segment stage paints masks at H x W
and takes the mode onto the grid):
- depth:   {"teacher_depth": float32 [H, W]}, metres (or relative, see `depth_kind`), 0 = no value;
           the runner stores a relative teacher's output in the manifest's teacher_depth_relative slot
- detect:  {"boxes": float32 [k, 6] x1, y1, x2, y2, score, class_id (ours: 2 person, 3 furniture),
            "source_class": int32 [k] the detector's own class id (COCO), -1 when it has none}
- masks:   {"masks": bool [k, H, W], "scores": float32 [k], "classes": uint8 [k]} (segment backends)
- segment: {"teacher_label": uint8 [h, w]}, 6 classes, 255 = ignore, at the stored size
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from dataclasses import dataclass

import numpy as np

from distillery.teachers.provenance import describe
from distillery.teachers.settings import PRECISION

log = logging.getLogger(__name__)

TASKS = ("depth", "detect", "segment")
PERSON, FURNITURE = 2, 3
PRECISIONS = ("bf16", "fp16", "fp32")


class TeacherError(RuntimeError):
    """A teacher cannot run as configured (missing truth, missing weights, bad settings)."""


@dataclass(frozen=True)
class FrameFailure:
    """One frame a teacher could not label, and why."""

    reason: str


@dataclass(frozen=True)
class Runtime:
    """Where and how a model runs: explicit device and autocast precision (CUDA only)."""

    device: str = "cpu"
    precision: str = PRECISION

    def __post_init__(self):
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, not {self.precision!r}")
        if not (self.device == "cpu" or self.device.startswith("cuda")):
            raise ValueError(f"device must be cpu or cuda[:N], not {self.device!r}")

    @property
    def cuda(self) -> bool:
        return self.device.startswith("cuda")

    def torch_device(self):
        import torch

        if self.cuda and not torch.cuda.is_available():
            raise TeacherError(f"device {self.device} requested but CUDA is not available on this machine")
        return torch.device(self.device)

    def autocast(self):
        """bf16/fp16 autocast on CUDA; a no-op on CPU, where reduced precision is slower, not faster."""
        import torch

        if not self.cuda or self.precision == "fp32":
            return contextlib.nullcontext()
        dtype = torch.bfloat16 if self.precision == "bf16" else torch.float16
        return torch.autocast(device_type="cuda", dtype=dtype)


def make_settings(cls, values: dict, backend: str):
    """Build a backend's settings dataclass, naming unknown keys instead of ignoring them."""
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise ValueError(f"teacher backend {backend!r} has no setting(s) {unknown}; it takes {sorted(names)}")
    return cls(**values)


class Teacher:
    """A backend of one task. Subclasses set the class attributes and implement `predict`."""

    task: str = ""
    backend: str = ""
    reads: tuple[str, ...] = ("rgb",)
    simulated: bool = False
    depth_kind: str | None = None  # depth teachers: "metric" or "relative_inverse"
    id: str = ""  # the config's name for this teacher (layer folder, manifest provenance); set by build_teacher
    frame: str | None = None  # "source" or "stored": the frame it labels; None: see `sees`

    @dataclass(frozen=True)
    class Settings:
        pass

    def __init__(self, settings, runtime: Runtime, weights: str | None = None):
        self.settings = settings
        self.runtime = runtime
        self.weights = weights

    def predict(self, batch: dict) -> list[dict | FrameFailure]:
        raise NotImplementedError

    @classmethod
    def sees(cls) -> str:
        """The frame this teacher labels: "source" (as captured) for networks, "stored" for simulated
        teachers, which are made from the stored ground truth."""
        return cls.frame or ("stored" if cls.simulated else "source")

    @classmethod
    def kind(cls) -> str | None:
        """The manifest slot kind of a depth teacher: "metric" (metres) or "relative"; None for other tasks."""
        if cls.depth_kind is None:
            return None
        return "metric" if cls.depth_kind == "metric" else "relative"

    def describe(self) -> dict:
        """Provenance written into the layer file's attributes and gathered into the manifest's `teachers`
        (made by `provenance.describe`, which hashes the weights; the base class knows nothing of files)."""
        return describe(self)


def require_truth(batch: dict, field: str, backend: str) -> list[np.ndarray]:
    """The truth arrays of a batch; a frame without truth is a configuration error, not a frame failure."""
    arrays = batch[field]
    for key, arr in zip(batch["key"], arrays):
        if arr is None:
            raise TeacherError(f"simulated teacher {backend!r} needs {field} (ground truth of a synthetic world), "
                               f"but frame {key} has none: configure a real backend for real data")
    return arrays


def frame_seed(seed: int, key: str, salt: int) -> np.random.Generator:
    """A Generator fixed by (seed, frame key, salt): simulated errors are reproducible per frame."""
    import zlib

    return np.random.default_rng([int(seed), zlib.crc32(key.encode()), salt])
