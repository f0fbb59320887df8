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
  The rotated viewing ray of every depth pixel depends only on the stream's
  intrinsics and extrinsic, so it is computed once per stream, and a frame
  costs `rays * z + t` over the whole grid, with the points gathered once
  when their footprints are known (together 2.5-3x faster than per-frame
  rays and per-step gathers, with bit-identical output).
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


_RAYS: dict = {}  # (k_depth, rotation) -> rotated viewing rays of every depth pixel


def _rotated_rays(k_d: Intrinsics, rot: np.ndarray) -> np.ndarray:
    """R @ ((u - cx) / fx, (v - cy) / fy, 1) for every depth pixel, as float32 [3, h * w].

    Fixed for a stream (one intrinsic, one extrinsic), so it is computed once
    and a frame's points in the colour camera are `rays * z + t`."""
    key = (k_d, rot.tobytes())
    rays = _RAYS.get(key)
    if rays is None:
        v, u = np.divmod(np.arange(k_d.height * k_d.width), k_d.width)
        x = (u.astype(np.float32) - np.float32(k_d.cx)) / np.float32(k_d.fx)
        y = (v.astype(np.float32) - np.float32(k_d.cy)) / np.float32(k_d.fy)
        rays = rot[:, :2] @ np.stack([x, y]) + rot[:, 2:3]
        _RAYS.clear()  # one stream at a time: no growth over many bags in one process
        _RAYS[key] = rays
    return rays


def _grid_rays(k_d: Intrinsics, rot: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """The rotated rays of every pixel of a depth image of `shape`: the cached grid when it matches K."""
    if shape == (k_d.height, k_d.width):
        return _rotated_rays(k_d, rot)
    v, u = np.divmod(np.arange(shape[0] * shape[1]), shape[1])
    return rot[:, :2] @ np.stack([(u.astype(np.float32) - np.float32(k_d.cx)) / np.float32(k_d.fx),
                                  (v.astype(np.float32) - np.float32(k_d.cy)) / np.float32(k_d.fy)]) + rot[:, 2:3]


def reproject_depth(depth: np.ndarray, k_d: Intrinsics, k_c: Intrinsics, t_cd: np.ndarray,
                    extra: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """Depth (and an optional per-pixel `extra`, e.g. confidence) seen from the colour camera.

    `t_cd` maps points in the depth camera's optical frame to the colour
    camera's. Returns arrays of the colour image's size; 0 = no reading.
    Every step runs over the whole pixel grid (most depth pixels are valid)
    and the points are gathered once, when their footprints are known.
    """
    rot, shift = t_cd[:3, :3].astype(np.float32), t_cd[:3, 3].astype(np.float32)
    z = depth.reshape(-1).astype(np.float32, copy=False)
    rays = _grid_rays(k_d, rot, depth.shape)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):  # invalid pixels are masked below
        xc, yc, zc = rays[0] * z, rays[1] * z, rays[2] * z
        xc += shift[0]
        yc += shift[1]
        zc += shift[2]
        inv = 1 / zc
        uc, vc = k_c.fx * xc * inv + k_c.cx, k_c.fy * yc * inv + k_c.cy
        # Half the footprint of one depth pixel, in colour pixels, at this depth (plus a hair against cracks).
        hx = (0.5 * k_c.fx / k_d.fx) * z * inv + 0.01
        hy = (0.5 * k_c.fy / k_d.fy) * z * inv + 0.01
        front = (z > 0) & (zc > 1e-6)
        u0, u1 = np.ceil(uc - hx - 0.5), np.floor(uc + hx - 0.5)
        v0, v1 = np.ceil(vc - hy - 0.5), np.floor(vc + hy - 0.5)
        np.maximum(u0, 0, out=u0)
        np.maximum(v0, 0, out=v0)
        np.minimum(u1, k_c.width - 1, out=u1)
        np.minimum(v1, k_c.height - 1, out=v1)
        front &= (u0 <= u1) & (v0 <= v1)
    seen = np.flatnonzero(front)
    u0, v0, zc = u0[seen].astype(np.int32), v0[seen].astype(np.int32), zc[seen]
    du, dv = u1[seen].astype(np.int32) - u0, v1[seen].astype(np.int32) - v0
    return _splat(u0, v0, du, dv, zc, seen, k_c, extra)


def _splat(u0, v0, du, dv, zc, seen, k_c: Intrinsics, extra) -> tuple[np.ndarray, np.ndarray | None]:
    """z-buffer the footprints [u0, u0 + du] x [v0, v0 + dv] of the points `seen` (depth pixel ids) at `zc`."""
    size = k_c.height * k_c.width
    zbuf = np.full(size, np.inf, np.float32)
    span_x, span_y = int(du.max(initial=0)) + 1, int(dv.max(initial=0)) + 1
    base = v0 * k_c.width + u0
    cells, depths, ids = [base], [zc], [seen]  # every footprint covers its first cell
    for dy in range(span_y):
        for dx in range(span_x):
            if dx or dy:
                ok = np.flatnonzero((du >= dx) & (dv >= dy))
                cells.append(base[ok] + (dy * k_c.width + dx))
                depths.append(zc[ok])
                ids.append(seen[ok])
    cell, zs = np.concatenate(cells), np.concatenate(depths)
    np.minimum.at(zbuf, cell, zs)
    out = np.where(np.isfinite(zbuf), zbuf, np.float32(0)).reshape(k_c.height, k_c.width)
    carried = None
    if extra is not None:
        idx = np.concatenate(ids)
        owner = np.full(size, -1, dtype=np.int64)
        winner = zs == zbuf[cell]
        owner[cell[winner]] = idx[winner]
        values = extra.reshape(-1)  # owner ids are depth pixel ids
        carried = np.where(owner >= 0, values[np.maximum(owner, 0)], 0).astype(extra.dtype)
        carried = carried.reshape(k_c.height, k_c.width)
    return out, carried
