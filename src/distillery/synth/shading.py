"""Materials, procedural textures, lighting and tone mapping for the synthetic world.

Shading is deferred: the ray caster (`render`) leaves, per pixel, the index
and normal of the nearest primitive, and this module turns that into linear
radiance once per pixel: albedo times a procedural pattern of the surface's
material, lit by ambient light and the ceiling panels (with highlights and,
on polished floors, blurry mirror images of the panels), glass composited
over what lies behind it, then exposed to 8-bit RGB with vignetting and
sensor noise. All of it is vectorised float32 numpy.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

from distillery.synth.camera import Camera, Rays, ZBuffer
from distillery.synth.primitives import F32, PrimTable


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


@dataclass
class FrameScene:
    """Everything the renderer needs for one instant of a scene."""

    opaque: PrimTable
    glass: PrimTable
    materials: list[Material]
    lighting: Lighting
    interior: tuple[float, float, float, float]  # x0, x1, y0, y1 of the main space (floor occlusion)
    casters: np.ndarray  # [K, 4] x, y, rx, ry: soft contact shadows on the floor


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
    """Per-pixel gain (times 1024, the display table's step) darkening the image corners."""
    u, v = camera.grid
    r2 = (u * camera.fx / camera.width) ** 2 + (v * camera.fy / camera.width) ** 2
    return (1024 * (1 - F32(0.9) * r2)).astype(F32)


def expose(lin: np.ndarray, exposure: float, camera: Camera, rng: np.random.Generator) -> np.ndarray:
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


def shade_opaque(scene, rays: Rays, zb: ZBuffer):
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


def composite_glass(scene, rays: Rays, panes: ZBuffer, lin: np.ndarray) -> None:
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
