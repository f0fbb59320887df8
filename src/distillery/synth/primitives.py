"""Ray-intersectable primitives of the synthetic world and the per-frame table of them.

Rectangles, boxes, vertical cylinders and spheres are all a scene is made of.
Each knows its axis-aligned bounds (for screen-space culling) and intersects
a bundle of rays at once: `intersect(o, d)` takes the shared ray origin and
three float32 arrays of direction components, and returns the ray parameter
of each hit (inf for a miss) and the unit surface normal, not necessarily
facing the ray (shading turns it round). `PrimTable` gathers a frame's
primitives with the per-primitive arrays that deferred shading looks up.
World frame: z up, floor at z = 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

NEAR = 0.05  # metres; hits closer than this are ignored
F32 = np.float32
INF = F32(np.inf)


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
        return np.where(inside, t, INF), normal


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
        t = np.where((t_out >= t_in) & (t_out > NEAR), t, INF)
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
            t = np.where((disc >= 0) & (z >= self.z0) & (z <= self.z1), t, INF)
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
            t = np.where(disc >= 0, (-b - np.sqrt(np.maximum(disc, 0))) / a, INF)
        return t, [(oc[k] + t * d[k]) / self.radius for k in range(3)]


def box_corners(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """The 8 corners of each AABB, [P, 8, 3], corner k taking hi on axis i when bit i of k is set."""
    bits = ((np.arange(8)[:, None] >> np.arange(3)[None, :]) & 1).astype(bool)
    return np.where(bits[None], hi[:, None, :], lo[:, None, :])


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
        """The table of `prims`, all in zone 0 unless `zones` says otherwise."""
        bounds = [p.bounds() for p in prims]
        lo, hi = np.array([b[0] for b in bounds]).reshape(-1, 3), np.array([b[1] for b in bounds]).reshape(-1, 3)
        looks = [p.look for p in prims]
        return cls(list(prims), np.array(zones if zones is not None else [0] * len(prims), np.int8).reshape(-1),
                   box_corners(lo, hi), np.array([lk.colour for lk in looks], F32).reshape(-1, 3),
                   np.array([lk.material for lk in looks], np.int16), np.array([lk.semantic for lk in looks], np.uint8),
                   np.array([lk.instance for lk in looks], np.uint16))

    def __add__(self, other: "PrimTable") -> "PrimTable":
        """Both tables' primitives, self's first (so indices into self stay valid)."""
        return PrimTable(self.prims + other.prims, *(np.concatenate([getattr(self, f), getattr(other, f)])
                                                     for f in ("zones", "corners", "colour", "material", "semantic", "instance")))
