"""The fused graph: student + confidence-gated ToF fusion in one ONNX file, buildable by TensorRT.

Inputs `rgb` [N,3,240,320] (as the student's), `tof` [N,1,240,320] metres and
`confidence` [N,1,240,320]; outputs `fused_depth` [N,1,240,320] and `scale`
[N]. Per pixel it is `distillery.fusion.fuse`: ToF where trusted
(confidence >= 0.5, 0.05 m < d < 10 m), else s x student.

The one difference is the median. `fuse` sorts all 76,800 ratios of a frame;
a sort in ONNX is TopK, and TensorRT's TopK takes k <= 3840. The graph
therefore takes the median over a fixed grid subsample, every 3rd row and
every 4th column (80 x 80 = 6,400 pixels; the two middle values of at most
6,400 need k = 3,201): the usable ratios of the grid go through one TopK
(smallest first, unusable ones pushed to +inf) and the two middle values are
gathered at the count of usable grid pixels. The error this costs against
the exact median is measured on test frames by `median_error` and written
beside the graph (fused.json); the check bounds it by FUSED_SCALE_MAX_REL.
Inf/NaN checks are plain comparisons (a NaN compares false), which every
backend builds.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from distillery import fusion
from distillery.deploy import spec
from distillery.deploy.spec import COL_STRIDE, ROW_STRIDE, grid_size, topk_k

FLOAT_MAX = 3.0e38
FUSED_SCALE_MAX_REL = 0.03  # bound on |s_graph - s_exact| / s_exact per test frame
FUSED_DEPTH_ABS_M = 1e-3  # float slack on top of the scale error


def approx_median(ratio: torch.Tensor, usable: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(median, count) of ratio over usable pixels of the strided grid, per frame; [N,H,W] inputs."""
    r = ratio[:, ::ROW_STRIDE, ::COL_STRIDE].flatten(1)
    u = usable[:, ::ROW_STRIDE, ::COL_STRIDE].flatten(1)
    k = r.shape[1] // 2 + 1
    ordered = torch.topk(torch.where(u, r, torch.full_like(r, float("inf"))), k, dim=1, largest=False).values
    count = u.to(torch.float32).sum(1, keepdim=True)
    lo = torch.floor((count - 1).clamp_min(0) / 2).to(torch.int64)
    hi = torch.floor(count / 2).clamp_max(k - 1).to(torch.int64)
    median = 0.5 * (ordered.gather(1, lo) + ordered.gather(1, hi))
    return median[:, 0], count[:, 0]


class FusedGraph(nn.Module):
    """forward(rgb, tof, confidence) -> (fused_depth [N,1,H,W], scale [N]); see the module docstring."""

    def __init__(self, student: nn.Module):
        super().__init__()
        self.student = student

    def forward(self, rgb: torch.Tensor, tof: torch.Tensor, confidence: torch.Tensor):
        s, t, c = self.student(rgb)["depth"][:, 0], tof[:, 0], confidence[:, 0]
        trusted = (c >= fusion.CONF_MIN) & (t > fusion.DEPTH_MIN_M) & (t < fusion.DEPTH_MAX_M)
        student_ok = (s > 0) & (s < FLOAT_MAX)
        clean = torch.where(student_ok, s, torch.zeros_like(s))
        ratio = t / torch.where(student_ok, s, torch.ones_like(s))
        usable = trusted & student_ok & (ratio < FLOAT_MAX)
        median, count = approx_median(ratio, usable)
        scale = torch.where(count > 0, median, torch.ones_like(median))
        scaled = clean * scale[:, None, None]
        scaled = torch.where(scaled < FLOAT_MAX, scaled, torch.zeros_like(scaled))
        fused = torch.where(trusted, t, scaled)
        return fused[:, None], scale


def export_fused(student: nn.Module, out) -> dict:
    """Write the fused graph as checked, simplified ONNX (opset 17, dynamic batch)."""
    from distillery.deploy.export import check_model, save_atomic, set_output_shapes, simplify, trace_to_onnx
    from distillery.atomic import atomic_target

    raw = atomic_target(f"{out}.raw.onnx")
    try:
        example = (torch.rand(1, 3, spec.HEIGHT, spec.WIDTH), torch.rand(1, 1, spec.HEIGHT, spec.WIDTH) * 4,
                   torch.rand(1, 1, spec.HEIGHT, spec.WIDTH))
        with torch.no_grad():
            trace_to_onnx(FusedGraph(student).eval(), example, raw, spec.FUSED_INPUTS, spec.FUSED_OUTPUTS)
        model = simplify(check_model(raw))
        set_output_shapes(model, {spec.FUSED_OUTPUTS[0]: [spec.BATCH, 1, spec.HEIGHT, spec.WIDTH],
                                  spec.FUSED_OUTPUTS[1]: [spec.BATCH]})
    finally:
        raw.unlink(missing_ok=True)
    save_atomic(model, out)
    check_model(out)
    topk = [n for n in model.graph.node if n.op_type == "TopK"]
    return {"nodes": len(model.graph.node), "topk_nodes": len(topk), "topk_k": topk_k(),
            "median": f"grid subsample rows::{ROW_STRIDE} cols::{COL_STRIDE} ({grid_size()} pixels), TopK k={topk_k()}"}


def check_fused(onnx_path, student: nn.Module, frames: dict) -> dict:
    """Fused ONNX vs. distillery.fusion.fuse on the PyTorch student's depth, per test frame.

    Figures: the scale's relative error against the exact median (max, mean), the largest fused
    depth difference on trusted ToF pixels (exact by construction) and elsewhere.
    """
    from distillery.deploy.parity import ort_session

    session = ort_session(onnx_path)
    rows = []
    for i in range(len(frames["rgb"])):
        rgb, tof, conf = (frames[k][i:i + 1] for k in ("rgb", "tof", "confidence"))
        fused, scale = session.run(list(spec.FUSED_OUTPUTS), {"rgb": rgb, "tof": tof, "confidence": conf})
        with torch.no_grad():
            student_depth = student(torch.from_numpy(rgb))["depth"].numpy()
        exact = fusion.fuse(student_depth, tof, conf)
        trusted = fusion.trusted_tof(tof, conf)
        rel = abs(float(scale[0]) - float(exact.scale[0])) / max(abs(float(exact.scale[0])), 1e-12)
        diff = np.abs(fused.astype(np.float64) - exact.depth)
        slack = rel * student_depth * float(exact.scale[0]) + FUSED_DEPTH_ABS_M
        rows.append({"key": frames["keys"][i], "scale_graph": float(scale[0]), "scale_exact": float(exact.scale[0]),
                     "scale_rel_error": rel, "no_trusted": bool(exact.no_trusted[0]),
                     "trusted_max_abs_m": float(diff[trusted].max()) if trusted.any() else 0.0,
                     "filled_max_abs_m": float(diff[~trusted].max()) if (~trusted).any() else 0.0,
                     "within_bound": bool(rel <= FUSED_SCALE_MAX_REL and (diff <= slack).all())})
    rel_errors = [r["scale_rel_error"] for r in rows]
    return {"frames": len(rows), "split": "test",
            "bounds": {"scale_rel_error_max": FUSED_SCALE_MAX_REL, "depth_abs_m_slack": FUSED_DEPTH_ABS_M},
            "median_scale_rel_error": {"max": max(rel_errors), "mean": float(np.mean(rel_errors))},
            "passed": all(r["within_bound"] for r in rows), "per_frame": rows}
