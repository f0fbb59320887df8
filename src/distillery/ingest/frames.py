"""Frame references and the decoding of one RGB-D frame from disk.

A dataset reader turns a folder into `FrameRef`s: where a frame's files are
and how to interpret them, without reading any pixels. `load_frame` then
decodes one reference into arrays (RGB uint8, depth float32 metres with 0 =
invalid, confidence float32 in [0, 1]) and raises `FrameError` naming the
file, frame and field when something is wrong with it, so that the caller
can quarantine the frame instead of crashing its shard.
"""

from __future__ import annotations

import dataclasses
import io
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

# Decompression bombs are not an issue for local sensor data, but truncated
# files must raise instead of being padded silently.
Image.LOAD_TRUNCATED_IMAGES = False


@dataclass(frozen=True)
class Intrinsics:
    """Pinhole intrinsics in pixels, valid for an image of `width` x `height`."""

    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int

    def as_list(self) -> list[float]:
        return [self.fx, self.fy, self.cx, self.cy]

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass
class FrameRef:
    """Where one RGB-D frame lives and how its files are encoded.

    `depth_encoding` is "npy" (float metres) or "png" (unsigned integers,
    `depth_scale` units per metre: 1000 for millimetres, 5000 for TUM).
    `depth_invalid` lists raw values besides 0 that mean "no measurement"
    (65535 in 7-Scenes). Paths are absolute strings so that an index file can
    be consumed from any working directory.
    """

    dataset: str
    sequence: str
    frame_id: str
    rgb: str
    depth: str | None
    depth_encoding: str = "npy"
    depth_scale: float = 1.0
    depth_invalid: list[int] = field(default_factory=list)
    confidence: str | None = None
    intrinsics: Intrinsics | None = None
    timestamp: float | None = None
    layout: str = "native"
    truth_depth: str | None = None
    truth_semantics: str | None = None

    @property
    def key(self) -> str:
        return f"{self.dataset}/{self.sequence}/{self.frame_id}"

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["key"] = self.key
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "FrameRef":
        d = {k: v for k, v in d.items() if k in _FRAME_FIELDS}
        if d.get("intrinsics") is not None:
            d["intrinsics"] = Intrinsics(**d["intrinsics"])
        return cls(**d)


_FRAME_FIELDS = {f.name for f in dataclasses.fields(FrameRef)}


@dataclass
class Reject:
    """One frame kept out of the manifest, and why (a quarantine report line)."""

    frame: str
    file: str | None
    field: str
    reason: str
    stage: str = "index"

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


MISSING_INTRINSICS = ("missing intrinsics: the dataset has none and none were given; pass --intrinsics "
                      "'{\"fx\": ..., \"fy\": ..., \"cx\": ..., \"cy\": ..., \"width\": ..., \"height\": ...}' "
                      "or set the dataset's config key datasets[].intrinsics")


class FrameError(Exception):
    """A frame cannot be used; carries the offending file and field."""

    def __init__(self, file: str | None, field: str, reason: str):
        super().__init__(f"{field} {file}: {reason}")
        self.file = file
        self.field = field
        self.reason = reason


@dataclass
class DecodedFrame:
    """Arrays of one frame at its native resolution."""

    rgb: np.ndarray  # uint8 [H, W, 3]
    depth: np.ndarray  # float32 [H, W] metres, 0 = invalid
    confidence: np.ndarray  # float32 [H, W] in [0, 1]
    confidence_derived: bool
    truth_depth: np.ndarray | None = None
    truth_semantics: np.ndarray | None = None


def _open_image(path: str, field_name: str, data: bytes | None = None) -> np.ndarray:
    """Decode an image file (or `data`, the file's bytes already read) to an array."""
    if data is None and not Path(path).is_file():
        raise FrameError(path, field_name, "file not found")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            with Image.open(path if data is None else io.BytesIO(data)) as im:
                im.load()
                if field_name == "rgb":
                    if im.mode not in ("RGB", "RGBA", "L", "P"):
                        raise FrameError(path, field_name, f"unsupported image mode {im.mode}")
                    im = im.convert("RGB")
                return np.asarray(im)
    except FrameError:
        raise
    except Exception as exc:  # PIL raises many types for broken files
        raise FrameError(path, field_name, f"unreadable or truncated image ({exc})") from None


def _load_npy(path: str, field_name: str) -> np.ndarray:
    if not Path(path).is_file():
        raise FrameError(path, field_name, "file not found")
    try:
        arr = np.load(path, allow_pickle=False)
    except Exception as exc:
        raise FrameError(path, field_name, f"unreadable or truncated array ({exc})") from None
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim != 2:
        raise FrameError(path, field_name, f"expected a 2-D array, got shape {arr.shape}")
    return arr


def load_depth(ref: FrameRef) -> np.ndarray:
    """Depth in float32 metres with 0 = invalid, validated for sign and finiteness."""
    if ref.depth is None:
        raise FrameError(ref.rgb, "depth", "unpaired frame: no depth image")
    if ref.depth_encoding == "npy":
        raw = _load_npy(ref.depth, "depth").astype(np.float32, copy=False)
        if not np.isfinite(raw).all():
            n = int((~np.isfinite(raw)).sum())
            raise FrameError(ref.depth, "depth", f"{n} non-finite depth values")
        if (raw < 0).any():
            raise FrameError(ref.depth, "depth", f"negative depth (min {raw.min():.3f} m)")
        return raw / np.float32(ref.depth_scale) if ref.depth_scale != 1.0 else raw
    raw = _open_image(ref.depth, "depth")
    if raw.ndim != 2 or raw.dtype.kind not in "ui":
        raise FrameError(ref.depth, "depth", f"expected a single-channel integer PNG, got {raw.dtype} {raw.shape}")
    # 0 and the integer type's largest value (65535: the saturation / "no
    # return" code of most depth cameras) are never measurements.
    invalid = (raw == 0) | (raw == np.iinfo(raw.dtype).max)
    for value in ref.depth_invalid:
        invalid |= raw == value
    depth = raw.astype(np.float32) / np.float32(ref.depth_scale)
    depth[invalid] = 0.0
    return depth


def load_confidence(ref: FrameRef, depth: np.ndarray) -> tuple[np.ndarray, bool]:
    """ToF confidence in [0, 1] and whether it was derived rather than measured.

    Without a sensor channel, confidence is derived as 1 where depth is valid
    and 0 elsewhere; the manifest records that it was derived.
    """
    if ref.confidence is None:
        return (depth > 0).astype(np.float32), True
    path = ref.confidence
    arr = _load_npy(path, "confidence") if path.endswith(".npy") else _open_image(path, "confidence")
    if arr.dtype.kind in "ui":
        arr = arr.astype(np.float32) / np.float32(np.iinfo(arr.dtype).max)
    arr = arr.astype(np.float32, copy=False)
    if not np.isfinite(arr).all() or arr.min() < 0 or arr.max() > 1:
        raise FrameError(path, "confidence", "confidence outside [0, 1] or non-finite")
    return arr, False


def drop_out_of_range(depth: np.ndarray, ref: FrameRef, max_depth_m: float) -> np.ndarray:
    """Depth with pixels beyond `max_depth_m` marked invalid (0).

    Far noise and saturated single pixels are invalid pixels, not bad frames.
    A frame is suspect only when its depth as a whole is implausible: when
    most of its valid pixels lie beyond the range, which is what a wrong
    depth scale looks like.
    """
    valid = depth > 0
    n_valid = int(valid.sum())
    far = depth > max_depth_m
    if n_valid and 2 * int(far.sum()) > n_valid:
        median = float(np.median(depth[valid]))
        raise FrameError(ref.depth, "depth", f"absurd depth: median {median:.1f} m of the valid pixels is beyond "
                         f"the {max_depth_m} m range (wrong depth scale? set --depth-scale or the dataset's "
                         "config key datasets[].depth_scale)")
    if far.any():
        depth = np.where(far, np.float32(0.0), depth)
    return depth


def read_rgb_bytes(ref: FrameRef) -> bytes:
    """The RGB file's bytes as they are on disk (what a shard keeps for the teachers)."""
    try:
        return Path(ref.rgb).read_bytes()
    except FileNotFoundError:
        raise FrameError(ref.rgb, "rgb", "file not found") from None
    except OSError as exc:
        raise FrameError(ref.rgb, "rgb", f"unreadable ({exc})") from None


def decode_rgb(data: bytes, name: str = "rgb") -> np.ndarray:
    """uint8 [H, W, 3] of an RGB image file's bytes, converted as `load_frame` converts it."""
    return _open_image(name, "rgb", data)


def load_frame(ref: FrameRef, max_depth_m: float, rgb_bytes: bytes | None = None) -> DecodedFrame:
    """Decode and validate one frame; raise FrameError on the first problem.

    `rgb_bytes`, the RGB file's bytes when the caller has read them, are decoded instead of the file,
    so that what is decoded is exactly what the caller keeps."""
    if ref.intrinsics is None:
        raise FrameError(ref.rgb, "intrinsics", MISSING_INTRINSICS)
    rgb = _open_image(ref.rgb, "rgb", rgb_bytes)
    depth = load_depth(ref)
    if depth.shape != rgb.shape[:2]:
        raise FrameError(ref.depth, "depth", f"size mismatch: depth {depth.shape[1]}x{depth.shape[0]} vs rgb {rgb.shape[1]}x{rgb.shape[0]}")
    if (ref.intrinsics.width, ref.intrinsics.height) != (rgb.shape[1], rgb.shape[0]):
        raise FrameError(ref.rgb, "intrinsics", f"intrinsics are for {ref.intrinsics.width}x{ref.intrinsics.height} but rgb is {rgb.shape[1]}x{rgb.shape[0]}")
    depth = drop_out_of_range(depth, ref, max_depth_m)
    confidence, derived = load_confidence(ref, depth)
    if confidence.shape != depth.shape:
        raise FrameError(ref.confidence, "confidence", f"size mismatch: confidence {confidence.shape} vs depth {depth.shape}")
    frame = DecodedFrame(rgb=rgb, depth=depth, confidence=confidence, confidence_derived=derived)
    if ref.truth_depth:
        frame.truth_depth = _load_npy(ref.truth_depth, "truth_depth").astype(np.float32)
    if ref.truth_semantics:
        frame.truth_semantics = _open_image(ref.truth_semantics, "truth_semantics").astype(np.uint8)
    return frame
