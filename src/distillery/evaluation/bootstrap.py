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

A bootstrap over a handful of sequences is not a 95 % interval: over two
sequences it has three distinct values, its "interval" the range of the two
sequences' means. Below MIN_CI_SEQUENCES sequences a statistic therefore
carries no `ci95` but a `range` (the smallest and largest resampled value:
the range of the sequences' values) and says so in `interval`
("range of 2 sequences"); the report prints it as such.
"""

from __future__ import annotations

import numpy as np

from distillery.student.metrics import DEPTH_SUMS

MIN_CI_SEQUENCES = 5  # fewer sequences: a range, never called a 95 % interval
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


def sequence_rows(weights: np.ndarray) -> np.ndarray | None:
    """Indicator weight rows [S, F], one per sequence (frames of a sequence share a resampling column);
    None without resamples."""
    if weights.shape[0] < 2:
        return None
    _, which = np.unique(weights[1:].T, axis=0, return_inverse=True)
    which = np.asarray(which).ravel()
    return (which[None, :] == np.arange(which.max() + 1)[:, None]).astype(float)


def few_sequences(weights: np.ndarray) -> np.ndarray | None:
    """The per-sequence indicator rows when there are fewer than MIN_CI_SEQUENCES sequences, else None."""
    rows = sequence_rows(weights)
    return rows if rows is not None and len(rows) < MIN_CI_SEQUENCES else None


def estimate(values: np.ndarray, per_sequence: np.ndarray | None = None, sequences: int | None = None) -> dict:
    """{"mean", "ci95"} from a statistic computed under every weight row. Given the statistic of each
    sequence alone (fewer than MIN_CI_SEQUENCES of them), no ci95 but their range:
    {"mean", "ci95": None, "range": [lo, hi], "interval": "range of N sequences"}."""
    mean = float(values[0])
    out = {"mean": mean if np.isfinite(mean) else None}
    if per_sequence is not None:
        kept = per_sequence[np.isfinite(per_sequence)]
        n = len(per_sequence)
        out.update(ci95=None, range=[float(kept.min()), float(kept.max())] if kept.size else None,
                   interval=f"range of {n} sequence{'s' if n != 1 else ''}")
        return out
    out["ci95"] = interval(values[1:])
    if sequences is not None:
        out["interval"] = f"95 % bootstrap over {sequences} sequences"
    return out


def depth_summary(sums: np.ndarray, weights: np.ndarray) -> dict | None:
    """The JSON block of one reference x region: each metric's estimate and CI, and the pixel count."""
    pixels = int(sums[:, _COLUMN["pixels"]].sum())
    if pixels == 0:
        return None
    alone = few_sequences(weights)
    rows = sequence_rows(weights)
    per_sequence = weighted_depth(sums, alone) if alone is not None else {}
    out = {name: estimate(values, per_sequence.get(name), None if rows is None else len(rows))
           for name, values in weighted_depth(sums, weights).items()}
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
    alone, rows = few_sequences(weights), sequence_rows(weights)
    per_sequence = miou(np.einsum("rf,fij->rij", alone, confusions)) if alone is not None else None
    return {"miou": estimate(miou(resampled), per_sequence, None if rows is None else len(rows)),
            "per_class_iou": {name: (float(v) if np.isfinite(v) else None) for name, v in zip(class_names, per_class)},
            "confusion": total.astype(np.int64).tolist(), "reference": reference,
            "pixel_accuracy": float(np.trace(total) / total.sum())}
