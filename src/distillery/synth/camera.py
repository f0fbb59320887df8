"""The camera, its rays and the z-buffer: the types the ray caster (`render`) and `shading` share.

Ray directions have a camera-frame z of exactly 1, so the ray parameter of a
hit is the z-depth along the optical axis. Camera frame: OpenCV (x right,
y down, z forward). Kept apart from both users so neither imports the other.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from distillery.ingest.frames import Intrinsics
from distillery.synth.primitives import F32, INF, NEAR


@dataclass(frozen=True)
class Camera(Intrinsics):
    """The renderer's pinhole camera: the dataset's `Intrinsics` (pixel centres at integer coordinates)
    plus the per-pixel ray slopes it casts along."""

    @classmethod
    def of(cls, k: Intrinsics) -> Camera:
        return cls(k.fx, k.fy, k.cx, k.cy, k.width, k.height)

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
        """The direction components inside a (v0, v1, u0, u1) screen rectangle."""
        v0, v1, u0, u1 = rect
        return [c[v0:v1, u0:u1] for c in self.d]



class ZBuffer:
    """Nearest hit per pixel: z-depth, primitive index and (unoriented) normal."""

    def __init__(self, height: int, width: int):
        self.depth = np.full((height, width), INF, F32)
        self.index = np.full((height, width), -1, np.int32)
        self.normal = [np.zeros((height, width), F32) for _ in range(3)]

    def add(self, k: int, prim, rays: Rays, rect) -> None:
        """Intersect primitive number `k` within `rect`, keeping its hits where they are nearer."""
        v0, v1, u0, u1 = rect
        t, normal = prim.intersect(rays.origin, rays.view(rect))
        depth = self.depth[v0:v1, u0:u1]
        closer = (t < depth) & (t > NEAR)
        np.copyto(depth, t, where=closer)
        np.copyto(self.index[v0:v1, u0:u1], k, where=closer)
        for c in range(3):
            np.copyto(self.normal[c][v0:v1, u0:u1], normal[c], where=closer)
