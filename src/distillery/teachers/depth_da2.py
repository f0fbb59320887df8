"""Depth Anything V2 (through `transformers`): the relative depth teacher of the lineage's V1/V2.

DA2 predicts affine-invariant inverse depth: larger is nearer, with an
unknown scale and shift per image. It has no metric scale, and that is the
lesson of V1 (a student trained on it had 75 m RMSE). The network sees the
source frame; its output is resized back to that frame's size (the runner
then resamples it onto the stored grid), stored as it is, and marked with
`depth_kind = "relative_inverse"` in the layer attributes; the sanity gate
then checks it against inverse ToF depth instead of metres.

Preprocessing follows the model's Hugging Face processor: resize keeping the
aspect ratio so that one side reaches `process_res` (518) with as little
scaling as possible, both sides rounded to multiples of 14, bicubic,
ImageNet normalisation. It runs on the device, batched.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from distillery.teachers.base import FrameFailure, Teacher, TeacherError
from distillery.teachers.depth_da3 import IMAGENET_MEAN, IMAGENET_STD, PATCH, normalised_input

log = logging.getLogger(__name__)

# (hidden size, layers, heads, backbone out indices, neck sizes, fusion size) of the published DA2 variants.
ARCHS = {
    "small": (384, 12, 6, [3, 6, 9, 12], [48, 96, 192, 384], 64),
    "base": (768, 12, 12, [3, 6, 9, 12], [96, 192, 384, 768], 128),
    "large": (1024, 24, 16, [5, 12, 18, 24], [256, 512, 1024, 1024], 256),
}


def da2_config(arch: str):
    """A DepthAnythingConfig of a published DA2 size, for building it with untrained weights."""
    from transformers import DepthAnythingConfig, Dinov2Config

    if arch not in ARCHS:
        raise TeacherError(f"DA2 arch {arch!r} unknown; one of {sorted(ARCHS)}")
    hidden, layers, heads, out_indices, neck, fusion = ARCHS[arch]
    backbone = Dinov2Config(hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                            intermediate_size=4 * hidden, image_size=518, patch_size=PATCH,
                            out_features=[f"stage{i}" for i in out_indices], reshape_hidden_states=False)
    return DepthAnythingConfig(backbone_config=backbone, reassemble_hidden_size=hidden, neck_hidden_sizes=neck,
                               fusion_hidden_size=fusion, depth_estimation_type="relative")


def input_size(height: int, width: int, process_res: int) -> tuple[int, int]:
    """DPT processor sizing (keep_aspect_ratio, ensure_multiple_of=14) for a square target process_res."""
    scale_h, scale_w = process_res / height, process_res / width
    scale = scale_w if abs(1 - scale_w) < abs(1 - scale_h) else scale_h

    def multiple(v: float) -> int:
        return max(PATCH, round(v / PATCH) * PATCH)

    return multiple(scale * height), multiple(scale * width)


class DA2Depth(Teacher):
    """Relative inverse depth from Depth Anything V2."""

    task = "depth"
    backend = "da2"
    reads = ("rgb",)
    depth_kind = "relative_inverse"

    @dataclass(frozen=True)
    class Settings:
        arch: str = "large"  # used only with weights: random; loaded weights bring their own config
        process_res: int = 518

    def __init__(self, settings, runtime, weights=None):
        import torch
        from transformers import DepthAnythingForDepthEstimation

        super().__init__(settings, runtime, weights)
        self.device = runtime.torch_device()
        if weights == "random":
            log.warning("da2: untrained weights (weights: random) - for tests and benchmarks only")
            model = DepthAnythingForDepthEstimation(da2_config(settings.arch))
        else:
            model = DepthAnythingForDepthEstimation.from_pretrained(weights, local_files_only=True)
        self.model = model.eval().to(self.device)
        self.mean = torch.tensor(IMAGENET_MEAN, device=self.device).view(1, 3, 1, 1)
        self.std = torch.tensor(IMAGENET_STD, device=self.device).view(1, 3, 1, 1)

    def preprocess(self, rgb):
        size = input_size(*rgb.shape[1:3], self.settings.process_res)
        return normalised_input(rgb, size, self.device, self.mean, self.std)

    def predict(self, batch: dict) -> list:
        import torch
        import torch.nn.functional as F

        height, width = batch["rgb"].shape[1:3]
        x = self.preprocess(batch["rgb"])
        with torch.inference_mode(), self.runtime.autocast():
            rel = self.model(pixel_values=x).predicted_depth.float()
        rel = F.interpolate(rel[:, None], size=(height, width), mode="bilinear", align_corners=False)[:, 0]
        out = []
        for r in rel.cpu().numpy():
            out.append({"teacher_depth": r} if np.isfinite(r).all() else FrameFailure("non-finite relative depth"))
        return out
