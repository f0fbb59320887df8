"""Set-level statistics from per-frame sums, with 95 % bootstrap intervals over sequences.

Neighbouring frames of a sequence are near copies, so frames are not
independent samples: the bootstrap resamples whole sequences. Every statistic
is a weighted function of per-frame values, the weight of a frame being how
often its sequence was drawn (1 for the point estimate), so one draw matrix
serves every metric and the intervals of different metrics are consistent.

The draws (docs/evaluation.md, "Recomputing"): sequences are the sorted unique
"dataset/sequence" ids of the evaluated frames, S of them;
`np.random.default_rng(seed).integers(0, S, size=(resamples, S))` picks the
sequences of each resample. The interval is the 2.5th and 97.5th percentile
(numpy's default linear method) of the resampled statistics, resamples whose
statistic is undefined (no pixel in a region) left out.
"""

from __future__ import annotations

import numpy as np

from distillery.student.metrics import DEPTH_SUMS

DEPTH_METRICS = ("rmse", "rmse_pooled", "mae", "absrel", "delta1", "delta2", "delta3")
_COLUMN = {name: i for i, name in enumerate(DEPTH_SUMS)}


def sequence_weights(sequence_ids: list[str], resamples: int, seed: int) -> tuple[np.ndarray, list[str]]:
    """Frame weights [1 + resamples, F]: row 0 all ones (the estimate), then one row per resample."""
    sequences = sorted(set(sequence_ids))
    index = np.searchsorted(sequences, sequence_ids)
    draws = np.random.default_rng(seed).integers(0, len(sequences), size=(resamples, len(sequences)))
    counts = np.zeros((resamples, len(sequences)))
    np.add.at(counts, (np.arange(resamples)[:, None], draws), 1)
    weights = np.concatenate([np.ones((1, len(sequence_ids))), counts[:, index]])
    return weights, sequences


def per_image(sums: np.ndarray) -> dict[str, np.ndarray]:
    """Per-frame metric values [F] from per-frame sums [F, len(DEPTH_SUMS)]; NaN where a frame has no pixel."""
    n = sums[:, _COLUMN["pixels"]]
    with np.errstate(invalid="ignore", divide="ignore"):
        out = {"rmse": np.sqrt(sums[:, _COLUMN["squared_error"]] / n), "mae": sums[:, _COLUMN["abs_error"]] / n,
               "absrel": sums[:, _COLUMN["abs_rel"]] / n}
        out.update({f"delta{k}": sums[:, _COLUMN[f"delta{k}"]] / n for k in (1, 2, 3)})
    return {k: np.where(n > 0, v, np.nan) for k, v in out.items()}


def weighted_depth(sums: np.ndarray, weights: np.ndarray) -> dict[str, np.ndarray]:
    """Every depth metric for each weight row [R, F]: per-image means, and the pooled RMSE; NaN if undefined."""
    n = sums[:, _COLUMN["pixels"]]
    has = (n > 0).astype(float)
    frames = weights @ has
    out = {}
    with np.errstate(invalid="ignore", divide="ignore"):
        for name, values in per_image(sums).items():
            out[name] = (weights @ np.nan_to_num(values)) / frames
        out["rmse_pooled"] = np.sqrt((weights @ sums[:, _COLUMN["squared_error"]]) / (weights @ n))
    return {name: out[name] for name in DEPTH_METRICS}


def interval(replicates: np.ndarray) -> list[float] | None:
    """The 95 % percentile interval of bootstrap replicates (undefined ones dropped); None without any."""
    kept = replicates[np.isfinite(replicates)]
    if kept.size == 0:
        return None
    lo, hi = np.percentile(kept, [2.5, 97.5])
    return [float(lo), float(hi)]


def estimate(values: np.ndarray) -> dict:
    """{"mean": estimate, "ci95": [lo, hi]} from a statistic computed under every weight row."""
    mean = float(values[0])
    return {"mean": mean if np.isfinite(mean) else None, "ci95": interval(values[1:])}


def depth_summary(sums: np.ndarray, weights: np.ndarray) -> dict | None:
    """The JSON block of one reference x region: each metric's estimate and CI, and the pixel count."""
    pixels = int(sums[:, _COLUMN["pixels"]].sum())
    if pixels == 0:
        return None
    out = {name: estimate(values) for name, values in weighted_depth(sums, weights).items()}
    out["pixels"] = pixels
    return out


def iou(confusion: np.ndarray) -> np.ndarray:
    """Per-class IoU [..., C] of confusion matrices [..., C, C] (reference rows); NaN for absent classes."""
    tp = np.diagonal(confusion, axis1=-2, axis2=-1)
    union = confusion.sum(-1) + confusion.sum(-2) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, tp / union, np.nan)


def miou(confusion: np.ndarray) -> np.ndarray:
    """mIoU [...]: nan-mean of the per-class IoU over classes present in reference or prediction."""
    values = iou(confusion)
    present = np.isfinite(values)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(present.any(-1), np.nansum(values, -1) / present.sum(-1), np.nan)


def segmentation_summary(confusions: np.ndarray, weights: np.ndarray, class_names: tuple[str, ...],
                         reference: str) -> dict | None:
    """mIoU with CI, per-class IoU and the confusion matrix from per-frame confusions [F, C, C]."""
    total = confusions.sum(0)
    if total.sum() == 0:
        return None
    resampled = np.einsum("rf,fij->rij", weights, confusions)
    per_class = iou(total)
    return {"miou": estimate(miou(resampled)),
            "per_class_iou": {name: (float(v) if np.isfinite(v) else None) for name, v in zip(class_names, per_class)},
            "confusion": total.astype(np.int64).tolist(), "reference": reference,
            "pixel_accuracy": float(np.trace(total) / total.sum())}
