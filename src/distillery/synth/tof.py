"""Time-of-flight depth sensor simulation with the failure modes of a real one.

Input is a `Rendering` (true depth plus the surface facts a ToF return
depends on); output is ToF depth in float32 metres (0 = invalid) and a
confidence in [0, 1] that behaves like the sensor's IR amplitude. The
failure modes are those that leave about 78 % of a corridor without depth:

- weak returns: amplitude ~ NIR albedo * cos(incidence) / range^2, so dark,
  far and grazing surfaces fall below the sensor's floor;
- a hard range limit (a few metres) and a minimum range;
- polished surfaces (corridor floors) mirror the IR pulse away at grazing
  incidence and return nothing beyond `polished_max_incidence_deg`;
- glass returns nothing, except that on a random share of panes per frame
  the pulse goes through (losing the glass's transmission twice) and the
  sensor reports the surface *behind* the glass when that return is still
  strong enough: the multipath-like error, rare in practice because what is
  behind the glass is usually far. Contract: a valid ToF pixel on glass
  always carries the depth behind the glass (plus noise), never the glass's;
- flying pixels at depth edges: a mix of foreground and background depth
  with low confidence; other edge pixels are filtered out or kept with low
  confidence;
- Gaussian range noise whose sigma grows with the square of the range, and
  random dropouts.
Confidence is sqrt(amplitude / amplitude_full) clipped to [0.02, 1] where
depth is valid, lowered within a pixel of a depth edge, on flying pixels and
through glass, and exactly 0 wherever depth is 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

F32 = np.float32


@dataclass(frozen=True)
class TofSensor:
    """Settings of one simulated ToF camera (one per synthetic domain)."""

    max_range: float  # metres; beyond it the sensor reports nothing
    min_range: float  # metres
    amplitude_floor: float  # returns weaker than this are invalid (dark, far, grazing)
    amplitude_full: float  # amplitude that maps to confidence 1 (a multiple of the floor: an SNR scale)
    polished_max_incidence_deg: float  # polished surfaces return nothing beyond this angle
    multipath_share: float  # chance per pane and frame that the glass passes the pulse through
    glass_transmission: float  # one-way intensity transmission of glass
    flying_share: float  # share of edge pixels reported as a fg/bg mixture
    edge_filtered_share: float  # share of the remaining edge pixels the sensor invalidates
    edge_jump: float  # relative depth jump within 3x3 pixels that makes an edge
    noise_base: float  # range noise sigma at 0 m, metres
    noise_quadratic: float  # added sigma per square metre of range
    dropout: float  # share of random invalid pixels


def draw_sensor(rng: np.random.Generator) -> TofSensor:
    """A sensor with seed-varied settings, drawn from `rng` (one draw per domain)."""
    floor = float(rng.uniform(0.018, 0.026))
    # Confidence is an SNR scale: a return 1.5x the validity floor reaches the 0.5 trust gate
    # (sqrt(1.5 / 6) = 0.5), so dim, far, grazing and edge pixels are untrusted and well-lit surfaces
    # are trusted, as on a real ToF camera. A fixed full scale would leave a whole dim world untrusted.
    return TofSensor(
        max_range=float(rng.uniform(3.6, 4.6)),
        min_range=0.15,
        amplitude_floor=floor,
        amplitude_full=6.0 * floor,
        polished_max_incidence_deg=float(rng.uniform(54.0, 62.0)),
        multipath_share=float(rng.uniform(0.15, 0.35)),
        glass_transmission=0.92,
        flying_share=float(rng.uniform(0.3, 0.5)),
        edge_filtered_share=0.5,
        edge_jump=0.06,
        noise_base=0.002,
        noise_quadratic=float(rng.uniform(0.002, 0.004)),
        dropout=float(rng.uniform(0.003, 0.01)),
    )


def noise_sigma(sensor: TofSensor, range_m: np.ndarray) -> np.ndarray:
    """Standard deviation of the range noise (metres) at range `range_m`."""
    return F32(sensor.noise_base) + F32(sensor.noise_quadratic) * range_m * range_m


def _filter3(a: np.ndarray, pick) -> np.ndarray:
    """3 x 3 min or max filter (pick = np.minimum / np.maximum), edges replicated."""
    p = np.pad(a, 1, mode="edge")
    rows = pick(pick(p[:-2], p[1:-1]), p[2:])
    return pick(pick(rows[:, :-2], rows[:, 1:-1]), rows[:, 2:])


def _amplitude(nir, cos, range_m) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(range_m > 0, nir * cos / (range_m * range_m), F32(0))


def _multipath_panes(instances: np.ndarray, glass: np.ndarray, share: float, rng: np.random.Generator) -> np.ndarray:
    """Mask of glass pixels whose pane passes the pulse through in this frame."""
    panes = np.unique(instances[glass])
    chosen = panes[rng.random(panes.size) < share]
    return glass & np.isin(instances, chosen)


def simulate(rendering, sensor: TofSensor, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """ToF depth (float32 metres, 0 = invalid) and confidence (float32 in [0, 1]) for one frame."""
    r = rendering
    glass = r.glass
    through = _multipath_panes(r.instances, glass, sensor.multipath_share, rng)
    seen, cos = r.behind_depth, r.behind_cos  # the opaque surface the pulse can come back from
    seen_range = seen * r.ray_length
    amplitude = _amplitude(r.nir, cos, seen_range)
    amplitude = np.where(through, amplitude * F32(sensor.glass_transmission**2), amplitude)
    valid = (amplitude >= sensor.amplitude_floor) & (seen_range >= sensor.min_range) & (seen_range <= sensor.max_range)
    grazing = r.polished & (cos < math.cos(math.radians(sensor.polished_max_incidence_deg)))
    valid &= ~grazing & (~glass | through)
    confidence = np.sqrt(np.clip(amplitude / F32(sensor.amplitude_full), 0, 1))
    confidence = np.where(through, confidence * F32(0.5), confidence)

    near, far = _filter3(seen, np.minimum), _filter3(seen, np.maximum)
    edge = (far - near > F32(sensor.edge_jump) * near) & ~glass
    roll = rng.random(seen.shape, dtype=F32)
    flying = edge & valid & (roll < sensor.flying_share)
    filtered = edge & ~flying & (roll < sensor.flying_share + (1 - sensor.flying_share) * sensor.edge_filtered_share)
    valid &= ~filtered & (rng.random(seen.shape, dtype=F32) >= sensor.dropout)
    mix = rng.random(seen.shape, dtype=F32)
    # A mixed pixel blends returns the sensor can see: a background past the range adds none.
    far_seen = np.minimum(far, F32(sensor.max_range))
    true = np.where(flying, near + mix * np.maximum(far_seen - near, F32(0)), seen)
    near_edge = _filter3(edge.view(np.uint8), np.maximum).view(bool)
    confidence = np.where(near_edge, confidence * F32(0.35), confidence)
    confidence = np.where(flying, confidence * F32(0.3), confidence)

    true_range = true * r.ray_length
    noisy_range = true_range + noise_sigma(sensor, true_range) * rng.standard_normal(seen.shape, dtype=F32)
    with np.errstate(divide="ignore", invalid="ignore"):
        depth = np.where(valid, true * (noisy_range / true_range), F32(0))
    valid &= (depth > 0) & (depth * r.ray_length <= F32(sensor.max_range))
    depth = np.where(valid, depth, F32(0)).astype(F32)
    confidence = np.where(valid, np.clip(confidence, F32(0.02), F32(1)), F32(0)).astype(F32)
    return depth, confidence


def tof_invalid_share(depth: np.ndarray) -> float:
    """Share of pixels without a ToF measurement (depth 0 or not finite), in [0, 1]."""
    depth = np.asarray(depth)
    if depth.size == 0:
        return 0.0
    return float(np.count_nonzero(~(np.isfinite(depth) & (depth > 0))) / depth.size)
