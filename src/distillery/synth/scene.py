"""Procedural indoor scenes: the "corridor" and "room" families.

A scene (family, seed, sequence index) is one corridor or room built from
axis-aligned pieces: walls with doors and glass panes, furniture, people
(some walking), ceiling lights, and the offices or the outside that the glass
shows. This module lays those pieces out (the pieces themselves are built in
`props`); domain-wide choices (palette, lighting, robot height, lens) come
from the seed alone (`style`), so the sequences of one seed look like one
dataset and another seed like another. Everything is drawn from numpy
Generators seeded from those integers: a scene is a pure function of its
arguments. World frame: z up, floor at z = 0; corridors run along +x.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from distillery.synth.primitives import Box, PrimTable, Rect
from distillery.synth.props import (Builder, Floorplan, Walker, ceiling_light, door, emit, furniture, place_against,
                                    place_person, wall)
from distillery.synth.shading import FrameScene
from distillery.synth.shading import Lighting, Material
from distillery.synth.style import (CLASS_NAMES, FLOOR, FURNITURE, GLASS, OTHER, PERSON, WALL, Style, family_rng,
                                    hsv_albedo, make_style, scene_materials, varied_shade)

__all__ = ["CLASS_NAMES", "FAMILIES", "FLOOR", "FURNITURE", "GLASS", "OTHER", "PERSON", "WALL", "Scene", "build_scene",
           "family_rng", "make_style"]

FAMILIES = ("corridor", "room")


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
    carpet = hsv_albedo(rng.uniform(0, 1), rng.uniform(0.05, 0.3), rng.uniform(0.3, 0.6))
    flat = [(0.0, lo), (span, hi)] if along == 0 else [(lo, 0.0), (hi, span)]
    b.add([Rect(2, 0.0, *flat, b.look("carpet", FLOOR, carpet)), Rect(2, h, *flat, b.look("ceiling", OTHER, style.ceiling))], zone=1)
    wall(b, style, along, back, inward, 0.0, span, h, zone=1)
    paint = b.look("wall", WALL, varied_shade(style.wall, rng, 0.2))
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
    b.add([Rect(2, -3.0, (cx - 80, cy - 80), (cx + 80, cy + 80), b.look("ground", OTHER, hsv_albedo(rng.uniform(0.1, 0.3), 0.3, 0.45))),
           Box((cx, cy, 0.0), (100.0, 100.0, 60.0), b.look("sky", OTHER, hsv_albedo(0.58, rng.uniform(0.2, 0.45), 0.95)))], zone=1)
    for _ in range(rng.integers(5, 10)):
        a, r = rng.uniform(0, 2 * math.pi), rng.uniform(18, 45)
        half = (rng.uniform(4, 12), rng.uniform(4, 12), rng.uniform(6, 20))
        look = b.look("wall", OTHER, hsv_albedo(rng.uniform(0, 1), rng.uniform(0, 0.3), rng.uniform(0.4, 0.9)))
        b.add([Box((cx + r * math.cos(a), cy + r * math.sin(a), -3 + half[2]), half, look)], zone=1)
    for _ in range(rng.integers(3, 8)):
        a, r = rng.uniform(0, 2 * math.pi), rng.uniform(8, 16)
        emit(b, [("cyl", 0, 0, -3.0, 1.0, 0.15, "wood", (0.15, 0.1, 0.06)),
                 ("ball", 0, 0, 1.5, rng.uniform(1.5, 2.5), "leaf", hsv_albedo(0.3, 0.6, rng.uniform(0.3, 0.5)))],
             cx + r * math.cos(a), cy + r * math.sin(a), 0.0, OTHER, 0, 1)


def _table_group(b: Builder, fp: Floorplan, rng, style: Style, cx: float, cy: float) -> None:
    """A table with chairs round it (and a rug under it) in the middle of a room, if it fits."""
    w, d, parts, _ = furniture("table", rng, style)
    reach = (w / 2 + 0.55, d / 2 + 0.55)
    if not fp.free(cx - reach[0], cx + reach[0], cy - reach[1], cy + reach[1]):
        return
    fp.occupy(cx - reach[0], cx + reach[0], cy - reach[1], cy + reach[1])
    rug = hsv_albedo(rng.uniform(0, 1), rng.uniform(0.2, 0.6), rng.uniform(0.3, 0.7))
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
    b, walkers, lights = Builder(scene_materials(style, family)), [], []
    interior, path = (corridor if family == "corridor" else room)(b, style, rng, walkers, lights)
    b.instances = max(b.instances, max((w.instance for w in walkers), default=0))
    lighting = Lighting(np.array(lights, np.float64), style.light_intensity, 2.6 if family == "corridor" else 3.2,
                        style.light_colour, style.ambient, style.exposure)
    return Scene(family, PrimTable.build(b.prims, b.zones), PrimTable.build(b.glass), b.materials, walkers, lighting,
                 interior, b.casters, path)
