"""Fold inference-mode BatchNorm into the convolution before it, for eager PyTorch inference.

In eval mode a BatchNorm is a per-channel affine map, so conv -> BN equals one
convolution with rescaled weights and a bias. ONNX Runtime and TensorRT fold
it when they optimise a graph; eager PyTorch does not, and on CPU the
student's 47 separate BatchNorm passes took about a fifth of its forward time.
The evaluation folds them once per loaded checkpoint.

Only pairs whose order of application is certain are folded: a Conv2d or
ConvTranspose2d directly followed by a plain BatchNorm2d inside an
nn.Sequential, and timm's `ConvNormAct` (conv, then norm, then act). Norm
layers with a fused activation (timm's BatchNormAct2d, MobileNetV3) are left
as they are.

`for_inference` is what the evaluation and `distillery fusion` run: folded,
and in the NHWC memory format (oneDNN's and cuDNN's fast convolution layout,
about a quarter less time on CPU than NCHW).
"""

from __future__ import annotations

import torch
from timm.models.efficientvit_mit import ConvNormAct
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

CONVOLUTIONS = (nn.Conv2d, nn.ConvTranspose2d)


def _fused(conv: nn.Module, norm: nn.Module) -> nn.Module | None:
    """conv with norm folded in, or None when the pair is not a convolution and a plain BatchNorm2d."""
    if not isinstance(conv, CONVOLUTIONS) or type(norm) is not nn.BatchNorm2d:
        return None
    return fuse_conv_bn_eval(conv, norm, transpose=isinstance(conv, nn.ConvTranspose2d))


def fold_batch_norms(model: nn.Module) -> int:
    """Fold every foldable BatchNorm of an eval-mode model into its convolution, in place; returns how many.

    The folded BatchNorms become nn.Identity, so the model's outputs are unchanged up to float rounding
    but it can no longer be trained or load a checkpoint's state dict.
    """
    if model.training:
        raise ValueError("fold_batch_norms: put the model in eval mode first (training BatchNorm cannot fold)")
    folded = 0
    for parent in list(model.modules()):
        if isinstance(parent, ConvNormAct):
            fused = _fused(parent.conv, parent.norm)
            if fused is not None:
                parent.conv, parent.norm = fused, nn.Identity()
                folded += 1
        elif isinstance(parent, nn.Sequential):
            for i in range(len(parent) - 1):
                fused = _fused(parent[i], parent[i + 1])
                if fused is not None:
                    parent[i], parent[i + 1] = fused, nn.Identity()
                    folded += 1
    return folded


def for_inference(model: nn.Module) -> nn.Module:
    """An eval-mode student made for inference in place: BatchNorms folded, channels_last weights.

    Inputs need no conversion: a convolution with channels_last weights runs, and returns, channels_last
    whatever the input's layout.
    """
    fold_batch_norms(model)
    return model.to(memory_format=torch.channels_last)
