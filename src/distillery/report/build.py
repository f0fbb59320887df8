"""Assemble the lineage report: read every input, draw every figure, write both files atomically."""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

from distillery.atomic import write_text_atomic
from distillery.manifest import Manifest
from distillery.report import plots
from distillery.report.baseline import constant_baselines
from distillery.report.data import (load_evaluations, load_quantization, main_reference, sets_of,
                                    versions_of)
from distillery.report.page import render_html, render_markdown
from distillery.report.panels import legend_figure, panels

log = logging.getLogger(__name__)
BARS = "95 % CI; range of the sequences where fewer than 5"


def metric_plots(evals, versions: list[str], sets: list[str], reference: str) -> list[tuple[str, str]]:
    """(title, data URI) of every metric figure the evaluations support."""
    out = []
    for kind, metric, label in (("depth", "rmse", "RMSE (m)"), ("depth", "absrel", "AbsRel"),
                                ("depth", "delta1", "δ1")):
        title = f"Student {label} vs {reference}, all pixels ({BARS})"
        out.append((title, plots.metric_bars(evals, versions, sets, title,
                                             lambda e, m=metric, k=kind: e.depth(reference, "all", m, k))))
    for region in ("tof_valid", "tof_invalid"):
        for kind in ("depth", "fused"):
            name = "student" if kind == "depth" else "fused"
            t = f"{name} RMSE vs {reference}, {region.replace('_', '-')} pixels ({BARS})"
            out.append((t, plots.metric_bars(evals, versions, sets, t,
                                             lambda e, r=region, k=kind: e.depth(reference, r, "rmse", k))))
    if any(e.miou() for e in evals):
        t = f"Segmentation mIoU ({BARS})"
        out.append((t, plots.metric_bars(evals, versions, sets, t, lambda e: e.miou())))
    out.append((f"Range bins vs {reference}", plots.range_bins(evals, versions, sets, reference)))
    if any(e.per_class_iou() for e in evals):
        out.append(("Per-class IoU", plots.per_class_iou(evals)))
    return out


def encoder_starts(checkpoints: dict[str, str]) -> dict[str, str]:
    """What each version's encoder started from (ImageNet, random, a file, its parent), as its best.pt says."""
    from distillery.student.checkpoint import load_checkpoint

    return {v: str(load_checkpoint(p).get("encoder_weights", "unknown")) for v, p in checkpoints.items()}


def report_context(evaluations: list[str], lineage: dict[str, dict], manifest: str,
                   checkpoints: dict[str, str], deploy_dir: str | None, frames: int) -> dict:
    """Everything the page and the summary show, with figures as data URIs."""
    evals = load_evaluations(evaluations, list(lineage))
    if not evals:
        raise ValueError("report: no evaluation JSON given")
    unknown = sorted({e.version for e in evals} - set(lineage))
    if unknown:
        raise ValueError(f"report: evaluations of versions {unknown} that the lineage config does not define")
    versions, sets = versions_of(evals), sets_of(evals)
    reference = main_reference(evals)
    with Manifest(manifest) as m:
        teachers, content_id = m.teachers, m.file.attrs.get("content_id", "unknown")
    baselines = constant_baselines(manifest, sets) if reference == "truth" else {}
    quant = load_quantization(deploy_dir, list(lineage))
    log.info("report: %d versions x %d sets, %d checkpoints, %d quantization files",
             len(versions), len(sets), len(checkpoints), len(quant))
    return {
        "generated": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "manifest": str(manifest), "content_id": str(content_id), "teachers": teachers,
        "lineage": lineage, "evals": evals, "reference": reference, "baselines": baselines,
        "encoders": encoder_starts(checkpoints),
        "lineage_graph": plots.lineage_graph(lineage),
        "plots": metric_plots(evals, versions, sets, reference),
        "legend": legend_figure(),
        "panels": panels(manifest, {v: checkpoints[v] for v in lineage if v in checkpoints}, frames),
        "quantization": quant, "quant_plot": plots.quantization_bars(quant) if quant else None,
    }


def _write(path: str | Path, text: str) -> None:
    write_text_atomic(path, text)


def build_report(evaluations: list[str], lineage: dict[str, dict], manifest: str, checkpoints: dict[str, str],
                 out_html: str, out_md: str, deploy_dir: str | None = None, frames: int = 3) -> dict:
    """Write the HTML page and the markdown summary; return counts of what they show."""
    ctx = report_context(evaluations, lineage, manifest, checkpoints, deploy_dir, frames)
    _write(out_html, render_html(ctx))
    _write(out_md, render_markdown(ctx, Path(out_html).name))
    return {"html": str(out_html), "markdown": str(out_md), "evaluations": len(ctx["evals"]),
            "plots": len(ctx["plots"]) + 1, "panels": len(ctx["panels"]), "quantization": len(ctx["quantization"])}
