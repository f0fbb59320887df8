"""Bring a decoded frame to the storage resolution and scale its intrinsics.

Frames are stored at one size (distillery.framesize by default). With `fit="crop"` the
frame is centre-cropped to the target aspect ratio first, so pixels stay
square; with `fit="stretch"` it is resized directly and fx, fy scale apart.
RGB is resampled with an area (box) filter. Depth and confidence use the same
box footprints, so that stored depth sits where the stored intrinsics say:
depth is the area mean of the footprint's valid pixels on a smooth surface,
and one measured value (the lower median) across a depth edge, so that an
invalid (0) depth never blends into a valid one and no flying pixels appear;
a footprint less than half valid is invalid. Ground-truth labels stay
nearest-sampled so that class ids stay ids; teacher labels made at the source
size take the mode of each footprint (`resize_mode`), and boxes move with the
crop and scale (`boxes_to_grid`, and its inverse `boxes_from_grid`), so that a
teacher that saw the source frame lands on the stored grid exactly where the
stored frame's pixels are.

Intrinsics follow the pixel-centre convention used by the resampling: a
source pixel centre u maps to (u + 0.5) * s - 0.5, so cx' = (cx + 0.5) * s - 0.5.
"""

from __future__ import annotations

import functools
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


EDGE_SPREAD = 0.05  # relative depth spread within a footprint above which it straddles an edge


def _footprints(n_src: int, n_dst: int, offset: int) -> tuple[np.ndarray, np.ndarray]:
    """Source indices [n_dst, k] of each destination pixel's box footprint, and their area weights.

    Destination pixel i covers source coordinates [i*s, (i+1)*s), s = n_src/n_dst,
    the geometry of the RGB box filter and of `scale_intrinsics`.
    """
    s = n_src / n_dst
    lo = np.arange(n_dst) * s
    hi = lo + s
    start = np.floor(lo + 1e-9).astype(np.int64)
    k = int((np.ceil(hi - 1e-9).astype(np.int64) - start).max())
    idx = start[:, None] + np.arange(max(k, 1))[None, :]
    weights = np.clip(np.minimum(idx + 1, hi[:, None]) - np.maximum(idx, lo[:, None]), 0.0, None)
    return offset + np.minimum(idx, n_src - 1), weights


def _windows(arr: np.ndarray, box: CropBox, target_w: int, target_h: int) -> tuple[np.ndarray, np.ndarray]:
    """Footprint values [H', W', kr*kc] and their area weights, same shape.

    An integer scale (480x640 -> 240x320) has whole-pixel footprints of equal weight: a reshape of the
    crop then gives the same windows as the general gather, several times faster."""
    if box.height % target_h == 0 and box.width % target_w == 0:
        fy, fx = box.height // target_h, box.width // target_w
        crop = arr[box.top:box.top + box.height, box.left:box.left + box.width]
        values = crop.reshape(target_h, fy, target_w, fx).swapaxes(1, 2).reshape(target_h, target_w, fy * fx)
        return values, np.broadcast_to(np.float64(1.0), values.shape)
    rows, wr = _footprints(box.height, target_h, box.top)
    cols, wc = _footprints(box.width, target_w, box.left)
    values = arr[rows[:, None, :, None], cols[None, :, None, :]]
    weights = wr[:, None, :, None] * wc[None, :, None, :]
    shape = (target_h, target_w, -1)
    return values.reshape(shape), np.broadcast_to(weights, values.shape).reshape(shape)


def _over_footprint(ufunc, a: np.ndarray) -> np.ndarray:
    """ufunc reduced over the last (footprint) axis: slice by slice for small footprints, which runs
    several times faster than numpy's reduction over a short strided axis."""
    if a.shape[-1] > 64:
        return ufunc.reduce(a, axis=-1)
    return functools.reduce(ufunc, (a[..., j] for j in range(a.shape[-1])))


def _sort_rows(a: np.ndarray) -> np.ndarray:
    """Each row of a [n, k] sorted ascending: for small footprints an odd-even transposition network over
    the columns (k passes of elementwise min/max, vectorised over the rows), which beats a per-row sort."""
    k = a.shape[-1]
    if k > 16:
        return np.sort(a, axis=-1)
    cols = [a[:, j] for j in range(k)]
    for step in range(k):
        for j in range(step % 2, k - 1, 2):
            cols[j], cols[j + 1] = np.minimum(cols[j], cols[j + 1]), np.maximum(cols[j], cols[j + 1])
    return np.stack(cols, axis=-1)


def resize_mean(arr: np.ndarray, box: CropBox, target_w: int, target_h: int) -> np.ndarray:
    """Area mean over box footprints (confidence)."""
    values, weights = _windows(arr.astype(np.float32, copy=False), box, target_w, target_h)
    return (_over_footprint(np.add, values * weights) / _over_footprint(np.add, weights)).astype(np.float32)


def resize_depth(depth: np.ndarray, box: CropBox, target_w: int, target_h: int) -> np.ndarray:
    """Depth over the RGB box footprints: mean on smooth surfaces, a measured value at edges, 0 if mostly invalid."""
    values, weights = _windows(depth.astype(np.float32, copy=False), box, target_w, target_h)
    valid = (values > 0) & (weights > 0)
    w_valid = np.where(valid, weights, 0.0)
    covered = _over_footprint(np.add, w_valid)
    mean = _over_footprint(np.add, values * w_valid) / np.maximum(covered, 1e-12)
    low = _over_footprint(np.minimum, np.where(valid, values, np.inf))
    high = _over_footprint(np.maximum, np.where(valid, values, -np.inf))
    out = mean.astype(np.float32)
    edge = (high - low) > EDGE_SPREAD * low
    if edge.any():
        ordered = _sort_rows(np.where(valid[edge], values[edge], np.inf))
        pick = np.maximum((valid[edge].sum(-1) - 1) // 2, 0)
        out[edge] = np.take_along_axis(ordered, pick[:, None], -1)[:, 0]
    return np.where(2 * covered >= _over_footprint(np.add, weights), out, 0.0).astype(np.float32)


def resize_mode(labels: np.ndarray, box: CropBox, target_w: int, target_h: int) -> np.ndarray:
    """Class ids over the box footprints: the id covering the most area; a tie goes to the smaller id.

    Never interpolated: every output id occurs in its footprint. IGNORE (255), the largest id, loses
    ties, so a pixel half covered by a mask keeps the mask's class."""
    if (box.width, box.height) == (target_w, target_h):
        return resize_nearest(labels, box, target_w, target_h)
    values, weights = _windows(labels, box, target_w, target_h)
    weights = weights.astype(np.float32)
    classes = np.flatnonzero(np.bincount(values.ravel(), minlength=1))  # ascending: ties go to the smaller id
    scores = np.stack([_over_footprint(np.add, np.where(values == c, weights, np.float32(0))) for c in classes])
    return classes[np.argmax(np.round(scores, 5), axis=0)].astype(labels.dtype)


def boxes_to_grid(boxes: np.ndarray, box: CropBox, target_w: int, target_h: int) -> tuple[np.ndarray, np.ndarray]:
    """Boxes [k, >=4] (x1, y1, x2, y2 in source pixel-edge coordinates, extra columns kept) on the grid
    of the stored frame: shifted by the crop, scaled as the frame was, clipped to it. Returns the boxes
    and a mask of the rows kept (a box left with no area inside the crop is dropped)."""
    out = np.array(boxes, dtype=np.float32).reshape(len(boxes), -1)
    scale = np.array([target_w / box.width, target_h / box.height] * 2, np.float32)
    shift = np.array([box.left, box.top] * 2, np.float32)
    out[:, :4] = np.clip((out[:, :4] - shift) * scale, 0, [target_w, target_h, target_w, target_h])
    keep = (out[:, 2] > out[:, 0]) & (out[:, 3] > out[:, 1])
    return out[keep], keep


def boxes_from_grid(boxes: np.ndarray, box: CropBox, target_w: int, target_h: int) -> np.ndarray:
    """The inverse of `boxes_to_grid` (without its clipping): stored-grid boxes in source pixels."""
    out = np.array(boxes, dtype=np.float32).reshape(len(boxes), -1)
    scale = np.array([box.width / target_w, box.height / target_h] * 2, np.float32)
    out[:, :4] = out[:, :4] * scale + np.array([box.left, box.top] * 2, np.float32)
    return out


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
    same = (box.width, box.height) == (target_w, target_h)
    near = lambda a: None if a is None else resize_nearest(a, box, target_w, target_h)  # noqa: E731
    area = lambda a: None if a is None or same else resize_depth(a, box, target_w, target_h)  # noqa: E731
    depth = near(frame.depth) if same else area(frame.depth)
    confidence = near(frame.confidence) if same else resize_mean(frame.confidence, box, target_w, target_h)
    if frame.confidence_derived:
        confidence = (depth > 0).astype(np.float32)
    out = DecodedFrame(
        rgb=resize_rgb(frame.rgb, box, target_w, target_h),
        depth=depth,
        confidence=confidence,
        confidence_derived=frame.confidence_derived,
        truth_depth=near(frame.truth_depth) if same else area(frame.truth_depth),
        truth_semantics=near(frame.truth_semantics),
    )
    return out, scale_intrinsics(k, box, target_w, target_h)
