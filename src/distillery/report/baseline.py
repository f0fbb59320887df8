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


def constant_baselines(manifest: str, sets: list[str], split: str = "test") -> dict[str, dict]:
    """{set: {"constant_m", "rmse", "frames", "teacher_rmse", "teacher_frames"}} for the sets whose test
    frames have truth depth (teacher_rmse None without metric teacher depth). One read per frame."""
    out = {}
    with Manifest(manifest) as m:
        for name in sets:
            rows = m.indices(split=split, dataset=name, require=("has_truth_depth",))
            has_teacher = set(m.indices(split=split, dataset=name, require=("has_truth_depth", "has_teacher_depth")))
            truths, teacher_errors = [], []
            for r in rows:
                fields = ("truth_depth", "teacher_depth") if r in has_teacher else ("truth_depth",)
                read = m.read(int(r), fields)
                frame = {k: np.asarray(read[k], np.float64) for k in fields}
                truth = frame["truth_depth"]
                ok = _truth_pixels(truth)
                if ok.any():
                    truths.append(truth[ok])
                teacher = frame.get("teacher_depth")
                if teacher is not None:
                    both = ok & np.isfinite(teacher) & (teacher > 0)
                    if both.any():
                        teacher_errors.append(float(np.sqrt(np.mean((truth[both] - teacher[both]) ** 2))))
            if not truths:
                continue
            constant = float(np.concatenate(truths).mean())
            rmse = float(np.mean([np.sqrt(np.mean((t - constant) ** 2)) for t in truths]))
            out[name] = {"constant_m": constant, "rmse": rmse, "frames": len(truths),
                         "teacher_rmse": float(np.mean(teacher_errors)) if teacher_errors else None,
                         "teacher_frames": len(teacher_errors)}
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
