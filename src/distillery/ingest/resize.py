"""Bring a decoded frame to the storage resolution and scale its intrinsics.

Frames are stored at one size (240x320 by default). With `fit="crop"` the
frame is centre-cropped to the target aspect ratio first, so pixels stay
square; with `fit="stretch"` it is resized directly and fx, fy scale apart.
RGB is resampled with an area filter; depth, confidence and labels with
nearest neighbour, so that an invalid (0) depth never blends into a valid one
and class ids stay ids.

Intrinsics follow the pixel-centre convention used by the resampling: a
source pixel centre u maps to (u + 0.5) * s - 0.5, so cx' = (cx + 0.5) * s - 0.5.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from distillery.ingest.frames import DecodedFrame, Intrinsics


@dataclass(frozen=True)
class CropBox:
    left: int
    top: int
    width: int
    height: int


def crop_box(width: int, height: int, target_w: int, target_h: int, fit: str) -> CropBox:
    """The source window that maps onto the target image."""
    if fit == "stretch":
        return CropBox(0, 0, width, height)
    if fit != "crop":
        raise ValueError(f"fit must be 'crop' or 'stretch', got {fit!r}")
    target_aspect = target_w / target_h
    if width / height > target_aspect:
        w = int(round(height * target_aspect))
        return CropBox((width - w) // 2, 0, w, height)
    h = int(round(width / target_aspect))
    return CropBox(0, (height - h) // 2, width, h)


def scale_intrinsics(k: Intrinsics, box: CropBox, target_w: int, target_h: int) -> Intrinsics:
    """Intrinsics after cropping to `box` and resizing to target_w x target_h."""
    sx = target_w / box.width
    sy = target_h / box.height
    return Intrinsics(
        fx=k.fx * sx,
        fy=k.fy * sy,
        cx=(k.cx - box.left + 0.5) * sx - 0.5,
        cy=(k.cy - box.top + 0.5) * sy - 0.5,
        width=target_w,
        height=target_h,
    )


def _nearest_indices(n_src: int, n_dst: int, offset: int) -> np.ndarray:
    centres = (np.arange(n_dst) + 0.5) * (n_src / n_dst)
    return offset + np.minimum(np.floor(centres).astype(np.int64), n_src - 1)


def resize_nearest(arr: np.ndarray, box: CropBox, target_w: int, target_h: int) -> np.ndarray:
    rows = _nearest_indices(box.height, target_h, box.top)
    cols = _nearest_indices(box.width, target_w, box.left)
    return arr[rows[:, None], cols[None, :]]


def resize_rgb(rgb: np.ndarray, box: CropBox, target_w: int, target_h: int) -> np.ndarray:
    im = Image.fromarray(rgb)
    region = (box.left, box.top, box.left + box.width, box.top + box.height)
    if (box.width, box.height) == (target_w, target_h):
        return np.asarray(im.crop(region))
    return np.asarray(im.resize((target_w, target_h), Image.Resampling.BOX, box=region))


def resize_frame(frame: DecodedFrame, k: Intrinsics, target_h: int, target_w: int, fit: str) -> tuple[DecodedFrame, Intrinsics]:
    """The frame and its intrinsics at target_h x target_w."""
    h, w = frame.depth.shape
    box = crop_box(w, h, target_w, target_h, fit)
    near = lambda a: None if a is None else resize_nearest(a, box, target_w, target_h)  # noqa: E731
    out = DecodedFrame(
        rgb=resize_rgb(frame.rgb, box, target_w, target_h),
        depth=near(frame.depth),
        confidence=near(frame.confidence),
        confidence_derived=frame.confidence_derived,
        truth_depth=near(frame.truth_depth),
        truth_semantics=near(frame.truth_semantics),
    )
    return out, scale_intrinsics(k, box, target_w, target_h)
