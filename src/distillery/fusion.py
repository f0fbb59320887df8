"""Confidence-gated fusion of ToF and student depth: the one definition of "trusted ToF".

Per pixel, the fused depth is the ToF depth where the sensor is trusted
(confidence >= CONF_MIN and DEPTH_MIN_M < d < DEPTH_MAX_M), else the student's
depth times a per-frame scale s = median(ToF / student) over the trusted
pixels where the student is positive and finite. The scale corrects a student
that is right in shape but off in scale (a relative teacher's student, a new
camera); a frame without a single such pixel keeps s = 1 and is flagged.

Training losses, validation metrics, evaluation and the exported fused ONNX
graph all use `trusted_tof`, so "the pixels the student fills" means the same
thing everywhere. Both functions take numpy arrays or torch tensors; `fuse`
takes one frame [H, W] or a batch [N, H, W] / [N, 1, H, W] and returns the
same kind and shape it was given.

The median is the conventional one (mean of the two middle values for an even
count), computed by sorting, so numpy and torch (whose own median returns the
lower middle value) agree exactly. Non-finite, zero and negative inputs never
reach the output as NaN: an unusable student pixel outside trusted ToF fuses
to 0, which the whole pipeline reads as "no depth".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from distillery.confidence import CONF_MIN  # noqa: F401  ToF confidence at or above which a pixel is trusted

DEPTH_MIN_M = 0.05  # trusted ToF depth lies strictly between these (metres)
DEPTH_MAX_M = 10.0


@dataclass
class Fused:
    """The result of `fuse`: depth like the student input; scale and no_trusted per frame."""

    depth: Any  # fused depth, metres, same type and shape as the student input
    scale: Any  # s per frame: shape [] for one [H, W] frame, [N] for a batch
    no_trusted: Any  # bool per frame: True where no pixel gave a scale and s = 1 was used


def _is_torch(x) -> bool:
    return isinstance(x, torch.Tensor)


def trusted_tof(tof, confidence):
    """Bool mask of the ToF pixels fusion keeps: finite, confidence >= 0.5 and 0.05 m < depth < 10 m."""
    xp = torch if _is_torch(tof) else np
    return (xp.isfinite(tof) & xp.isfinite(confidence) & (confidence >= CONF_MIN)
            & (tof > DEPTH_MIN_M) & (tof < DEPTH_MAX_M))


def _frames(x, name: str):
    """A [H, W], [N, H, W] or [N, 1, H, W] input as [N, H, W]."""
    if x.ndim == 2:
        return x[None]
    if x.ndim == 3:
        return x
    if x.ndim == 4 and x.shape[1] == 1:
        return x[:, 0]
    raise ValueError(f"fusion: {name} has shape {tuple(x.shape)}; expected [H, W], [N, H, W] or [N, 1, H, W]")


def masked_median(values, mask):
    """Per-frame median of values[i][mask[i]] for [N, H, W] inputs, NaN where a frame's mask is empty.

    Sort-based (masked-out entries sorted to the end as +inf) so numpy and torch give the same
    number; for an even count it is the mean of the two middle values.
    """
    n = values.shape[0]
    if _is_torch(values):
        flat = torch.where(mask, values, torch.full_like(values, float("inf"))).reshape(n, -1)
        ordered = flat.sort(dim=1).values
        count = mask.reshape(n, -1).sum(1)
        lo, hi = ((count - 1).clamp_min(0) // 2)[:, None], (count // 2).clamp_max(flat.shape[1] - 1)[:, None]
        median = 0.5 * (ordered.gather(1, lo)[:, 0] + ordered.gather(1, hi)[:, 0])
        return torch.where(count > 0, median, torch.full_like(median, float("nan")))
    flat = np.where(mask, values, np.inf).reshape(n, -1)
    ordered = np.sort(flat, axis=1)
    count = mask.reshape(n, -1).sum(1)
    lo, hi = np.maximum(count - 1, 0) // 2, np.minimum(count // 2, flat.shape[1] - 1)
    rows = np.arange(n)
    with np.errstate(invalid="ignore"):
        median = 0.5 * (ordered[rows, lo] + ordered[rows, hi])
    return np.where(count > 0, median, np.nan)


def fuse(student, tof, confidence) -> Fused:
    """ToF where trusted, else s x student with s = median(ToF / student) over trusted pixels, per frame.

    All three inputs share one shape ([H, W], [N, H, W] or [N, 1, H, W]) and kind (numpy or torch).
    """
    if not (student.shape == tof.shape == confidence.shape):
        raise ValueError(f"fusion: shapes differ: student {tuple(student.shape)}, ToF {tuple(tof.shape)}, "
                         f"confidence {tuple(confidence.shape)}")
    torch_in = _is_torch(student)
    xp = torch if torch_in else np
    s, t, c = (_frames(x, name) for x, name in ((student, "student"), (tof, "ToF"), (confidence, "confidence")))
    trusted = trusted_tof(t, c)
    student_ok = xp.isfinite(s) & (s > 0)
    zero = xp.zeros_like(s)
    clean = xp.where(student_ok, s, zero)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = t / xp.where(student_ok, s, xp.ones_like(s))
    usable = trusted & student_ok & xp.isfinite(ratio)
    median = masked_median(ratio, usable)
    no_trusted = ~xp.isfinite(median)
    scale = xp.where(no_trusted, xp.ones_like(median), median)
    scaled = clean * scale.reshape(-1, 1, 1)
    scaled = xp.where(xp.isfinite(scaled), scaled, zero)
    depth = xp.where(trusted, t, scaled).reshape(student.shape)
    if student.ndim == 2:
        scale, no_trusted = scale[0], no_trusted[0]
    return Fused(depth, scale, no_trusted)
