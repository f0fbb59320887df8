"""Depth references of an evaluation batch and the pixel regions each is scored on.

References (each with its own validity mask, reference depth > 0 and finite):

    truth     synthetic or measured ground truth, frames that have it
    tof       the sensor depth where it is valid for evaluation, 0.1-5 m
    teacher   the metric teacher depth (manifest slot `teacher_depth`), frames that have it

Regions, within a reference's mask:

    all           every valid reference pixel
    near|mid|far  reference depth in [0.3, 1), [1, 2), [2, 4) m
    tof_invalid   pixels where fusion does not trust the ToF (the pixels the student fills)
    tof_valid     pixels where fusion takes the ToF as it is

The bins and the ToF range are those of the training metrics (student/metrics.py),
the ToF gate is distillery.fusion's: one definition of each.
"""

from __future__ import annotations

import torch

from distillery.fusion import trusted_tof
from distillery.student.metrics import RANGE_BINS, TOF_EVAL_RANGE_M

REFERENCES = ("truth", "tof", "teacher")
FUSED_REFERENCES = ("truth", "teacher")
REGIONS = ("all", *RANGE_BINS, "tof_invalid", "tof_valid")


def _frames(flag: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """A per-frame bool [B] broadcast to an image batch [B, 1, H, W]."""
    return flag.to(torch.bool).view(-1, *([1] * (like.dim() - 1))).expand_as(like)


def references(batch: dict) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """name -> (reference depth, valid mask); a frame without a reference has an empty mask for it."""
    refs = {}
    if "truth_depth" in batch:
        truth = batch["truth_depth"]
        refs["truth"] = (truth, _frames(batch["has_truth_depth"], truth) & torch.isfinite(truth) & (truth > 0))
    tof = batch["tof_depth"]
    lo, hi = TOF_EVAL_RANGE_M
    refs["tof"] = (tof, torch.isfinite(tof) & (tof >= lo) & (tof <= hi))
    if "teacher_depth" in batch:
        teacher = batch["teacher_depth"]
        refs["teacher"] = (teacher, _frames(batch["has_teacher_depth"], teacher) & torch.isfinite(teacher)
                           & (teacher > 0))
    return refs


def regions(reference: torch.Tensor, valid: torch.Tensor, trusted: torch.Tensor) -> dict[str, torch.Tensor]:
    """region name -> mask (within `valid`) for one reference; `trusted` is the fusion ToF gate."""
    out = {"all": valid}
    for name, (lo, hi) in RANGE_BINS.items():
        out[name] = valid & (reference >= lo) & (reference < hi)
    out["tof_invalid"] = valid & ~trusted
    out["tof_valid"] = valid & trusted
    return out


def batch_trusted(batch: dict) -> torch.Tensor:
    """The fusion gate of a batch's ToF, [B, 1, H, W]."""
    return trusted_tof(batch["tof_depth"], batch["tof_confidence"])
