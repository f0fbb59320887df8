"""The yardstick a depth student must beat: the best constant depth of each evaluation set.

A student that has learnt nothing from images predicts about one depth
everywhere; the best such constant for a set is the mean true depth of its
test pixels (chosen with hindsight, so it is a strict yardstick). Its RMSE
is computed like the evaluation's: per frame over pixels with truth, then the
mean over frames. The report shows each version's RMSE as a ratio to it; the
demo's goal is at most 0.6x. Sets without truth depth (real data) have none.

Beside it, the metric depth teacher's own RMSE against truth on the same
frames, computed the same way: the labels the students learn from where the
ToF is not trusted (a simulated teacher's error is a simulator setting,
docs/teachers.md).
"""

from __future__ import annotations

import numpy as np

from distillery.manifest import Manifest


def _truth_pixels(truth: np.ndarray) -> np.ndarray:
    return np.isfinite(truth) & (truth > 0)


def teacher_rmse(m: Manifest, rows) -> tuple[float | None, int]:
    """(mean per-frame RMSE of the metric teacher depth against truth, frames) over rows with both."""
    errors = []
    for r in rows:
        frame = m.read(int(r), ("truth_depth", "teacher_depth"))
        truth, teacher = (np.asarray(frame[k], np.float64) for k in ("truth_depth", "teacher_depth"))
        ok = _truth_pixels(truth) & np.isfinite(teacher) & (teacher > 0)
        if ok.any():
            errors.append(float(np.sqrt(np.mean((truth[ok] - teacher[ok]) ** 2))))
    return (float(np.mean(errors)) if errors else None), len(errors)


def constant_baselines(manifest: str, sets: list[str], split: str = "test") -> dict[str, dict]:
    """{set: {"constant_m", "rmse", "frames", "teacher_rmse", "teacher_frames"}} for the sets whose test
    frames have truth depth (teacher_rmse None without metric teacher depth)."""
    out = {}
    with Manifest(manifest) as m:
        for name in sets:
            rows = m.indices(split=split, dataset=name, require=("has_truth_depth",))
            truths = [np.asarray(m.read(int(r), ("truth_depth",))["truth_depth"], np.float64) for r in rows]
            truths = [t[_truth_pixels(t)] for t in truths]
            truths = [t for t in truths if t.size]
            if not truths:
                continue
            constant = float(np.concatenate(truths).mean())
            rmse = float(np.mean([np.sqrt(np.mean((t - constant) ** 2)) for t in truths]))
            labelled = m.indices(split=split, dataset=name, require=("has_truth_depth", "has_teacher_depth"))
            teacher, teacher_frames = teacher_rmse(m, labelled)
            out[name] = {"constant_m": constant, "rmse": rmse, "frames": len(truths),
                         "teacher_rmse": teacher, "teacher_frames": teacher_frames}
    return out


YARDSTICK_COLUMNS = ["set", "test frames", "best constant depth (m)", "its RMSE vs truth (m)",
                     "metric teacher RMSE vs truth (m)", "teacher / constant"]


def yardstick_rows(baselines: dict[str, dict]) -> list[list[str]]:
    """One row per set with truth: the constant's RMSE and the metric teacher's, and their ratio."""
    rows = []
    for name, b in sorted(baselines.items()):
        t = b.get("teacher_rmse")
        rows.append([name, str(b["frames"]), f"{b['constant_m']:.3f}", f"{b['rmse']:.3f}",
                     "-" if t is None else f"{t:.3f}", "-" if t is None else f"{t / b['rmse']:.2f}x"])
    return rows


def ratio_text(student: dict | None, baseline: dict | None) -> str:
    """'0.52x of 0.84 m' (the student's RMSE over the constant's), '-' without either."""
    if not student or not baseline or not baseline.get("rmse"):
        return "-"
    return f"{student['mean'] / baseline['rmse']:.2f}x of {baseline['rmse']:.3f} m"
