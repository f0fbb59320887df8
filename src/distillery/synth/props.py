"""Builders of the pieces scenes are made of: walls with glass, doors, lights, furniture and people.

A `Builder` collects the primitives, glass panes and floor shadow casters of
a scene as they are placed; a `Floorplan` keeps objects, people and the
robot's path from overlapping. Objects are lists of parts in their own frame
(`emit` places them), so furniture and people are plain data that can be
turned and moved; people are `Walker`s, re-posed at every frame time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from distillery.synth.primitives import Box, Cylinder, Look, Rect, Sphere
from distillery.synth.shading import Material
from distillery.synth.style import FURNITURE, GLASS, OTHER, WALL, Style, hsv_albedo, varied_shade


class Builder:
    """Accumulates the primitives, glass panes and shadow casters of a scene."""

    def __init__(self, materials: dict[str, tuple[int, Material]]):
        self.materials = materials
        self.prims, self.zones, self.glass, self.casters = [], [], [], []
        self.instances = 0

    def instance(self) -> int:
        """A new instance id (1, 2, ...; 0 is left for stuff)."""
        self.instances += 1
        return self.instances

    def look(self, material: str, semantic: int, colour, instance: int = 0) -> Look:
        """The `Look` of a surface of the named material."""
        return Look(self.materials[material][0], semantic, instance, tuple(float(c) for c in colour))

    def add(self, prims, zone: int = 0) -> None:
        """Add opaque primitives, all in `zone` (1: only visible through glass)."""
        self.prims.extend(prims)
        self.zones.extend([zone] * len(prims))


class Floorplan:
    """A 5 cm occupancy grid of the floor, so furniture, people and the robot's path never overlap."""

    def __init__(self, x0: float, x1: float, y0: float, y1: float, res: float = 0.05):
        self.x0, self.y0, self.res = x0, y0, res
        self.busy = np.zeros((int(math.ceil((x1 - x0) / res)), int(math.ceil((y1 - y0) / res))), bool)

    def _cells(self, x0, x1, y0, y1):
        """Index ranges of the cells under a rectangle, unclipped."""
        return (math.floor((x0 - self.x0) / self.res), math.ceil((x1 - self.x0) / self.res),
                math.floor((y0 - self.y0) / self.res), math.ceil((y1 - self.y0) / self.res))

    def free(self, x0, x1, y0, y1) -> bool:
        """True when the rectangle lies on the plan and touches no occupied cell."""
        i0, i1, j0, j1 = self._cells(x0, x1, y0, y1)
        inside = i0 >= 0 and j0 >= 0 and i1 <= self.busy.shape[0] and j1 <= self.busy.shape[1]
        return inside and not self.busy[i0:i1, j0:j1].any()

    def occupy(self, x0, x1, y0, y1) -> None:
        """Mark the cells under a rectangle as taken (the part on the plan)."""
        i0, i1, j0, j1 = self._cells(x0, x1, y0, y1)
        self.busy[max(i0, 0):max(i1, 0), max(j0, 0):max(j1, 0)] = True

    def reserve_where(self, inside) -> None:
        """Mark every cell whose centre satisfies inside(x, y) (vectorised predicate)."""
        i, j = np.meshgrid(np.arange(self.busy.shape[0]), np.arange(self.busy.shape[1]), indexing="ij")
        self.busy |= inside(self.x0 + (i + 0.5) * self.res, self.y0 + (j + 0.5) * self.res)


def emit(b: Builder, parts: list, x: float, y: float, yaw: float, semantic: int, instance: int, zone: int) -> None:
    """Place an object's parts, given in its own frame (front towards +y), at (x, y) turned by yaw.

    Parts: ("box", dx, dy, z0, z1, hx, hy, material, colour), ("cyl", dx, dy,
    z0, z1, r, material, colour) or ("ball", dx, dy, z, r, material, colour).
    """
    c, s = math.cos(yaw), math.sin(yaw)
    prims = []
    for kind, dx, dy, *rest in parts:
        px, py = x + c * dx - s * dy, y + s * dx + c * dy
        look = b.look(rest[-2], semantic, rest[-1], instance)
        if kind == "box":
            z0, z1, hx, hy = rest[:4]
            prims.append(Box((px, py, (z0 + z1) / 2), (hx, hy, (z1 - z0) / 2), look, yaw))
        elif kind == "cyl":
            prims.append(Cylinder(px, py, rest[0], rest[1], rest[2], look))
        else:
            prims.append(Sphere((px, py, rest[0]), rest[1], look))
    b.add(prims, zone)


def _legs(w, d, h, r, material, colour):
    """Four square legs (half-width r, height h) just inside the corners of a w x d top."""
    return [("box", sx * (w / 2 - 0.05), sy * (d / 2 - 0.05), 0.0, h, r, r, material, colour) for sx in (-1, 1) for sy in (-1, 1)]


def furniture(kind: str, rng: np.random.Generator, style: Style):
    """Width, depth, parts and class of one piece of furniture (or other object) of `kind`."""
    wood, metal = varied_shade(style.wood, rng), varied_shade((0.35, 0.36, 0.38), rng, 0.4)
    fabric = hsv_albedo(rng.uniform(0, 1), rng.uniform(0.2, 0.7), rng.uniform(0.15, 0.7))
    if kind == "bench":
        n = rng.uniform(1.2, 2.0)
        return n, 0.42, [("box", 0, 0, 0.40, 0.45, n / 2, 0.2, "wood", wood),
                         *[("box", sx * (n / 2 - 0.15), 0, 0, 0.40, 0.03, 0.18, "metal", metal) for sx in (-1, 1)]], FURNITURE
    if kind == "cabinet":
        w, d, h = rng.uniform(0.6, 1.2), rng.uniform(0.4, 0.55), rng.uniform(0.8, 1.9)
        body, mat = (wood, "wood") if rng.random() < 0.5 else (varied_shade(style.wall, rng, 0.3), "metal")
        return w, d, [("box", 0, 0, 0, h, w / 2, d / 2, mat, body),
                      *[("box", sx * 0.06, d / 2 + 0.01, h * 0.5, h * 0.5 + 0.15, 0.012, 0.015, "metal", (0.6, 0.6, 0.6)) for sx in (-1, 1)],
                      ("box", 0, d / 2 + 0.002, 0.02, h - 0.02, 0.004, 0.004, "plastic", (0.05, 0.05, 0.05))], FURNITURE
    if kind == "table":
        w, d, h = rng.uniform(0.9, 1.8), rng.uniform(0.6, 0.9), rng.uniform(0.72, 0.76)
        return w, d, [("box", 0, 0, h - 0.04, h, w / 2, d / 2, "wood", wood), *_legs(w, d, h - 0.04, 0.025, "metal", metal)], FURNITURE
    if kind == "desk":
        w, d = rng.uniform(1.2, 1.6), rng.uniform(0.6, 0.8)
        return w, d, [("box", 0, 0, 0.71, 0.74, w / 2, d / 2, "wood", wood), *_legs(w, d, 0.71, 0.025, "metal", metal),
                      ("box", w / 2 - 0.25, 0, 0.1, 0.7, 0.2, d / 2 - 0.05, "wood", varied_shade(wood, rng)),
                      ("box", 0, -0.1, 0.74, 1.1, 0.25, 0.02, "plastic", (0.02, 0.02, 0.02))], FURNITURE
    if kind == "chair":
        return 0.46, 0.46, [("box", 0, 0, 0.43, 0.47, 0.22, 0.22, "fabric", fabric), *_legs(0.46, 0.46, 0.43, 0.015, "metal", metal),
                            ("box", 0, -0.2, 0.47, 0.9, 0.21, 0.025, "fabric", fabric)], FURNITURE
    if kind == "sofa":
        w = rng.uniform(1.6, 2.4)
        return w, 0.85, [("box", 0, 0.05, 0.08, 0.44, w / 2 - 0.15, 0.37, "fabric", fabric),
                         ("box", 0, -0.32, 0.08, 0.85, w / 2, 0.1, "fabric", varied_shade(fabric, rng)),
                         *[("box", sx * (w / 2 - 0.08), 0.05, 0.08, 0.62, 0.08, 0.37, "fabric", fabric) for sx in (-1, 1)],
                         ("box", 0, 0, 0, 0.08, w / 2, 0.4, "plastic", (0.03, 0.03, 0.03))], FURNITURE
    if kind == "shelf":
        w, h, frame = rng.uniform(0.8, 1.2), rng.uniform(1.6, 2.0), wood
        parts = [("box", 0, -0.16, 0, h, w / 2, 0.015, "wood", frame),
                 *[("box", sx * (w / 2 - 0.015), 0, 0, h, 0.015, 0.17, "wood", frame) for sx in (-1, 1)]]
        for z in np.linspace(0.02, h - 0.02, 5).tolist():
            parts.append(("box", 0, 0, z - 0.015, z + 0.015, w / 2, 0.17, "wood", frame))
            if z < h - 0.1:
                book = hsv_albedo(rng.uniform(0, 1), rng.uniform(0.3, 0.8), rng.uniform(0.2, 0.8))
                parts.append(("box", 0, -0.02, z + 0.015, z + rng.uniform(0.2, 0.3), w / 2 - 0.05, 0.12, "plastic", book))
        return w, 0.36, parts, FURNITURE
    if kind == "plant":
        r = rng.uniform(0.14, 0.22)
        pot = ("cyl", 0, 0, 0, r * 2, r, "plastic", hsv_albedo(0.06, 0.6, rng.uniform(0.3, 0.7)))
        leaves = [("ball", rng.uniform(-0.08, 0.08), rng.uniform(-0.08, 0.08), r * 2 + 0.15 + 0.25 * k, rng.uniform(0.2, 0.32),
                   "leaf", hsv_albedo(rng.uniform(0.22, 0.36), 0.6, rng.uniform(0.25, 0.55))) for k in range(rng.integers(2, 4))]
        return 2 * r + 0.3, 2 * r + 0.3, [pot, *leaves], FURNITURE
    r = rng.uniform(0.14, 0.2)  # a bin: "other"
    return 2 * r, 2 * r, [("cyl", 0, 0, 0, rng.uniform(0.4, 0.7), r, "plastic", hsv_albedo(rng.uniform(0, 1), 0.5, rng.uniform(0.1, 0.6)))], OTHER


@dataclass(frozen=True)
class Walker:
    """A person moving back and forth between two points (standing still when they coincide)."""

    start: tuple[float, float]
    end: tuple[float, float]
    period: float
    phase: float
    height: float
    colours: tuple  # shirt, trousers, skin, hair
    instance: int
    zone: int

    def place(self, time: float) -> tuple[float, float, float, float]:
        """Position, heading and stride (signed leg offset) at `time`."""
        (x0, y0), (x1, y1) = self.start, self.end
        angle = 2 * math.pi * time / self.period + self.phase
        f, speed = 0.5 - 0.5 * math.cos(angle), 0.5 * math.sin(angle)
        length = math.hypot(x1 - x0, y1 - y0)
        turned = math.pi if speed < 0 and length > 0.01 else 0.0  # walkers face where they go
        heading = math.atan2(y1 - y0, x1 - x0) - math.pi / 2 + turned
        stride = 0.12 * math.sin(f * length * 2 * math.pi / 1.3) * min(1.0, 4 * abs(speed)) if length > 0.01 else 0.0
        return x0 + f * (x1 - x0), y0 + f * (y1 - y0), heading, stride

    def parts(self, stride: float) -> list:
        """The body as `emit` parts: legs and arms swung by `stride`, torso, neck, head and hair."""
        h, (shirt, trousers, skin, hair) = self.height, self.colours
        hip, shoulder, r = 0.47 * h, 0.82 * h, 0.17 * h / 1.75
        return [*[("cyl", sx * 0.09, sx * stride, 0.0, hip, 0.07, "cloth", trousers) for sx in (-1, 1)],
                ("cyl", 0, 0, hip - 0.05, shoulder, r, "cloth", shirt),
                *[("cyl", sx * (r + 0.05), -sx * stride * 0.6, hip - 0.02, shoulder - 0.03, 0.045, "cloth", shirt) for sx in (-1, 1)],
                ("cyl", 0, 0, shoulder, shoulder + 0.07, 0.05, "skin", skin),
                ("ball", 0, 0, h - 0.11, 0.105, "skin", skin), ("ball", 0, -0.02, h - 0.095, 0.108, "hair", hair)]


def make_walker(b: Builder, rng: np.random.Generator, start, end, zone: int = 0) -> Walker:
    """A person of random build and clothes pacing between start and end at a walking pace."""
    colours = (hsv_albedo(rng.uniform(0, 1), rng.uniform(0.1, 0.8), rng.uniform(0.1, 0.9)),
               hsv_albedo(rng.uniform(0.55, 0.7), rng.uniform(0.1, 0.6), rng.uniform(0.08, 0.5)),
               hsv_albedo(rng.uniform(0.03, 0.08), rng.uniform(0.3, 0.6), rng.uniform(0.35, 0.95)),
               hsv_albedo(rng.uniform(0.05, 0.1), rng.uniform(0.3, 0.8), rng.uniform(0.05, 0.6)))
    length = math.hypot(end[0] - start[0], end[1] - start[1])
    return Walker(start, end, max(2 * length / rng.uniform(0.9, 1.4), 1.0), rng.uniform(0, 2 * math.pi),
                  rng.uniform(1.55, 1.9), colours, b.instance(), zone)


def _slab(along: int, a0, a1, c0, c1, z0, z1, look, prim=Box):
    """A box spanning [a0, a1] along the wall axis, [c0, c1] across it and [z0, z1] in height."""
    lo_c, hi_c = min(c0, c1), max(c0, c1)
    if prim is Rect:  # the plane across = c0
        return Rect(1 - along, c0, (a0, z0), (a1, z1), look)
    centre, half = [0.0, 0.0, (z0 + z1) / 2], [0.0, 0.0, (z1 - z0) / 2]
    centre[along], half[along] = (a0 + a1) / 2, (a1 - a0) / 2
    centre[1 - along], half[1 - along] = (lo_c + hi_c) / 2, (hi_c - lo_c) / 2
    return Box(tuple(centre), tuple(half), look)


def wall(b: Builder, style: Style, along: int, c: float, inward: int, a0: float, a1: float, h: float, panes=(), zone: int = 0):
    """A wall in the plane across = c from a0 to a1, its room on the `inward` side.

    `panes` are (s0, s1, z0, z1) glass openings: the wall is cut around them,
    the glass sits mid-wall and a metal frame lines the opening.
    """
    paint = b.look("wall", WALL, style.wall)
    frame = b.look("frame", WALL, (0.3, 0.31, 0.33))
    cuts = sorted({a0, a1, *[p[0] for p in panes], *[p[1] for p in panes]})
    prims = []
    for s0, s1 in zip(cuts[:-1], cuts[1:]):
        pane = next((p for p in panes if p[0] <= s0 and s1 <= p[1]), None)
        if pane is None:
            prims.append(_slab(along, s0, s1, c, c, 0.0, h, paint, Rect))
            continue
        z0, z1 = pane[2], pane[3]
        prims += [_slab(along, s0, s1, c, c, z, zz, paint, Rect) for z, zz in ((0.0, z0), (z1, h)) if zz > z]
        back, front, k = c - inward * 0.1, c + inward * 0.01, 0.05
        prims += [_slab(along, s0, s0 + k, back, front, z0, z1, frame), _slab(along, s1 - k, s1, back, front, z0, z1, frame),
                  _slab(along, s0, s1, back, front, z0, z0 + k, frame), _slab(along, s0, s1, back, front, z1 - k, z1, frame)]
        b.glass.append(_slab(along, s0, s1, c - inward * 0.05, 0, z0, z1, b.look("wall", GLASS, style.glass, b.instance()), Rect))
    b.add(prims, zone)


def door(b: Builder, style: Style, along: int, c: float, inward: int, s: float, width: float, height: float) -> None:
    """A closed door (class wall) with its frame and handle, proud of the wall plane."""
    i = b.instance()
    leaf, frame = b.look("door", WALL, style.door, i), b.look("frame", WALL, tuple(0.6 * c for c in style.door), i)
    handle = b.look("metal", WALL, (0.55, 0.55, 0.55), i)
    b.add([_slab(along, s - width / 2 - 0.07, s + width / 2 + 0.07, c - inward * 0.01, c + inward * 0.015, 0, height + 0.07, frame),
           _slab(along, s - width / 2, s + width / 2, c, c + inward * 0.035, 0, height, leaf),
           _slab(along, s + width / 2 - 0.14, s + width / 2 - 0.04, c, c + inward * 0.08, 0.97, 1.01, handle)])


def ceiling_light(b: Builder, x: float, y: float, h: float, lights: list, zone: int = 0) -> None:
    """A glowing panel centred at (x, y) just under a ceiling at height h; its position joins `lights`."""
    b.add([Rect(2, h - 0.01, (x - 0.6, y - 0.3), (x + 0.6, y + 0.3), b.look("light", OTHER, (1.0, 0.98, 0.95)))], zone)
    lights.append((x, y, h - 0.01))


def place_against(b: Builder, fp: Floorplan, rng, style: Style, kind: str, along: int, c: float, inward: int,
                  a_range: tuple[float, float], zone: int = 0, tries: int = 8) -> bool:
    """Put one object of `kind` with its back to the wall across = c, somewhere in a_range."""
    w, d, parts, semantic = furniture(kind, rng, style)
    for _ in range(tries):
        if a_range[1] - a_range[0] < w:
            return False
        a = rng.uniform(a_range[0] + w / 2, a_range[1] - w / 2)
        across = c + inward * (d / 2 + 0.03)
        lo = [a - w / 2, across - d / 2]
        if along == 1:
            lo = lo[::-1]
        ext = (w, d) if along == 0 else (d, w)
        if fp.free(lo[0], lo[0] + ext[0], lo[1], lo[1] + ext[1]):
            fp.occupy(lo[0] - 0.1, lo[0] + ext[0] + 0.1, lo[1] - 0.1, lo[1] + ext[1] + 0.1)
            x, y = (a, across) if along == 0 else (across, a)
            yaw = (0.0 if inward > 0 else math.pi) if along == 0 else (-math.pi / 2 if inward > 0 else math.pi / 2)
            emit(b, parts, x, y, yaw, semantic, b.instance(), zone)
            b.casters.append((x, y, ext[0] / 2 + 0.1, ext[1] / 2 + 0.1))
            return True
    return False


def place_person(b: Builder, fp: Floorplan, rng, region, walkers: list, zone: int = 0, walk: float = 0.0) -> bool:
    """A person standing in `region` (x0, x1, y0, y1), or walking `walk` metres along x from there."""
    for _ in range(10):
        x, y = rng.uniform(region[0], region[1] - walk), rng.uniform(region[2], region[3])
        if fp.free(x - 0.3, x + walk + 0.3, y - 0.3, y + 0.3):
            fp.occupy(x - 0.3, x + walk + 0.3, y - 0.3, y + 0.3)
            facing = rng.uniform(0, 2 * math.pi)  # a standing person faces along start -> end
            end = (x + walk, y) if walk else (x + 1e-3 * math.cos(facing), y + 1e-3 * math.sin(facing))
            walkers.append(make_walker(b, rng, (x, y), end, zone))
            return True
    return False
