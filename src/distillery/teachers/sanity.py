"""The sanity gate: run the depth teacher on a few frames and stop the workflow on absurd depth.

Before any shard is labelled, the depth teacher sees `frames` frames spread
evenly over all shards. Per frame, the gate rejects all-zero depth, a
maximum above `max_depth_m` or a mean above `max_mean_m`. Over the frames
together, depth is correlated with the valid ToF pixels: Pearson r below
`fail_r` fails the run, below `warn_r` warns (the limits and their defaults:
distillery.teachers.sanity_limits.SanityLimits). A
relative teacher (DA2: inverse depth, no scale) skips the metre checks and is
correlated with inverse ToF depth instead. A wrong focal, wrong units or
garbage weights all show up here, minutes into the run instead of hours.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict

import numpy as np

from distillery.atomic import write_text_atomic
from distillery.manifest import open_shard
from distillery.teachers.base import FrameFailure
from distillery.teachers.grid import batch_grids, to_grid
from distillery.teachers.runner import ShardFrames, collate
from distillery.teachers.sanity_limits import SanityLimits

log = logging.getLogger(__name__)


class SanityError(RuntimeError):
    """The depth teacher's output is absurd; the workflow must stop."""


def sample_frames(shards: list[str], count: int) -> list[tuple[str, int]]:
    """`count` (shard, row) pairs spread evenly over the frames of all shards, in order."""
    sizes = []
    for path in shards:
        with open_shard(path) as f:
            sizes.append(int(f.attrs["frame_count"]))
    total = sum(sizes)
    picks = np.unique(np.linspace(0, total - 1, min(count, total)).round().astype(int)) if total else []
    starts = np.cumsum([0, *sizes])
    owners = np.searchsorted(starts, picks, side="right") - 1
    return [(shards[o], int(g - starts[o])) for g, o in zip(picks, owners)]


def frame_problems(depth: np.ndarray, limits: SanityLimits, kind: str) -> list[str]:
    """Why one frame's depth is absurd (empty when it is plausible)."""
    if not (depth > 0).any():
        return ["depth is zero everywhere"]
    if kind != "metric":
        return []
    problems = []
    if float(depth.max()) > limits.max_depth_m:
        problems.append(f"max depth {float(depth.max()):.1f} m > {limits.max_depth_m} m")
    if float(depth.mean()) > limits.max_mean_m:
        problems.append(f"mean depth {float(depth.mean()):.1f} m > {limits.max_mean_m} m")
    return problems


def tof_correlation(depths: list[np.ndarray], tofs: list[np.ndarray], kind: str) -> tuple[float | None, int]:
    """Pearson r of teacher depth against valid ToF (inverse ToF for relative teachers), and the pixel count."""
    pairs = [(d[m], t[m]) for d, t in zip(depths, tofs) for m in [(t > 0) & np.isfinite(t) & (d > 0)]]
    teacher = np.concatenate([p[0] for p in pairs]) if pairs else np.zeros(0)
    sensor = np.concatenate([p[1] for p in pairs]) if pairs else np.zeros(0)
    if kind != "metric":  # a relative teacher has its own scale and shift per frame: r per frame, the median
        rs = [np.corrcoef(d, 1.0 / t)[0, 1] for d, t in pairs if len(d) > 1 and d.std() > 0 and (1.0 / t).std() > 0]
        return (float(np.median(rs)) if rs else None), len(teacher)
    if len(teacher) < 2 or teacher.std() == 0 or sensor.std() == 0:
        return None, len(teacher)
    return float(np.corrcoef(teacher, sensor)[0, 1]), len(teacher)


def _predict_frames(stage, picks: list[tuple[str, int]]) -> list[tuple[str, dict | FrameFailure, np.ndarray]]:
    """The teacher's depth of the picked frames on the stored grid (where the ToF is), as the runner stores it."""
    out = []
    for shard in dict.fromkeys(s for s, _ in picks):
        data = ShardFrames(shard, tuple(dict.fromkeys((*stage.reads, "tof_depth"))), source=stage.sees() == "source")
        for batch in collate([data[i] for s, i in picks if s == shard]):
            for key, result, grid, tof in zip(batch["key"], stage.predict(batch), batch_grids(batch),
                                              batch["tof_depth"]):
                if not isinstance(result, FrameFailure):
                    result = to_grid("depth", result, grid)
                    result = FrameFailure(result) if isinstance(result, str) else result
                out.append((key, result, tof))
    return out


def run_sanity(stage, shards: list[str], limits: SanityLimits, out: str | None = None) -> dict:
    """Check the depth teacher on a few frames; raise SanityError on absurd depth, else write the report."""
    kind = stage.depth_kind
    frames, problems, depths, tofs = [], [], [], []
    for key, result, tof in _predict_frames(stage, sample_frames(shards, limits.frames)):
        if isinstance(result, FrameFailure):
            problems.append(f"{key}: teacher failed: {result.reason}")
            continue
        depth = result["teacher_depth"]
        issues = frame_problems(depth, limits, kind)
        problems += [f"{key}: {p}" for p in issues]
        frames.append({"frame": key, "max": round(float(depth.max()), 3), "mean": round(float(depth.mean()), 3),
                       "problems": issues})
        depths.append(depth)
        tofs.append(tof)
    r, pixels = tof_correlation(depths, tofs, kind)
    warnings = []
    if r is None or pixels < limits.min_tof_pixels:
        warnings.append(f"only {pixels} valid ToF pixels on the checked frames: correlation not checked")
        r = None
    elif r < limits.fail_r:
        problems.append(f"correlation with valid ToF r = {r:.3f} < {limits.fail_r}")
    elif r < limits.warn_r:
        warnings.append(f"correlation with valid ToF r = {r:.3f} < {limits.warn_r}")
    for w in warnings:
        log.warning("sanity: %s", w)
    report = {"teacher": stage.describe(), "depth_kind": kind, "limits": asdict(limits), "frames": frames,
              "tof_r": r, "tof_pixels": pixels, "warnings": warnings, "problems": problems, "passed": not problems}
    if problems:
        raise SanityError("depth teacher failed the sanity gate:\n  " + "\n  ".join(problems)
                          + f"\nreport: {json.dumps(report)}")
    if out:
        write_text_atomic(out, json.dumps(report, indent=1) + "\n")
    return report
