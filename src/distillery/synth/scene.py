"""Procedural indoor scenes: the "corridor" and "room" families.

A scene (family, seed, sequence index) is one corridor or room built from
axis-aligned pieces: walls with doors and glass panes, furniture, people
(some walking), ceiling lights, and the offices or the outside that the glass
shows. Domain-wide choices (palette, lighting, robot height, lens) come from
the seed alone, so the sequences of one seed look like one dataset and
another seed like another. Everything is drawn from numpy Generators seeded
from those integers: a scene is a pure function of its arguments.
World frame: z up, floor at z = 0; corridors run along +x.
"""

from __future__ import annotations

import colorsys
import math
import zlib
from dataclasses import dataclass

import numpy as np

from distillery.synth.render import Box, Cylinder, FrameScene, Lighting, Look, Material, PrimTable, Rect, Sphere

FLOOR, WALL, PERSON, FURNITURE, GLASS, OTHER = range(6)
CLASS_NAMES = ("floor", "wall", "person", "furniture", "glass", "other")
FAMILIES = ("corridor", "room")


def family_rng(family: str, seed: int, *stream: int) -> np.random.Generator:
    """A Generator for one (family, seed, ...) stream; crc32 because str hash() is salted per process."""
    return np.random.default_rng([zlib.crc32(family.encode()), int(seed), *stream])


def _rgb(h: float, s: float, v: float) -> tuple[float, float, float]:
    """HSV (display space) -> linear RGB albedo."""
    return tuple(round(c**2.2, 4) for c in colorsys.hsv_to_rgb(h % 1.0, s, v))


# Hue, saturation, value of common wall paints: white, cream, beige, grey, pale blue, green, yellow, pink.
WALL_PAINTS = np.array([(0.1, 0.03, 0.93), (0.12, 0.12, 0.9), (0.09, 0.22, 0.82), (0.6, 0.03, 0.75),
                        (0.58, 0.15, 0.88), (0.3, 0.14, 0.85), (0.15, 0.25, 0.92), (0.02, 0.12, 0.9)])


@dataclass(frozen=True)
class Style:
    """What all scenes of one seed share: palette, lighting and the robot's camera."""

    wall: tuple
    floor: tuple
    ceiling: tuple
    door: tuple
    wood: tuple
    glass: tuple
    light_colour: tuple
    light_intensity: float
    ambient: float
    exposure: float
    floor_pattern: str
    glass_share: float
    hfov_deg: float
    camera_height: float
    camera_pitch_deg: float


def make_style(family: str, seed: int) -> Style:
    rng = family_rng(family, seed, 1)
    warm = rng.uniform(-0.08, 0.1)
    return Style(
        wall=_rgb(*WALL_PAINTS[rng.integers(len(WALL_PAINTS))] * rng.uniform(0.95, 1.05, 3) % [1.0, 1.0, 0.99]),
        floor=_rgb(rng.uniform(0.05, 0.15), rng.uniform(0.05, 0.35), rng.uniform(0.45, 0.8)),
        ceiling=_rgb(0.1, rng.uniform(0.0, 0.05), rng.uniform(0.85, 0.95)),
        door=_rgb(rng.uniform(0.0, 1.0), rng.uniform(0.1, 0.5), rng.uniform(0.35, 0.75)),
        wood=_rgb(rng.uniform(0.06, 0.1), rng.uniform(0.4, 0.7), rng.uniform(0.45, 0.8)),
        glass=_rgb(rng.uniform(0.35, 0.55), rng.uniform(0.03, 0.12), rng.uniform(0.88, 0.97)),
        light_colour=(1.0 + warm, 1.0, 1.0 - warm),
        light_intensity=rng.uniform(0.9, 1.4),
        ambient=rng.uniform(0.25, 0.4),
        exposure=rng.uniform(1.3, 1.7),
        floor_pattern=str(rng.choice(["tiles", "tiles", "plain"] if family == "corridor" else ["wood", "carpet", "tiles"])),
        glass_share=rng.uniform(0.25, 0.45) if family == "corridor" else rng.uniform(0.3, 0.6),
        hfov_deg=rng.uniform(70.0, 90.0),
        camera_height=rng.uniform(0.3, 0.8),
        camera_pitch_deg=rng.uniform(-4.0, 4.0),
    )


def _materials(style: Style, family: str) -> dict[str, tuple[int, Material]]:
    """The scene's materials by name, with their index in the scene's material list."""
    polished_floor = family == "corridor"  # waxed corridor floors mirror the ToF pulse away
    floor_scale = {"tiles": 0.6, "wood": 1.6, "carpet": 0.5, "plain": 2.0}[style.floor_pattern]
    table = {
        "floor": Material(style.floor_pattern, floor_scale, 0.08, 0.45 if polished_floor else 0.15, 64.0,
                          polished=polished_floor),
        "wall": Material("paint", 1.5, 0.07, skirting=0.08),
        "ceiling": Material("tiles" if family == "corridor" else "paint", 0.6, 0.03),
        "door": Material("wood", 1.2, 0.08, 0.05),
        "frame": Material("metal", 0.5, 0.1, 0.25, 40.0),
        "light": Material("emissive", 1.0, 0.0, emission=3.0),
        "wood": Material("wood", 0.9, 0.1, 0.08),
        "fabric": Material("fabric", 0.5, 0.12, nir_gain=1.3),
        "metal": Material("metal", 0.3, 0.12, 0.35, 30.0, nir_gain=0.9),
        "plastic": Material("plain", 0.4, 0.05, 0.1, 16.0, nir_gain=0.8),
        "skin": Material("plain", 0.2, 0.05, nir_gain=1.1),
        "cloth": Material("fabric", 0.4, 0.15, nir_gain=1.2),
        "hair": Material("plain", 0.1, 0.2, nir_gain=0.6),
        "leaf": Material("carpet", 0.3, 0.35, nir_gain=3.0),
        "carpet": Material("carpet", 0.4, 0.3),
        "sky": Material("sky", 40.0, 0.0, emission=1.6),
        "ground": Material("carpet", 2.0, 0.3),
    }
    return {name: (i, m) for i, (name, m) in enumerate(table.items())}


class Builder:
    """Accumulates the primitives, glass panes and shadow casters of a scene."""

    def __init__(self, materials: dict[str, tuple[int, Material]]):
        self.materials = materials
        self.prims, self.zones, self.glass, self.casters = [], [], [], []
        self.instances = 0

    def instance(self) -> int:
        self.instances += 1
        return self.instances

    def look(self, material: str, semantic: int, colour, instance: int = 0) -> Look:
        return Look(self.materials[material][0], semantic, instance, tuple(float(c) for c in colour))

    def add(self, prims, zone: int = 0) -> None:
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
        i0, i1, j0, j1 = self._cells(x0, x1, y0, y1)
        self.busy[max(i0, 0):max(i1, 0), max(j0, 0):max(j1, 0)] = True

    def reserve_where(self, inside) -> None:
        """Mark every cell whose centre satisfies inside(x, y) (vectorised predicate)."""
        i, j = np.meshgrid(np.arange(self.busy.shape[0]), np.arange(self.busy.shape[1]), indexing="ij")
        self.busy |= inside(self.x0 + (i + 0.5) * self.res, self.y0 + (j + 0.5) * self.res)


def _shade(colour, rng: np.random.Generator, spread: float = 0.15) -> tuple:
    """A colour varied in brightness, so that repeated objects are not identical."""
    k = rng.uniform(1 - spread, 1 + spread)
    return tuple(min(1.0, c * k) for c in colour)


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
    return [("box", sx * (w / 2 - 0.05), sy * (d / 2 - 0.05), 0.0, h, r, r, material, colour) for sx in (-1, 1) for sy in (-1, 1)]


def furniture(kind: str, rng: np.random.Generator, style: Style):
    """Width, depth, parts and class of one piece of furniture (or other object) of `kind`."""
    wood, metal = _shade(style.wood, rng), _shade((0.35, 0.36, 0.38), rng, 0.4)
    fabric = _rgb(rng.uniform(0, 1), rng.uniform(0.2, 0.7), rng.uniform(0.15, 0.7))
    if kind == "bench":
        n = rng.uniform(1.2, 2.0)
        return n, 0.42, [("box", 0, 0, 0.40, 0.45, n / 2, 0.2, "wood", wood),
                         *[("box", sx * (n / 2 - 0.15), 0, 0, 0.40, 0.03, 0.18, "metal", metal) for sx in (-1, 1)]], FURNITURE
    if kind == "cabinet":
        w, d, h = rng.uniform(0.6, 1.2), rng.uniform(0.4, 0.55), rng.uniform(0.8, 1.9)
        body, mat = (wood, "wood") if rng.random() < 0.5 else (_shade(style.wall, rng, 0.3), "metal")
        return w, d, [("box", 0, 0, 0, h, w / 2, d / 2, mat, body),
                      *[("box", sx * 0.06, d / 2 + 0.01, h * 0.5, h * 0.5 + 0.15, 0.012, 0.015, "metal", (0.6, 0.6, 0.6)) for sx in (-1, 1)],
                      ("box", 0, d / 2 + 0.002, 0.02, h - 0.02, 0.004, 0.004, "plastic", (0.05, 0.05, 0.05))], FURNITURE
    if kind == "table":
        w, d, h = rng.uniform(0.9, 1.8), rng.uniform(0.6, 0.9), rng.uniform(0.72, 0.76)
        return w, d, [("box", 0, 0, h - 0.04, h, w / 2, d / 2, "wood", wood), *_legs(w, d, h - 0.04, 0.025, "metal", metal)], FURNITURE
    if kind == "desk":
        w, d = rng.uniform(1.2, 1.6), rng.uniform(0.6, 0.8)
        return w, d, [("box", 0, 0, 0.71, 0.74, w / 2, d / 2, "wood", wood), *_legs(w, d, 0.71, 0.025, "metal", metal),
                      ("box", w / 2 - 0.25, 0, 0.1, 0.7, 0.2, d / 2 - 0.05, "wood", _shade(wood, rng)),
                      ("box", 0, -0.1, 0.74, 1.1, 0.25, 0.02, "plastic", (0.02, 0.02, 0.02))], FURNITURE
    if kind == "chair":
        return 0.46, 0.46, [("box", 0, 0, 0.43, 0.47, 0.22, 0.22, "fabric", fabric), *_legs(0.46, 0.46, 0.43, 0.015, "metal", metal),
                            ("box", 0, -0.2, 0.47, 0.9, 0.21, 0.025, "fabric", fabric)], FURNITURE
    if kind == "sofa":
        w = rng.uniform(1.6, 2.4)
        return w, 0.85, [("box", 0, 0.05, 0.08, 0.44, w / 2 - 0.15, 0.37, "fabric", fabric),
                         ("box", 0, -0.32, 0.08, 0.85, w / 2, 0.1, "fabric", _shade(fabric, rng)),
                         *[("box", sx * (w / 2 - 0.08), 0.05, 0.08, 0.62, 0.08, 0.37, "fabric", fabric) for sx in (-1, 1)],
                         ("box", 0, 0, 0, 0.08, w / 2, 0.4, "plastic", (0.03, 0.03, 0.03))], FURNITURE
    if kind == "shelf":
        w, h, frame = rng.uniform(0.8, 1.2), rng.uniform(1.6, 2.0), wood
        parts = [("box", 0, -0.16, 0, h, w / 2, 0.015, "wood", frame),
                 *[("box", sx * (w / 2 - 0.015), 0, 0, h, 0.015, 0.17, "wood", frame) for sx in (-1, 1)]]
        for z in np.linspace(0.02, h - 0.02, 5).tolist():
            parts.append(("box", 0, 0, z - 0.015, z + 0.015, w / 2, 0.17, "wood", frame))
            if z < h - 0.1:
                book = _rgb(rng.uniform(0, 1), rng.uniform(0.3, 0.8), rng.uniform(0.2, 0.8))
                parts.append(("box", 0, -0.02, z + 0.015, z + rng.uniform(0.2, 0.3), w / 2 - 0.05, 0.12, "plastic", book))
        return w, 0.36, parts, FURNITURE
    if kind == "plant":
        r = rng.uniform(0.14, 0.22)
        pot = ("cyl", 0, 0, 0, r * 2, r, "plastic", _rgb(0.06, 0.6, rng.uniform(0.3, 0.7)))
        leaves = [("ball", rng.uniform(-0.08, 0.08), rng.uniform(-0.08, 0.08), r * 2 + 0.15 + 0.25 * k, rng.uniform(0.2, 0.32),
                   "leaf", _rgb(rng.uniform(0.22, 0.36), 0.6, rng.uniform(0.25, 0.55))) for k in range(rng.integers(2, 4))]
        return 2 * r + 0.3, 2 * r + 0.3, [pot, *leaves], FURNITURE
    r = rng.uniform(0.14, 0.2)  # a bin: "other"
    return 2 * r, 2 * r, [("cyl", 0, 0, 0, rng.uniform(0.4, 0.7), r, "plastic", _rgb(rng.uniform(0, 1), 0.5, rng.uniform(0.1, 0.6)))], OTHER


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
        h, (shirt, trousers, skin, hair) = self.height, self.colours
        hip, shoulder, r = 0.47 * h, 0.82 * h, 0.17 * h / 1.75
        return [*[("cyl", sx * 0.09, sx * stride, 0.0, hip, 0.07, "cloth", trousers) for sx in (-1, 1)],
                ("cyl", 0, 0, hip - 0.05, shoulder, r, "cloth", shirt),
                *[("cyl", sx * (r + 0.05), -sx * stride * 0.6, hip - 0.02, shoulder - 0.03, 0.045, "cloth", shirt) for sx in (-1, 1)],
                ("cyl", 0, 0, shoulder, shoulder + 0.07, 0.05, "skin", skin),
                ("ball", 0, 0, h - 0.11, 0.105, "skin", skin), ("ball", 0, -0.02, h - 0.095, 0.108, "hair", hair)]


def make_walker(b: Builder, rng: np.random.Generator, start, end, zone: int = 0) -> Walker:
    colours = (_rgb(rng.uniform(0, 1), rng.uniform(0.1, 0.8), rng.uniform(0.1, 0.9)),
               _rgb(rng.uniform(0.55, 0.7), rng.uniform(0.1, 0.6), rng.uniform(0.08, 0.5)),
               _rgb(rng.uniform(0.03, 0.08), rng.uniform(0.3, 0.6), rng.uniform(0.35, 0.95)),
               _rgb(rng.uniform(0.05, 0.1), rng.uniform(0.3, 0.8), rng.uniform(0.05, 0.6)))
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


def _path(kind: str, centre, radii, speed: float, turn: int, bias: float, style: Style, rng, look_deg: float) -> dict:
    """The robot's route as the fields of `world.CameraPath`; yaw sweeps by up to `look_deg` degrees."""
    look = (math.radians(look_deg) * rng.uniform(0.5, 1.0), rng.uniform(5, 9), rng.uniform(0, 2 * math.pi),
            math.radians(look_deg) * rng.uniform(0.1, 0.4), rng.uniform(2, 4), rng.uniform(0, 2 * math.pi))
    return dict(kind=kind, centre=tuple(centre), radii=tuple(radii), speed=speed, turn=turn, phase=rng.uniform(0, 2 * math.pi),
                bias=bias, height=style.camera_height + rng.uniform(-0.03, 0.03), pitch=math.radians(style.camera_pitch_deg),
                look=look)


def _openings(rng, style: Style, a0: float, a1: float, h: float, forced: float | None):
    """Glass panes (s0, s1, z0, z1) and doors (centre, width) along one wall, not overlapping."""
    panes, doors, used = [], [], []

    def pane(s0, s1):
        full = rng.random() < 0.45
        top = h - 0.25 if full and rng.random() < 0.5 else rng.uniform(2.0, min(2.4, h - 0.2))
        panes.append((s0, s1, 0.0 if full else rng.uniform(0.75, 1.0), top))
        used.append((s0, s1))

    if forced is not None:
        pane(forced, forced + rng.uniform(2.0, 4.0))
    s = a0 + rng.uniform(0.3, 1.5)
    while s < a1 - 2.0:
        kind = rng.choice(3, p=[0.85 - style.glass_share, 0.15, style.glass_share])
        length = (rng.uniform(0.8, 3.0), rng.uniform(1.3, 1.6), rng.uniform(1.5, 4.0))[kind]
        s1 = min(s + length, a1 - 0.5)
        if not any(s < u1 + 0.3 and u0 - 0.3 < s1 for u0, u1 in used):
            if kind == 1:
                doors.append(((s + s1) / 2, rng.uniform(0.85, 1.1)))
                used.append((s, s1))
            elif kind == 2:
                pane(s, s1)
        s = s1 + rng.uniform(0.1, 0.6)
    return panes, doors


def offices(b: Builder, style: Style, rng, fp: Floorplan, along: int, c: float, inward: int, span: float,
            depth: float, h: float, panes, walkers: list) -> None:
    """The rooms behind a glazed wall (zone 1: drawn only where the glass shows them)."""
    back, near = c - inward * depth, c - inward * 0.1
    lo, hi = min(back, near), max(back, near)
    carpet = _rgb(rng.uniform(0, 1), rng.uniform(0.05, 0.3), rng.uniform(0.3, 0.6))
    flat = [(0.0, lo), (span, hi)] if along == 0 else [(lo, 0.0), (hi, span)]
    b.add([Rect(2, 0.0, *flat, b.look("carpet", FLOOR, carpet)), Rect(2, h, *flat, b.look("ceiling", OTHER, style.ceiling))], zone=1)
    wall(b, style, along, back, inward, 0.0, span, h, zone=1)
    paint = b.look("wall", WALL, _shade(style.wall, rng, 0.2))
    for s0, s1, *_ in panes:
        cuts = (max(0.0, s0 - rng.uniform(0.3, 1.5)), min(span, s1 + rng.uniform(0.3, 1.5)))
        b.add([Rect(along, x, (lo, 0.0), (hi, h), paint) for x in cuts], zone=1)
        mid = ((s0 + s1) / 2, (lo + hi) / 2)
        ceiling_light(b, *(mid if along == 0 else mid[::-1]), h, [], zone=1)
        for kind in rng.choice(["desk", "cabinet", "shelf", "plant", "desk", "sofa"], size=rng.integers(1, 4)):
            place_against(b, fp, rng, style, str(kind), along, back, inward, cuts, zone=1)
        for kind in rng.choice(["desk", "plant", "bin", "chair"], size=rng.integers(0, 3)):  # just inside the glass
            place_against(b, fp, rng, style, str(kind), along, near, -inward, (s0, s1), zone=1)
        if rng.random() < 0.4:
            region = (cuts[0] + 0.4, cuts[1] - 0.4, lo + 0.4, hi - 0.4)
            place_person(b, fp, rng, region if along == 0 else (*region[2:], *region[:2]), walkers, zone=1)


def corridor(b: Builder, style: Style, rng, walkers: list, lights: list):
    """A long corridor along +x with glazed offices, doors, furniture and people; returns interior, path."""
    speed, x_start, run = rng.uniform(0.4, 0.9), rng.uniform(1.0, 2.0), rng.uniform(12.0, 24.0)
    length, width, h = x_start + run + 3.5, rng.uniform(2.4, 3.4), rng.uniform(2.5, 3.1)
    depths = rng.uniform(2.5, 4.5, size=2)
    fp = Floorplan(0.0, length, -width / 2 - depths[1], width / 2 + depths[0])
    lane, sway = rng.uniform(-0.12, 0.12) * width, rng.uniform(0.03, 0.15)
    fp.reserve_where(lambda x, y: (np.abs(y - lane) < sway + 0.4) & (x > x_start - 1.5))
    b.add([Rect(2, 0.0, (0.0, -width / 2), (length, width / 2), b.look("floor", FLOOR, style.floor)),
           Rect(2, h, (0.0, -width / 2), (length, width / 2), b.look("ceiling", OTHER, style.ceiling))])
    wall(b, style, 1, 0.0, 1, -width / 2, width / 2, h)
    wall(b, style, 1, length, -1, -width / 2, width / 2, h)
    door(b, style, 1, length, -1, rng.uniform(-0.3, 0.3) * width, 1.0, 2.05)
    forced_side = rng.choice([1, -1])
    for side, depth in zip((1, -1), depths):
        c, inward = side * width / 2, -side
        forced = x_start + rng.uniform(2.0, 3.5) if side == forced_side else None
        panes, doors = _openings(rng, style, 0.0, length, h, forced)
        wall(b, style, 0, c, inward, 0.0, length, h, panes)
        for s, w in doors:
            door(b, style, 0, c, inward, s, w, rng.uniform(2.0, 2.15))
            fp.occupy(s - w / 2, s + w / 2, min(c, c + inward * 0.8), max(c, c + inward * 0.8))
        if panes:
            offices(b, style, rng, fp, 0, c, inward, length, depth, h, panes, walkers)
        for kind in rng.choice(["bench", "cabinet", "plant", "bin", "chair", "table", "bench"], size=int(length / 5)):
            place_against(b, fp, rng, style, str(kind), 0, c, inward, (0.3, length - 0.3))
    for x in np.arange(rng.uniform(0.8, 2.0), length, rng.uniform(2.4, 4.0)).tolist():
        ceiling_light(b, x, 0.0, h, lights)
    region = (x_start + 1.5, length - 1.0, -width / 2 + 0.35, width / 2 - 0.35)
    for _ in range(rng.poisson(length / 6) + 1):
        place_person(b, fp, rng, region, walkers, walk=rng.uniform(3.0, 8.0) if rng.random() < 0.5 else 0.0)
    path = _path("lane", (x_start, lane), (run, sway), speed, 1, 0.0, style, rng, 22)
    return (0.0, length, -width / 2, width / 2), path


def outside(b: Builder, rng, cx: float, cy: float) -> None:
    """What windows show: ground a storey down, other buildings, trees and a sky box (zone 1)."""
    b.add([Rect(2, -3.0, (cx - 80, cy - 80), (cx + 80, cy + 80), b.look("ground", OTHER, _rgb(rng.uniform(0.1, 0.3), 0.3, 0.45))),
           Box((cx, cy, 0.0), (100.0, 100.0, 60.0), b.look("sky", OTHER, _rgb(0.58, rng.uniform(0.2, 0.45), 0.95)))], zone=1)
    for _ in range(rng.integers(5, 10)):
        a, r = rng.uniform(0, 2 * math.pi), rng.uniform(18, 45)
        half = (rng.uniform(4, 12), rng.uniform(4, 12), rng.uniform(6, 20))
        look = b.look("wall", OTHER, _rgb(rng.uniform(0, 1), rng.uniform(0, 0.3), rng.uniform(0.4, 0.9)))
        b.add([Box((cx + r * math.cos(a), cy + r * math.sin(a), -3 + half[2]), half, look)], zone=1)
    for _ in range(rng.integers(3, 8)):
        a, r = rng.uniform(0, 2 * math.pi), rng.uniform(8, 16)
        emit(b, [("cyl", 0, 0, -3.0, 1.0, 0.15, "wood", (0.15, 0.1, 0.06)),
                 ("ball", 0, 0, 1.5, rng.uniform(1.5, 2.5), "leaf", _rgb(0.3, 0.6, rng.uniform(0.3, 0.5)))],
             cx + r * math.cos(a), cy + r * math.sin(a), 0.0, OTHER, 0, 1)


def _table_group(b: Builder, fp: Floorplan, rng, style: Style, cx: float, cy: float) -> None:
    """A table with chairs round it (and a rug under it) in the middle of a room, if it fits."""
    w, d, parts, _ = furniture("table", rng, style)
    reach = (w / 2 + 0.55, d / 2 + 0.55)
    if not fp.free(cx - reach[0], cx + reach[0], cy - reach[1], cy + reach[1]):
        return
    fp.occupy(cx - reach[0], cx + reach[0], cy - reach[1], cy + reach[1])
    rug = _rgb(rng.uniform(0, 1), rng.uniform(0.2, 0.6), rng.uniform(0.3, 0.7))
    b.add([Box((cx, cy, 0.004), (reach[0] + 0.1, reach[1] + 0.1, 0.004), b.look("carpet", FLOOR, rug))])
    emit(b, parts, cx, cy, 0.0, FURNITURE, b.instance(), 0)
    seats = [(cx + sx * (w / 2 + 0.15), cy, -sx * math.pi / 2) for sx in (-1, 1)]
    seats += [(cx + k, cy + sy * (d / 2 + 0.15), 0.0 if sy < 0 else math.pi) for sy in (-1, 1) for k in (-w / 4, w / 4)]
    for x, y, yaw in seats:
        if rng.random() < 0.7:
            emit(b, furniture("chair", rng, style)[2], x, y, yaw + rng.uniform(-0.3, 0.3), FURNITURE, b.instance(), 0)
    b.casters.append((cx, cy, reach[0], reach[1]))


def room(b: Builder, style: Style, rng, walkers: list, lights: list):
    """A box room with windows, maybe a glass partition to an office, doors, furniture and people."""
    lx, ly, h = rng.uniform(4.0, 7.0), rng.uniform(3.6, 5.8), rng.uniform(2.5, 3.0)
    cx, cy, bay = lx / 2, ly / 2, rng.uniform(3.0, 4.5)
    fp = Floorplan(-bay - 0.5, lx + bay + 0.5, -bay - 0.5, ly + bay + 0.5)
    ax, ay = max(0.7, lx / 2 - 1.45), max(0.6, ly / 2 - 1.45)
    fp.reserve_where(lambda x, y: np.abs(np.hypot((x - cx) / ax, (y - cy) / ay) - 1) * min(ax, ay) < 0.45)
    b.add([Rect(2, 0.0, (0.0, 0.0), (lx, ly), b.look("floor", FLOOR, style.floor)),
           Rect(2, h, (0.0, 0.0), (lx, ly), b.look("ceiling", OTHER, style.ceiling))])
    sides = [(0, 0.0, 1, lx), (0, ly, -1, lx), (1, 0.0, 1, ly), (1, lx, -1, ly)]  # along, c, inward, length
    roles = rng.permutation(["window", "window" if rng.random() < 0.5 else "door", "partition", "door"])
    for (along, c, inward, span), role in zip(sides, roles):
        panes, doors = [], []
        if role == "window":
            for s in np.linspace(0, span, rng.integers(2, 4) + 1)[1:-1].tolist():
                w = rng.uniform(0.9, min(2.2, span / 3))
                panes.append((s - w / 2, s + w / 2, rng.uniform(0.7, 0.95), rng.uniform(2.05, min(2.5, h - 0.15))))
        elif role == "partition":
            w = rng.uniform(1.5, min(3.5, span - 1.5))
            s = rng.uniform(0.4 + w / 2, span - 0.4 - w / 2)
            panes.append((s - w / 2, s + w / 2, 0.0, min(h - 0.3, rng.uniform(2.1, 2.6))))
        else:
            doors.append((rng.uniform(0.8, span - 0.8), rng.uniform(0.85, 1.0)))
        wall(b, style, along, c, inward, 0.0, span, h, panes)
        for s, w in doors:
            door(b, style, along, c, inward, s, w, 2.05)
            box = sorted([c, c + inward * 0.9])
            fp.occupy(*((s - w / 2, s + w / 2, *box) if along == 0 else (*box, s - w / 2, s + w / 2)))
        if role == "partition":
            offices(b, style, rng, fp, along, c, inward, span, bay, h, panes, walkers)
        gaps = [(0.1, span - 0.1)] if not panes else [(0.1, panes[0][0]), *[(p[1], q[0]) for p, q in zip(panes, panes[1:])], (panes[-1][1], span - 0.1)]
        for kind in rng.choice(["cabinet", "shelf", "sofa", "desk", "plant", "bin", "bench", "shelf"], size=rng.integers(2, 5)):
            low = kind in ("sofa", "desk", "plant", "bin", "bench")
            where = (0.1, span - 0.1) if low else gaps[rng.integers(len(gaps))]
            place_against(b, fp, rng, style, str(kind), along, c, inward, where)
    if "window" in roles:
        outside(b, rng, cx, cy)
    _table_group(b, fp, rng, style, cx, cy)
    for _ in range(rng.integers(1, 4)):
        place_person(b, fp, rng, (0.4, lx - 0.4, 0.4, ly - 0.4), walkers, walk=rng.uniform(1.5, 3.0) if rng.random() < 0.3 else 0.0)
    nx, ny = (1 if lx < 6 else 2), (1 if ly < 5.5 else 2)
    for i in range(nx):
        for j in range(ny):
            ceiling_light(b, lx * (i + 0.5) / nx, ly * (j + 0.5) / ny, h, lights)
    path = _path("loop", (cx, cy), (ax, ay), rng.uniform(0.25, 0.5), int(rng.choice([-1, 1])), rng.uniform(0.3, 0.8),
                 style, rng, 15)
    return (0.0, lx, 0.0, ly), path


@dataclass
class Scene:
    """One built scene: static primitives and glass, walkers, lighting and the robot's route."""

    family: str
    static: PrimTable
    glass: PrimTable
    materials: dict[str, tuple[int, Material]]
    walkers: list[Walker]
    lighting: Lighting
    interior: tuple[float, float, float, float]
    casters: list
    path: dict  # the fields of a world.CameraPath

    def at(self, time: float) -> FrameScene:
        """The scene at `time` seconds: walkers moved, their contact shadows added."""
        b, casters = Builder(self.materials), list(self.casters)
        for walker in self.walkers:
            x, y, heading, stride = walker.place(time)
            emit(b, walker.parts(stride), x, y, heading, PERSON, walker.instance, walker.zone)
            casters.append((x, y, 0.3, 0.3))
        return FrameScene(self.static + PrimTable.build(b.prims, b.zones), self.glass, [m for _, m in self.materials.values()],
                          self.lighting, self.interior, np.array(casters, np.float32).reshape(-1, 4))


def build_scene(family: str, seed: int, sequence: int) -> Scene:
    """Build sequence `sequence` of the (family, seed) domain."""
    if family not in FAMILIES:
        raise ValueError(f"unknown scene family {family!r}; choose one of {', '.join(FAMILIES)}")
    style = make_style(family, seed)
    rng = family_rng(family, seed, 2, sequence)
    b, walkers, lights = Builder(_materials(style, family)), [], []
    interior, path = (corridor if family == "corridor" else room)(b, style, rng, walkers, lights)
    b.instances = max(b.instances, max((w.instance for w in walkers), default=0))
    lighting = Lighting(np.array(lights, np.float64), style.light_intensity, 2.6 if family == "corridor" else 3.2,
                        style.light_colour, style.ambient, style.exposure)
    return Scene(family, PrimTable.build(b.prims, b.zones), PrimTable.build(b.glass), b.materials, walkers, lighting,
                 interior, b.casters, path)
