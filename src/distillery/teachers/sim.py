"""Simulated teachers: the networks' outputs made from a synthetic world's ground truth.

The embedded demo runs on a laptop CPU, where the real networks (and their
weights) are out of reach. These backends stand in for the networks only;
everything after them (labeller, layer files, merge) is the real code. They
are chosen explicitly in the config (`backend: sim_da3`, ...) and fail with a
clear error on a frame without ground truth, never silently.

The errors mimic the real teachers' character, reproducibly per frame key:
- sim_da3: metric depth with a per-frame scale error (log-normal, `scale_sigma`) and a smooth
  low-frequency relative error (`lowfreq_amp`); it sees glass panes as surfaces, as DA3 does.
- sim_da2: relative depth as DA2 gives it: affine-invariant inverse depth a * (1 / depth) + b with random
  a, b per frame (no metric scale), a smooth low-frequency error, and boundaries smeared over about
  `edge_sigma` pixels (the network's output is smooth where the truth jumps). `scale_range` puts the
  raw values where DA2-L's are on indoor frames, tens to a few hundred (the larger DA models output
  larger disparities; the reference V1, which regressed them as metres, ended at 75 m RMSE on NYU),
  not near metres, where a student regressing them would look metric by accident.
- sim_yolo: boxes of the connected person / furniture regions of the truth labels, with jittered
  edges, random misses (`miss_rate`), tiny regions never found, and scores that grow with size.
- sim_sam2: per box, the truth region of the box's class inside the box, with noisy boundaries.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from distillery.teachers.base import FURNITURE, PERSON, Teacher, frame_seed, require_truth


def smooth_field(rng: np.random.Generator, height: int, width: int, cells: int) -> np.ndarray:
    """A smooth random field in about [-1, 1]: a (cells+1)^2 grid of uniform values, cubic-interpolated."""
    grid = rng.uniform(-1.0, 1.0, (cells + 1, cells + 1))
    yy, xx = np.meshgrid(np.linspace(0, cells, height), np.linspace(0, cells, width), indexing="ij")
    return ndimage.map_coordinates(grid, [yy, xx], order=3, mode="nearest").astype(np.float32)


class SimDA3(Teacher):
    """DA3-like metric depth from truth depth."""

    task = "depth"
    backend = "sim_da3"
    reads = ("truth_depth",)
    simulated = True
    depth_kind = "metric"

    @dataclass(frozen=True)
    class Settings:
        scale_sigma: float = 0.04
        lowfreq_amp: float = 0.05
        lowfreq_cells: int = 3
        seed: int = 0

    def predict(self, batch: dict) -> list:
        s = self.settings
        out = []
        for key, truth in zip(batch["key"], require_truth(batch, "truth_depth", self.backend)):
            rng = frame_seed(s.seed, key, 1)
            scale = float(np.exp(rng.normal(0.0, s.scale_sigma)))
            field = smooth_field(rng, *truth.shape, s.lowfreq_cells)
            depth = truth * scale * (1.0 + s.lowfreq_amp * field)
            out.append({"teacher_depth": np.where(truth > 0, depth, 0.0).astype(np.float32)})
        return out


class SimDA2(Teacher):
    """DA2-like relative inverse depth from truth depth."""

    task = "depth"
    backend = "sim_da2"
    reads = ("truth_depth",)
    simulated = True
    depth_kind = "relative_inverse"

    @dataclass(frozen=True)
    class Settings:
        scale_range: tuple[float, float] = (60.0, 240.0)  # a, per frame (m x DA2 units)
        shift_share: float = 0.3  # b = a x U(0, shift_share), per frame
        lowfreq_amp: float = 0.05
        edge_sigma: float = 1.0  # px: boundary smear of the inverse depth
        seed: int = 0

    def predict(self, batch: dict) -> list:
        s = self.settings
        out = []
        for key, truth in zip(batch["key"], require_truth(batch, "truth_depth", self.backend)):
            rng = frame_seed(s.seed, key, 2)
            a = rng.uniform(*s.scale_range)
            b = rng.uniform(0.0, s.shift_share) * a
            inverse = np.divide(1.0, truth, out=np.zeros_like(truth), where=truth > 0)
            if s.edge_sigma > 0:
                inverse = ndimage.gaussian_filter(inverse, s.edge_sigma)
            field = smooth_field(rng, *truth.shape, 3)
            out.append({"teacher_depth": (a * inverse * (1.0 + s.lowfreq_amp * field) + b).astype(np.float32)})
        return out


def region_boxes(labels: np.ndarray, cls: int, min_area: int) -> list[tuple[np.ndarray, int]]:
    """(x1, y1, x2, y2) and pixel count of each connected region of class `cls` with >= min_area pixels."""
    comp, n = ndimage.label(labels == cls)
    if n == 0:
        return []
    areas = np.bincount(comp.ravel(), minlength=n + 1)
    boxes = []
    for i, sl in enumerate(ndimage.find_objects(comp), start=1):
        if areas[i] >= min_area:
            boxes.append((np.array([sl[1].start, sl[0].start, sl[1].stop, sl[0].stop], np.float32), int(areas[i])))
    return boxes


class SimYolo(Teacher):
    """YOLO-like person / furniture boxes from truth labels."""

    task = "detect"
    backend = "sim_yolo"
    reads = ("truth_label",)
    simulated = True

    @dataclass(frozen=True)
    class Settings:
        miss_rate: float = 0.1
        jitter: float = 0.05  # edge noise, as a share of the box's width / height
        min_area: float = 0.0005  # share of the image; smaller regions are never detected
        seed: int = 0

    def detect(self, labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        s = self.settings
        height, width = labels.shape
        rows = []
        for cls in (PERSON, FURNITURE):
            for box, area in region_boxes(labels, cls, max(1, round(s.min_area * height * width))):
                if rng.random() < s.miss_rate:
                    continue
                size = np.array([box[2] - box[0], box[3] - box[1]] * 2, np.float32)
                box = np.clip(box + rng.normal(0.0, s.jitter, 4) * size, 0, [width, height, width, height])
                if box[2] - box[0] < 1 or box[3] - box[1] < 1:
                    continue
                score = np.clip(0.3 + 0.65 * np.sqrt(area / (height * width)) * 4 + rng.normal(0, 0.05), 0.3, 0.99)
                rows.append([*box, score, cls])
        rows.sort(key=lambda r: -r[4])
        return np.asarray(rows, np.float32).reshape(-1, 6)

    def predict(self, batch: dict) -> list:
        out = []
        for key, labels in zip(batch["key"], require_truth(batch, "truth_label", self.backend)):
            boxes = self.detect(labels, frame_seed(self.settings.seed, key, 3))
            out.append({"boxes": boxes, "source_class": np.full(len(boxes), -1, np.int32)})
        return out


class SimSam2(Teacher):
    """SAM2-like box-prompted masks from truth labels."""

    task = "segment"
    backend = "sim_sam2"
    reads = ("truth_label", "boxes")
    simulated = True

    @dataclass(frozen=True)
    class Settings:
        boundary_sigma: float = 1.2  # px: softness of the boundary before thresholding
        boundary_noise: float = 0.3  # amplitude of the smooth noise that moves the boundary
        seed: int = 0

    def mask(self, labels: np.ndarray, box: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        height, width = labels.shape
        x1, y1 = int(np.floor(box[0])), int(np.floor(box[1]))
        x2, y2 = int(np.ceil(box[2])), int(np.ceil(box[3]))
        inside = np.zeros((height, width), np.float32)
        inside[y1:y2, x1:x2] = labels[y1:y2, x1:x2] == int(box[5])
        soft = ndimage.gaussian_filter(inside, self.settings.boundary_sigma)
        noise = ndimage.gaussian_filter(rng.standard_normal((height, width)).astype(np.float32), 2.0)
        noise *= self.settings.boundary_noise / max(float(noise.std()), 1e-6)
        band = (soft > 0.05) & (soft < 0.95)  # the noise moves the boundary, it does not punch holes
        return np.where(band, soft + noise > 0.5, inside > 0)

    def predict(self, batch: dict) -> list:
        labels_all = require_truth(batch, "truth_label", self.backend)
        out = []
        for key, labels, boxes in zip(batch["key"], labels_all, batch["boxes"]):
            rng = frame_seed(self.settings.seed, key, 4)
            masks = np.stack([self.mask(labels, b, rng) for b in boxes]) if len(boxes) else \
                np.zeros((0, *labels.shape), bool)
            out.append({"masks": masks, "scores": boxes[:, 4].astype(np.float32),
                        "classes": boxes[:, 5].astype(np.uint8)})
        return out
