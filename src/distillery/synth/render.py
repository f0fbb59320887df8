"""Vectorised numpy ray caster for the synthetic world, and the frame renderer.

All rays of a frame are cast at once as three float32 arrays of direction
components (structure of arrays, so a screen rectangle is a cheap slice).
Ray directions have a camera-frame z of exactly 1, so the ray parameter of a
hit *is* the z-depth along the optical axis, which is what depth maps store;
the range along the ray is that times the direction's length.

Each primitive (see `primitives`) is tested only inside the screen rectangle
its bounding box projects to, and primitives behind glass (zone 1: offices,
the outside) only inside the rectangles of the glass panes, so the cost stays
close to one test per covered pixel. Shading is deferred: the z-buffer keeps
the primitive index and normal, then `shading` computes texture and light
once per pixel. World frame: z up, floor at z = 0. Camera frame: OpenCV
(x right, y down, z forward).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from distillery.synth.camera import Camera, Rays, ZBuffer
from distillery.synth.primitives import F32, NEAR
from distillery.synth.shading import FrameScene, composite_glass, expose, shade_opaque


# The 12 edges of a box as pairs of corner indices, numbered as `primitives.box_corners` numbers them.
_BOX_EDGES = np.array([(0, 1), (2, 3), (4, 5), (6, 7), (0, 2), (1, 3), (4, 6), (5, 7), (0, 4), (1, 5), (2, 6), (3, 7)])


def screen_rects(corners: np.ndarray, rays: Rays) -> np.ndarray:
    """Pixel rectangles [P, 4] (v0, v1, u0, u1) covering each box's projection, clipped at NEAR.

    Box edges that cross the near plane contribute their crossing point, so a
    wall that reaches behind the camera still gets a tight rectangle.
    """
    cam = (corners - np.asarray(rays.origin)) @ rays.rotation  # world -> camera frame
    a, b = cam[:, _BOX_EDGES[:, 0]], cam[:, _BOX_EDGES[:, 1]]
    za, zb = a[..., 2], b[..., 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        w = (NEAR - za) / (zb - za)
    crossing = ((za - NEAR) * (zb - NEAR) < 0)[..., None]
    with np.errstate(invalid="ignore"):
        points = np.concatenate([cam, np.where(crossing, a + w[..., None] * (b - a), np.nan)], axis=1)
    points[points[..., 2] < NEAR - 1e-9] = np.nan
    k = rays.camera
    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows: boxes wholly behind the camera
        u = k.fx * points[..., 0] / points[..., 2] + k.cx
        v = k.fy * points[..., 1] / points[..., 2] + k.cy
        rect = np.stack([np.nanmin(v, 1), np.nanmax(v, 1), np.nanmin(u, 1), np.nanmax(u, 1)], 1)
    behind = np.isnan(rect).any(1)
    rect = np.nan_to_num(rect, nan=-1.0, posinf=1e6, neginf=-1e6)
    rect[:, [0, 2]] = np.floor(rect[:, [0, 2]]) - 1
    rect[:, [1, 3]] = np.ceil(rect[:, [1, 3]]) + 2
    rect[:, :2] = np.clip(rect[:, :2], 0, k.height)
    rect[:, 2:] = np.clip(rect[:, 2:], 0, k.width)
    rect[behind] = 0
    return rect.astype(np.int64)


def _through_portals(rects: np.ndarray, portals: np.ndarray) -> np.ndarray:
    """Each rectangle cut down to the bounding box of its overlaps with the portal rectangles."""
    if len(portals) == 0:
        return np.zeros_like(rects)
    r, p = rects[:, None, :], portals[None, :, :]
    cut = np.concatenate([np.maximum(r[..., 0::2], p[..., 0::2]), np.minimum(r[..., 1::2], p[..., 1::2])], -1)
    ok = (cut[..., 0] < cut[..., 2]) & (cut[..., 1] < cut[..., 3])  # cut is (v0, u0, v1, u1)
    big = np.iinfo(np.int64).max
    lo = np.where(ok[..., None], cut[..., :2], big).min(1)
    hi = np.where(ok[..., None], cut[..., 2:], -big).max(1)
    out = np.stack([lo[:, 0], hi[:, 0], lo[:, 1], hi[:, 1]], 1)
    out[~ok.any(1)] = 0
    return out


def _visible(rects: np.ndarray) -> np.ndarray:
    """Indices of the rectangles that cover at least one pixel."""
    return np.flatnonzero((rects[:, 0] < rects[:, 1]) & (rects[:, 2] < rects[:, 3]))


def cast(prims: list, zones: np.ndarray, corners: np.ndarray, glass: list, glass_corners: np.ndarray, rays: Rays):
    """Z-buffer the opaque primitives and, separately, the glass panes in front of them.

    Zone-1 primitives are only visible through glass, so they are tested only
    inside the bounding box of their overlaps with visible panes.
    """
    k = rays.camera
    opaque, panes = ZBuffer(k.height, k.width), ZBuffer(k.height, k.width)
    rects = screen_rects(corners, rays) if len(prims) else np.zeros((0, 4), np.int64)
    glass_rects = screen_rects(glass_corners, rays) if len(glass) else np.zeros((0, 4), np.int64)
    hidden = zones == 1
    rects[hidden] = _through_portals(rects[hidden], glass_rects[_visible(glass_rects)])
    for i in _visible(rects).tolist():
        opaque.add(i, prims[i], rays, rects[i].tolist())
    for j in _visible(glass_rects).tolist():
        panes.add(j, glass[j], rays, glass_rects[j].tolist())
    panes.index[panes.depth >= opaque.depth] = -1
    return opaque, panes


@dataclass
class Rendering:
    """Ground truth of one frame plus the surface facts the ToF simulation needs."""

    rgb: np.ndarray  # uint8 [H, W, 3]
    depth: np.ndarray  # float32 z-depth of the first surface, glass included; 0 = nothing hit
    semantics: np.ndarray  # uint8 class ids
    instances: np.ndarray  # uint16, 0 = stuff
    ray_length: np.ndarray  # |direction| for camera z = 1: range = depth * ray_length
    cos_incidence: np.ndarray  # of the first surface
    nir: np.ndarray  # near-infrared albedo of the first opaque surface
    polished: np.ndarray  # bool, first opaque surface is mirror-like
    glass: np.ndarray  # bool, first surface is glass
    behind_depth: np.ndarray  # z-depth of the first opaque surface (behind glass where glass)
    behind_cos: np.ndarray  # incidence cosine on that opaque surface


def render(scene, camera: Camera, rotation: np.ndarray, position: np.ndarray, rng: np.random.Generator) -> Rendering:
    """Ray-cast one frame of `scene` (a `FrameScene`) from a camera-to-world pose."""
    rays = Rays(camera, rotation, position)
    opaque, panes = cast(scene.opaque.prims, scene.opaque.zones, scene.opaque.corners,
                         scene.glass.prims, scene.glass.corners, rays)
    lin, behind_depth, behind_cos, nir, index, hit = shade_opaque(scene, rays, opaque)
    glass = panes.index >= 0
    semantics = np.where(hit, scene.opaque.semantic[index], np.uint8(5))
    instances = np.where(hit, scene.opaque.instance[index], np.uint16(0))
    depth, cos_inc = behind_depth, behind_cos
    if glass.any():
        composite_glass(scene, rays, panes, lin)
        pane = np.maximum(panes.index, 0)
        depth = np.where(glass, panes.depth, behind_depth)
        pane_cos = np.abs(panes.normal[0] * rays.d[0] + panes.normal[1] * rays.d[1] + panes.normal[2] * rays.d[2]) / rays.length
        cos_inc = np.where(glass, pane_cos, behind_cos)
        semantics = np.where(glass, scene.glass.semantic[pane], semantics)
        instances = np.where(glass, scene.glass.instance[pane], instances)
    polished = np.array([m.polished for m in scene.materials], bool)[scene.opaque.material[index]] & hit
    return Rendering(expose(lin, scene.lighting.exposure, camera, rng), depth.astype(F32), semantics.astype(np.uint8),
                     instances.astype(np.uint16), rays.length, cos_inc.astype(F32), nir.astype(F32), polished,
                     glass, behind_depth.astype(F32), behind_cos.astype(F32))
