"""Parity of an exported graph with the PyTorch student, on real frames at batch 1 and 8.

Two figures per batch size: the largest absolute depth difference (metres)
and the share of pixels whose segmentation argmax agrees. The bounds live in
`spec` and are checked here: an export that misses them fails its rule.

FP16 has two checks, because ONNX Runtime's CPU provider has no FP16
convolution: it casts the FP16 file's tensors to FP32 around them, so running
student.fp16.onnx there measures only the rounding of the stored weights
(`check_parity` on that file: "fp16_weights"). FP16 arithmetic is measured by
`check_half`: the PyTorch student in half precision on the CPU (every
weight and every activation between operators is FP16; how a kernel
accumulates inside is PyTorch's choice, as it is TensorRT's on the GPU)
against the FP32 student ("fp16_arithmetic"). Neither is a TensorRT figure:
the engine agreement (deploy/engine.py) is.
"""

from __future__ import annotations

import copy
import os

import numpy as np
import torch

from distillery.deploy import spec
from distillery.deploy.frames import batches


def ort_session(path: str | os.PathLike, threads: int | None = None, profile_prefix: str | None = None):
    """A CPU ONNX Runtime session; `threads` caps intra-op threads (None = ORT's choice); with
    `profile_prefix`, ONNX Runtime's profiler records every node's kernel time (end_profiling() writes it)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    if profile_prefix:
        options.enable_profiling = True
        options.profile_file_prefix = profile_prefix
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def run_session(session, rgb: np.ndarray, batch: int) -> tuple[np.ndarray, np.ndarray]:
    """depth and segmentation of an ONNX session over frames, `batch` frames per call."""
    depth, seg = [], []
    for sl in batches(len(rgb), batch):
        d, s = session.run(list(spec.OUTPUTS), {spec.INPUT: rgb[sl]})
        depth.append(d)
        seg.append(s)
    return np.concatenate(depth), np.concatenate(seg)


def run_torch(student: torch.nn.Module, rgb: np.ndarray, batch: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """depth and segmentation of the PyTorch student over frames."""
    depth, seg = [], []
    with torch.no_grad():
        for sl in batches(len(rgb), batch):
            out = student(torch.from_numpy(rgb[sl]))
            depth.append(out["depth"].numpy())
            seg.append(out["segmentation"].numpy())
    return np.concatenate(depth), np.concatenate(seg)


def run_torch_half(student: torch.nn.Module, rgb: np.ndarray, batch: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """depth and segmentation of a half-precision copy of the student (FP16 arithmetic on the CPU)."""
    half = copy.deepcopy(student).half().eval()
    depth, seg = [], []
    with torch.no_grad():
        for sl in batches(len(rgb), batch):
            out = half(torch.from_numpy(rgb[sl]).half())
            depth.append(out["depth"].float().numpy())
            seg.append(out["segmentation"].float().numpy())
    return np.concatenate(depth), np.concatenate(seg)


def check_half(student: torch.nn.Module, rgb: np.ndarray, keys: list[str],
               depth_bound: float = spec.FP16_DEPTH_MAX_REL, seg_bound: float = spec.FP16_SEG_MIN_AGREEMENT) -> dict:
    """FP16 arithmetic (PyTorch half precision) against the FP32 student at each batch size, against the bounds
    (depth relative: `depth_bound` is the largest |diff| as a share of the FP32 depth)."""
    ref_depth, ref_seg = run_torch(student, rgb)
    return _report(lambda batch: run_torch_half(student, rgb, batch), ref_depth, ref_seg, rgb, keys,
                   depth_bound, seg_bound, "PyTorch float16 on the CPU against PyTorch float32", "depth_max_rel")


def compare(depth, seg, ref_depth, ref_seg) -> dict:
    """depth max/mean abs difference (m) and segmentation argmax agreement of two sets of outputs."""
    diff = np.abs(depth.astype(np.float64) - ref_depth)
    rel = diff / np.maximum(np.abs(ref_depth), spec.DEPTH_REL_FLOOR_M)
    agree = float((seg.argmax(1) == ref_seg.argmax(1)).mean())
    return {"depth_max_abs_m": float(diff.max()), "depth_mean_abs_m": float(diff.mean()),
            "depth_max_rel": float(rel.max()), "seg_argmax_agreement": agree}


def check_parity(onnx_path, student: torch.nn.Module, rgb: np.ndarray, keys: list[str],
                 depth_bound: float = spec.DEPTH_MAX_ABS_M, seg_bound: float = spec.SEG_MIN_AGREEMENT,
                 depth_key: str = "depth_max_abs_m") -> dict:
    """Compare ONNX Runtime with PyTorch at every batch size of spec.PARITY_BATCHES, against the bounds
    (`depth_key`: depth_max_abs_m, metres, or depth_max_rel, a share of the FP32 depth)."""
    ref_depth, ref_seg = run_torch(student, rgb)
    session = ort_session(onnx_path)
    return _report(lambda batch: run_session(session, rgb, batch), ref_depth, ref_seg, rgb, keys,
                   depth_bound, seg_bound, "ONNX Runtime (CPU provider) against PyTorch float32", depth_key)


def _report(run, ref_depth, ref_seg, rgb, keys, depth_bound: float, seg_bound: float, measured: str,
            depth_key: str = "depth_max_abs_m") -> dict:
    """Figures of `run(batch)` against the reference outputs at every batch size of spec.PARITY_BATCHES."""
    report = {"frames": len(rgb), "keys": keys, "split": "test", "measured": measured,
              "bounds": {depth_key: depth_bound, "seg_argmax_agreement_min": seg_bound}, "batches": {}}
    unit = "m" if depth_key == "depth_max_abs_m" else "of the FP32 depth"
    failures = []
    for batch in spec.PARITY_BATCHES:
        figures = compare(*run(batch), ref_depth, ref_seg)
        report["batches"][str(batch)] = figures
        if figures[depth_key] > depth_bound or figures["seg_argmax_agreement"] < seg_bound:
            failures.append(f"batch {batch}: depth max |diff| {figures[depth_key]:.2e} {unit} "
                            f"(bound {depth_bound:.0e}), argmax agreement {figures['seg_argmax_agreement']:.5f} "
                            f"(bound {seg_bound})")
    report["passed"] = not failures
    report["failures"] = failures
    return report


def require_parity(report: dict, onnx_path) -> None:
    """Raise, naming the file, what was measured and the figures, when a parity report did not pass."""
    if not report["passed"]:
        raise ValueError(f"{onnx_path}: {report['measured']}: outputs do not match on {report['frames']} test frames: "
                         + "; ".join(report["failures"]))
