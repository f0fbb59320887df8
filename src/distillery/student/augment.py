"""The V5 "deployment" augmentations, applied to one sample dict with its own seeded generator.

Geometric transforms (flip, rotation, zoom) move every image field together:
RGB bilinearly, depth, confidence and labels by nearest neighbour (a depth
edge must never blend two surfaces, a label must stay a class). Pixels the
warp brings in from outside the frame hold no measurement: depth and
confidence 0, labels 255 (ignore); RGB there is reflected image content.
A zoom by s makes everything look s times closer, as a longer focal length
would, so every depth is divided by s (Eigen et al., 2014) to keep the
target metric. Photometric transforms (colour jitter, exposure, blur, sensor
noise, JPEG, cutout) touch RGB only.

The sampler hands every draw its own seed, so an augmented epoch is the same
whichever worker loads which sample, and a resumed run sees the same pixels.
"""

from __future__ import annotations

import io
import math

import numpy as np
import torch
import torch.nn.functional as F
import torchvision.transforms.v2.functional as TF
from PIL import Image

from distillery.classes import IGNORE_LABEL
from distillery.student.config import AugmentConfig

DEPTH_FIELDS = ("tof_depth", "teacher_depth", "teacher_depth_relative", "truth_depth")  # relative: scale-free
CONFIDENCE_FIELDS = ("tof_confidence",)
LABEL_FIELDS = ("teacher_label", "truth_label")


def _uniform(rng: np.random.Generator, bounds) -> float:
    return float(rng.uniform(bounds[0], bounds[1]))


def flip(sample: dict) -> None:
    """Mirror every image field left-right (the last axis), in place."""
    for name in ("rgb", *DEPTH_FIELDS, *CONFIDENCE_FIELDS, *LABEL_FIELDS):
        if name in sample:
            sample[name] = torch.flip(sample[name], dims=(-1,))


def _grid(angle_deg: float, zoom: float, height: int, width: int) -> torch.Tensor:
    """Sampling grid of a rotation by angle_deg and a zoom about the image centre, [1, H, W, 2]."""
    a = math.radians(angle_deg)
    aspect = width / height  # normalised coordinates are anisotropic; rotate in pixel units
    theta = torch.tensor([[math.cos(a) / zoom, -math.sin(a) / zoom / aspect, 0.0],
                          [math.sin(a) / zoom * aspect, math.cos(a) / zoom, 0.0]], dtype=torch.float32)
    return F.affine_grid(theta[None], [1, 1, height, width], align_corners=False)


def _sample(image: torch.Tensor, grid: torch.Tensor, mode: str, padding: str) -> torch.Tensor:
    """grid_sample a [C, H, W] or [H, W] image of any dtype; returns the input's shape and dtype."""
    x = image.float()
    x = x[None, None] if x.dim() == 2 else x[None]
    out = F.grid_sample(x, grid, mode=mode, padding_mode=padding, align_corners=False)[0]
    out = out[0] if image.dim() == 2 else out
    return out.round().to(image.dtype) if not image.is_floating_point() else out


def warp(sample: dict, angle_deg: float, zoom: float) -> None:
    """Rotate and zoom every image field consistently, in place; depths are divided by the zoom."""
    height, width = sample["rgb"].shape[-2:]
    grid = _grid(angle_deg, zoom, height, width)
    inside = _sample(torch.ones(height, width), grid, "nearest", "zeros") > 0.5
    sample["rgb"] = _sample(sample["rgb"], grid, "bilinear", "reflection").clamp(0, 1)
    for name in (*DEPTH_FIELDS, *CONFIDENCE_FIELDS):
        if name in sample:
            warped = _sample(sample[name], grid, "nearest", "zeros") * inside
            sample[name] = warped / zoom if name in DEPTH_FIELDS else warped
    for name in LABEL_FIELDS:
        if name in sample:
            sample[name] = torch.where(inside, _sample(sample[name], grid, "nearest", "zeros"),
                                       torch.full_like(sample[name], IGNORE_LABEL))


def colour_jitter(rgb: torch.Tensor, rng: np.random.Generator, cfg: AugmentConfig) -> torch.Tensor:
    rgb = TF.adjust_brightness(rgb, _uniform(rng, (1 - cfg.brightness, 1 + cfg.brightness)))
    rgb = TF.adjust_contrast(rgb, _uniform(rng, (1 - cfg.contrast, 1 + cfg.contrast)))
    rgb = TF.adjust_saturation(rgb, _uniform(rng, (1 - cfg.saturation, 1 + cfg.saturation)))
    return TF.adjust_hue(rgb, _uniform(rng, (-cfg.hue, cfg.hue))).clamp(0, 1)


def exposure(rgb: torch.Tensor, gain: float, gamma: float = 2.2) -> torch.Tensor:
    """Scale the light reaching the sensor: gain applied in linear light, sRGB-like gamma around it."""
    return (rgb.clamp(0, 1).pow(gamma) * gain).clamp(0, 1).pow(1 / gamma)


def blur(rgb: torch.Tensor, sigma: float) -> torch.Tensor:
    kernel = 2 * math.ceil(3 * sigma) + 1
    return TF.gaussian_blur(rgb, [kernel, kernel], [sigma, sigma])


def sensor_noise(rgb: torch.Tensor, std: float, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return (rgb + std * torch.randn(rgb.shape, generator=generator)).clamp(0, 1)


def jpeg(rgb: torch.Tensor, quality: int) -> torch.Tensor:
    """Re-encode as JPEG at `quality` (blocking, ringing, chroma subsampling of a real camera stream)."""
    pixels = (rgb * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=quality)
    decoded = np.asarray(Image.open(buffer).convert("RGB"))
    return torch.from_numpy(decoded.copy()).permute(2, 0, 1).float() / 255


def cutout(rgb: torch.Tensor, rng: np.random.Generator, max_share: float) -> torch.Tensor:
    """Grey out one random rectangle (an occluder); targets underneath are kept."""
    height, width = rgb.shape[-2:]
    h = max(1, int(height * rng.uniform(0.1, max_share)))
    w = max(1, int(width * rng.uniform(0.1, max_share)))
    top, left = int(rng.integers(0, height - h + 1)), int(rng.integers(0, width - w + 1))
    rgb = rgb.clone()
    rgb[:, top:top + h, left:left + w] = 0.5
    return rgb


def photometric(rgb: torch.Tensor, rng: np.random.Generator, cfg: AugmentConfig) -> torch.Tensor:
    """Camera-side corruptions in the order a camera applies them: light, optics, sensor, codec."""
    if rng.random() < cfg.exposure_p:
        rgb = exposure(rgb, _uniform(rng, cfg.exposure_range))
    if rng.random() < cfg.jitter_p:
        rgb = colour_jitter(rgb, rng, cfg)
    if rng.random() < cfg.blur_p:
        rgb = blur(rgb, _uniform(rng, cfg.blur_sigma))
    if rng.random() < cfg.noise_p:
        rgb = sensor_noise(rgb, float(rng.uniform(0, cfg.noise_std)), int(rng.integers(2**62)))
    if rng.random() < cfg.jpeg_p:
        rgb = jpeg(rgb, int(rng.integers(cfg.jpeg_quality[0], cfg.jpeg_quality[1] + 1)))
    if rng.random() < cfg.cutout_p:
        rgb = cutout(rgb, rng, cfg.cutout_max_share)
    return rgb


def augment(sample: dict, cfg: AugmentConfig, seed: int) -> dict:
    """The augmented copy of a sample dict for the draw `seed` (same seed, same result)."""
    rng = np.random.default_rng(seed)
    sample = dict(sample)
    if rng.random() < cfg.flip_p:
        flip(sample)
    if rng.random() < cfg.geometric_p:
        warp(sample, _uniform(rng, (-cfg.rotate_deg, cfg.rotate_deg)), _uniform(rng, cfg.scale_range))
    sample["rgb"] = photometric(sample["rgb"], rng, cfg)
    return sample
