"""Evaluate one student checkpoint on the test split of one dataset of a manifest.

The student runs over every test frame of the set (never train or val: those
chose the weights), its depth is fused with the frame's ToF, and per frame the
additive error sums of every reference x region (student and fused depth) and
a segmentation confusion matrix are kept. Set-level numbers with bootstrap
intervals over sequences come from those (evaluation/bootstrap.py).

Outputs: the evaluation JSON, one JSON line per frame beside it
(`<set>.frames.jsonl`), and on request `<set>.predictions.npz` with the
predictions the numbers were computed from (docs/evaluation.md).
"""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from distillery.classes import CLASS_NAMES
from distillery.evaluation.bootstrap import depth_summary, per_image, segmentation_summary, sequence_weights
from distillery.evaluation.regions import (FUSED_REFERENCES, NUM_CELLS, REFERENCES, REGIONS, batch_trusted, cells,
                                          references, region_cells)
from distillery.evaluation.settings import EvalSettings
from distillery.fusion import fuse
from distillery.atomic import atomic_write, write_jsonl_atomic, write_text_atomic
from distillery.manifest import Manifest
from distillery.manifest.content import file_sha256
from distillery.student.checkpoint import load_student
from distillery.student.data import FrameDataset, make_loader
from distillery.student.fold import for_inference
from distillery.student.metrics import DEPTH_SUMS, cell_depth_sums, frame_confusions

REGION_CELLS = region_cells()


def test_rows(manifest: Manifest, dataset: str, split: str) -> np.ndarray:
    """Manifest rows of one dataset's split, or a readable error saying what the manifest has."""
    datasets = sorted({r["dataset"] for r in manifest.records})
    if dataset not in datasets:
        raise ValueError(f"{manifest.h5_path}: no dataset {dataset!r} (has {datasets})")
    rows = manifest.indices(split=split, dataset=dataset)
    if not len(rows):
        splits = sorted({r["split"] for r in manifest.records if r["dataset"] == dataset})
        raise ValueError(f"{manifest.h5_path}: dataset {dataset!r} has no {split!r} frames (its splits: {splits}); "
                         "give it test sequences in the sharding splits")
    return rows


def provenance(manifest: Manifest) -> tuple[list, str]:
    """The manifest's teacher provenance and content id (both set by the merge)."""
    return manifest.teachers, manifest.content_id


def region_sums(pred: torch.Tensor, batch: dict, names: tuple[str, ...], trusted: torch.Tensor) -> np.ndarray:
    """Per-frame error sums [B, len(names), len(REGIONS), len(DEPTH_SUMS)] of `pred` against references."""
    refs = references(batch)
    out = np.zeros((pred.shape[0], len(names), len(REGIONS), len(DEPTH_SUMS)))
    membership = REGION_CELLS.to(pred.device)
    for i, name in enumerate(names):
        if name in refs:
            reference, valid = refs[name]
            sums = cell_depth_sums(pred, reference, cells(reference, valid, trusted), NUM_CELLS)
            out[:, i] = torch.einsum("bcs,cr->brs", sums, membership).cpu().numpy()
    return out


class Accumulator:
    """Per-frame results of an evaluation pass, kept in memory until the end."""

    def __init__(self, dump: bool):
        self.frames: list[dict] = []
        self.depth, self.fused, self.confusion = [], [], []
        self.predictions = {"depth": [], "segmentation": [], "fused": []} if dump else None

    def add(self, batch: dict, outputs: dict, seg_reference: str, num_classes: int) -> None:
        depth = outputs["depth"].float()
        trusted = batch_trusted(batch)
        fused = fuse(depth, batch["tof_depth"], batch["tof_confidence"])
        self.depth.append(region_sums(depth, batch, REFERENCES, trusted))
        self.fused.append(region_sums(fused.depth, batch, FUSED_REFERENCES, trusted))
        labels = outputs["segmentation"].permute(0, 2, 3, 1).contiguous().argmax(-1)  # 4x faster than argmax(1)
        self.confusion.extend(frame_confusions(labels, batch[seg_reference], num_classes).cpu().numpy())
        for i in range(depth.shape[0]):
            self.frames.append({"key": batch["key"][i], "row": int(batch["row"][i]),
                                "fusion": {"scale": float(fused.scale[i]), "no_trusted": bool(fused.no_trusted[i])}})
        if self.predictions is not None:
            self.predictions["depth"].append(depth[:, 0].cpu().numpy())
            self.predictions["segmentation"].append(labels.to(torch.uint8).cpu().numpy())
            self.predictions["fused"].append(fused.depth[:, 0].cpu().numpy())


def frame_block(sums: np.ndarray, names: tuple[str, ...]) -> dict:
    """One frame's metrics per reference x region (empty ones left out), for frames.jsonl."""
    out = {}
    for i, name in enumerate(names):
        block = {}
        for j, region in enumerate(REGIONS):
            if sums[i, j, 0] > 0:
                values = {k: float(v[0]) for k, v in per_image(sums[None, i, j]).items()}
                block[region] = values | {"pixels": int(sums[i, j, 0])}
        if block:
            out[name] = block
    return out


def set_block(sums: np.ndarray, names: tuple[str, ...], weights: np.ndarray) -> dict:
    """The JSON block of every reference x region; a reference or region without pixels is left out."""
    out = {}
    for i, name in enumerate(names):
        block = {region: depth_summary(sums[:, i, j], weights) for j, region in enumerate(REGIONS)}
        block = {k: v for k, v in block.items() if v is not None}
        if block:
            out[name] = block
    return out


def frames_path(out_json: str | os.PathLike) -> Path:
    """`<set>.frames.jsonl` beside `<set>.json`."""
    out = Path(out_json)
    return out.with_name(f"{out.name[:-5] if out.name.endswith('.json') else out.name}.frames.jsonl")


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("evaluation device cuda requested but no CUDA device is visible; use --device cpu")
    return torch.device(name)


@functools.lru_cache(maxsize=1)
def _student(checkpoint: str, device: torch.device) -> torch.nn.Module:
    """The student of a checkpoint, loaded once per process for all the sets it is evaluated on, made
    for inference (BatchNorms folded, channels_last: student/fold.py)."""
    return for_inference(load_student(checkpoint, device))


@torch.no_grad()
def run_model(checkpoint: str, manifest: Manifest, rows: np.ndarray, seg_reference: str, settings: EvalSettings,
              dump: bool) -> Accumulator:
    """The student over the given rows, fused and scored frame by frame."""
    device = resolve_device(settings.device)
    model = _student(str(checkpoint), device)
    dataset = FrameDataset([manifest], [(0, int(r)) for r in rows], with_truth=True)
    loader = make_loader(dataset, settings.batch_size, settings.num_workers, pin_memory=device.type == "cuda")
    acc = Accumulator(dump)
    with tqdm(total=len(rows), unit="frame", desc=f"evaluate {Path(checkpoint).parent.name}",
              disable=not settings.progress) as bar:
        for batch in loader:
            batch = {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}
            outputs = model(batch["rgb"])
            acc.add(batch, outputs, seg_reference, outputs["segmentation"].shape[1])
            bar.update(len(batch["key"]))
    return acc


def segmentation_reference(manifest: Manifest, rows: np.ndarray) -> str:
    """Truth labels when any evaluated frame has them, else the teacher's labels."""
    return "truth_label" if manifest.file["has_truth_label"][:][rows].any() else "teacher_label"


def write_predictions(path: Path, keys: list[str], predictions: dict) -> None:
    arrays = {k: np.concatenate(v) for k, v in predictions.items()}
    with atomic_write(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, keys=np.asarray(keys, dtype=str), **arrays)


def evaluate(checkpoint: str, manifest_path: str, dataset: str, out_json: str,
             dump_dir: str | None = None, settings: EvalSettings | None = None) -> dict:
    """Evaluate `checkpoint` on the test frames of `dataset`; write the JSON, frames.jsonl (and predictions)."""
    settings = settings or EvalSettings()
    manifest = Manifest(manifest_path)
    rows = test_rows(manifest, dataset, settings.split)
    seg_reference = segmentation_reference(manifest, rows)
    acc = run_model(checkpoint, manifest, rows, seg_reference, settings, dump_dir is not None)
    records = [manifest.records[f["row"]] for f in acc.frames]
    sequence_ids = [f"{r['dataset']}/{r['sequence']}" for r in records]
    weights, sequences = sequence_weights(sequence_ids, settings.resamples, settings.seed)
    depth, fused, confusion = np.concatenate(acc.depth), np.concatenate(acc.fused), np.stack(acc.confusion)
    names = CLASS_NAMES if confusion.shape[1] == len(CLASS_NAMES) else tuple(map(str, range(confusion.shape[1])))
    teachers, content_id = provenance(manifest)
    result = {"version": settings.version or Path(checkpoint).parent.name, "set": dataset,
              "checkpoint": str(checkpoint), "checkpoint_sha256": file_sha256(checkpoint),
              "manifest": str(manifest_path), "manifest_content_id": content_id, "split": settings.split,
              "frames": len(acc.frames), "sequences": len(sequences), "teachers": teachers,
              "bootstrap": {"resamples": settings.resamples, "seed": settings.seed, "unit": "sequence"},
              "fusion": {"no_trusted_frames": sum(f["fusion"]["no_trusted"] for f in acc.frames)},
              "depth": set_block(depth, REFERENCES, weights), "fused": set_block(fused, FUSED_REFERENCES, weights)}
    segmentation = segmentation_summary(confusion, weights, names, seg_reference)
    if segmentation is not None:
        result["segmentation"] = segmentation
    frame_rows = []
    for i, (frame, record) in enumerate(zip(acc.frames, records)):
        row = frame | {"dataset": record["dataset"], "sequence": record["sequence"],
                       "depth": frame_block(depth[i], REFERENCES), "fused": frame_block(fused[i], FUSED_REFERENCES)}
        if confusion[i].sum() > 0:
            row["segmentation"] = {"reference": seg_reference, "confusion": confusion[i].astype(int).tolist()}
        frame_rows.append(row)
    write_jsonl_atomic(frames_path(out_json), frame_rows)
    if dump_dir is not None:
        Path(dump_dir).mkdir(parents=True, exist_ok=True)
        write_predictions(Path(dump_dir, f"{dataset}.predictions.npz"), [f["key"] for f in acc.frames],
                          acc.predictions)
    write_text_atomic(out_json, json.dumps(result, indent=1, allow_nan=False) + "\n")
    manifest.close()
    return result
