"""What the scenes of one (family, seed) domain share: classes, random streams, palette, materials.

Domain-wide choices (palette, lighting, robot height, lens) come from the seed
alone, so the sequences of one seed look like one dataset and another seed
like another. Random streams are numpy Generators seeded from integers only,
so that a scene is a pure function of its arguments.
"""

from __future__ import annotations

import colorsys
import zlib
from dataclasses import dataclass

import numpy as np

from distillery.classes import CLASS_NAMES, FLOOR, FURNITURE, GLASS, OTHER, PERSON, WALL  # noqa: F401
from distillery.synth.shading import Material




def family_rng(family: str, seed: int, *stream: int) -> np.random.Generator:
    """A Generator for one (family, seed, ...) stream; crc32 because str hash() is salted per process."""
    return np.random.default_rng([zlib.crc32(family.encode()), int(seed), *stream])


def hsv_albedo(h: float, s: float, v: float) -> tuple[float, float, float]:
    """HSV (display space) -> linear RGB albedo."""
    return tuple(round(c**2.2, 4) for c in colorsys.hsv_to_rgb(h % 1.0, s, v))


def varied_shade(colour, rng: np.random.Generator, spread: float = 0.15) -> tuple:
    """A colour varied in brightness, so that repeated objects are not identical."""
    k = rng.uniform(1 - spread, 1 + spread)
    return tuple(min(1.0, c * k) for c in colour)


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
    """The style of the (family, seed) domain, drawn from its own random stream."""
    rng = family_rng(family, seed, 1)
    warm = rng.uniform(-0.08, 0.1)
    return Style(
        wall=hsv_albedo(*WALL_PAINTS[rng.integers(len(WALL_PAINTS))] * rng.uniform(0.95, 1.05, 3) % [1.0, 1.0, 0.99]),
        floor=hsv_albedo(rng.uniform(0.05, 0.15), rng.uniform(0.05, 0.35), rng.uniform(0.45, 0.8)),
        ceiling=hsv_albedo(0.1, rng.uniform(0.0, 0.05), rng.uniform(0.85, 0.95)),
        door=hsv_albedo(rng.uniform(0.0, 1.0), rng.uniform(0.1, 0.5), rng.uniform(0.35, 0.75)),
        wood=hsv_albedo(rng.uniform(0.06, 0.1), rng.uniform(0.4, 0.7), rng.uniform(0.45, 0.8)),
        glass=hsv_albedo(rng.uniform(0.35, 0.55), rng.uniform(0.03, 0.12), rng.uniform(0.88, 0.97)),
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


def scene_materials(style: Style, family: str) -> dict[str, tuple[int, Material]]:
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
