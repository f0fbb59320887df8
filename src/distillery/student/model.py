"""The student: a timm encoder, a 1x1 neck and two U-Net decoders (depth, segmentation).

Input is RGB in [0, 1], [B, 3, H, W]; ImageNet normalisation happens inside
the model so that the exported ONNX graph takes camera pixels as they are.
The encoder returns four feature maps at strides 4/8/16/32; the neck squeezes
the deepest to 128 channels; each decoder climbs back with three up-blocks
(128 -> 64 -> 32 -> 16), each fusing the encoder feature of its stride, and
its 1x1 head's output at stride 4 is resized bilinearly to the input size.
The encoder's linear attention runs channels-first (student/attention.py):
timm's function and parameters without its transposes.

Depth is made non-negative with softplus rather than ReLU: a ReLU head outputs
exactly 0 (the manifest's "invalid" value) and passes no gradient wherever its
pre-activation is negative, so pixels can die early in training; softplus is
positive and smooth everywhere and exports to ONNX as one Softplus node. It
is applied at stride 4, before the resize: a bilinear blend of positive values
stays positive, and it costs a sixteenth of a full-resolution pass. Its
bias starts at the inverse softplus of an initial depth (the training target's
median, see student/init.py), so a fresh student starts at the target's scale
instead of ~0.7 m.

forward() has no data-dependent control flow: the only shape logic (resizing
an upsampled map onto its skip feature, e.g. 16 -> 15 rows for 240-pixel
inputs) is a Resize to the skip's size, which traces into ONNX opset 17.
"""

from __future__ import annotations

import math
from pathlib import Path

import timm
import torch
import torch.nn.functional as F
from torch import nn

from distillery.student import encoder_weights
from distillery.student.backbones import BACKBONES
from distillery.student.attention import use_channel_first_attention


NUM_CLASSES = 6
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# Backbone name in the config -> (timm model name, feature indices at strides 4/8/16/32).
DECODER_CHANNELS = (64, 32, 16)
NECK_CHANNELS = 128
DEFAULT_DEPTH_INIT_M = 2.0  # a plausible indoor depth, when the training target does not say


def conv_bn_relu(in_ch: int, out_ch: int, kernel: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_ch, out_ch, kernel, padding=kernel // 2, bias=False),
                         nn.BatchNorm2d(out_ch), nn.ReLU(inplace=True))


def upsample(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize of a stride-4 head output to the input size."""
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


class UpBlock(nn.Module):
    """x2 learned upsampling, then a 3x3 fusion with the encoder feature of the next stride."""

    def __init__(self, in_ch: int, skip_ch: int, out_ch: int):
        super().__init__()
        self.up = nn.Sequential(nn.ConvTranspose2d(in_ch, out_ch, 4, stride=2, padding=1, bias=False),
                                nn.BatchNorm2d(out_ch), nn.ReLU(inplace=True))
        self.fuse = conv_bn_relu(out_ch + skip_ch, out_ch, 3)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        # Odd feature sizes (240 / 32 = 7.5 -> 8 rows, doubled to 16 vs. 15) need a resize; for equal
        # sizes a half-pixel bilinear resize is the identity, so it is applied unconditionally.
        x = F.interpolate(self.up(x), size=skip.shape[-2:], mode="bilinear", align_corners=False)
        return self.fuse(torch.cat([x, skip], dim=1))


class Decoder(nn.Module):
    """Three up-blocks from the neck to stride 4, then a 1x1 head to `out_ch` channels."""

    def __init__(self, skip_channels: tuple[int, int, int], out_ch: int):
        super().__init__()
        ins = (NECK_CHANNELS, *DECODER_CHANNELS[:-1])
        skips = tuple(reversed(skip_channels))  # deepest skip first: stride 16, 8, 4
        self.blocks = nn.ModuleList(UpBlock(i, s, o) for i, s, o in zip(ins, skips, DECODER_CHANNELS))
        self.head = nn.Conv2d(DECODER_CHANNELS[-1], out_ch, 1)

    def forward(self, neck: torch.Tensor, skips: list[torch.Tensor]) -> torch.Tensor:
        """The head's output at stride 4; the student resizes it to the input size."""
        x = neck
        for block, skip in zip(self.blocks, reversed(skips)):
            x = block(x, skip)
        return self.head(x)


class Student(nn.Module):
    """Multi-task student; forward(rgb) -> {"depth": [B,1,H,W] metres, "segmentation": [B,C,H,W] logits}."""

    def __init__(self, encoder: nn.Module, num_classes: int = NUM_CLASSES,
                 depth_init_m: float = DEFAULT_DEPTH_INIT_M):
        super().__init__()
        channels = encoder.feature_info.channels()
        self.encoder = encoder
        self.neck = conv_bn_relu(channels[-1], NECK_CHANNELS, 1)
        self.depth_decoder = Decoder(tuple(channels[:3]), 1)
        self.seg_decoder = Decoder(tuple(channels[:3]), num_classes)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.set_initial_depth(depth_init_m)
        self.encoder_weights = "random"  # what the encoder was initialised from, for logs

    def set_initial_depth(self, depth_m: float) -> None:
        """Make an untrained student predict about `depth_m` everywhere (the softplus head's bias)."""
        with torch.no_grad():  # inverse softplus, y + log(1 - e^-y): exact and overflow-free for large y
            self.depth_decoder.head.bias.fill_(depth_m + math.log(-math.expm1(-depth_m)))

    def forward(self, rgb: torch.Tensor) -> dict[str, torch.Tensor]:
        size = (rgb.shape[-2], rgb.shape[-1])
        features = self.encoder((rgb - self.mean) / self.std)
        neck = self.neck(features[-1])
        skips = list(features[:3])
        depth = F.softplus(self.depth_decoder(neck, skips))
        return {"depth": upsample(depth, size), "segmentation": upsample(self.seg_decoder(neck, skips), size)}

    def decoder_parameters(self) -> list[nn.Parameter]:
        """Everything trained at the full learning rate: neck, both decoders and heads."""
        return [p for name, p in self.named_parameters() if not name.startswith("encoder.")]


def build_encoder(backbone: str, weights: str = "imagenet", cache: str | Path | None = None) -> tuple[nn.Module, str]:
    """The timm feature extractor of `backbone` and one line saying what its weights started from
    (student/encoder_weights.py: ImageNet from the weights `cache` or the Hugging Face cache, random, a file)."""
    if backbone not in BACKBONES:
        raise ValueError(f"unknown backbone {backbone!r}; choose one of {sorted(BACKBONES)}")
    timm_name, out_indices = BACKBONES[backbone]
    weight_file = encoder_weights.resolve(backbone, timm_name, weights, cache)
    kwargs = dict(features_only=True, out_indices=out_indices)
    if weight_file is None:
        encoder = timm.create_model(timm_name, pretrained=False, **kwargs)
    else:
        encoder = timm.create_model(timm_name, pretrained=True, pretrained_cfg_overlay=dict(file=str(weight_file)),
                                    **kwargs)
    use_channel_first_attention(encoder)
    return encoder, encoder_weights.describe(timm_name, weights, weight_file)


def check_encoder_weights(cfg) -> None:
    """Fail now, before data or model are built, when the ImageNet weights a run starts from are missing."""
    timm_name = BACKBONES[cfg.backbone][0] if cfg.backbone in BACKBONES else None
    if timm_name and not cfg.init_from:
        encoder_weights.resolve(cfg.backbone, timm_name, cfg.encoder_weights, getattr(cfg, "weights_cache", None))


def build_student(cfg) -> Student:
    """The student of a training config (any object with backbone, encoder_weights, num_classes,
    depth_init_m and optionally weights_cache attributes, e.g. TrainConfig; depth_init_m None = 2 m)."""
    encoder, source = build_encoder(cfg.backbone, cfg.encoder_weights, getattr(cfg, "weights_cache", None))
    model = Student(encoder, cfg.num_classes, cfg.depth_init_m or DEFAULT_DEPTH_INIT_M)
    model.encoder_weights = source
    return model


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
