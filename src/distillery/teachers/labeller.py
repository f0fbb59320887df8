"""The geometric labeller: 6-class labels from metric teacher depth, intrinsics, ToF and detection masks.

Rules, applied per frame (thresholds are `LabellerSettings` fields):
1. Person / furniture: the detection masks, painted in score order (a higher score wins).
   These pixels take no part in the plane fits below.
2. Geometry: back-project the teacher depth with the intrinsics (camera frame: x right, y down,
   z forward); normals from central differences of the point map, box-smoothed; a normal is
   invalid across depth jumps.
3. Floor: RANSAC plane over points at least `floor_below_m` below the camera whose normals are
   within `floor_max_tilt_deg` of the camera's up (-y), refined by least squares. Kept when it
   holds `floor_min_share` of the valid pixels and puts the camera 0.05-3 m above it. Floor =
   pixels within `plane_tol_m + plane_tol_rel * depth` of it whose normal (if valid) agrees
   within `normal_tol_deg`. The floor normal is "up" from then on (camera up without a floor).
4. Walls: sequential RANSAC of VERTICAL planes (two points plus the up vector define one) over
   the remaining points with near-horizontal normals (within `wall_max_tilt_deg`), up to
   `max_walls`, each holding at least `wall_min_share` of the valid pixels. Inliers are wall.
5. Glass: wall pixels where the ToF lost the surface the teacher sees (no reading, confidence
   below `tof_min_confidence`, or a reading `through_margin` deeper than the teacher's surface)
   and the loss is not explained by the sensor's physics: not beyond its range
   (`tof_max_range_m`), and not a weak return. A ToF return's amplitude goes as
   albedo * cos(incidence) / range^2, so dark, far and grazing surfaces fall below the sensor's
   floor; with image luma standing in for the IR albedo, a pixel whose expected return
   luma * |cos| / range^2 is below `weak_return` has an explained loss. Glass regions smaller
   than `glass_min_share` of the frame stay wall.
6. Other: every remaining pixel with teacher depth; 255 (ignore) where the teacher has none.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from distillery.classes import FLOOR, FURNITURE, GLASS, OTHER, PERSON, WALL
from distillery.classes import IGNORE_LABEL as IGNORE
CAMERA_UP = np.array([0.0, -1.0, 0.0])


@dataclass(frozen=True)
class LabellerSettings:
    normal_step: int = 2
    normal_smooth: int = 5
    floor_below_m: float = 0.1
    floor_max_tilt_deg: float = 35.0
    floor_min_share: float = 0.03
    plane_tol_m: float = 0.04
    plane_tol_rel: float = 0.03
    normal_tol_deg: float = 40.0
    ransac_iters: int = 150
    ransac_sample: int = 3000
    wall_max_tilt_deg: float = 15.0
    wall_min_share: float = 0.005
    max_walls: int = 8
    tof_min_confidence: float = 0.2
    tof_max_range_m: float = 4.0
    through_margin: float = 0.15
    weak_return: float = 0.01
    glass_min_share: float = 0.002
    seed: int = 0


def paint_masks(masks: np.ndarray, scores: np.ndarray, classes: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Class per pixel from detection masks, IGNORE where none; higher scores are painted last and win."""
    painted = np.full(shape, IGNORE, np.uint8)
    for i in np.argsort(scores, kind="stable"):
        painted[masks[i]] = classes[i]
    return painted


def backproject(depth: np.ndarray, intrinsics) -> np.ndarray:
    """Points [H, W, 3] in the camera frame (x right, y down, z forward), metres."""
    fx, fy, cx, cy = (float(v) for v in intrinsics)
    v, u = np.indices(depth.shape, dtype=np.float32)
    return np.stack([(u - cx) / fx * depth, (v - cy) / fy * depth, depth], axis=-1)


def normals(points: np.ndarray, valid: np.ndarray, step: int, smooth: int) -> tuple[np.ndarray, np.ndarray]:
    """Unit normals facing the camera, and where they are valid (not across depth jumps or borders)."""
    pad = np.pad(points, ((step, step), (step, step), (0, 0)), mode="edge")
    z = pad[..., 2]
    h, w = points.shape[:2]
    right, left = pad[step:step + h, 2 * step:], pad[step:step + h, :w]
    down, up = pad[2 * step:, step:step + w], pad[:h, step:step + w]
    n = np.cross(right - left, down - up)
    n = np.stack([ndimage.uniform_filter(n[..., i], smooth) for i in range(3)], axis=-1)
    norm = np.linalg.norm(n, axis=-1, keepdims=True)
    n = n / np.maximum(norm, 1e-12)
    n *= np.where(np.sum(n * points, axis=-1, keepdims=True) > 0, -1.0, 1.0)  # face the camera
    zc = z[step:step + h, step:step + w]
    jump = np.maximum.reduce([np.abs(a[..., 2] - zc) for a in (right, left, down, up)]) > 0.1 * step * np.maximum(zc, 1e-3)
    ok = valid & (norm[..., 0] > 0) & ~jump
    ok[:step], ok[-step:], ok[:, :step], ok[:, -step:] = False, False, False, False
    return n, ok


def plane_tolerance(points: np.ndarray, s: LabellerSettings) -> np.ndarray:
    return s.plane_tol_m + s.plane_tol_rel * points[..., 2]


def plane_inliers(points, normals_, normal_ok, plane, s: LabellerSettings) -> np.ndarray:
    """Points near the plane whose normal, where valid, agrees with it."""
    n, d = plane
    near = np.abs(points @ n + d) < plane_tolerance(points, s)
    agree = np.abs(normals_ @ n) > np.cos(np.radians(s.normal_tol_deg))
    return near & (agree | ~normal_ok)


def refine_plane(pts: np.ndarray, up: np.ndarray) -> tuple[np.ndarray, float]:
    """Least-squares plane through points, normal oriented along `up`."""
    centre = pts.mean(axis=0)
    n = np.linalg.svd(pts - centre, full_matrices=False)[2][-1]
    n = n if n @ up >= 0 else -n
    return n, float(-n @ centre)


def ransac(points, normals_, candidates, hypotheses, s: LabellerSettings, rng, k: int):
    """Best plane (n, d) by inlier count on a sub-sample of candidate points, or None.

    `hypotheses` maps point tuples [iters, k, 3] to normals [iters, 3] and a
    mask of usable ones; all hypotheses are scored at once.
    """
    idx = np.flatnonzero(candidates)
    if len(idx) < max(k, 3):
        return None
    sample = rng.choice(idx, min(len(idx), s.ransac_sample), replace=False)
    pts, nrm = points.reshape(-1, 3)[sample], normals_.reshape(-1, 3)[sample]
    picks = pts[rng.integers(0, len(pts), (s.ransac_iters, k))]
    n, usable = hypotheses(picks)
    if not usable.any():
        return None
    n = n[usable]
    d = -np.einsum("ij,ij->i", n, picks[usable, 0])
    near = np.abs(pts @ n.T + d) < plane_tolerance(pts, s)[:, None]
    agree = np.abs(nrm @ n.T) > np.cos(np.radians(s.normal_tol_deg))
    best = int(np.argmax(np.count_nonzero(near & agree, axis=0)))
    return n[best], float(d[best])


def _unit(v: np.ndarray, min_norm: float) -> tuple[np.ndarray, np.ndarray]:
    norm = np.linalg.norm(v, axis=-1, keepdims=True)
    return v / np.maximum(norm, 1e-12), norm[..., 0] > min_norm


def floor_hypotheses(p: np.ndarray, max_tilt_cos: float):
    """Planes through point triples, oriented up, kept when tilted less than the floor may be."""
    n, ok = _unit(np.cross(p[:, 1] - p[:, 0], p[:, 2] - p[:, 0]), 1e-9)
    n *= np.where(n @ CAMERA_UP < 0, -1.0, 1.0)[:, None]
    return n, ok & (n @ CAMERA_UP >= max_tilt_cos)


def wall_hypotheses(p: np.ndarray, up: np.ndarray):
    """Vertical planes through point pairs: the normal is horizontal, across the pair."""
    return _unit(np.cross(p[:, 1] - p[:, 0], up), 0.05)  # pairs closer than 5 cm define no wall


def fit_floor(points, normals_, normal_ok, free, s: LabellerSettings, rng):
    """The floor plane (n, d) with n pointing up, or None when the frame shows too little floor."""
    tilt_cos = np.cos(np.radians(s.floor_max_tilt_deg))
    below = points @ CAMERA_UP < -s.floor_below_m
    cand = free & normal_ok & below & (normals_ @ CAMERA_UP > tilt_cos)
    plane = ransac(points, normals_, cand, lambda p: floor_hypotheses(p, tilt_cos), s, rng, 3)
    if plane is None:
        return None
    inliers = plane_inliers(points, normals_, normal_ok, plane, s) & free & below
    if inliers.sum() < s.floor_min_share * free.sum():
        return None
    n, d = refine_plane(points[inliers], CAMERA_UP)
    return (n, d) if 0.05 <= d <= 3.0 and n @ CAMERA_UP > tilt_cos else None


def fit_walls(points, normals_, normal_ok, free, up, s: LabellerSettings, rng) -> np.ndarray:
    """Pixels on large vertical planes."""
    wall = np.zeros(free.shape, bool)
    cand = free & normal_ok & (np.abs(normals_ @ up) < np.sin(np.radians(s.wall_max_tilt_deg)))
    need = s.wall_min_share * free.sum()
    for _ in range(s.max_walls):
        plane = ransac(points, normals_, cand, lambda p: wall_hypotheses(p, up), s, rng, 2)
        if plane is None:
            break
        inliers = plane_inliers(points, normals_, normal_ok, plane, s) & free & ~wall
        if inliers.sum() < need:
            break
        wall |= inliers
        cand &= ~inliers
    return wall


def expected_return(points: np.ndarray, normals_: np.ndarray, rgb: np.ndarray) -> np.ndarray:
    """The ToF amplitude a surface should give, up to the sensor's constant: luma * |cos incidence| / range^2."""
    range_sq = np.maximum(np.sum(points * points, axis=-1), 1e-6)
    cos = np.abs(np.sum(points * normals_, axis=-1)) / np.sqrt(range_sq)
    luma = (rgb.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)) / 255.0
    return luma * cos / range_sq


def glass_pixels(wall, depth, points, normals_, tof, confidence, rgb, s: LabellerSettings) -> np.ndarray:
    """Wall pixels whose ToF loss only a transparent surface explains (rule 5)."""
    lost = (tof <= 0) | (confidence < s.tof_min_confidence) | (tof > depth * (1 + s.through_margin))
    glass = wall & lost & (depth <= s.tof_max_range_m) & (expected_return(points, normals_, rgb) >= s.weak_return)
    comp, n = ndimage.label(glass)
    if n:
        small = np.bincount(comp.ravel())[1:] < s.glass_min_share * glass.size
        glass &= ~np.isin(comp, np.flatnonzero(small) + 1)
    return glass


def label_frame(depth, intrinsics, tof, confidence, rgb, painted, s: LabellerSettings = LabellerSettings(),
                rng: np.random.Generator | None = None) -> np.ndarray:
    """The 6-class label of one frame; `painted` holds the mask classes (IGNORE where no mask)."""
    rng = rng or np.random.default_rng(s.seed)
    depth = np.asarray(depth, np.float32)
    tof = np.asarray(tof, np.float32)
    valid = np.isfinite(depth) & (depth > 0)
    depth = np.where(valid, depth, 0.0)
    points = backproject(depth, intrinsics)
    normals_, normal_ok = normals(points, valid, s.normal_step, s.normal_smooth)
    free = valid & (painted == IGNORE)
    label = np.where(valid, OTHER, IGNORE).astype(np.uint8)
    floor_plane = fit_floor(points, normals_, normal_ok, free, s, rng)
    up = CAMERA_UP
    if floor_plane is not None:
        floor = plane_inliers(points, normals_, normal_ok, floor_plane, s) & free
        label[floor] = FLOOR
        free &= ~floor
        up = floor_plane[0]
    wall = fit_walls(points, normals_, normal_ok, free, up, s, rng)
    label[wall] = WALL
    label[glass_pixels(wall, depth, points, normals_, tof, np.asarray(confidence, np.float32), rgb, s)] = GLASS
    masked = painted != IGNORE
    label[masked] = painted[masked]
    return label
