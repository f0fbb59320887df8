"""EfficientViT's linear attention computed channels-first: the same function as timm's, without transposes.

timm's `LiteMLA` turns its multi-scale q/k/v map [B, G*3d, H, W] into tokens
[B, G, N, 3d] (a Transpose of every activation), pads v with a column of ones
(whose product gives the normaliser), and transposes the result back before
the output projection. Traced to ONNX that is two full-size Transposes, a
Pad and strided Slices per block, about a sixth of the student's ONNX Runtime
time on CPU, for no arithmetic.

Kept as [B, G, d, N], the same attention transposes no activation map:

    kv  = v @ k^T                  [B, G, d, d]   (Transpose folds into the MatMul)
    num = kv @ q                   [B, G, d, N]
    den = (sum_N k)^T @ q          [B, G, 1, N]   (what the ones column computed)
    out = num / (den + eps)        -> reshape to [B, G*d, H, W]

`ChannelFirstLiteMLA` subclasses `LiteMLA` and overrides only forward(): the
parameters, their names and checkpoints are timm's. `use_channel_first_attention`
switches every LiteMLA of a built encoder over; tests check it against timm's
forward.
"""

from __future__ import annotations

import torch
from timm.models.efficientvit_mit import LiteMLA
from torch import nn


class ChannelFirstLiteMLA(LiteMLA):
    """timm's LiteMLA (same parameters and result) with its attention kept channels-first."""

    def _attention(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """ReLU linear attention of [B, G, d, N] queries, keys and values, in float32 like timm's."""
        dtype = v.dtype
        q, k, v = self.kernel_func(q).float(), self.kernel_func(k).float(), v.float()
        num = (v @ k.transpose(-1, -2)) @ q
        den = k.sum(dim=-1, keepdim=True).transpose(-1, -2) @ q
        return (num / (den + self.eps)).to(dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, _, H, W = x.shape
        qkv = self.qkv(x)
        multi_scale = torch.cat([qkv, *(op(qkv) for op in self.aggreg)], dim=1)
        q, k, v = multi_scale.reshape(B, -1, 3 * self.dim, H * W).chunk(3, dim=2)
        if not torch.jit.is_scripting() and v.device.type != "meta":
            with torch.autocast(device_type=v.device.type, enabled=False):
                out = self._attention(q, k, v)
        else:
            out = self._attention(q, k, v)
        return self.proj(out.reshape(B, -1, H, W))


def use_channel_first_attention(module: nn.Module) -> int:
    """Switch every timm LiteMLA inside `module` to ChannelFirstLiteMLA in place; returns how many."""
    switched = 0
    for child in module.modules():
        if type(child) is LiteMLA:
            child.__class__ = ChannelFirstLiteMLA
            switched += 1
    return switched
