"""Explicit INT8 (Q/DQ) quantisation with ONNX Runtime, calibrated on real frames, and its accuracy cost.

`quantize_int8` runs ONNX Runtime's pre-processing (shape inference, basic
graph optimisation: BatchNorm folded into Conv) and `quantize_static` in QDQ
format with per-channel weights. The settings are the ones TensorRT reads
without a calibrator: symmetric activations and weights (zero point 0, the
only kind TensorRT supports) and float biases (TensorRT folds the bias into
its own INT8 kernels and does not take an INT32 bias DequantizeLinear).

`int8_accuracy` measures what INT8 costs on the manifest's test split: delta1
and AbsRel against the teacher's depth and mIoU against the teacher's labels,
for the FP32 and the INT8 graph, plus their direct agreement. `int8_gate`
checks the cost against bounds (deploy.int8_max_delta1_drop,
int8_max_absrel_increase, int8_max_miou_drop): an INT8 graph that misses one
fails its rule and is never bundled for the robot.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch

from distillery.atomic import atomic_write
from distillery.deploy import spec
from distillery.deploy.calibration import load_calibration
from distillery.deploy.export import check_model
from distillery.deploy.parity import compare, ort_session, run_session
from distillery.student.metrics import confusion_matrix, depth_metrics, segmentation_from_confusion

SETTINGS = {"format": "QDQ", "per_channel": True, "activation_type": "QInt8", "weight_type": "QInt8",
            "calibrate_method": "MinMax", "ActivationSymmetric": True, "WeightSymmetric": True,
            "QuantizeBias": False}


class FramesReader:
    """An onnxruntime CalibrationDataReader over calibration frames, one frame per call."""

    def __init__(self, rgb: np.ndarray):
        self.rgb = rgb
        self.next = 0

    def get_next(self):
        if self.next >= len(self.rgb):
            return None
        frame = self.rgb[self.next:self.next + 1]
        self.next += 1
        return {spec.INPUT: frame}

    def rewind(self):
        self.next = 0


def quantize_int8(fp32_path: str | os.PathLike, calibration: str | os.PathLike, out: str | os.PathLike) -> dict:
    """Write the Q/DQ INT8 graph of `fp32_path`, calibrated on the frames of `calibration` (npz)."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    calib = load_calibration(calibration)
    out = Path(out)
    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
        pre = Path(tmp, "pre.onnx")
        quant_pre_process(str(fp32_path), str(pre), skip_symbolic_shape=True)
        q_out = Path(tmp, "int8.onnx")
        quantize_static(str(pre), str(q_out), FramesReader(calib["rgb"]), quant_format=QuantFormat.QDQ,
                        per_channel=True, activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                        calibrate_method=CalibrationMethod.MinMax,
                        extra_options={k: SETTINGS[k] for k in ("ActivationSymmetric", "WeightSymmetric",
                                                                  "QuantizeBias")})
        model = check_model(q_out)
        with atomic_write(out) as dest:
            shutil.copyfile(q_out, dest)
    ops = [n.op_type for n in model.graph.node]
    return {"settings": SETTINGS, "calibration_frames": len(calib["rgb"]), "calibration_seed": calib["seed"],
            "quantize_nodes": ops.count("QuantizeLinear"), "dequantize_nodes": ops.count("DequantizeLinear")}


def accuracy(depth: np.ndarray, seg: np.ndarray, frames: dict) -> dict:
    """delta1 and AbsRel against teacher depth, mIoU against teacher labels (frames that have them)."""
    depth_rows = [i for i, t in enumerate(frames["teacher_depth"]) if t is not None]
    label_rows = [i for i, t in enumerate(frames["teacher_label"]) if t is not None]
    out = {}
    if depth_rows:
        pred = torch.from_numpy(depth[depth_rows, 0])
        target = torch.from_numpy(np.stack([frames["teacher_depth"][i] for i in depth_rows]))
        d = depth_metrics(pred, target, torch.isfinite(target))
        out.update(delta1=d.get("delta1"), absrel=d.get("absrel"), depth_frames=len(depth_rows))
    if label_rows:
        labels = torch.from_numpy(np.stack([frames["teacher_label"][i] for i in label_rows]))
        conf = confusion_matrix(torch.from_numpy(seg[label_rows].argmax(1)), labels, seg.shape[1])
        out.update(miou=segmentation_from_confusion(conf).get("miou"), label_frames=len(label_rows))
    return out


def int8_accuracy(fp32_path, int8_path, frames: dict, threads: int | None = None) -> dict:
    """quantization.json: FP32 and INT8 accuracy on test frames and INT8-vs-FP32 agreement."""
    fp32 = run_session(ort_session(fp32_path, threads), frames["rgb"], 8)
    int8 = run_session(ort_session(int8_path, threads), frames["rgb"], 8)
    return {"fp32": accuracy(*fp32, frames), "int8": accuracy(*int8, frames), "set": "test",
            "frames": len(frames["rgb"]), "reference": "teacher", "int8_vs_fp32": compare(*int8, *fp32),
            "keys": frames["keys"]}


# What INT8 may cost against the FP32 graph on the test frames: (metric, direction, config key, relative).
# A drop of delta1 or mIoU is bounded in absolute points; a rise of AbsRel as a share of FP32's AbsRel, since
# AbsRel has no fixed range (a relative-depth student, V1/V2, is far from the metric teacher in either graph).
GATE = (("delta1", -1, "int8_max_delta1_drop", False), ("absrel", +1, "int8_max_absrel_increase", True),
        ("miou", -1, "int8_max_miou_drop", False))


def int8_gate(report: dict, bounds: dict[str, float]) -> dict:
    """The INT8 gate: each metric's cost (INT8 vs FP32, in the bad direction) against its bound. A metric the
    test frames cannot give (the manifest has no teacher depth, or no labels) is listed as unchecked; when
    none can be checked the gate fails, as it would otherwise pass anything."""
    checks, failures, unchecked = {}, [], []
    for metric, direction, key, relative in GATE:
        fp32, int8 = report["fp32"].get(metric), report["int8"].get(metric)
        if fp32 is None or int8 is None:
            unchecked.append(f"{metric} (no teacher {'labels' if metric == 'miou' else 'depth'} on the test frames)")
            continue
        cost = direction * (int8 - fp32) / (max(abs(fp32), 1e-9) if relative else 1.0)
        checks[metric] = {"fp32": fp32, "int8": int8, "cost": cost, "bound": bounds[key], "config_key": f"deploy.{key}",
                          "passed": bool(cost <= bounds[key])}
        if cost > bounds[key]:
            change = "drop" if direction < 0 else "increase"
            share = " of FP32's" if relative else ""
            failures.append(f"{metric} {change} {cost:.4f}{share} (FP32 {fp32:.4f}, INT8 {int8:.4f}) exceeds "
                            f"deploy.{key} = {bounds[key]}")
    if not checks:
        failures.append("no metric could be measured on the test frames: " + ", ".join(unchecked))
    return {"checks": checks, "unchecked": unchecked, "passed": not failures, "failures": failures}


def require_int8(report: dict, int8_path, version: str | None = None) -> None:
    """Raise, naming the version, the metrics, the bounds and their config keys, when the gate failed."""
    gate = report["gate"]
    if not gate["passed"]:
        who = f"{version}: " if version else ""
        raise ValueError(f"{who}{int8_path}: INT8 costs too much accuracy against the FP32 graph on "
                         f"{report['frames']} test frames: " + "; ".join(gate["failures"])
                         + ". Recalibrate (more deploy.calibration_frames) or deploy FP16; raise the bound "
                         "only on purpose.")
