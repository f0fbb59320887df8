"""Camera geometry for bag extraction: transform chains, undistortion, depth re-projection.

- `chain(edges, source, target)`: the rigid transform taking points in frame
  `source` to frame `target`, composed along /tf_static edges (each edge
  read both ways).
- `undistort(image, k, model, d, nearest)`: resample an image of a
  plumb_bob / rational_polynomial camera to the ideal pinhole camera with
  the same K (bilinear for colour, nearest for depth so that no depth is
  blended).
- `reproject_depth(depth, k_depth, k_colour, T)`: depth measured by one
  camera as seen by the colour camera. Each depth pixel is splatted as its
  whole footprint (the rectangle its pixel covers at its depth, seen from the
  colour camera), so a continuous surface leaves no holes between splats
  that would later read as ToF failures; where splats overlap the nearest
  depth wins (z-buffer), so background never shows through foreground.
  Disoccluded areas that the depth camera never saw stay 0 (invalid).
"""

from __future__ import annotations

from collections import deque

import numpy as np

from distillery.ingest.bags.source import BagError
from distillery.ingest.frames import Intrinsics

UNDISTORT_MODELS = ("plumb_bob", "rational_polynomial")


def quaternion_matrix(x: float, y: float, z: float, w: float) -> np.ndarray:
    q = np.array([w, x, y, z], dtype=np.float64)
    q /= np.linalg.norm(q)
    w, x, y, z = q
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                     [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                     [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])


def rigid(translation, rotation_xyzw) -> np.ndarray:
    """4x4 matrix of a translation and an (x, y, z, w) quaternion."""
    t = np.eye(4)
    t[:3, :3] = quaternion_matrix(*rotation_xyzw)
    t[:3, 3] = translation
    return t


def chain(edges: dict[tuple[str, str], np.ndarray], source: str, target: str) -> np.ndarray:
    """4x4 transform mapping points in `source` to `target`.

    `edges[(parent, child)]` is the child's pose in the parent (a
    TransformStamped: points in child -> points in parent).
    """
    if source == target:
        return np.eye(4)
    graph: dict[str, list[tuple[str, np.ndarray]]] = {}
    for (parent, child), pose in edges.items():
        graph.setdefault(child, []).append((parent, pose))  # child -> parent: pose
        graph.setdefault(parent, []).append((child, np.linalg.inv(pose)))
    seen, queue = {source: np.eye(4)}, deque([source])
    while queue:
        frame = queue.popleft()
        for nxt, step in graph.get(frame, []):
            if nxt not in seen:
                seen[nxt] = step @ seen[frame]
                queue.append(nxt)
    if target not in seen:
        known = ", ".join(sorted(graph)) or "none"
        raise BagError(f"/tf_static has no transform chain from {source!r} to {target!r} (frames: {known}); "
                       "record /tf_static, or give the depth-to-colour transform with --extrinsic, "
                       "or --registered if the depth is already aligned to colour")
    return seen[target]


def _distort(x: np.ndarray, y: np.ndarray, model: str, d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    d = np.concatenate([d, np.zeros(8)])[:8]
    k1, k2, p1, p2, k3, k4, k5, k6 = d
    r2 = x * x + y * y
    radial = 1 + r2 * (k1 + r2 * (k2 + r2 * k3))
    if model == "rational_polynomial":
        radial = radial / (1 + r2 * (k4 + r2 * (k5 + r2 * k6)))
    xd = x * radial + 2 * p1 * x * y + p2 * (r2 + 2 * x * x)
    yd = y * radial + p1 * (r2 + 2 * y * y) + 2 * p2 * x * y
    return xd, yd


def is_distorted(d: np.ndarray) -> bool:
    return bool(d.size) and bool(np.any(np.abs(d) > 1e-12))


def undistort(image: np.ndarray, k: Intrinsics, model: str, d: np.ndarray, nearest: bool) -> np.ndarray:
    """`image` resampled to the distortion-free camera with the same K; outside pixels become 0."""
    if model not in UNDISTORT_MODELS:
        raise BagError(f"cannot undistort the {model!r} distortion model (supported: {', '.join(UNDISTORT_MODELS)})")
    h, w = image.shape[:2]
    v, u = np.mgrid[0:h, 0:w].astype(np.float64)
    xd, yd = _distort((u - k.cx) / k.fx, (v - k.cy) / k.fy, model, d)
    su, sv = xd * k.fx + k.cx, yd * k.fy + k.cy
    inside = (su >= 0) & (su <= w - 1) & (sv >= 0) & (sv <= h - 1)
    if nearest:
        out = image[np.clip(np.rint(sv), 0, h - 1).astype(int), np.clip(np.rint(su), 0, w - 1).astype(int)]
    else:
        u0, v0 = np.clip(np.floor(su), 0, w - 2).astype(int), np.clip(np.floor(sv), 0, h - 2).astype(int)
        a, b = (su - u0)[..., None], (sv - v0)[..., None]
        img = image.astype(np.float32).reshape(h, w, -1)
        out = ((1 - a) * (1 - b) * img[v0, u0] + a * (1 - b) * img[v0, u0 + 1]
               + (1 - a) * b * img[v0 + 1, u0] + a * b * img[v0 + 1, u0 + 1])
        out = np.rint(out).astype(image.dtype).reshape(image.shape)
    out = out.copy()
    out[~inside] = 0
    return out


def reproject_depth(depth: np.ndarray, k_d: Intrinsics, k_c: Intrinsics, t_cd: np.ndarray,
                    extra: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """Depth (and an optional per-pixel `extra`, e.g. confidence) seen from the colour camera.

    `t_cd` maps points in the depth camera's optical frame to the colour
    camera's. Returns arrays of the colour image's size; 0 = no reading.
    """
    v, u = np.nonzero(depth > 0)
    z = depth[v, u].astype(np.float32)
    rot, shift = t_cd[:3, :3].astype(np.float32), t_cd[:3, 3].astype(np.float32)
    x, y = (u.astype(np.float32) - k_d.cx) * (z / k_d.fx), (v.astype(np.float32) - k_d.cy) * (z / k_d.fy)
    xc = rot[0, 0] * x + rot[0, 1] * y + rot[0, 2] * z + shift[0]
    yc = rot[1, 0] * x + rot[1, 1] * y + rot[1, 2] * z + shift[1]
    zc = rot[2, 0] * x + rot[2, 1] * y + rot[2, 2] * z + shift[2]
    front = np.flatnonzero(zc > 1e-6)
    xc, yc, zc, z, u, v = xc[front], yc[front], zc[front], z[front], u[front], v[front]
    uc, vc = k_c.fx * xc / zc + k_c.cx, k_c.fy * yc / zc + k_c.cy
    # Half the footprint of one depth pixel, in colour pixels, at this depth (plus a hair against cracks).
    hx = 0.5 * k_c.fx * z / (k_d.fx * zc) + 0.01
    hy = 0.5 * k_c.fy * z / (k_d.fy * zc) + 0.01
    u0, u1 = np.ceil(uc - hx - 0.5).astype(np.int32), np.floor(uc + hx - 0.5).astype(np.int32)
    v0, v1 = np.ceil(vc - hy - 0.5).astype(np.int32), np.floor(vc + hy - 0.5).astype(np.int32)
    u0, v0 = np.maximum(u0, 0), np.maximum(v0, 0)
    u1, v1 = np.minimum(u1, k_c.width - 1), np.minimum(v1, k_c.height - 1)
    seen = np.flatnonzero((u0 <= u1) & (v0 <= v1))
    u0, u1, v0, v1, zc = u0[seen], u1[seen], v0[seen], v1[seen], zc[seen]
    size = k_c.height * k_c.width
    zbuf = np.full(size, np.inf, np.float32)
    owner = np.full(size, -1, dtype=np.int64)
    span_x, span_y = int((u1 - u0).max(initial=0)) + 1, int((v1 - v0).max(initial=0)) + 1
    cells, depths, ids = [], [], []
    for dy in range(span_y):
        for dx in range(span_x):
            ok = np.flatnonzero((u0 + dx <= u1) & (v0 + dy <= v1))
            cells.append((v0[ok] + dy) * k_c.width + (u0[ok] + dx))
            depths.append(zc[ok])
            ids.append(seen[ok])
    cell, zs, idx = np.concatenate(cells), np.concatenate(depths), np.concatenate(ids)
    np.minimum.at(zbuf, cell, zs)
    winner = zs == zbuf[cell]
    owner[cell[winner]] = idx[winner]
    out = np.where(np.isfinite(zbuf), zbuf, 0.0).astype(np.float32).reshape(k_c.height, k_c.width)
    carried = None
    if extra is not None:
        values = extra[v, u]  # owner ids index the points in front of the colour camera
        carried = np.where(owner >= 0, values[np.maximum(owner, 0)], 0).astype(extra.dtype)
        carried = carried.reshape(k_c.height, k_c.width)
    return out, carried
