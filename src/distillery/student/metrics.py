"""Depth and segmentation metrics; every result is a dict of named floats.

Metrics accumulate sums (squared error, pixel counts, a confusion matrix) so
that batches, and DDP ranks, combine exactly by adding: a batch mean of
RMSEs is not the RMSE of the set. Depth is compared against several
references, each with its own mask:

    target             what the run trains on (the depth_target of the config), on the validation split;
                       a relative target is in the teacher's unitless values, and adds depth/target/ssi,
                       the scale-and-shift-invariant error
    teacher            the teacher depth, frames that have one
    teacher/near|mid|far   ... by teacher range, 0.3-1 m, 1-2 m, 2-4 m
    teacher_tof_invalid    ... on pixels runtime fusion takes from the student (ToF not usable)
    tof                valid sensor depth within 0.1-5 m
    truth, truth_tof_invalid   synthetic ground truth (evaluation only, never for checkpoint choice)

Segmentation: mIoU from a confusion matrix, the nan-mean over classes that
occur (in the reference or the prediction), plus per-class IoU and pixel accuracy.
"""

from __future__ import annotations

import math

import torch

from distillery.classes import CLASS_NAMES, IGNORE_LABEL
from distillery.fusion import trusted_tof
from distillery.student.losses import RELATIVE, depth_target, disparity, relative_target, ssi_per_frame

RANGE_BINS = {"near": (0.3, 1.0), "mid": (1.0, 2.0), "far": (2.0, 4.0)}
TOF_EVAL_RANGE_M = (0.1, 5.0)
DEPTH_SUMS = ("pixels", "squared_error", "abs_error", "abs_rel", "delta1", "delta2", "delta3")


def pixel_errors(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The additive terms of DEPTH_SUMS per pixel, float64 [n, len(DEPTH_SUMS)], for 1-D valid pixels.

    Predictions are clamped to at least 1e-6 m (AbsRel and the delta ratios need a positive
    value); targets must be > 0.
    """
    p = pred.detach().double().clamp_min(1e-6)
    t = target.detach().double()
    err = (p - t).abs()
    ratio = torch.maximum(p / t, t / p)
    return torch.stack([torch.ones_like(p), err * err, err, err / t, (ratio < 1.25).double(),
                        (ratio < 1.25**2).double(), (ratio < 1.25**3).double()], dim=1)


def cell_depth_sums(pred: torch.Tensor, target: torch.Tensor, cells: torch.Tensor, num_cells: int) -> torch.Tensor:
    """depth_sums of each frame of a batch per cell, float64 [B, num_cells, len(DEPTH_SUMS)].

    `cells` (int, shaped like pred) puts each pixel into one cell 0..num_cells-1, or -1 to skip it;
    each valid pixel's errors are computed once and added to its cell in one index_add.
    """
    b = pred.shape[0]
    cells = cells.reshape(b, -1)
    keep = cells >= 0
    frame = torch.arange(b, device=pred.device)[:, None].expand_as(cells)[keep]
    errors = pixel_errors(pred.reshape(b, -1)[keep], target.reshape(b, -1)[keep])
    out = torch.zeros(b * num_cells, len(DEPTH_SUMS), dtype=torch.float64, device=pred.device)
    return out.index_add_(0, frame * num_cells + cells[keep], errors).reshape(b, num_cells, -1)


def frame_depth_sums(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """depth_sums of each frame of a batch [B, ...] over its mask, float64 [B, len(DEPTH_SUMS)]."""
    cells = torch.where(mask, 0, -1).reshape(pred.shape)
    return cell_depth_sums(pred, target, cells, 1)[:, 0]


def depth_sums(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The additive statistics of depth errors over `mask`, float64 [len(DEPTH_SUMS)]."""
    return frame_depth_sums(pred.reshape(1, -1), target.reshape(1, -1), mask.reshape(1, -1))[0]


def depth_from_sums(sums: torch.Tensor) -> dict[str, float]:
    """RMSE and MAE (metres), AbsRel, delta1-3 and the pixel count from depth_sums."""
    n, sq, ab, rel, d1, d2, d3 = (float(v) for v in sums)
    if n == 0:
        return {"pixels": 0}
    return {"rmse": math.sqrt(sq / n), "mae": ab / n, "absrel": rel / n, "delta1": d1 / n, "delta2": d2 / n,
            "delta3": d3 / n, "pixels": int(n)}


def depth_metrics(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> dict[str, float]:
    """Depth metrics of one prediction against one reference over a mask."""
    return depth_from_sums(depth_sums(pred, target, mask & (target > 0)))


def confusion_matrix(pred: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """[reference class, predicted class] pixel counts over labelled pixels (255 ignored)."""
    keep = labels != IGNORE_LABEL
    index = labels[keep].long() * num_classes + pred[keep].long()
    return torch.bincount(index, minlength=num_classes**2).reshape(num_classes, num_classes).double()


def frame_confusions(pred: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """confusion_matrix of each frame of a batch [B, H, W], float64 [B, C, C], in one bincount."""
    b = pred.shape[0]
    keep = labels != IGNORE_LABEL
    frame = torch.arange(b, device=pred.device).view(b, *([1] * (pred.dim() - 1))).expand_as(pred)
    index = (frame[keep] * num_classes + labels[keep].long()) * num_classes + pred[keep].long()
    return torch.bincount(index, minlength=b * num_classes**2).reshape(b, num_classes, num_classes).double()


def segmentation_from_confusion(confusion: torch.Tensor, class_names=CLASS_NAMES) -> dict[str, float]:
    """mIoU (nan-mean over classes present in reference or prediction), per-class IoU, pixel accuracy."""
    confusion = confusion.double()
    total = float(confusion.sum())
    if total == 0:
        return {"pixels": 0}
    tp = confusion.diag()
    union = confusion.sum(0) + confusion.sum(1) - tp
    iou = torch.where(union > 0, tp / union.clamp_min(1), torch.full_like(tp, float("nan")))
    out = {"miou": float(torch.nanmean(iou)), "pixel_acc": float(tp.sum()) / total, "pixels": int(total)}
    out.update({f"iou_{name}": float(v) for name, v in zip(class_names, iou)})
    return out


def segmentation_metrics(logits: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    num_classes = logits.shape[1]
    names = CLASS_NAMES if num_classes == len(CLASS_NAMES) else tuple(str(i) for i in range(num_classes))
    return segmentation_from_confusion(confusion_matrix(logits.argmax(1), labels, num_classes), names)


def _frames(flag: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return flag.to(torch.bool).view(-1, *([1] * (like.dim() - 1))).expand_as(like)


def depth_references(batch: dict, target_mode: str) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Every depth reference of a batch as name -> (reference depth, mask), masks already excluding 0."""
    refs = {"target": depth_target(batch, target_mode)}  # relative: in the teacher's unitless values
    tof = batch["tof_depth"]
    student_pixels = ~trusted_tof(tof, batch["tof_confidence"])
    teacher = batch["teacher_depth"]
    has_teacher = _frames(batch["has_teacher_depth"], teacher) & (teacher > 0)
    refs["teacher"] = (teacher, has_teacher)
    for name, (lo, hi) in RANGE_BINS.items():
        refs[f"teacher/{name}"] = (teacher, has_teacher & (teacher >= lo) & (teacher < hi))
    refs["teacher_tof_invalid"] = (teacher, has_teacher & student_pixels)
    refs["tof"] = (tof, (tof >= TOF_EVAL_RANGE_M[0]) & (tof <= TOF_EVAL_RANGE_M[1]))
    if "truth_depth" in batch:
        truth = batch["truth_depth"]
        has_truth = _frames(batch["has_truth_depth"], truth) & (truth > 0)
        refs["truth"] = (truth, has_truth)
        refs["truth_tof_invalid"] = (truth, has_truth & student_pixels)
    return refs


class Evaluator:
    """Accumulates every metric of a validation pass; state() / load_state() for DDP reduction."""

    DEPTH_NAMES = ("target", "teacher", *(f"teacher/{b}" for b in RANGE_BINS), "teacher_tof_invalid", "tof",
                   "truth", "truth_tof_invalid")
    SEG_NAMES = ("teacher", "truth")

    def __init__(self, num_classes: int, target_mode: str = "hybrid", device: torch.device | str = "cpu"):
        self.num_classes, self.target_mode = num_classes, target_mode
        self.depth = {n: torch.zeros(len(DEPTH_SUMS), dtype=torch.float64, device=device) for n in self.DEPTH_NAMES}
        self.seg = {n: torch.zeros(num_classes, num_classes, dtype=torch.float64, device=device)
                    for n in self.SEG_NAMES}
        self.relative = torch.zeros(2, dtype=torch.float64, device=device)  # frames, summed SSI error

    @torch.no_grad()
    def update(self, outputs: dict, batch: dict) -> None:
        pred = outputs["depth"].float()
        for name, (reference, mask) in depth_references(batch, self.target_mode).items():
            self.depth[name] += depth_sums(pred, reference, mask)
        if self.target_mode == RELATIVE:
            errors = ssi_per_frame(disparity(pred), *relative_target(batch)).double()
            self.relative += torch.stack([errors.new_tensor(float(len(errors))), errors.sum()])
        predicted = outputs["segmentation"].argmax(1)
        for name in self.SEG_NAMES:
            if f"{name}_label" in batch:
                self.seg[name] += confusion_matrix(predicted, batch[f"{name}_label"], self.num_classes)

    def state(self) -> torch.Tensor:
        return torch.cat([*self.depth.values(), *(c.flatten() for c in self.seg.values()), self.relative])

    def load_state(self, state: torch.Tensor) -> None:
        parts = list(state.split([len(DEPTH_SUMS)] * len(self.depth) + [self.num_classes**2] * len(self.seg) + [2]))
        self.relative = parts.pop().clone()
        for name in self.depth:
            self.depth[name] = parts.pop(0).clone()
        for name in self.seg:
            self.seg[name] = parts.pop(0).reshape(self.num_classes, self.num_classes).clone()

    def compute(self) -> dict[str, float]:
        """Flat dict 'depth/<reference>/<metric>', 'seg/<reference>/<metric>'; empty references left out."""
        out = {}
        for name, sums in self.depth.items():
            if sums[0] > 0:
                out.update({f"depth/{name}/{k}": v for k, v in depth_from_sums(sums.cpu()).items()})
        if self.relative[0] > 0:
            out.update({"depth/target/ssi": float(self.relative[1] / self.relative[0]),
                        "depth/target/frames": int(self.relative[0])})
        names = CLASS_NAMES if self.num_classes == len(CLASS_NAMES) else tuple(map(str, range(self.num_classes)))
        for name, confusion in self.seg.items():
            if confusion.sum() > 0:
                values = segmentation_from_confusion(confusion.cpu(), names)
                out.update({f"seg/{name}/{k}": v for k, v in values.items()})
        return out
