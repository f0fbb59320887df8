"""Simulated teachers: the networks' outputs made from a synthetic world's ground truth.

The embedded demo and the quality benchmark run on a CPU, where the real
networks (and their weights) are out of reach. These backends stand in for
the networks only; everything after them (labeller, layer files, merge) is the
real code. They are chosen explicitly in the config (`backend: sim_da3`, ...)
and fail with a clear error on a frame without ground truth, never silently.

A teacher's output is the truth passed through the *kinds* of error the real
networks make, never the truth plus white noise, so that "a student trained on
teacher labels beats one trained on ToF" is something to measure, not a
construction. Every error is reproducible per frame key; the magnitudes and
their published sources are in docs/teachers.md ("Simulated teachers").

Depth (`structured_depth`, shared by sim_da3 and sim_da2):
- boundaries smoothed over `edge_sigma` pixels (the network's output is smooth where the truth jumps);
- a smooth low-frequency relative error (`lowfreq_amp`);
- glass: the network sees through the pane to the room behind it (`glass_through`: the depth is that
  much larger), as monocular networks do on transparent surfaces;
- dark surfaces (RGB luma below `dark_luma`): a larger smooth error (`dark_amp`), the networks' weak point
  in low light and on black materials.
Mirrors are not simulated: the manifest carries no mirror mask.
- sim_da3 (metric) adds a per-sequence scale bias and a per-frame scale and shift drift.
- sim_da2 (relative) returns affine-invariant inverse depth a * (1 / depth) + b with random a, b per
  frame; `scale_range` puts the raw values where DA2-L's are on indoor frames (tens to a few hundred).
- sim_yolo: boxes of the connected person / furniture regions, jittered; misses that grow as regions
  shrink (`small_miss` below `small_area`), tiny regions never found, person <-> furniture confusions
  (`confusion`), scores that grow with size.
- sim_sam2: per box, the truth region of the box's class inside the box, with noisy boundaries; a
  confused box paints its region with the wrong class, as a box-prompted SAM 2 would.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from distillery.classes import GLASS
from distillery.teachers.base import FURNITURE, PERSON, Teacher, frame_seed, require_truth


def smooth_field(rng: np.random.Generator, height: int, width: int, cells: int) -> np.ndarray:
    """A smooth random field in about [-1, 1]: a (cells+1)^2 grid of uniform values, cubic-interpolated."""
    grid = rng.uniform(-1.0, 1.0, (cells + 1, cells + 1))
    yy, xx = np.meshgrid(np.linspace(0, cells, height), np.linspace(0, cells, width), indexing="ij")
    return ndimage.map_coordinates(grid, [yy, xx], order=3, mode="nearest").astype(np.float32)


def sequence_seed(seed: int, key: str, salt: int) -> np.random.Generator:
    """A Generator fixed by a frame key's sequence (`dataset/sequence/frame` less the frame): per-sequence bias."""
    return np.random.default_rng([int(seed), zlib.crc32(key.rsplit("/", 1)[0].encode()), salt])


def luma(rgb) -> np.ndarray:
    """Rec. 601 luma in [0, 255] of a uint8 [H, W, 3] image (tensor or array)."""
    arr = np.asarray(rgb, np.float32)
    return arr[..., 0] * 0.299 + arr[..., 1] * 0.587 + arr[..., 2] * 0.114


@dataclass(frozen=True)
class DepthErrors:
    """The structured depth errors both simulated depth teachers share (docs/teachers.md for the sources)."""

    edge_sigma: float = 1.5  # px: boundary smear
    lowfreq_amp: float = 0.05  # smooth relative error
    lowfreq_cells: int = 3
    glass_through: tuple[float, float] = (0.4, 1.2)  # glass: depth x (1 + U(range)), the room behind
    dark_luma: float = 35.0  # surfaces darker than this (0-255) ...
    dark_amp: float = 0.25  # ... get a smooth relative error this large


def structured_depth(truth: np.ndarray, labels: np.ndarray | None, rgb, rng: np.random.Generator,
                     e: DepthErrors) -> np.ndarray:
    """Truth depth (0 = none) with a depth network's structured errors; 0 stays 0."""
    valid = truth > 0
    depth = truth.astype(np.float32).copy()
    if labels is not None:
        glass = (labels == GLASS) & valid
        if glass.any():
            through = rng.uniform(*e.glass_through)
            depth[glass] *= np.float32(1.0 + through * (1.0 + 0.2 * smooth_field(rng, *truth.shape, 2)[glass]))
    if e.edge_sigma > 0:  # normalised blur: smooth across jumps, no bleeding of the 0 = none pixels
        weight = ndimage.gaussian_filter(valid.astype(np.float32), e.edge_sigma)
        depth = ndimage.gaussian_filter(depth * valid, e.edge_sigma) / np.maximum(weight, 1e-6)
    depth *= 1.0 + e.lowfreq_amp * smooth_field(rng, *truth.shape, e.lowfreq_cells)
    if rgb is not None and e.dark_amp > 0:
        dark = ndimage.gaussian_filter((luma(rgb) < e.dark_luma).astype(np.float32), 2.0)
        depth *= 1.0 + e.dark_amp * dark * smooth_field(rng, *truth.shape, 6)
    return np.where(valid, depth, 0.0).astype(np.float32)


def _labels(batch: dict, i: int):
    arrays = batch.get("truth_label")
    return None if arrays is None else arrays[i]


def _rgb(batch: dict, i: int):
    return None if batch.get("rgb") is None else batch["rgb"][i]


class SimDA3(Teacher):
    """DA3-like metric depth from truth depth: structured errors, a per-sequence bias, per-frame drift."""

    task = "depth"
    backend = "sim_da3"
    reads = ("truth_depth", "truth_label")
    simulated = True
    depth_kind = "metric"

    @dataclass(frozen=True)
    class Settings(DepthErrors):
        sequence_scale_sigma: float = 0.06  # log-scale bias shared by a sequence (a scene's scale error)
        scale_sigma: float = 0.03  # per-frame log-scale drift around it
        shift_sigma: float = 0.05  # m: per-frame shift
        seed: int = 0

    def predict(self, batch: dict) -> list:
        s = self.settings
        out = []
        for i, (key, truth) in enumerate(zip(batch["key"], require_truth(batch, "truth_depth", self.backend))):
            rng = frame_seed(s.seed, key, 1)
            bias = sequence_seed(s.seed, key, 11).normal(0.0, s.sequence_scale_sigma)
            scale = float(np.exp(bias + rng.normal(0.0, s.scale_sigma)))
            shift = float(rng.normal(0.0, s.shift_sigma))
            depth = structured_depth(truth, _labels(batch, i), _rgb(batch, i), rng, s)
            depth = np.maximum(depth * scale + shift, 0.05)
            out.append({"teacher_depth": np.where(truth > 0, depth, 0.0).astype(np.float32)})
        return out


class SimDA2(Teacher):
    """DA2-like relative inverse depth from truth depth."""

    task = "depth"
    backend = "sim_da2"
    reads = ("truth_depth", "truth_label")
    simulated = True
    depth_kind = "relative_inverse"

    @dataclass(frozen=True)
    class Settings(DepthErrors):
        scale_range: tuple[float, float] = (60.0, 240.0)  # a, per frame (m x DA2 units)
        shift_share: float = 0.3  # b = a x U(0, shift_share), per frame
        seed: int = 0

    def predict(self, batch: dict) -> list:
        s = self.settings
        out = []
        for i, (key, truth) in enumerate(zip(batch["key"], require_truth(batch, "truth_depth", self.backend))):
            rng = frame_seed(s.seed, key, 2)
            a = rng.uniform(*s.scale_range)
            b = rng.uniform(0.0, s.shift_share) * a
            depth = structured_depth(truth, _labels(batch, i), _rgb(batch, i), rng, s)
            inverse = np.divide(1.0, depth, out=np.zeros_like(depth), where=depth > 0)
            out.append({"teacher_depth": (a * inverse + b).astype(np.float32)})
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
        miss_rate: float = 0.1  # misses of large regions
        small_miss: float = 0.5  # extra miss probability of a small region (fades out above small_area)
        small_area: float = 0.01  # share of the image below which a region counts as small
        confusion: float = 0.05  # person <-> furniture class swaps
        jitter: float = 0.05  # edge noise, as a share of the box's width / height
        min_area: float = 0.0005  # share of the image; smaller regions are never detected
        seed: int = 0

    def detect(self, labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        s = self.settings
        height, width = labels.shape
        rows = []
        for cls in (PERSON, FURNITURE):
            for box, area in region_boxes(labels, cls, max(1, round(s.min_area * height * width))):
                share = area / (height * width)
                if rng.random() < s.miss_rate + s.small_miss * np.exp(-share / s.small_area):
                    continue
                label = cls if rng.random() >= s.confusion else (FURNITURE if cls == PERSON else PERSON)
                size = np.array([box[2] - box[0], box[3] - box[1]] * 2, np.float32)
                box = np.clip(box + rng.normal(0.0, s.jitter, 4) * size, 0, [width, height, width, height])
                if box[2] - box[0] < 1 or box[3] - box[1] < 1:
                    continue
                score = np.clip(0.3 + 0.65 * np.sqrt(area / (height * width)) * 4 + rng.normal(0, 0.05), 0.3, 0.99)
                rows.append([*box, score, label])
        rows.sort(key=lambda r: -r[4])
        return np.asarray(rows, np.float32).reshape(-1, 6)

    def predict(self, batch: dict) -> list:
        out = []
        for key, labels in zip(batch["key"], require_truth(batch, "truth_label", self.backend)):
            boxes = self.detect(labels, frame_seed(self.settings.seed, key, 3))
            out.append({"boxes": boxes, "source_class": np.full(len(boxes), -1, np.int32)})
        return out


def boxed_class(window: np.ndarray, cls: int) -> int:
    """The object class a box holds: its own class, or for a confused box the other object class it covers."""
    if (window == cls).any():
        return cls
    return FURNITURE if cls == PERSON else PERSON


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
        window = labels[y1:y2, x1:x2]
        inside[y1:y2, x1:x2] = window == boxed_class(window, int(box[5]))
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
