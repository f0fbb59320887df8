"""Training losses of the student: depth targets, berHu / L1, scale-and-shift-invariant, smoothness,
cross-entropy, Kendall.

A run learns depth from one teacher (`depth_teacher`): the metric teacher
(metres; berHu or L1 against the target `depth_target` makes of it and the
ToF), the relative teacher (unitless inverse depth with an unknown scale and
shift per frame; a scale-and-shift-invariant loss on the student's inverse
depth, and never ToF metres mixed in), or the ToF alone.

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
from distillery.student.config import resolve_depth_loss

DEPTH_TARGETS = ("hybrid", "fusion", "tof_only")
DEPTH_TEACHERS = ("metric", "relative", "tof")
RELATIVE = "relative"


def target_mode(depth_teacher: str = "metric", depth_target: str = "hybrid") -> str:
    """The target a run learns: a `depth_target` mode for the metric teacher, "tof_only", or "relative"."""
    if depth_teacher not in DEPTH_TEACHERS:
        raise ValueError(f"unknown depth teacher {depth_teacher!r}; choose one of {DEPTH_TEACHERS}")
    if depth_teacher == "relative":
        if depth_target != "hybrid":
            raise ValueError(f"depth_target {depth_target!r} mixes ToF metres into a relative target")
        return RELATIVE
    return "tof_only" if depth_teacher == "tof" else depth_target


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
    relative: the relative teacher's depth (unitless), frames that have it; no ToF anywhere.
    """
    if mode == RELATIVE:
        return relative_target(batch)
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


def relative_target(batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """The relative teacher's inverse depth and where it is valid (frames with it, finite, > 0), [B, 1, H, W]."""
    rel = batch["teacher_depth_relative"]
    valid = _frame_flag(batch["has_teacher_depth_relative"], rel) & torch.isfinite(rel) & (rel > 0)
    return torch.where(valid, rel, torch.zeros_like(rel)), valid


def disparity(depth: torch.Tensor, min_depth: float = 1e-3) -> torch.Tensor:
    """Inverse depth of the student's metric output: what a relative (inverse-depth) teacher is compared with."""
    return 1.0 / depth.clamp_min(min_depth)


def _ssi_normalise(x: torch.Tensor) -> torch.Tensor:
    """x minus its median, divided by its mean absolute deviation from the median (MiDaS)."""
    centred = x - x.median()
    return centred / centred.abs().mean().clamp_min(1e-6)


def ssi_per_frame(pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor, min_pixels: int = 16
                  ) -> torch.Tensor:
    """Per frame with at least `min_pixels` valid pixels, the mean |normalised pred - normalised target|.

    Both are normalised per frame by median and mean absolute deviation (Ranftl et al., MiDaS, the
    scale-and-shift-invariant MAE), so the loss ignores each frame's unknown scale and shift of the target.
    """
    errors = []
    for p, t, m in zip(pred, target, valid):
        if int(m.sum()) >= min_pixels:
            errors.append((_ssi_normalise(p[m]) - _ssi_normalise(t[m])).abs().mean())
    return torch.stack(errors) if errors else pred.new_zeros(0)


def ssi_loss(pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor, min_pixels: int = 16
             ) -> torch.Tensor:
    """Scale-and-shift-invariant loss, the mean over frames of ssi_per_frame; 0 (zero gradient) without one."""
    errors = ssi_per_frame(pred, target, valid, min_pixels)
    return errors.mean() if len(errors) else (pred * 0).sum()


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

    def __init__(self, depth_target: str = "hybrid", depth_loss: str | None = None, berhu_threshold: float = 0.2,
                 lambda_e: float = 0.1, kendall: bool = True, kendall_clamp: float = 2.0,
                 seg_weight: float = 1.0, depth_teacher: str = "metric"):
        super().__init__()
        depth_loss = resolve_depth_loss(depth_teacher, depth_loss)
        if depth_target not in DEPTH_TARGETS:
            raise ValueError(f"unknown depth target {depth_target!r}")
        self.depth_target, self.depth_loss = target_mode(depth_teacher, depth_target), depth_loss
        self.berhu_threshold, self.lambda_e, self.seg_weight = berhu_threshold, lambda_e, seg_weight
        self.kendall = KendallWeighting(kendall_clamp) if kendall else None

    @classmethod
    def from_config(cls, cfg) -> StudentLoss:
        return cls(cfg.depth_target, cfg.depth_loss, cfg.berhu_threshold, cfg.lambda_e, cfg.kendall,
                   cfg.kendall_clamp, cfg.seg_weight, cfg.depth_teacher)

    def forward(self, outputs: dict, batch: dict) -> dict[str, torch.Tensor]:
        """The spec's objective: Kendall(L_depth, L_seg) + lambda_e * L_edge. The edge-aware smoothness is a
        regulariser of its own, outside the uncertainty weighting, so its weight does not swing with the
        learned depth uncertainty s_d; without Kendall, L_depth + seg_weight * L_seg + lambda_e * L_edge."""
        depth = outputs["depth"].float()
        target, valid = depth_target(batch, self.depth_target)
        if self.depth_loss == "ssi":
            fit = ssi_loss(disparity(depth), target, valid)
        elif self.depth_loss == "berhu":
            fit = berhu_loss(depth, target, valid, self.berhu_threshold)
        else:
            fit = l1_loss(depth, target, valid)
        smooth = edge_aware_smoothness(depth, batch["rgb"])
        labels = batch["teacher_label"]
        seg = segmentation_loss(outputs["segmentation"], labels)
        if self.kendall is not None:
            seg_present = (labels != IGNORE_LABEL).any().to(seg.dtype)
            total = self.kendall(fit, seg, valid.any().to(seg.dtype), seg_present)
        else:
            total = fit + self.seg_weight * seg
        total = total + self.lambda_e * smooth
        parts = {"loss": total, "depth_fit": fit, "smoothness": smooth, "depth": fit, "seg": seg,
                 "valid_share": valid.float().mean()}
        if self.kendall is not None:
            parts["s_depth"], parts["s_seg"] = self.kendall.log_variances()
        return parts
