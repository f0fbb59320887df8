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


# Each valid pixel falls in one cell: (range bin: 0 outside the bins, 1.. the bins) x (ToF trusted or not).
# A region is a union of cells, so every region's sums are sums of cell sums.
NUM_CELLS = 2 * (len(RANGE_BINS) + 1)


def region_cells() -> torch.Tensor:
    """[NUM_CELLS, len(REGIONS)] float64: 1 where a cell belongs to a region."""
    matrix = torch.zeros(NUM_CELLS, len(REGIONS), dtype=torch.float64)
    for cell in range(NUM_CELLS):
        bin_index, trusted = divmod(cell, 2)
        member = {"all": True, "tof_invalid": not trusted, "tof_valid": bool(trusted)}
        member.update({name: bin_index == k for k, name in enumerate(RANGE_BINS, 1)})
        matrix[cell] = torch.tensor([float(member[r]) for r in REGIONS], dtype=torch.float64)
    return matrix


def cells(reference: torch.Tensor, valid: torch.Tensor, trusted: torch.Tensor) -> torch.Tensor:
    """The cell of every pixel for one reference (int64, -1 outside `valid`); `trusted` is the fusion gate."""
    bins = torch.zeros_like(reference, dtype=torch.int64)
    for k, (lo, hi) in enumerate(RANGE_BINS.values(), 1):
        bins = torch.where((reference >= lo) & (reference < hi), k, bins)
    return torch.where(valid, 2 * bins + trusted.long(), -1)


def batch_trusted(batch: dict) -> torch.Tensor:
    """The fusion gate of a batch's ToF, [B, 1, H, W]."""
    return trusted_tof(batch["tof_depth"], batch["tof_confidence"])
