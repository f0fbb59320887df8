"""Training losses of the student: depth targets, berHu / L1, smoothness, cross-entropy, Kendall.

Every loss takes its mask explicitly and averages over the pixels it
covers; an empty mask gives exactly 0 with a gradient (of zeros), never NaN.
Only teacher and ToF fields of a batch are read here: ground truth exists in
some manifests for evaluation and must never reach a training loss.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from distillery.classes import IGNORE_LABEL
from distillery.fusion import trusted_tof

DEPTH_TARGETS = ("hybrid", "fusion", "tof_only")


def tof_usable(tof_depth: torch.Tensor, tof_confidence: torch.Tensor) -> torch.Tensor:
    """Pixels whose ToF depth runtime fusion keeps (distillery.fusion's gate); the student fills all others."""
    return trusted_tof(tof_depth, tof_confidence)


def _frame_flag(flag: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """A per-frame bool [B] broadcast against an image batch [B, 1, H, W]."""
    return flag.to(torch.bool).view(-1, *([1] * (like.dim() - 1)))


def depth_target(batch: dict, mode: str = "hybrid") -> tuple[torch.Tensor, torch.Tensor]:
    """The depth the student learns and where it is valid: (target, valid), both [B, 1, H, W].

    hybrid:   per frame, the teacher depth when the frame has one, else its ToF depth.
    fusion:   per pixel, ToF where runtime fusion would trust it, the teacher elsewhere
              (frames without a teacher keep only their trusted ToF pixels).
    tof_only: the ToF depth, for the distillation-versus-sensor comparison.
    """
    tof, teacher = batch["tof_depth"], batch["teacher_depth"]
    has_teacher = _frame_flag(batch["has_teacher_depth"], tof)
    if mode == "hybrid":
        target = torch.where(has_teacher, teacher, tof)
    elif mode == "fusion":
        usable = tof_usable(tof, batch["tof_confidence"])
        target = torch.where(usable, tof, torch.where(has_teacher, teacher, torch.zeros_like(tof)))
    elif mode == "tof_only":
        target = tof
    else:
        raise ValueError(f"unknown depth target {mode!r}; choose one of {DEPTH_TARGETS}")
    valid = torch.isfinite(target) & (target > 0)
    return torch.where(valid, target, torch.zeros_like(target)), valid


def _masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return torch.where(mask, values, torch.zeros_like(values)).sum() / mask.sum().clamp_min(1)


def berhu_loss(pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor, threshold: float = 0.2
               ) -> torch.Tensor:
    """Reverse Huber: |e| up to c, (e^2 + c^2) / 2c beyond; c = threshold x the batch's max valid |e|."""
    err = torch.where(valid, (pred - target).abs(), torch.zeros_like(pred))
    c = (threshold * err.max()).detach().clamp_min(1e-6)
    loss = torch.where(err <= c, err, (err * err + c * c) / (2 * c))
    return _masked_mean(loss, valid)


def l1_loss(pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    return _masked_mean((pred - target).abs(), valid)


def edge_aware_smoothness(depth: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
    """mean(|dx d| exp(-|dx I|)) + mean(|dy d| exp(-|dy I|)); image gradients averaged over channels."""
    dx_d = (depth[..., :, 1:] - depth[..., :, :-1]).abs()
    dy_d = (depth[..., 1:, :] - depth[..., :-1, :]).abs()
    dx_i = (image[..., :, 1:] - image[..., :, :-1]).abs().mean(1, keepdim=True)
    dy_i = (image[..., 1:, :] - image[..., :-1, :]).abs().mean(1, keepdim=True)
    return _mean(dx_d * torch.exp(-dx_i)) + _mean(dy_d * torch.exp(-dy_i))


def _mean(values: torch.Tensor) -> torch.Tensor:
    """Mean that is 0, not NaN, for an empty tensor (a one-pixel-high or -wide image has no gradient)."""
    return values.sum() / max(values.numel(), 1)


def segmentation_loss(logits: torch.Tensor, labels: torch.Tensor, ignore_index: int = IGNORE_LABEL
                      ) -> torch.Tensor:
    """Cross-entropy over labelled pixels; 0 (with a zero gradient) when every pixel is ignored."""
    total = F.cross_entropy(logits.float(), labels.long(), ignore_index=ignore_index, reduction="sum")
    return total / (labels != ignore_index).sum().clamp_min(1)


class KendallWeighting(nn.Module):
    """0.5 exp(-s_d) L_d + 0.5 s_d + exp(-s_s) L_s + 0.5 s_s with learned log-variances s clamped.

    Depth is a regression (Gaussian likelihood, factor 0.5), segmentation a classification
    (softmax likelihood, factor 1), after Kendall, Gal & Cipolla (2018).
    """

    def __init__(self, clamp: float = 2.0):
        super().__init__()
        self.clamp = clamp
        self.s_depth = nn.Parameter(torch.zeros(()))
        self.s_seg = nn.Parameter(torch.zeros(()))

    def log_variances(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.s_depth.clamp(-self.clamp, self.clamp), self.s_seg.clamp(-self.clamp, self.clamp)

    def forward(self, depth_loss: torch.Tensor, seg_loss: torch.Tensor, depth_present: torch.Tensor | float = 1.0,
                seg_present: torch.Tensor | float = 1.0) -> torch.Tensor:
        """The weighted sum; a task absent from the batch (present = 0) adds nothing, not even its
        0.5 s term, which would otherwise drag its s to the clamp where the gradient vanishes for good."""
        s_d, s_s = self.log_variances()
        depth_term = 0.5 * torch.exp(-s_d) * depth_loss + 0.5 * s_d
        seg_term = torch.exp(-s_s) * seg_loss + 0.5 * s_s
        return depth_present * depth_term + seg_present * seg_term


class StudentLoss(nn.Module):
    """The training objective of a config: forward(outputs, batch) -> dict with "loss" and its parts."""

    def __init__(self, depth_target: str = "hybrid", depth_loss: str = "berhu", berhu_threshold: float = 0.2,
                 smoothness_weight: float = 0.1, kendall: bool = True, kendall_clamp: float = 2.0,
                 seg_weight: float = 1.0):
        super().__init__()
        if depth_target not in DEPTH_TARGETS or depth_loss not in ("berhu", "l1"):
            raise ValueError(f"unknown depth target {depth_target!r} or depth loss {depth_loss!r}")
        self.depth_target, self.depth_loss = depth_target, depth_loss
        self.berhu_threshold, self.smoothness_weight, self.seg_weight = berhu_threshold, smoothness_weight, seg_weight
        self.kendall = KendallWeighting(kendall_clamp) if kendall else None

    @classmethod
    def from_config(cls, cfg) -> StudentLoss:
        return cls(cfg.depth_target, cfg.depth_loss, cfg.berhu_threshold, cfg.smoothness_weight, cfg.kendall,
                   cfg.kendall_clamp, cfg.seg_weight)

    def forward(self, outputs: dict, batch: dict) -> dict[str, torch.Tensor]:
        depth = outputs["depth"].float()
        target, valid = depth_target(batch, self.depth_target)
        if self.depth_loss == "berhu":
            fit = berhu_loss(depth, target, valid, self.berhu_threshold)
        else:
            fit = l1_loss(depth, target, valid)
        smooth = edge_aware_smoothness(depth, batch["rgb"])
        depth_total = fit + self.smoothness_weight * smooth
        labels = batch["teacher_label"]
        seg = segmentation_loss(outputs["segmentation"], labels)
        if self.kendall is not None:
            seg_present = (labels != IGNORE_LABEL).any().to(seg.dtype)
            total = self.kendall(depth_total, seg, valid.any().to(seg.dtype), seg_present)
        else:
            total = depth_total + self.seg_weight * seg
        parts = {"loss": total, "depth_fit": fit, "smoothness": smooth, "depth": depth_total, "seg": seg,
                 "valid_share": valid.float().mean()}
        if self.kendall is not None:
            parts["s_depth"], parts["s_seg"] = self.kendall.log_variances()
        return parts
