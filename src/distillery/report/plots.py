"""The report's figures, drawn with matplotlib and returned as embeddable PNG data URIs.

Each function takes plain data (evaluations, the lineage) and returns a
`data:image/png;base64,...` string, so the HTML page needs no file next to
it and opens offline. Error bars are the evaluation's 95 % bootstrap
intervals (the range of the sequences where a set has fewer than five, and the
titles say so), never a standard deviation made up here.
"""

from __future__ import annotations

import base64
import io
import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from distillery.report.data import RANGE_REGIONS, Evaluation, lineage_depths, recipe_line  # noqa: E402

DPI = 96


def to_data_uri(fig) -> str:
    """Render a figure to PNG and return it as a data URI; the figure is closed."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def lineage_graph(lineage: dict[str, dict]) -> str:
    """Versions as boxes, one column per generation, an arrow from each parent to its children."""
    depth = lineage_depths(lineage)
    columns: dict[int, list[str]] = {}
    for v in lineage:
        columns.setdefault(depth[v], []).append(v)
    rows = max(len(c) for c in columns.values())
    fig, ax = plt.subplots(figsize=(3.4 * len(columns) + 0.5, 0.75 * rows + 0.8))
    pos = {v: (3.4 * d, -(i - (len(vs) - 1) / 2) * 0.75) for d, vs in columns.items() for i, v in enumerate(vs)}
    for v, entry in lineage.items():
        parent = entry.get("parent")
        if parent in pos:
            (x0, y0), (x1, y1) = pos[parent], pos[v]
            ax.annotate("", xy=(x1 - 1.45, y1), xytext=(x0 + 1.45, y0),
                        arrowprops={"arrowstyle": "->", "color": "#555"})
    for v, (x, y) in pos.items():
        ax.text(x, y, f"{v}\n{recipe_line(lineage[v])}", ha="center", va="center", fontsize=7.5,
                bbox={"boxstyle": "round,pad=0.3", "fc": "#e8f0fe", "ec": "#3367d6"})
    ax.set_xlim(-1.7, 3.4 * (len(columns) - 1) + 1.7)
    ax.set_ylim(-0.75 * rows / 2 - 0.3, 0.75 * rows / 2 + 0.3)
    ax.axis("off")
    ax.set_title("Lineage: parent -> fine-tuned child", fontsize=10)
    return to_data_uri(fig)


def _ci_errors(values: list[dict | None]) -> tuple[np.ndarray, np.ndarray]:
    """Means and asymmetric error bar lengths [2, n] from {"mean", "ci95"} dicts (NaN when absent)."""
    means, err = [], []
    for v in values:
        if not v:
            means.append(math.nan)
            err.append((0.0, 0.0))
            continue
        lo, hi = (v.get("ci95") or v.get("range") or [None, None])[:2]  # range: fewer than five sequences
        lo = v["mean"] if lo is None or not math.isfinite(lo) else lo  # no interval (e.g. one sequence)
        hi = v["mean"] if hi is None or not math.isfinite(hi) else hi
        means.append(v["mean"])
        err.append((max(v["mean"] - lo, 0.0), max(hi - v["mean"], 0.0)))
    return np.asarray(means, dtype=float), np.asarray(err, dtype=float).T.reshape(2, -1)


def metric_bars(evals: list[Evaluation], versions: list[str], sets: list[str], title: str, getter) -> str:
    """Grouped bars: versions on the x axis, one bar per evaluation set, 95 % CI error bars."""
    fig, ax = plt.subplots(figsize=(max(6.0, 0.9 * len(versions) + 2), 3.2))
    by_key = {(e.version, e.set): e for e in evals}
    width = 0.8 / max(len(sets), 1)
    x = np.arange(len(versions))
    for i, s in enumerate(sets):
        values = [getter(by_key[v, s]) if (v, s) in by_key else None for v in versions]
        means, err = _ci_errors(values)
        ax.bar(x + (i - (len(sets) - 1) / 2) * width, np.nan_to_num(means), width, yerr=err, capsize=2,
               label=s, alpha=0.85)
    ax.set_xticks(x, versions)
    ax.set_title(title, fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=7, title="evaluation set", title_fontsize=7, ncols=min(len(sets), 4))
    return to_data_uri(fig)


def range_bins(evals: list[Evaluation], versions: list[str], sets: list[str], reference: str,
               kind: str = "depth") -> str:
    """RMSE per range bin (near/mid/far) per version, one panel per evaluation set, with CIs."""
    fig, axes = plt.subplots(1, len(sets), figsize=(4.2 * len(sets), 3.0), squeeze=False, sharey=True)
    by_key = {(e.version, e.set): e for e in evals}
    x = np.arange(len(RANGE_REGIONS))
    for ax, s in zip(axes[0], sets):
        for j, v in enumerate(versions):
            if (v, s) not in by_key:
                continue
            values = [by_key[v, s].depth(reference, r, "rmse", kind) for r in RANGE_REGIONS]
            means, err = _ci_errors(values)
            ax.errorbar(x + (j - len(versions) / 2) * 0.03, means, yerr=err, marker="o", ms=3, capsize=2,
                        lw=1, label=v)
        ax.set_xticks(x, ["near 0.3-1 m", "mid 1-2 m", "far 2-4 m"], fontsize=8)
        ax.set_title(f"{s}: {kind} RMSE vs {reference} by range", fontsize=9)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("RMSE (m)")
    axes[0][-1].legend(fontsize=7, ncols=2)
    return to_data_uri(fig)


def per_class_iou(evals: list[Evaluation]) -> str:
    """Heat map of per-class IoU, one row per version x set, numbers printed in the cells."""
    rows = [e for e in evals if e.per_class_iou()]
    classes = list(rows[0].per_class_iou()) if rows else []
    grid = np.array([[e.per_class_iou().get(c, math.nan) for c in classes] for e in rows], dtype=float)
    fig, ax = plt.subplots(figsize=(1.0 * len(classes) + 2.5, 0.28 * len(rows) + 1.2))
    if rows:
        im = ax.imshow(np.ma.masked_invalid(grid), vmin=0, vmax=1, cmap="viridis", aspect="auto")
        for (i, j), value in np.ndenumerate(grid):
            text = "-" if math.isnan(value) else f"{value:.2f}"
            ax.text(j, i, text, ha="center", va="center", fontsize=6.5,
                    color="white" if math.isnan(value) or value < 0.6 else "black")
        ax.set_xticks(range(len(classes)), classes, fontsize=8)
        ax.set_yticks(range(len(rows)), [f"{e.version} / {e.set}" for e in rows], fontsize=7)
        fig.colorbar(im, ax=ax, fraction=0.03, label="IoU")
    ax.set_title("Per-class IoU (nan: class absent from reference and prediction)", fontsize=9)
    return to_data_uri(fig)


def quantization_bars(quant: dict[str, dict], metric: str = "delta1") -> str:
    """FP32 versus INT8 accuracy per deployed version."""
    versions = list(quant)
    fig, ax = plt.subplots(figsize=(max(4.0, 0.8 * len(versions) + 2), 2.8))
    x = np.arange(len(versions))
    for i, precision in enumerate(("fp32", "int8")):
        values = [quant[v][precision].get(metric, math.nan) for v in versions]
        ax.bar(x + (i - 0.5) * 0.38, values, 0.38, label=precision.upper())
    ax.set_xticks(x, versions)
    ax.set_title(f"Deployment: {metric} FP32 vs INT8 (ONNX Runtime)", fontsize=9)
    ax.legend(fontsize=7)
    ax.grid(axis="y", alpha=0.3)
    return to_data_uri(fig)
