"""`distillery fusion` on files: .npy arrays, or a checkpoint's predictions over a manifest split.

The fusion itself is distillery.fusion.fuse; this module only loads inputs,
runs the student when asked to, and writes the fused depth with its per-frame
scale and no-trusted flag.
"""

from __future__ import annotations

import os

import numpy as np
import torch
from tqdm import tqdm

from distillery.fusion import fuse
from distillery.atomic import atomic_write
from distillery.manifest import Manifest
from distillery.student.checkpoint import load_student
from distillery.student.data import FrameDataset, make_loader
from distillery.student.fold import for_inference


def _save_npz(path: str | os.PathLike, **arrays) -> None:
    with atomic_write(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **arrays)


def _load(path: str, name: str) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError) as err:
        raise ValueError(f"{path}: cannot read the {name} array ({err}); give a .npy file") from err


def fuse_files(student: str, tof: str, confidence: str, out: str) -> dict:
    """Fuse three .npy arrays of one shape ([H, W], [N, H, W] or [N, 1, H, W]) into `out` (.npz)."""
    result = fuse(_load(student, "student depth"), _load(tof, "ToF depth"), _load(confidence, "ToF confidence"))
    scale, flag = np.atleast_1d(result.scale), np.atleast_1d(result.no_trusted)
    _save_npz(out, fused=result.depth.astype(np.float32), scale=scale, no_trusted=flag)
    return summary(scale, flag)


def summary(scale: np.ndarray, no_trusted: np.ndarray) -> dict:
    return {"frames": int(scale.size), "no_trusted_frames": int(no_trusted.sum()),
            "median_scale": float(np.median(scale)) if scale.size else None}


@torch.no_grad()
def fuse_split(checkpoint: str, manifest_path: str, out: str, split: str = "test", dataset: str | None = None,
               batch_size: int = 8, device: str = "cpu", progress: bool = True) -> dict:
    """Run the student on a manifest split, fuse with each frame's ToF, write keys/student/fused/scale/flag."""
    manifest = Manifest(manifest_path)
    rows = manifest.indices(split=split, dataset=dataset)
    if not len(rows):
        where = f" of dataset {dataset!r}" if dataset else ""
        raise ValueError(f"{manifest_path}: no frames in split {split!r}{where}")
    model = for_inference(load_student(checkpoint, device))
    loader = make_loader(FrameDataset([manifest], [(0, int(r)) for r in rows]), batch_size, 0)
    keys, student, fused, scale, flag = [], [], [], [], []
    for batch in tqdm(loader, unit="batch", desc="fusion", disable=not progress):
        depth = model(batch["rgb"].to(device))["depth"].float().cpu()
        result = fuse(depth, batch["tof_depth"], batch["tof_confidence"])
        keys += list(batch["key"])
        student.append(depth[:, 0].numpy())
        fused.append(result.depth[:, 0].numpy())
        scale.append(result.scale.numpy())
        flag.append(result.no_trusted.numpy())
    scale_all, flag_all = np.concatenate(scale), np.concatenate(flag)
    _save_npz(out, keys=np.asarray(keys, dtype=str), student=np.concatenate(student), fused=np.concatenate(fused),
              scale=scale_all, no_trusted=flag_all)
    manifest.close()
    return summary(scale_all, flag_all)
