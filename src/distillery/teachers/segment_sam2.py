"""SAM 2.1 (package `sam2`, Hiera-L by default): one mask per detected box.

Each image is encoded ONCE and all of its boxes are decoded in one batch
(the reference re-encoded the image for every box). Frames without boxes are
not encoded at all. The steps mirror `SAM2ImagePredictor` (resize to the
model's square input, ImageNet normalisation, `no_mem_embed`, box prompts as
corner points with labels 2 and 3, single-mask output, bilinear upsampling of
the low-resolution logits), but run batched on the device: the predictor
itself converts every image on the CPU and loops over images.

It sees the source frame, prompted with the detect layer's boxes mapped back
to its pixels. The masks come back at that frame's size with the scores and
classes of their boxes; the segment stage paints them in score order (higher
score wins) and takes the mode of the painted classes onto the stored grid.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from distillery.teachers.base import Teacher
from distillery.teachers.depth_da3 import IMAGENET_MEAN, IMAGENET_STD

log = logging.getLogger(__name__)


def empty_masks(height: int, width: int) -> dict:
    return {"masks": np.zeros((0, height, width), bool), "scores": np.zeros(0, np.float32),
            "classes": np.zeros(0, np.uint8)}


class Sam2Masks(Teacher):
    """Box-prompted masks from SAM 2.1."""

    task = "segment"
    backend = "sam2"
    reads = ("rgb", "boxes")

    @dataclass(frozen=True)
    class Settings:
        model_cfg: str = "configs/sam2.1/sam2.1_hiera_l.yaml"
        mask_threshold: float = 0.0
        image_size: int = 1024  # the model's square input; the published checkpoints are trained at 1024

    def __init__(self, settings, runtime, weights=None):
        import torch
        from sam2.build_sam import build_sam2

        super().__init__(settings, runtime, weights)
        self.device = runtime.torch_device()
        if weights == "random":
            log.warning("sam2: untrained weights (weights: random) - for tests and benchmarks only")
        self.model = build_sam2(settings.model_cfg, ckpt_path=None if weights == "random" else weights,
                                device=str(self.device), mode="eval",
                                hydra_overrides_extra=[f"++model.image_size={settings.image_size}"])
        self.size = int(self.model.image_size)
        self.mean = torch.tensor(IMAGENET_MEAN, device=self.device).view(1, 3, 1, 1)
        self.std = torch.tensor(IMAGENET_STD, device=self.device).view(1, 3, 1, 1)

    def encode(self, rgb):
        """Image features of uint8 frames [n, H, W, 3]: (image_embed, [high-res feature maps])."""
        import torch.nn.functional as F

        x = rgb.to(self.device, non_blocking=True).permute(0, 3, 1, 2).float().div_(255.0)
        x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False, antialias=True)
        x = (x - self.mean) / self.std
        backbone_out = self.model.forward_image(x)
        _, feats, _, _ = self.model._prepare_backbone_features(backbone_out)
        if self.model.directly_add_no_mem_embed:
            feats[-1] = feats[-1] + self.model.no_mem_embed
        sizes = [(self.size // s, self.size // s) for s in (4, 8, 16)]
        maps = [f.permute(1, 2, 0).reshape(x.shape[0], -1, *hw) for f, hw in zip(feats, sizes)]
        return maps[-1], maps[:-1]

    def decode(self, embed, high_res, j: int, boxes: np.ndarray, height: int, width: int) -> np.ndarray:
        """Masks [k, H, W] of image j of an encoded batch for its boxes [k, 4] (input-frame pixels)."""
        import torch
        import torch.nn.functional as F

        scale = torch.tensor([self.size / width, self.size / height] * 2, device=self.device)
        coords = (torch.as_tensor(boxes, dtype=torch.float32, device=self.device) * scale).reshape(-1, 2, 2)
        labels = torch.tensor([[2, 3]], dtype=torch.int, device=self.device).repeat(len(boxes), 1)
        prompt = self.model.sam_prompt_encoder
        sparse, dense = prompt(points=(coords, labels), boxes=None, masks=None)
        low, _, _, _ = self.model.sam_mask_decoder(
            image_embeddings=embed[j:j + 1], image_pe=prompt.get_dense_pe(), sparse_prompt_embeddings=sparse,
            dense_prompt_embeddings=dense, multimask_output=False, repeat_image=len(boxes) > 1,
            high_res_features=[h[j:j + 1] for h in high_res])
        masks = F.interpolate(low.float(), size=(height, width), mode="bilinear", align_corners=False)[:, 0]
        return (masks > self.settings.mask_threshold).cpu().numpy()

    def predict(self, batch: dict) -> list:
        import torch

        rgb, boxes = batch["rgb"], batch["boxes"]
        height, width = rgb.shape[1:3]
        out = [empty_masks(height, width) for _ in boxes]
        chosen = [i for i, b in enumerate(boxes) if len(b)]
        if not chosen:
            return out
        with torch.inference_mode(), self.runtime.autocast():
            embed, high_res = self.encode(rgb[chosen])
            for j, i in enumerate(chosen):
                out[i] = {"masks": self.decode(embed, high_res, j, boxes[i][:, :4], height, width),
                          "scores": boxes[i][:, 4].astype(np.float32), "classes": boxes[i][:, 5].astype(np.uint8)}
        return out
