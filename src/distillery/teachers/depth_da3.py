"""Depth Anything 3 (package `depth-anything-3`): the metric depth teacher, DA3METRIC-LARGE by default.

The network sees the frame resized so that its long side is `process_res`
(504), each side rounded to a multiple of the 14-pixel patch, exactly as the
package's `upper_bound_resize`. Its raw output is at that processed
resolution, and metric depth is

    depth_m = focal * raw / 300,   focal = (fx' + fy') / 2

with fx', fy' the intrinsics SCALED TO THE PROCESSED RESOLUTION. The
reference used the original-resolution focal on a 504-wide output and got
labels 1.27x too deep on NYU; `processed_focal` is the one place this is
computed and tests pin it. The frame is the source frame as captured (the
runner decodes it from the shard) with the intrinsics of that size, so the
network sees every pixel the camera gave; metric depth is resized back to
that size (depth values do not change with resolution), and the runner
brings it onto the stored grid with the valid-aware area resampling of
teachers/grid.py.

Sky: DA3's sky head marks pixels (sky >= 0.3) that the package sets to the
99th percentile of the non-sky depth. Upstream takes that percentile over the
whole forward batch (subsampled with the global RNG), so a frame's label would
depend on its batch neighbours and on how a resumed shard is batched. Here the
package's batch-wide step is switched off and `sky_to_far` applies the same
rule per frame, with the exact percentile of the frame's own non-sky pixels:
a frame's depth is a function of the frame alone.

The network is built from the package's own config (`arch`, a key of its
model registry, with optional OmegaConf dotlist `arch_overrides`) and loaded
from `model.safetensors`; only the package's model code is imported, not its
`api` module, whose export helpers pull in open3d, moviepy and gradio.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from distillery.teachers.base import FrameFailure, Teacher, TeacherError

log = logging.getLogger(__name__)

PATCH = 14
METRIC_DIVISOR = 300.0
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _nearest_multiple(x: int, p: int) -> int:
    down = (x // p) * p
    up = down + p
    return max(p, up if abs(up - x) <= abs(x - down) else down)


def normalised_input(rgb, size: tuple[int, int], device, mean, std):
    """uint8 [B, H, W, 3] -> ImageNet-normalised float [B, 3, *size] on `device` (bicubic, antialiased
    when shrinking): the input both Depth Anything teachers expect."""
    import torch.nn.functional as F

    x = rgb.to(device, non_blocking=True).permute(0, 3, 1, 2).float().div_(255.0)
    x = F.interpolate(x, size=size, mode="bicubic", align_corners=False,
                      antialias=size[0] < rgb.shape[1]).clamp_(0.0, 1.0)
    return (x - mean) / std


def processed_size(height: int, width: int, process_res: int) -> tuple[int, int]:
    """The network's input (and output) size for a frame: long side -> process_res, sides -> multiples of 14."""
    scale = process_res / max(height, width)
    return (_nearest_multiple(max(1, round(height * scale)), PATCH),
            _nearest_multiple(max(1, round(width * scale)), PATCH))


def processed_focal(intrinsics: np.ndarray, stored_hw: tuple[int, int], processed_hw: tuple[int, int]) -> np.ndarray:
    """(fx + fy) / 2 at the processed resolution, per frame; intrinsics [B, 4] are at `stored_hw`, the size of
    the frame the teacher was given (the source frame in a run)."""
    k = np.asarray(intrinsics, dtype=np.float64).reshape(-1, 4)
    fx = k[:, 0] * processed_hw[1] / stored_hw[1]
    fy = k[:, 1] * processed_hw[0] / stored_hw[0]
    return (fx + fy) / 2


def metric_from_raw(raw, focal):
    """Metric depth (metres) from DA3METRIC's raw output [B, h, w] and the processed-resolution focal [B]."""
    return focal.reshape(-1, 1, 1) * raw / METRIC_DIVISOR


SKY_THRESHOLD = 0.3  # the package's compute_sky_mask threshold
SKY_MIN_PIXELS = 10  # the package leaves a frame alone with this few sky (or non-sky) pixels


def sky_to_far(depth, sky):
    """Per frame, pixels the sky head marks get the 99th percentile of that frame's non-sky depth.

    depth, sky: float [B, h, w]. The per-frame counterpart of the package's
    `_process_mono_sky_estimation`, which pools the percentile over the batch.
    """
    import torch

    out = depth.clone()
    for i in range(depth.shape[0]):
        non_sky = sky[i] < SKY_THRESHOLD
        n = int(non_sky.sum())
        if n <= SKY_MIN_PIXELS or non_sky.numel() - n <= SKY_MIN_PIXELS:
            continue
        out[i][~non_sky] = torch.quantile(depth[i][non_sky].float(), 0.99).to(depth.dtype)
    return out


def _state_dict(path: Path, arch: str) -> dict:
    from safetensors.torch import load_file

    folder = path if path.is_dir() else path.parent
    config = folder / "config.json"
    if config.is_file():
        name = json.loads(config.read_text()).get("model_name")
        if name and name != arch:
            raise TeacherError(f"{config}: weights of {name!r}, but the config's arch is {arch!r}")
    state = load_file(str(path / "model.safetensors" if path.is_dir() else path))
    if state and all(k.startswith("model.") for k in state):
        state = {k[len("model."):]: v for k, v in state.items()}  # saved from the package's wrapper module
    return state


def build_da3_net(arch: str, overrides: tuple[str, ...] = (), weights: str | None = None):
    """The DA3 network of registry entry `arch`; untrained when weights == "random"."""
    from depth_anything_3.cfg import create_object, load_config
    from depth_anything_3.registry import MODEL_REGISTRY

    if arch not in MODEL_REGISTRY:
        raise TeacherError(f"depth-anything-3 has no model {arch!r}; it has {sorted(MODEL_REGISTRY)}")
    net = create_object(load_config(MODEL_REGISTRY[arch], list(overrides)))
    if weights != "random":
        missing, unexpected = net.load_state_dict(_state_dict(Path(weights), arch), strict=False)
        if missing or unexpected:
            raise TeacherError(f"{weights}: does not fit {arch} ({len(missing)} missing, {len(unexpected)} "
                               f"unexpected tensors, e.g. {(missing or unexpected)[:3]})")
    # The batch-pooled sky step is replaced by the per-frame `sky_to_far` (see the module docstring).
    net._process_mono_sky_estimation = lambda output: output
    return net.eval()


class DA3Depth(Teacher):
    """Metric depth from Depth Anything 3."""

    task = "depth"
    backend = "da3"
    reads = ("rgb", "intrinsics")
    depth_kind = "metric"

    @dataclass(frozen=True)
    class Settings:
        arch: str = "da3metric-large"
        arch_overrides: tuple[str, ...] = ()
        process_res: int = 504

    def __init__(self, settings, runtime, weights=None):
        import torch

        super().__init__(settings, runtime, weights)
        if weights == "random":
            log.warning("da3: untrained weights (weights: random) - for tests and benchmarks only")
        self.device = runtime.torch_device()
        self.net = build_da3_net(settings.arch, tuple(settings.arch_overrides), weights).to(self.device)
        self.mean = torch.tensor(IMAGENET_MEAN, device=self.device).view(1, 3, 1, 1)
        self.std = torch.tensor(IMAGENET_STD, device=self.device).view(1, 3, 1, 1)

    def preprocess(self, rgb):
        """uint8 [B, H, W, 3] -> normalised float [B, 3, h, w] at the processed size, on the device."""
        size = processed_size(*rgb.shape[1:3], self.settings.process_res)
        return normalised_input(rgb, size, self.device, self.mean, self.std)

    def forward_raw(self, x):
        """Raw network depth [B, h, w] (float32) for a preprocessed batch."""
        import torch

        with torch.inference_mode(), self.runtime.autocast():
            out = self.net(x[:, None])  # [B, views=1, 3, h, w]: one view per frame, no cross-view attention
            depth = out["depth"][:, 0].float()
            return sky_to_far(depth, out["sky"][:, 0].float()) if "sky" in out else depth

    def predict(self, batch: dict) -> list:
        import torch
        import torch.nn.functional as F

        rgb = batch["rgb"]
        height, width = rgb.shape[1:3]
        x = self.preprocess(rgb)
        raw = self.forward_raw(x)
        focal = processed_focal(batch["intrinsics"].numpy(), (height, width), tuple(x.shape[-2:]))
        metric = metric_from_raw(raw, torch.as_tensor(focal, dtype=torch.float32, device=raw.device))
        metric = F.interpolate(metric[:, None], size=(height, width), mode="bilinear", align_corners=False)[:, 0]
        out = []
        for depth in metric.cpu().numpy():
            out.append({"teacher_depth": depth} if np.isfinite(depth).all() else FrameFailure("non-finite depth"))
        return out

