"""Analytic RGB-D scenes with known answers for the teacher tests, and a shard writer.

A corridor seen by a level (or pitched) camera: floor z = 0, ceiling, two side
walls and an end wall, an optional glass pane in the left wall and an
optional furniture box. Every pixel's z-depth and class are exact, and the
ToF is simulated by rule (range limit, nothing on glass unless asked), so a
labeller rule can be checked against the answer it must give.
"""

from __future__ import annotations

from dataclasses import dataclass

import h5py
import numpy as np

from distillery.manifest import create_layout

FLOOR, WALL, PERSON, FURNITURE, GLASS, OTHER = range(6)
COLOURS = {FLOOR: (150, 120, 90), WALL: (200, 200, 190), FURNITURE: (120, 80, 160), GLASS: (150, 190, 210),
           OTHER: (230, 230, 230)}


@dataclass
class Corridor:
    height: int = 120
    width: int = 160
    focal: float = 110.0
    camera_height: float = 0.6
    pitch_deg: float = 0.0  # positive looks down
    half_width: float = 1.2
    length: float = 9.0
    ceiling: float = 2.6
    glass: tuple | None = (1.5, 3.5, 0.4, 2.2)  # x0, x1, z0, z1 on the left wall
    box: tuple | None = None  # (x0, x1, y0, y1, z1) of a furniture box standing on the floor
    tof_range: float = 4.0
    tof_through_glass: bool = False

    @property
    def intrinsics(self) -> np.ndarray:
        return np.array([self.focal, self.focal, (self.width - 1) / 2, (self.height - 1) / 2], np.float32)

    def rays(self) -> np.ndarray:
        """World directions [H, W, 3] (x forward, y left, z up) whose camera-frame z is 1."""
        fx, fy, cx, cy = self.intrinsics
        v, u = np.indices((self.height, self.width), dtype=np.float64)
        cam = np.stack([(u - cx) / fx, (v - cy) / fy, np.ones_like(u)], -1)  # x right, y down, z forward
        world = np.stack([cam[..., 2], -cam[..., 0], -cam[..., 1]], -1)
        p = -np.radians(self.pitch_deg)
        rot = np.array([[np.cos(p), 0, -np.sin(p)], [0, 1, 0], [np.sin(p), 0, np.cos(p)]])  # about y
        return world @ rot.T

    def _planes(self, d: np.ndarray):
        """(t, class) candidates of the room's planes for ray directions d from the camera."""
        o = np.array([0.0, 0.0, self.camera_height])
        with np.errstate(divide="ignore", invalid="ignore"):
            yield (0 - o[2]) / d[..., 2], FLOOR
            yield (self.ceiling - o[2]) / d[..., 2], OTHER
            yield (self.half_width - o[1]) / d[..., 1], WALL  # left
            yield (-self.half_width - o[1]) / d[..., 1], WALL  # right
            yield (self.length - o[0]) / d[..., 0], WALL  # end

    def render(self) -> dict:
        d = self.rays()
        o = np.array([0.0, 0.0, self.camera_height])
        t_best = np.full(d.shape[:2], np.inf)
        label = np.full(d.shape[:2], OTHER, np.uint8)
        for t, cls in self._planes(d):
            p = o + np.nan_to_num(t)[..., None] * d
            inside = (p[..., 0] >= -0.01) & (p[..., 0] <= self.length + 0.01) & (np.abs(p[..., 1]) <= self.half_width + 0.01) \
                & (p[..., 2] >= -0.01) & (p[..., 2] <= self.ceiling + 0.01)
            hit = (t > 1e-6) & inside & (t < t_best)
            t_best = np.where(hit, t, t_best)
            label = np.where(hit, cls, label)
        p = o + t_best[..., None] * d
        if self.glass:
            x0, x1, z0, z1 = self.glass
            pane = (label == WALL) & (p[..., 1] > self.half_width - 0.01) & (p[..., 0] >= x0) & (p[..., 0] <= x1) \
                & (p[..., 2] >= z0) & (p[..., 2] <= z1)
            label[pane] = GLASS
        if self.box:
            t_box = self._box_hits(o, d)
            hit = t_box < t_best
            t_best, label = np.where(hit, t_box, t_best), np.where(hit, FURNITURE, label)
        depth = t_best.astype(np.float32)  # each ray has camera-frame z = 1, so t is the z-depth
        return {"depth": depth, "label": label.astype(np.uint8), **self._sensors(depth, label)}

    def _box_hits(self, o, d) -> np.ndarray:
        x0, x1, y0, y1, z1 = self.box
        lo, hi = np.array([x0, y0, 0.0]), np.array([x1, y1, z1])
        with np.errstate(divide="ignore", invalid="ignore"):
            a, b = (lo - o) / d, (hi - o) / d
        near = np.nanmax(np.minimum(a, b), axis=-1)
        far = np.nanmin(np.maximum(a, b), axis=-1)
        return np.where((far >= near) & (near > 0), near, np.inf)

    def _sensors(self, depth, label) -> dict:
        tof = np.where(depth <= self.tof_range, depth, 0).astype(np.float32)
        if self.tof_through_glass:
            tof = np.where(label == GLASS, depth + 1.5, tof)
        else:
            tof = np.where(label == GLASS, 0, tof)
        rgb = np.zeros((*depth.shape, 3), np.uint8)
        for cls, colour in COLOURS.items():
            rgb[label == cls] = colour
        return {"tof": tof.astype(np.float32), "confidence": np.where(tof > 0, 0.8, 0).astype(np.float32), "rgb": rgb}


def write_shard(path, frames: list[dict], intrinsics: np.ndarray, dataset: str = "scene", truth: bool = True) -> list[str]:
    """A packed shard file of rendered frames (`Corridor.render()` dicts); returns the frame keys."""
    h, w = frames[0]["depth"].shape
    keys = [f"{dataset}/seq/{i:06d}" for i in range(len(frames))]
    with h5py.File(path, "w") as f:
        create_layout(f, len(frames), h, w)
        for i, fr in enumerate(frames):
            f["rgb"][i], f["tof_depth"][i] = fr["rgb"], fr["tof"]
            f["tof_confidence"][i] = fr["confidence"].astype(np.float16)
            if truth:
                f["truth_depth"][i], f["truth_label"][i] = fr["depth"], fr["label"]
                f["has_truth_depth"][i] = f["has_truth_label"][i] = True
            f["intrinsics"][i] = intrinsics
            f["tof_valid_share"][i] = float((fr["tof"] > 0).mean())
            for name, value in (("key", keys[i]), ("dataset", dataset), ("sequence", "seq"), ("split", "train"),
                                ("rgb_source", "")):
                f[name][i] = value
    return keys


def iou(pred: np.ndarray, truth: np.ndarray, cls: int) -> float:
    union = ((pred == cls) | (truth == cls)).sum()
    return float(((pred == cls) & (truth == cls)).sum() / union) if union else 1.0
