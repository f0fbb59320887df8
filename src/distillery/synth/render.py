"""Vectorised numpy ray caster and shader for the synthetic world.

All rays of a frame are cast at once as three float32 arrays of direction
components (structure of arrays, so a screen rectangle is a cheap slice).
Ray directions have a camera-frame z of exactly 1, so the ray parameter of a
hit *is* the z-depth along the optical axis, which is what depth maps store;
the range along the ray is that times the direction's length.

Each primitive is tested only inside the screen rectangle its bounding box
projects to, and primitives behind glass (zone 1: offices, the outside) only
inside the rectangles of the glass panes, so the cost stays close to one test
per covered pixel. Shading is deferred: the z-buffer keeps the primitive
index and normal, then texture and light are computed once per pixel.
World frame: z up, floor at z = 0. Camera frame: OpenCV (x right, y down,
z forward).
"""

from __future__ import annotations

import functools
import math
import warnings
from dataclasses import dataclass

import numpy as np

NEAR = 0.05  # metres; hits closer than this are ignored
F32 = np.float32
_INF = F32(np.inf)


@dataclass(frozen=True)
class Look:
    """What a hit on a primitive means: material, class, instance and albedo."""

    material: int
    semantic: int
    instance: int = 0
    colour: tuple[float, float, float] = (0.5, 0.5, 0.5)  # linear RGB albedo


@dataclass(frozen=True)
class Rect:
    """A two-sided rectangle in the plane p[axis] = offset, bounded on the other axes."""

    axis: int
    offset: float
    lo: tuple[float, float]  # bounds on the two other axes, in increasing axis order
    hi: tuple[float, float]
    look: Look

    def bounds(self):
        lo, hi = [0.0] * 3, [0.0] * 3
        others = [a for a in range(3) if a != self.axis]
        lo[self.axis] = hi[self.axis] = self.offset
        for k, a in enumerate(others):
            lo[a], hi[a] = self.lo[k], self.hi[k]
        return lo, hi

    def intersect(self, o, d):
        a, (b, c) = self.axis, [k for k in range(3) if k != self.axis]
        with np.errstate(divide="ignore", invalid="ignore"):
            t = (self.offset - o[a]) / d[a]
            pb, pc = o[b] + t * d[b], o[c] + t * d[c]
            inside = (pb >= self.lo[0]) & (pb <= self.hi[0]) & (pc >= self.lo[1]) & (pc <= self.hi[1])
        normal = [0.0, 0.0, 0.0]
        normal[a] = 1.0
        return np.where(inside, t, _INF), normal


@dataclass(frozen=True)
class Box:
    """A box, axis-aligned in its own frame, turned by `yaw` radians about the vertical."""

    centre: tuple[float, float, float]
    half: tuple[float, float, float]
    look: Look
    yaw: float = 0.0

    def bounds(self):
        c, s = abs(math.cos(self.yaw)), abs(math.sin(self.yaw))
        hx = c * self.half[0] + s * self.half[1]
        hy = s * self.half[0] + c * self.half[1]
        ext = (hx, hy, self.half[2])
        return [self.centre[i] - ext[i] for i in range(3)], [self.centre[i] + ext[i] for i in range(3)]

    def intersect(self, o, d):
        c, s = math.cos(self.yaw), math.sin(self.yaw)
        ox, oy = o[0] - self.centre[0], o[1] - self.centre[1]
        ol = (c * ox + s * oy, -s * ox + c * oy, o[2] - self.centre[2])
        dl = (d[0], d[1], d[2]) if self.yaw == 0.0 else (c * d[0] + s * d[1], -s * d[0] + c * d[1], d[2])
        near, far = [], []
        with np.errstate(divide="ignore", invalid="ignore"):
            for k in range(3):
                inv = F32(1.0) / dl[k]
                ta, tb = (-self.half[k] - ol[k]) * inv, (self.half[k] - ol[k]) * inv
                near.append(np.minimum(ta, tb))
                far.append(np.maximum(ta, tb))
        t_in = np.maximum(np.maximum(near[0], near[1]), near[2])
        t_out = np.minimum(np.minimum(far[0], far[1]), far[2])
        t = np.where(t_in > NEAR, t_in, t_out)  # from inside (the sky box) the exit is the hit
        t = np.where((t_out >= t_in) & (t_out > NEAR), t, _INF)
        on_x = (t == near[0]) | (t == far[0])
        on_y = ((t == near[1]) | (t == far[1])) & ~on_x
        nxl, nyl = on_x.astype(F32), on_y.astype(F32)
        if self.yaw == 0.0:
            return t, [nxl, nyl, F32(1.0) - nxl - nyl]
        return t, [c * nxl - s * nyl, s * nxl + c * nyl, F32(1.0) - nxl - nyl]


@dataclass(frozen=True)
class Cylinder:
    """A vertical closed cylinder (legs, torsos, bins, pots)."""

    x: float
    y: float
    z0: float
    z1: float
    radius: float
    look: Look

    def bounds(self):
        r = self.radius
        return [self.x - r, self.y - r, self.z0], [self.x + r, self.y + r, self.z1]

    def intersect(self, o, d):
        ox, oy, r = o[0] - self.x, o[1] - self.y, self.radius
        a = d[0] * d[0] + d[1] * d[1]
        b = ox * d[0] + oy * d[1]
        disc = b * b - a * (ox * ox + oy * oy - r * r)
        with np.errstate(divide="ignore", invalid="ignore"):
            t = (-b - np.sqrt(np.maximum(disc, 0))) / a
            z = o[2] + t * d[2]
            t = np.where((disc >= 0) & (z >= self.z0) & (z <= self.z1), t, _INF)
            nx, ny, nz = (ox + t * d[0]) / r, (oy + t * d[1]) / r, F32(0.0)
            if o[2] > self.z1 or o[2] < self.z0:  # one cap faces the camera
                tc = ((self.z1 if o[2] > self.z1 else self.z0) - o[2]) / d[2]
                cx, cy = ox + tc * d[0], oy + tc * d[1]
                cap = (cx * cx + cy * cy <= r * r) & (tc < t)
                t = np.where(cap, tc, t)
                nx, ny, nz = np.where(cap, 0, nx), np.where(cap, 0, ny), cap.astype(F32)
        return t, [nx, ny, nz]


@dataclass(frozen=True)
class Sphere:
    """A sphere (heads, hair, foliage)."""

    centre: tuple[float, float, float]
    radius: float
    look: Look

    def bounds(self):
        r = self.radius
        return [c - r for c in self.centre], [c + r for c in self.centre]

    def intersect(self, o, d):
        oc = [o[k] - self.centre[k] for k in range(3)]
        a = d[0] * d[0] + d[1] * d[1] + d[2] * d[2]
        b = oc[0] * d[0] + oc[1] * d[1] + oc[2] * d[2]
        disc = b * b - a * (oc[0] ** 2 + oc[1] ** 2 + oc[2] ** 2 - self.radius**2)
        with np.errstate(invalid="ignore"):
            t = np.where(disc >= 0, (-b - np.sqrt(np.maximum(disc, 0))) / a, _INF)
        return t, [(oc[k] + t * d[k]) / self.radius for k in range(3)]


@dataclass(frozen=True)
class Camera:
    """Pinhole intrinsics in pixels (pixel centres at integer coordinates)."""

    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int

    @functools.cached_property
    def grid(self) -> tuple[np.ndarray, np.ndarray]:
        """Camera-frame ray slopes: x/z per column (1, W) and y/z per row (H, 1)."""
        u = (np.arange(self.width, dtype=np.float64) - self.cx) / self.fx
        v = (np.arange(self.height, dtype=np.float64) - self.cy) / self.fy
        return u.astype(F32)[None, :], v.astype(F32)[:, None]


class Rays:
    """One ray per pixel from the camera centre, in world coordinates, camera z = 1."""

    def __init__(self, camera: Camera, rotation: np.ndarray, position: np.ndarray):
        u, v = camera.grid
        r = [[float(x) for x in row] for row in rotation]
        self.origin = [float(x) for x in position]
        self.d = [(r[i][0] * u + r[i][1] * v + r[i][2]).astype(F32) for i in range(3)]
        self.length = np.sqrt(self.d[0] ** 2 + self.d[1] ** 2 + self.d[2] ** 2)
        self.rotation, self.camera = np.asarray(rotation, np.float64), camera

    def view(self, rect):
        v0, v1, u0, u1 = rect
        return [c[v0:v1, u0:u1] for c in self.d]


_BOX_EDGES = np.array([(0, 1), (2, 3), (4, 5), (6, 7), (0, 2), (1, 3), (4, 6), (5, 7), (0, 4), (1, 5), (2, 6), (3, 7)])


def box_corners(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """The 8 corners of each AABB, [P, 8, 3], corner k taking hi on axis i when bit i of k is set."""
    bits = ((np.arange(8)[:, None] >> np.arange(3)[None, :]) & 1).astype(bool)
    return np.where(bits[None], hi[:, None, :], lo[:, None, :])


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


class ZBuffer:
    """Nearest hit per pixel: z-depth, primitive index and (unoriented) normal."""

    def __init__(self, height: int, width: int):
        self.depth = np.full((height, width), _INF, F32)
        self.index = np.full((height, width), -1, np.int32)
        self.normal = [np.zeros((height, width), F32) for _ in range(3)]

    def add(self, k: int, prim, rays: Rays, rect) -> None:
        v0, v1, u0, u1 = rect
        t, normal = prim.intersect(rays.origin, rays.view(rect))
        depth = self.depth[v0:v1, u0:u1]
        closer = (t < depth) & (t > NEAR)
        np.copyto(depth, t, where=closer)
        np.copyto(self.index[v0:v1, u0:u1], k, where=closer)
        for c in range(3):
            np.copyto(self.normal[c][v0:v1, u0:u1], normal[c], where=closer)


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


@dataclass(frozen=True)
class Material:
    """How a surface looks (procedural pattern, gloss) and how the ToF sensor sees it."""

    pattern: str = "plain"  # plain | paint | tiles | wood | fabric | carpet | metal | emissive | sky
    scale: float = 1.0  # pattern period in metres
    contrast: float = 0.08
    specular: float = 0.0
    shininess: float = 24.0
    nir_gain: float = 1.0  # near-infrared reflectivity relative to visible luminance
    polished: bool = False  # mirror-like: the ToF gets no return at grazing incidence
    emission: float = 0.0  # emissive surfaces are not lit; their albedo times this is their radiance
    skirting: float = 0.0  # height of a dark skirting board on vertical surfaces, metres


@dataclass(frozen=True)
class Lighting:
    """Ceiling light panels, each with a downward point light `drop` metres below it, plus ambient."""

    panels: np.ndarray  # [L, 3] panel centres
    intensity: float
    reach: float  # metres at which a light has fallen to half its intensity
    colour: tuple[float, float, float]
    ambient: float
    exposure: float
    drop: float = 0.15
    panel: tuple[float, float] = (0.6, 0.3)  # half sizes along x and y
    panel_radiance: float = 3.0


@functools.lru_cache(maxsize=1)
def _noise_tables() -> tuple[np.ndarray, np.ndarray]:
    """A tileable smooth noise (about [-1, 1]) and a white noise ([0, 1)) 256 x 256 table."""
    rng = np.random.default_rng(0x5EED)
    size, smooth = 256, np.zeros((256, 256))
    for level, cells in enumerate((4, 8, 16, 32, 64)):
        grid = rng.standard_normal((cells, cells))
        x = np.arange(size) * cells / size
        i0 = np.floor(x).astype(int)
        f = (x - i0) * (x - i0) * (3 - 2 * (x - i0))
        i1 = (i0 + 1) % cells
        rows = grid[i0] * (1 - f)[:, None] + grid[i1] * f[:, None]
        smooth += (rows[:, i0] * (1 - f)[None, :] + rows[:, i1] * f[None, :]) * 0.6**level
    return (smooth / np.abs(smooth).max()).astype(F32), rng.random((size, size)).astype(F32)


def _sample(table: np.ndarray, s: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Nearest-texel lookup, the table repeating once per unit of s and t."""
    i = (s * F32(256) + F32(2**20)).astype(np.int32) & 255  # the offset keeps negatives from mirroring
    j = (t * F32(256) + F32(2**20)).astype(np.int32) & 255
    return table[j, i]


def _tiles(s, t, pixel, c):
    """Tiles of unit size with grout lines; lines thinner than a pixel fade instead of aliasing."""
    smooth, white = _noise_tables()
    i, j = np.floor(s), np.floor(t)
    fs, ft = s - i, t - j
    edge = np.minimum(np.minimum(fs, 1 - fs), np.minimum(ft, 1 - ft))
    half_width = np.maximum(pixel * F32(0.5), F32(0.012))
    jitter = _sample(white, i * F32(0.0371), j * F32(0.0293)) - F32(0.5)
    tile = 1 + c * F32(2) * jitter + F32(0.04) * _sample(smooth, s * F32(0.3), t * F32(0.3))
    return np.where(edge < half_width, 1 - F32(0.45 * 0.012) / half_width, tile)


def pattern_factor(m: Material, s: np.ndarray, t: np.ndarray, footprint: np.ndarray | None = None) -> np.ndarray:
    """Multiplicative albedo texture of material `m` at in-plane coordinates s, t (metres).

    `footprint` is the size of a pixel on the surface in metres (tiles use it
    to fade grout lines thinner than a pixel instead of aliasing them).
    """
    smooth, white = _noise_tables()
    height = t
    s, t, c = s / F32(m.scale), t / F32(m.scale), F32(m.contrast)
    if m.pattern == "tiles":
        factor = _tiles(s, t, footprint / F32(m.scale) if footprint is not None else F32(0), c)
    elif m.pattern == "wood":
        grain = s * F32(0.1) + F32(0.6) * _sample(smooth, s * F32(0.05), t * F32(0.5))
        rings = np.abs(np.sin(F32(2 * np.pi * 9) * grain))
        factor = 1 - c * F32(2.5) * rings * rings + c * _sample(smooth, s * F32(2), t * F32(8))
    elif m.pattern == "fabric":
        factor = 1 + c * (F32(0.4) * np.sign(np.sin(s * F32(300)) * np.sin(t * F32(300))) + _sample(smooth, s, t))
    elif m.pattern == "carpet":
        factor = 1 + c * (F32(2) * _sample(white, s * F32(4), t * F32(4)) - 1 + _sample(smooth, s, t))
    elif m.pattern == "sky":  # brighter towards the horizon
        factor = np.clip(F32(1.2) - F32(0.5) * np.abs(height) * F32(1 / 40.0), F32(0.7), F32(1.2))
    elif m.pattern == "metal":
        factor = 1 + c * _sample(smooth, s * F32(0.05), t * F32(6))
    elif m.pattern == "paint":
        factor = 1 + c * (_sample(smooth, s, t) + F32(0.4) * _sample(smooth, s * F32(7), t * F32(7)))
    else:
        factor = 1 + c * _sample(smooth, s, t)
    if m.skirting > 0:  # a dark board along the foot of walls
        factor = np.where((height < F32(m.skirting)) & (height > F32(0.001)), F32(0.4), factor)
    return factor


@dataclass
class PrimTable:
    """Primitives of one frame with the per-primitive tables deferred shading looks up."""

    prims: list
    zones: np.ndarray  # 0 = directly visible, 1 = only through glass
    corners: np.ndarray  # [P, 8, 3] bounding-box corners for screen culling
    colour: np.ndarray  # [P, 3] linear albedo
    material: np.ndarray
    semantic: np.ndarray
    instance: np.ndarray

    @classmethod
    def build(cls, prims: list, zones: list[int] | None = None) -> "PrimTable":
        bounds = [p.bounds() for p in prims]
        lo, hi = np.array([b[0] for b in bounds]).reshape(-1, 3), np.array([b[1] for b in bounds]).reshape(-1, 3)
        looks = [p.look for p in prims]
        return cls(list(prims), np.array(zones if zones is not None else [0] * len(prims), np.int8).reshape(-1),
                   box_corners(lo, hi), np.array([lk.colour for lk in looks], F32).reshape(-1, 3),
                   np.array([lk.material for lk in looks], np.int16), np.array([lk.semantic for lk in looks], np.uint8),
                   np.array([lk.instance for lk in looks], np.uint16))

    def __add__(self, other: "PrimTable") -> "PrimTable":
        return PrimTable(self.prims + other.prims, *(np.concatenate([getattr(self, f), getattr(other, f)])
                                                     for f in ("zones", "corners", "colour", "material", "semantic", "instance")))


@dataclass
class FrameScene:
    """Everything the renderer needs for one instant of a scene."""

    opaque: PrimTable
    glass: PrimTable
    materials: list[Material]
    lighting: Lighting
    interior: tuple[float, float, float, float]  # x0, x1, y0, y1 of the main space (floor occlusion)
    casters: np.ndarray  # [K, 4] x, y, rx, ry: soft contact shadows on the floor


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


def _planar_coords(p, n):
    """In-plane texture coordinates: the two world axes most parallel to the surface."""
    ax, ay, az = np.abs(n[0]), np.abs(n[1]), np.abs(n[2])
    flat, facing_x = (az >= ax) & (az >= ay), ax >= ay
    s = np.where(flat | ~facing_x, p[0], p[1])
    t = np.where(flat, p[1], p[2])
    return s, t


def _diffuse_light(lighting: Lighting, lights: np.ndarray, p, n, ao):
    """Ambient times occlusion plus Lambert terms of downward ceiling lights with falloff."""
    total = F32(lighting.ambient) * ao
    inv_reach2 = F32(1.0 / lighting.reach**2)
    for lx, ly, lz in lights.tolist():
        dx, dy, dz = lx - p[0], ly - p[1], lz - p[2]
        d2 = dx * dx + dy * dy + dz * dz
        inv = F32(1.0) / np.sqrt(d2)
        lambert = np.maximum(n[0] * dx + n[1] * dy + n[2] * dz, 0) * inv
        cone = F32(0.35) + F32(0.65) * np.maximum(dz * inv, 0)  # ceiling lights shine downwards
        total += lambert * cone * (F32(lighting.intensity) / (1 + d2 * inv_reach2))
    return total


def _specular(lighting: Lighting, lights, p, n, view, squarings: int):
    """Blinn-Phong highlights with exponent 2**squarings (squaring is cheaper than pow)."""
    spec = np.zeros_like(p[0])
    inv_reach2 = F32(1.0 / lighting.reach**2)
    for lx, ly, lz in lights.tolist():
        dx, dy, dz = lx - p[0], ly - p[1], lz - p[2]
        d2 = dx * dx + dy * dy + dz * dz
        inv = F32(1.0) / np.sqrt(d2)
        hx, hy, hz = dx * inv + view[0], dy * inv + view[1], dz * inv + view[2]
        cos_h = np.maximum(n[0] * hx + n[1] * hy + n[2] * hz, 0) / np.sqrt(hx * hx + hy * hy + hz * hz)
        for _ in range(squarings):
            cos_h *= cos_h
        spec += cos_h * (F32(lighting.intensity) / (1 + d2 * inv_reach2))
    return spec


def _mirrored_panels(lighting: Lighting, panels: np.ndarray, p, n, d):
    """Blurry mirror images of the ceiling light panels in a polished surface."""
    dn = d[0] * n[0] + d[1] * n[1] + d[2] * n[2]
    r = [d[k] - 2 * dn * n[k] for k in range(3)]
    glow = np.zeros_like(p[0])
    for lx, ly, lz in panels.tolist():
        with np.errstate(divide="ignore", invalid="ignore"):
            t = np.where(r[2] > F32(0.01), (lz - p[2]) / r[2], F32(0))
        blur = F32(0.03) + F32(0.12) * t
        ex = np.clip((F32(lighting.panel[0]) + blur - np.abs(p[0] + t * r[0] - lx)) / blur, 0, 1)
        ey = np.clip((F32(lighting.panel[1]) + blur - np.abs(p[1] + t * r[1] - ly)) / blur, 0, 1)
        glow += ex * ey
    return glow * (F32(0.25) + F32(0.75) * (1 + dn) ** 5) * F32(lighting.panel_radiance)


def _floor_occlusion(scene: FrameScene, px, py, rays: Rays):
    """Darkening of floor pixels near walls and under objects (cheap stand-in for shadows)."""
    x0, x1, y0, y1 = scene.interior
    inside = (px > x0) & (px < x1) & (py > y0) & (py < y1)
    wall = np.minimum(np.minimum(px - x0, x1 - px), np.minimum(py - y0, y1 - py))
    ao = 1 - np.where(inside, F32(0.35) * np.exp(-np.maximum(wall, 0) * F32(5)), 0)
    offset = scene.casters[:, :2] - np.asarray(rays.origin[:2])
    ahead = offset @ rays.rotation[:2, 2]
    near = (ahead > -1.5) & (ahead < 10.0) & ((offset**2).sum(1) < 150.0)
    for cx, cy, rx, ry in scene.casters[near].tolist():
        ao *= 1 - F32(0.45) * np.exp(-(((px - cx) / rx) ** 2 + ((py - cy) / ry) ** 2))
    return ao


@functools.lru_cache(maxsize=4)
def _display_lut(exposure: float) -> np.ndarray:
    """Exposure-scaled linear radiance in 1/1024 steps -> filmic, gamma-encoded uint8."""
    x = (np.arange(8192) + 0.5) / 1024 * exposure
    return np.round(255 * ((1 - np.exp(-x)) / (1 - np.exp(-8 * exposure))) ** (1 / 2.2)).astype(np.uint8)


@functools.lru_cache(maxsize=4)
def _vignette(camera: Camera) -> np.ndarray:
    u, v = camera.grid
    r2 = (u * camera.fx / camera.width) ** 2 + (v * camera.fy / camera.width) ** 2
    return (1024 * (1 - F32(0.9) * r2)).astype(F32)


def _expose(lin: np.ndarray, exposure: float, camera: Camera, rng: np.random.Generator) -> np.ndarray:
    """Vignette, sensor noise (multiplicative, per pixel) and tone curve: linear radiance -> uint8 RGB."""
    gain = _vignette(camera) * (1 + F32(0.025) * rng.standard_normal((camera.height, camera.width), dtype=F32))
    return _display_lut(exposure)[np.minimum(lin * gain[..., None], F32(8191)).astype(np.int32)]


def _texture_albedo(scene, index, hit, p, n, pixel_size):
    """Per-pixel albedo, tinted by the light colour: the primitive's colour times its material's pattern."""
    tab = scene.opaque
    albedo = (tab.colour * np.asarray(scene.lighting.colour, F32))[index]
    mat = tab.material[index]
    s, t = _planar_coords(p, n)
    flat_mat, factor = mat.reshape(-1), np.ones(mat.size, F32)
    present = np.flatnonzero(np.bincount(flat_mat[hit.reshape(-1)], minlength=len(scene.materials)))
    for m in present.tolist():
        material = scene.materials[m]
        if material.pattern == "emissive":
            continue
        sel = np.flatnonzero(flat_mat == m)
        footprint = pixel_size(sel) if material.pattern == "tiles" else None
        factor[sel] = pattern_factor(material, s.reshape(-1)[sel], t.reshape(-1)[sel], footprint)
    albedo *= factor.reshape(mat.shape)[..., None]
    return albedo, mat


def _shade_opaque(scene, rays: Rays, zb: ZBuffer):
    """Linear radiance of the nearest opaque surfaces, plus the surface facts ToF needs."""
    hit = zb.index >= 0
    index = np.maximum(zb.index, 0)
    depth = np.where(hit, zb.depth, F32(0))
    p = [rays.origin[k] + depth * rays.d[k] for k in range(3)]
    facing = zb.normal[0] * rays.d[0] + zb.normal[1] * rays.d[1] + zb.normal[2] * rays.d[2]
    n = [np.where(facing > 0, -c, c) for c in zb.normal]
    cos_inc = np.abs(facing) / rays.length

    def pixel_size(sel):  # metres per pixel on the surface, for anti-aliased patterns
        flat = lambda a: a.reshape(-1)[sel]  # noqa: E731
        return flat(depth) * flat(rays.length) / (F32(rays.camera.fx) * np.maximum(flat(cos_inc), F32(0.05)))

    albedo, mat = _texture_albedo(scene, index, hit, p, n, pixel_size)
    props = {f: np.array([getattr(m, f) for m in scene.materials], F32) for f in ("specular", "nir_gain", "emission")}
    ao = 1 - np.where(np.abs(n[2]) < F32(0.5), F32(0.3) * np.exp(-p[2] * F32(6)), 0)
    floor = np.flatnonzero((n[2] > F32(0.9)) & (np.abs(p[2]) < F32(0.02)))
    ao.reshape(-1)[floor] *= _floor_occlusion(scene, p[0].reshape(-1)[floor], p[1].reshape(-1)[floor], rays)
    lighting = scene.lighting
    lights = _nearest(lighting.panels, rays) - np.array([0, 0, lighting.drop], F32)
    lin = albedo * _diffuse_light(lighting, lights, p, n, ao)[..., None]
    flat_mat, colour = mat.reshape(-1), np.asarray(lighting.colour, F32)
    for m in np.flatnonzero(props["specular"]).tolist():
        sel = np.flatnonzero(flat_mat == m)
        if sel.size:
            lin.reshape(-1, 3)[sel] += _gloss(scene, scene.materials[m], rays, lights, sel, p, n)[:, None] * colour
    emissive = np.flatnonzero(props["emission"][flat_mat] > 0)
    lin.reshape(-1, 3)[emissive] = albedo.reshape(-1, 3)[emissive] * props["emission"][flat_mat[emissive], None]
    tab = scene.opaque  # NIR albedo from the untextured colour: fine texture barely shows in IR
    nir_table = np.minimum(tab.colour @ np.array([0.3, 0.55, 0.15], F32) * props["nir_gain"][tab.material], 1)
    nir = np.where(hit, nir_table[index], F32(0))
    return lin, depth, cos_inc, nir, index, hit


def _gloss(scene, material: Material, rays: Rays, lights, sel, p, n):
    """Highlights and, on polished surfaces, mirrored light panels, for the pixels `sel`."""
    sub = lambda a: a.reshape(-1)[sel]  # noqa: E731
    d = [sub(rays.d[k]) / sub(rays.length) for k in range(3)]
    ps, ns = [sub(c) for c in p], [sub(c) for c in n]
    squarings = max(1, round(math.log2(material.shininess)))
    gloss = _specular(scene.lighting, lights[:3], ps, ns, [-c for c in d], squarings) * F32(material.specular)
    if material.polished:
        gloss += _mirrored_panels(scene.lighting, _nearest(scene.lighting.panels, rays, 4), ps, ns, d) * F32(material.specular)
    return gloss


def _nearest(positions: np.ndarray, rays: Rays, count: int = 4) -> np.ndarray:
    """The lights nearest a point a little ahead of the camera: the ones that matter here."""
    ahead = np.asarray(rays.origin) + 2.5 * rays.rotation[:, 2]
    order = np.argsort(((positions - ahead) ** 2).sum(1), kind="stable")
    return positions[order[:count]].astype(F32)


def _composite_glass(scene, rays: Rays, panes: ZBuffer, lin: np.ndarray) -> None:
    """Glass pixels show the scene behind, tinted, plus a faint Fresnel-weighted reflection."""
    g = np.flatnonzero(panes.index >= 0)
    flat = lambda a: a.reshape(-1)[g]  # noqa: E731
    tint = scene.glass.colour[flat(panes.index)]
    d = [flat(c) / flat(rays.length) for c in rays.d]
    n = [flat(c) for c in panes.normal]
    dn = d[0] * n[0] + d[1] * n[1] + d[2] * n[2]
    n = [c * -np.sign(dn) for c in n]  # face the camera
    fresnel = F32(0.04) + F32(0.96) * (1 - np.abs(dn)) ** 5
    t = flat(panes.depth)
    p = [rays.origin[k] + t * flat(rays.d[k]) for k in range(3)]
    s, v = _planar_coords(p, n)
    streaks = 1 + F32(0.6) * _sample(_noise_tables()[0], s * F32(0.15) + v * F32(0.05), v * F32(0.02))
    room = F32(scene.lighting.ambient) * (F32(0.8) + F32(0.6) * np.clip(d[2] * 2 + F32(0.3), 0, 1)) * streaks
    lights = _nearest(scene.lighting.panels, rays) - np.array([0, 0, scene.lighting.drop], F32)
    shine = _specular(scene.lighting, lights, p, n, [-c for c in d], 8)
    reflection = (fresnel + F32(0.03)) * room + shine * F32(0.5)
    colour = np.asarray(scene.lighting.colour, F32)
    lin.reshape(-1, 3)[g] = lin.reshape(-1, 3)[g] * tint * (1 - fresnel)[:, None] + reflection[:, None] * colour


def render(scene, camera: Camera, rotation: np.ndarray, position: np.ndarray, rng: np.random.Generator) -> Rendering:
    """Ray-cast one frame of `scene` (a `FrameScene`) from a camera-to-world pose."""
    rays = Rays(camera, rotation, position)
    opaque, panes = cast(scene.opaque.prims, scene.opaque.zones, scene.opaque.corners,
                         scene.glass.prims, scene.glass.corners, rays)
    lin, behind_depth, behind_cos, nir, index, hit = _shade_opaque(scene, rays, opaque)
    glass = panes.index >= 0
    semantics = np.where(hit, scene.opaque.semantic[index], np.uint8(5))
    instances = np.where(hit, scene.opaque.instance[index], np.uint16(0))
    depth, cos_inc = behind_depth, behind_cos
    if glass.any():
        _composite_glass(scene, rays, panes, lin)
        pane = np.maximum(panes.index, 0)
        depth = np.where(glass, panes.depth, behind_depth)
        pane_cos = np.abs(panes.normal[0] * rays.d[0] + panes.normal[1] * rays.d[1] + panes.normal[2] * rays.d[2]) / rays.length
        cos_inc = np.where(glass, pane_cos, behind_cos)
        semantics = np.where(glass, scene.glass.semantic[pane], semantics)
        instances = np.where(glass, scene.glass.instance[pane], instances)
    polished = np.array([m.polished for m in scene.materials], bool)[scene.opaque.material[index]] & hit
    return Rendering(_expose(lin, scene.lighting.exposure, camera, rng), depth.astype(F32), semantics.astype(np.uint8),
                     instances.astype(np.uint16), rays.length, cos_inc.astype(F32), nir.astype(F32), polished,
                     glass, behind_depth.astype(F32), behind_cos.astype(F32))
