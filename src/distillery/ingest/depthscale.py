"""Catch a wrong depth scale for a whole dataset before anything is packed.

A depth PNG stores integers; the scale (units per metre) turns them into
metres and is not in the file. A wrong scale gives depth that is valid pixel
by pixel but wrong by a constant factor (TUM's 5000 on a millimetre camera
makes a room 5x too near), which no per-frame check can see. So the index
stage decodes a few evenly spaced frames and looks at the dataset's median
valid depth: an RGB-D camera in a room, a corridor or a yard sees a median
between `PLAUSIBLE_M[0]` and `PLAUSIBLE_M[1]` metres. Outside that band the
run stops, naming the scales that would give a plausible median and the
exact flag and config key that set one. Inside it, a scale that only came
from the layout's default is still reported, with the median it gives, so
that it is never taken silently.
"""

from __future__ import annotations

import math

import numpy as np

from distillery.ingest.frames import FrameError, FrameRef, load_depth

PLAUSIBLE_M = (0.3, 15.0)  # median valid depth (m) of a real RGB-D recording
SAMPLE_FRAMES = 12
# Scales seen in the wild, in raw units per metre.
KNOWN_SCALES = {
    1000.0: "millimetres (RealSense, Azure Kinect, Orbbec, Open3D, 7-Scenes)",
    5000.0: "TUM / Freiburg Kinect v1 (0.2 mm units)",
    4000.0: "0.25 mm units (RealSense L515 and some exports)",
    10000.0: "0.1 mm units",
    100.0: "centimetres",
    1.0: "metres (float depth)",
}


class DepthScaleError(ValueError):
    """The dataset's depth, read with the configured scale, is implausible as a whole."""


def _sample(frames: list[FrameRef], n: int) -> list[FrameRef]:
    if len(frames) <= n:
        return frames
    picks = np.linspace(0, len(frames) - 1, n).round().astype(int)
    return [frames[i] for i in sorted(set(picks))]


def raw_median(frames: list[FrameRef], n: int = SAMPLE_FRAMES) -> tuple[float | None, int]:
    """Median valid raw depth value (before scaling) over a sample of frames, and the frames read."""
    values, read = [], 0
    for ref in _sample(frames, n):
        try:
            metres = load_depth(ref)
        except FrameError:
            continue  # the pack stage quarantines it with its reason
        read += 1
        valid = metres[metres > 0]
        if valid.size:
            values.append(valid[:: max(1, valid.size // 4096)] * np.float32(ref.depth_scale))
    if not values:
        return None, read
    return float(np.median(np.concatenate(values))), read


def likely_scales(raw: float, encoding: str) -> list[tuple[float, float]]:
    """(scale, median metres) of the known scales that give a plausible median, most typical first."""
    lo, hi = PLAUSIBLE_M
    # Float arrays hold metres or millimetres; integer PNGs never hold metres.
    candidates = [1.0, 1000.0] if encoding == "npy" else [s for s in KNOWN_SCALES if s != 1.0]
    fits = [(s, raw / s) for s in candidates if lo <= raw / s <= hi]
    return sorted(fits, key=lambda sm: abs(math.log(sm[1] / 2.0)))


def _flag_text(scale: float) -> str:
    return f"--depth-scale {scale:g} (distillery index / ingest) or `depth_scale: {scale:g}` in the dataset's config entry (datasets[].depth_scale)"


def check_depth_scale(frames: list[FrameRef], dataset: str, scale_given: bool) -> list[str]:
    """Raise DepthScaleError when the dataset's median depth is implausible; return notes otherwise.

    Frames are checked in groups of one encoding and scale (a dataset may mix
    layouts). `scale_given` says whether the user set the scale (flag or
    config key); a PNG layout default that passes is still reported in a note.
    """
    groups: dict[tuple[str, float], list[FrameRef]] = {}
    for ref in frames:
        if ref.depth and ref.depth_encoding in ("png", "npy"):
            groups.setdefault((ref.depth_encoding, ref.depth_scale), []).append(ref)
    notes = []
    for (encoding, scale), refs in groups.items():
        notes += _check_group(refs, encoding, scale, dataset, scale_given)
    return notes


def _check_group(refs: list[FrameRef], encoding: str, scale: float, dataset: str, scale_given: bool) -> list[str]:
    raw, read = raw_median(refs)
    if raw is None:
        return []
    median = raw / scale
    lo, hi = PLAUSIBLE_M
    if not lo <= median <= hi:
        fits = likely_scales(raw, encoding)
        options = "; ".join(f"{s:g} units per metre = {KNOWN_SCALES[s]} (median {m:.2f} m)" for s, m in fits)
        fix = f"Set the right one with {_flag_text(fits[0][0])}." if fits else \
            f"Set the camera's scale with {_flag_text(1000.0).replace('1000', 'N')}."
        raise DepthScaleError(
            f"dataset {dataset!r}: with a depth scale of {scale:g} units per metre"
            f"{'' if scale_given else ' (the layout default)'} the median valid depth over {read} sampled frames "
            f"is {median:.2f} m, implausible for an RGB-D recording (expected {lo:g}-{hi:g} m). "
            f"Likely scales: {options or 'none of the usual ones'}. {fix}")
    if scale_given or encoding == "npy":
        return []
    return [f"dataset {dataset!r}: depth scale {scale:g} units per metre is the layout default, not one you set; "
            f"it gives a median depth of {median:.2f} m over {read} sampled frames. If your camera uses another "
            f"unit, set it with {_flag_text(1000.0).replace('1000', 'N')}."]
