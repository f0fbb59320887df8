"""The fused graph: student + confidence-gated ToF fusion in one ONNX file, buildable by TensorRT.

Inputs `rgb` [N,3,H,W] (as the student's; H x W: spec.HEIGHT x spec.WIDTH), `tof`
[N,1,H,W] metres and `confidence` [N,1,H,W]; outputs `fused_depth` [N,1,H,W]
and `scale` [N]. Per pixel it is `distillery.fusion.fuse`: ToF where trusted
(confidence >= 0.5, 0.05 m < d < 10 m), else s x student.

The median. `fuse` sorts all 76,800 ratios of a frame; a sort in ONNX is
TopK, and TensorRT's TopK takes k <= 3840, so the graph finds the two middle
values by bisection instead: on log(ratio), between the smallest and largest
usable value, BISECTION_STEPS halvings, each one comparison and one sum over
the frame (both middle ranks at once), then the smallest usable ratio above
the final lower bound. That is an element of the frame, the wanted one unless
two usable log-ratios lie within (range + 1) / 2**BISECTION_STEPS of each
other, below float32's resolution of a log for any real frame: the graph's
scale equals `fuse`'s up to float rounding. `check_fused` measures this on
test frames (fused.json) and bounds it by FUSED_SCALE_MAX_REL. Every op
(Log, comparisons, ReduceSum/Min/Max, Where) builds in TensorRT 8.5 to 11.
Inf/NaN checks are plain comparisons (a NaN compares false).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from distillery import fusion
from distillery.deploy import spec

FLOAT_MAX = 3.0e38
FUSED_SCALE_MAX_REL = 1e-4  # bound on |s_graph - s_exact| / s_exact per test frame (float rounding)
BISECTION_STEPS = 30
FUSED_DEPTH_ABS_M = 1e-3  # float slack on top of the scale error


def bisection_median(ratio: torch.Tensor, usable: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(median, count) of positive `ratio` over `usable` pixels per frame, [N,H,W] inputs; see the module doc."""
    n = ratio.shape[0]
    r, u = ratio.reshape(n, 1, -1), usable.reshape(n, 1, -1)
    log_r = torch.log(torch.where(u, r, torch.ones_like(r)))
    count = u.to(torch.float32).sum(2)  # [N,1]
    ranks = torch.cat([torch.floor((count - 1).clamp_min(0) / 2), torch.floor(count / 2)], 1)  # [N,2]
    any_usable = count > 0
    low = torch.where(any_usable, torch.where(u, log_r, torch.full_like(log_r, FLOAT_MAX)).amin(2) - 1, 0 * count)
    high = torch.where(any_usable, torch.where(u, log_r, torch.full_like(log_r, -FLOAT_MAX)).amax(2), 0 * count)
    low, high = low.expand(n, 2), high.expand(n, 2)
    for _ in range(BISECTION_STEPS):  # invariant: #(log_r <= low) <= rank < #(log_r <= high)
        mid = 0.5 * (low + high)
        below = ((log_r <= mid[:, :, None]) & u).to(torch.float32).sum(2)
        enough = below >= ranks + 1
        high, low = torch.where(enough, mid, high), torch.where(enough, low, mid)
    above = u & (log_r > low[:, :, None])
    middle = torch.where(above, r, torch.full_like(r, FLOAT_MAX)).amin(2)  # [N,2]: the two middle values
    return 0.5 * (middle[:, 0] + middle[:, 1]), count[:, 0]


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
        median, count = bisection_median(ratio, usable)
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
    return {"nodes": len(model.graph.node), "topk_nodes": sum(n.op_type == "TopK" for n in model.graph.node),
            "median": f"bisection on log(ToF / student) over every trusted pixel, {BISECTION_STEPS} steps"}


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
