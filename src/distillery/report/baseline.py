"""The yardstick a depth student must beat: the best constant depth of each evaluation set.

A student that has learnt nothing from images predicts about one depth
everywhere; the best such constant for a set is the mean true depth of its
test pixels (chosen with hindsight, so it is a strict yardstick). Its RMSE
is computed like the evaluation's: per frame over pixels with truth, then the
mean over frames. The report shows each version's RMSE as a ratio to it; the
demo's goal is at most 0.6x. Sets without truth depth (real data) have none.
"""

from __future__ import annotations

import numpy as np

from distillery.manifest import Manifest


def constant_baselines(manifest: str, sets: list[str], split: str = "test") -> dict[str, dict]:
    """{set: {"constant_m", "rmse", "frames"}} for the sets whose test frames have truth depth."""
    out = {}
    with Manifest(manifest) as m:
        for name in sets:
            rows = m.indices(split=split, dataset=name, require=("has_truth_depth",))
            truths = [np.asarray(m.read(int(r), ("truth_depth",))["truth_depth"], np.float64) for r in rows]
            truths = [t[np.isfinite(t) & (t > 0)] for t in truths]
            truths = [t for t in truths if t.size]
            if not truths:
                continue
            constant = float(np.concatenate(truths).mean())
            rmse = float(np.mean([np.sqrt(np.mean((t - constant) ** 2)) for t in truths]))
            out[name] = {"constant_m": constant, "rmse": rmse, "frames": len(truths)}
    return out


def ratio_text(student: dict | None, baseline: dict | None) -> str:
    """'0.52x of 0.84 m' (the student's RMSE over the constant's), '-' without either."""
    if not student or not baseline or not baseline.get("rmse"):
        return "-"
    return f"{student['mean'] / baseline['rmse']:.2f}x of {baseline['rmse']:.3f} m"
