"""Which frames of a sequence a teacher labels: novelty along the sequence, a share or a threshold.

Consecutive frames of a 30 Hz recording are near copies, and each costs a
teacher pass on a GPU. The change from one frame to the next is measured
from the camera's motion where poses exist (translation over
`translation_m` plus rotation over `rotation_deg`), else from the images
themselves: the mean absolute change of a small grey image plus the mean
absolute change of log ToF depth (and of where the ToF is valid). Summed
along the sequence, that change is the sequence's *novelty*. Frames are
then chosen where the novelty accumulated since the last chosen frame
reaches a threshold (`threshold`), or, given a `share`, at equal steps of
novelty so that about that share of frames is chosen: a sequence that
stands still spends few labels, one that turns a corner many. Every
sequence keeps its first frame. Each choice carries its reason, which the
manifest records.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

GREY_SIZE = (24, 32)  # the small image novelty compares, rows x columns


@dataclass(frozen=True)
class SelectSettings:
    """`share` (0-1] of each sequence's frames, or a novelty `threshold`; exactly one of them is used."""

    share: float | None = 0.2  # about this share of each sequence's frames is labelled
    threshold: float | None = None  # or: a frame is labelled once this much novelty has built up
    translation_m: float = 0.25  # camera motion: this much translation ...
    rotation_deg: float = 10.0  # ... or this much rotation counts as a change of 1
    depth_weight: float = 1.0  # weight of the ToF-depth change next to the image change

    def __post_init__(self):
        if (self.share is None) == (self.threshold is None):
            raise ValueError("selection: give exactly one of share and threshold (select.share, select.threshold)")
        if self.share is not None and not 0 < self.share <= 1:
            raise ValueError(f"select.share must be in (0, 1], got {self.share}")
        if self.threshold is not None and self.threshold < 0:
            raise ValueError(f"select.threshold must be >= 0, got {self.threshold}")


@dataclass
class Selection:
    """One sequence's choice: a flag, the novelty since the last chosen frame and a reason per frame."""

    selected: np.ndarray  # bool [N]
    novelty: np.ndarray  # float [N]: novelty accumulated since the previous chosen frame
    reasons: list[str]
    source: str  # "poses" or "frames": what the change was measured from


def grey(rgb: np.ndarray) -> np.ndarray:
    """A small grey image in [0, 1] (area-averaged), the image novelty compares."""
    img = rgb.astype(np.float32).mean(-1) / 255.0
    h, w = img.shape
    gh, gw = GREY_SIZE
    img = img[: h - h % gh, : w - w % gw]
    return img.reshape(gh, img.shape[0] // gh, gw, img.shape[1] // gw).mean((1, 3))


def small_log_depth(depth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Block-averaged log ToF depth and valid share over the GREY_SIZE grid (0 = invalid pixels skipped)."""
    h, w = depth.shape
    gh, gw = GREY_SIZE
    d = depth[: h - h % gh, : w - w % gw].astype(np.float32)
    valid = (d > 0).reshape(gh, d.shape[0] // gh, gw, d.shape[1] // gw)
    logs = np.where(d > 0, np.log(np.maximum(d, 1e-3)), 0.0).reshape(valid.shape)
    count = valid.sum((1, 3))
    return np.where(count > 0, logs.sum((1, 3)) / np.maximum(count, 1), 0.0), count / valid[0, :, 0, :].size


def change_from_frames(rgb: list[np.ndarray], tof_depth: list[np.ndarray], depth_weight: float = 1.0) -> np.ndarray:
    """Change [N] of each frame from the previous one (0 for the first) from images and ToF depth."""
    greys = [grey(x) for x in rgb]
    depths = [small_log_depth(d) for d in tof_depth]
    out = np.zeros(len(rgb))
    for i in range(1, len(rgb)):
        image = float(np.abs(greys[i] - greys[i - 1]).mean())
        (d0, v0), (d1, v1) = depths[i - 1], depths[i]
        both = (v0 > 0) & (v1 > 0)
        depth = float(np.abs(d1 - d0)[both].mean()) if both.any() else 0.0
        depth += float(np.abs(v1 - v0).mean())
        out[i] = image * 10.0 + depth_weight * depth  # a 10 % grey change ~ a 1 (e^1) depth change
    return out


def change_from_poses(poses: np.ndarray, translation_m: float, rotation_deg: float) -> np.ndarray:
    """Change [N] of each camera-to-world pose [N, 4, 4] from the previous one (0 for the first)."""
    out = np.zeros(len(poses))
    for i in range(1, len(poses)):
        rel = np.linalg.inv(poses[i - 1]) @ poses[i]
        angle = math.degrees(math.acos(float(np.clip((np.trace(rel[:3, :3]) - 1) / 2, -1, 1))))
        out[i] = float(np.linalg.norm(rel[:3, 3])) / translation_m + angle / rotation_deg
    return out


def _share_picks(cumulative: np.ndarray, k: int) -> list[int]:
    """k frames at equal steps of cumulative novelty (the first frame first); gaps filled where it is sparsest."""
    n, total = len(cumulative), float(cumulative[-1])
    if total <= 0:  # a sequence that does not change at all: evenly spaced frames
        return sorted({int(round(i * (n - 1) / max(k, 1))) for i in range(k)} | {0})[:k] if n > 1 else [0]
    picks = set(np.searchsorted(cumulative, total * np.arange(k) / k - 1e-12, side="left").tolist()) | {0}
    while len(picks) < min(k, n):
        chosen = np.array(sorted(picks))
        gap = np.abs(cumulative[:, None] - cumulative[chosen][None, :]).min(1)
        gap[chosen] = -1
        picks.add(int(np.argmax(gap)))
    return sorted(picks)


def select_sequence(change: np.ndarray, settings: SelectSettings, source: str) -> Selection:
    """Choose frames from per-frame change [N] (change[0] ignored): a share at equal novelty steps, or a threshold.

    `novelty[i]` is the change accumulated since the last chosen frame at or before i."""
    n = len(change)
    cumulative = np.concatenate([[0.0], np.cumsum(np.asarray(change, float)[1:])]) if n else np.zeros(0)
    if settings.share is not None:
        k = max(1, math.ceil(settings.share * n))
        picks = set(_share_picks(cumulative, k))
        rule = f"{k} of {n} frames at equal novelty steps"
    else:
        picks, last = {0}, 0.0
        for i in range(1, n):
            if cumulative[i] - last >= settings.threshold - 1e-9:
                picks.add(i)
                last = cumulative[i]
        rule = f"novelty threshold {settings.threshold:g}"
    selected, novelty, reasons, last = np.zeros(n, bool), np.zeros(n), [], 0
    for i in range(n):
        novelty[i] = cumulative[i] - cumulative[last]
        if i == 0:
            reasons.append("first frame of the sequence")
        elif i in picks:
            reasons.append(f"novelty {novelty[i]:.3f} since frame {last} ({source}; {rule})")
        else:
            reasons.append(f"skipped: novelty {novelty[i]:.3f} since frame {last} ({source}; {rule})")
        if i in picks:
            selected[i], last = True, i
    return Selection(selected, novelty, reasons, source)


def read_poses(path: str | Path) -> dict[str, np.ndarray]:
    """Camera-to-world 4x4 poses by frame id from a poses.txt (`id tx ty tz qx qy qz qw` per line)."""
    out = {}
    for line in Path(path).read_text().splitlines():
        parts = line.split()
        if len(parts) != 8 or line.startswith("#"):
            continue
        t = np.array(parts[1:4], float)
        x, y, z, w = map(float, parts[4:8])
        rot = np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])
        pose = np.eye(4)
        pose[:3, :3], pose[:3, 3] = rot, t
        out[parts[0]] = pose
    return out
