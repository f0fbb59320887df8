"""The model card: what an exported student is, where it came from and how it was checked.

`model_card.json` sits beside the ONNX files and travels in the Jetson
bundle. It names the version and its parent, the teachers the manifest's
labels came from (the manifest's own provenance), the input and output
contract, the classes, the checks the export passed (parity bounds and
figures, INT8 accuracy), the checkpoint's validation metrics and any
evaluation results present, and the SHA-256 of every file it describes.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import h5py

from distillery.classes import CLASS_NAMES, IGNORE_LABEL
from distillery.deploy import spec
from distillery.manifest.content import file_sha256


def manifest_provenance(manifest: str | os.PathLike) -> dict:
    """Teachers (JSON list in the root attrs) and content id of a manifest, where it records them."""
    with h5py.File(manifest, "r") as f:
        attrs = dict(f.attrs)
    teachers = attrs.get("teachers")
    if isinstance(teachers, bytes):
        teachers = teachers.decode()
    content_id = attrs.get("content_id")
    return {"manifest": str(manifest), "content_id": None if content_id is None else str(content_id),
            "schema_version": int(attrs.get("schema_version", 0)),
            "teachers": json.loads(teachers) if teachers else None}


def evaluation_results(folder: str | os.PathLike | None) -> dict:
    """{set: {depth, fused, segmentation}} of the evaluation JSON files of a version, where present."""
    if not folder or not Path(folder).is_dir():
        return {}
    out = {}
    for path in sorted(Path(folder).glob("*.json")):
        data = json.loads(path.read_text())
        out[data.get("set", path.stem)] = {k: data[k] for k in ("depth", "fused", "segmentation", "frames")
                                           if k in data}
    return out


def build_card(version: str, checkpoint, manifest, files: dict, parity: dict, quantization: dict | None = None,
               fused: dict | None = None, evaluation_dir=None, export_info: dict | None = None,
               parent: str | None = None) -> dict:
    """The model card dict. `files` maps a role (fp32, fp16, int8, fused, calibration) to a path."""
    from distillery.student.checkpoint import load_checkpoint

    ckpt = load_checkpoint(checkpoint)
    cfg = ckpt.get("config", {})
    return {
        "format": "distillery-model-card", "format_version": 1,
        "version": version, "parent": parent or cfg.get("init_from") or None,
        "backbone": cfg.get("backbone"), "depth_target": cfg.get("depth_target"),
        "encoder_weights": ckpt.get("encoder_weights"),  # what the encoder started from (ImageNet, random, parent)
        "checkpoint": {"path": str(checkpoint), "sha256": file_sha256(checkpoint), "epoch": ckpt.get("epoch"),
                       "validation_metrics": ckpt.get("metrics")},
        "teacher_provenance": manifest_provenance(manifest),
        "io": spec.input_spec(len(CLASS_NAMES)),
        "input_note": "rgb is float32 in [0, 1] (camera pixels / 255), RGB order, NCHW; normalisation is in the graph",
        "classes": {str(i): name for i, name in enumerate(CLASS_NAMES)}, "ignore_label": IGNORE_LABEL,
        "files": {role: {"file": Path(p).name, "sha256": file_sha256(p), "bytes": Path(p).stat().st_size}
                  for role, p in files.items()},
        "export": export_info, "parity": parity, "quantization": quantization, "fused_graph": fused,
        "evaluation": evaluation_results(evaluation_dir),
        "tensorrt": {"profile_batch_min_opt_max": list(spec.PROFILE_BATCH), "workspace_bytes": spec.WORKSPACE_BYTES,
                     "precisions": {"fp32": files.get("fp32") and Path(files["fp32"]).name,
                                    "fp16": files.get("fp16") and Path(files["fp16"]).name,
                                    "int8": files.get("int8") and Path(files["int8"]).name}},
    }
