"""Inputs of the lineage report, made the way the pipeline makes them.

A generated world ingested into a real manifest, student checkpoints written
by the training code's own checkpoint writer (random weights, tiny backbone),
and evaluation / quantization JSONs in the format `distillery evaluate` and
the deployment stage write (contracts: results/evaluation/<version>/<set>.json).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from distillery.classes import CLASS_NAMES

LINEAGE = {
    "V1": {"backbone": "mobilenetv3_small", "depth_teacher": "relative", "depth_loss": "l1", "datasets": ["nyu"],
           "reference": "NYU RMSE 75 m (no metric scale)"},
    "V3": {"backbone": "mobilenetv3_small", "depth_teacher": "metric", "datasets": ["nyu"]},
    "V5": {"backbone": "mobilenetv3_small", "depth_teacher": "metric", "augment": True, "datasets": ["nyu"],
           "reference": "NYU RMSE 0.572 m"},
    "V7": {"backbone": "mobilenetv3_small", "depth_teacher": "metric", "parent": "V5", "datasets": ["corridor"],
           "freeze_encoder_epochs": 0, "reference": "corridor RMSE 0.445 m (forgets NYU)"},
}
SETS = ("rooms", "corridors")
REGIONS = ("all", "near", "mid", "far", "tof_invalid", "tof_valid")
METRICS = ("rmse", "rmse_pooled", "mae", "absrel", "delta1", "delta2", "delta3")


def make_manifest(root: Path) -> Path:
    """A two-dataset manifest at 48 x 64 from generated corridor and room worlds."""
    from distillery.ingest.index import ingest_folder
    from distillery.ingest.pack import PackSettings
    from distillery.manifest.merge import merge_manifest
    from distillery.synth.world import generate_world

    shards, quarantines = [], []
    for name, family, seed in (("corridors", "corridor", 1), ("rooms", "room", 2)):
        generate_world(root / "synth" / name, family, seed, 3, 3, height=60, width=80, progress=False)
        ingest_folder(str(root / "synth" / name), str(root / name), name, settings=PackSettings(48, 64),
                      frames_per_shard=16, fractions={"train": 0.34, "val": 0.33, "test": 0.33}, progress=False)
        shards += sorted(str(p) for p in (root / name / "shards").glob("*.h5"))
        quarantines += sorted(str(p) for p in (root / name).rglob("*quarantine.jsonl"))
    out = root / "manifest"
    out.mkdir(parents=True, exist_ok=True)
    merge_manifest(shards, [], str(out / "manifest.h5"), str(out / "manifest.jsonl"), str(out / "quarantine.jsonl"),
                   str(out / "summary.json"), 0.5, 3, False, [])
    return out / "manifest.h5"


def make_checkpoint(path: Path, backbone: str = "mobilenetv3_small", seed: int = 0) -> Path:
    """best.pt of an untrained student, written by the training code's checkpoint writer."""
    import torch

    from distillery.student.checkpoint import atomic_save, snapshot, weights_file
    from distillery.student.config import config_from_dict
    from distillery.student.losses import StudentLoss
    from distillery.student.model import build_student

    torch.manual_seed(seed)
    cfg = config_from_dict({"backbone": backbone, "encoder_weights": "random"})
    model = build_student(cfg)
    loss = StudentLoss.from_config(cfg)
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_save(weights_file(snapshot(model, loss), cfg, {}, 1, 1, "random"), path)


def _metric(rng, mean: float) -> dict:
    half = abs(mean) * rng.uniform(0.05, 0.15) + 1e-3
    return {"mean": mean, "ci95": [mean - half, mean + half * rng.uniform(0.8, 1.2)]}


def _depth_block(rng, scale: float) -> dict:
    block = {}
    for region in REGIONS:
        rmse = scale * {"near": 0.5, "mid": 0.9, "far": 1.6}.get(region, 1.0) * rng.uniform(0.9, 1.1)
        values = {"rmse": rmse, "rmse_pooled": rmse * 1.05, "mae": rmse * 0.7, "absrel": rmse / 5,
                  "delta1": max(0.0, 1 - rmse / 3), "delta2": max(0.0, 1 - rmse / 6), "delta3": max(0.0, 1 - rmse / 9)}
        block[region] = {k: _metric(rng, values[k]) for k in METRICS} | {"pixels": int(rng.integers(1000, 9000))}
    return block


def evaluation_json(version: str, set_name: str, checkpoint: str, seed: int) -> dict:
    """One evaluation result in the contract's format, with plausible numbers (V1 without metric scale)."""
    rng = np.random.default_rng(seed)
    scale = 3.0 if version == "V1" else 0.6
    per_class = {c: float(rng.uniform(0.2, 0.9)) for c in CLASS_NAMES}
    per_class["glass"] = None if set_name == "rooms" else per_class["glass"]  # class absent: null in the JSON
    depth = {ref: _depth_block(rng, scale) for ref in ("truth", "tof", "teacher")}
    if set_name == "rooms":  # what the evaluation writes for a region without pixels, a statistic without CI
        depth["tof"]["far"] = None
        depth["truth"]["near"]["rmse"]["ci95"] = None
    return {
        "version": version, "set": set_name, "checkpoint": checkpoint, "checkpoint_sha256": "0" * 64,
        "manifest_content_id": "fixture", "split": "test", "frames": 6, "sequences": 2,
        "teachers": [], "bootstrap": {"resamples": 1000, "seed": 0, "unit": "sequence"},
        "depth": depth,
        "fused": {ref: _depth_block(rng, scale * 0.5) for ref in ("truth", "teacher")},
        "segmentation": {"miou": _metric(rng, float(np.mean([v for v in per_class.values() if v is not None]))),
                         "per_class_iou": per_class, "confusion": np.eye(6, dtype=int).tolist(),
                         "reference": "truth_label"},
    }


def make_inputs(root: Path, lineage: dict = LINEAGE, sets=SETS, quantized=("V5",)) -> dict:
    """Every input of `distillery report` under root (results/ layout); returns the paths."""
    manifest = make_manifest(root / "data")
    checkpoints, evaluations = {}, []
    for i, version in enumerate(lineage):
        ckpt = make_checkpoint(root / "results" / "train" / version / "best.pt", lineage[version]["backbone"], i)
        checkpoints[version] = str(ckpt)
        for j, s in enumerate(sets):
            path = root / "results" / "evaluation" / version / f"{s}.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(evaluation_json(version, s, str(ckpt), 10 * i + j)))
            evaluations.append(str(path))
    for version in quantized:
        path = root / "results" / "deploy" / version / "quantization.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"fp32": {"delta1": 0.81, "absrel": 0.12, "miou": 0.55},
                                    "int8": {"delta1": 0.79, "absrel": 0.13, "miou": 0.53},
                                    "set": "rooms", "frames": 6}))
    return {"manifest": str(manifest), "checkpoints": checkpoints, "evaluations": evaluations,
            "deploy_dir": str(root / "results" / "deploy")}
