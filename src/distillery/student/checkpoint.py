"""Checkpoint files: atomic writes, RNG capture, and loading a student back.

Two kinds of file, both `torch.save` dicts with `format = "distillery-student"`:

- `last.pt`, everything a resumed run needs to continue bit-identically:
  model, Kendall parameters, optimiser, scheduler, grad scaler, the RNG
  states, the position (epoch, step in epoch, global step), the best value
  so far and the best weights themselves (a workflow manager may delete
  `best.pt` of an interrupted job; a resume writes it back from here).
- `best.pt`, the weights chosen on validation agreement with the teacher,
  with their config and metrics: what fine-tunes start from and export reads.

A file is written under a temporary name and renamed onto its target, so a
kill mid-write leaves the previous file intact.
"""

from __future__ import annotations

import dataclasses
import os
import pickle
import random
from pathlib import Path

import numpy as np
import torch
from torch import nn

from distillery.atomic import atomic_write
from distillery.student.config import TrainConfig, config_from_dict

FORMAT = "distillery-student"
FORMAT_VERSION = 1


def atomic_save(obj, path: str | os.PathLike) -> Path:
    """torch.save through the durable writer (temporary sibling, fsync, rename)."""
    with atomic_write(path) as tmp:
        torch.save(obj, tmp)
    return Path(path)


def rng_state() -> dict:
    """The state of every random generator the training process uses, as tensors and plain values only
    (a checkpoint must load with `torch.load(weights_only=True)`, which refuses numpy objects)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    numpy_state = {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                   "has_gauss": int(has_gauss), "cached_gaussian": float(cached)}
    state = {"python": random.getstate(), "numpy": numpy_state, "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def cpu_state_dict(module: nn.Module) -> dict:
    """A detached CPU copy of a module's state dict (a snapshot later steps cannot change)."""
    return {k: v.detach().to("cpu", copy=True) for k, v in module.state_dict().items()}


def snapshot(model: nn.Module, loss: nn.Module) -> dict:
    """The trained state of a moment: student weights and the Kendall parameters."""
    return {"model": cpu_state_dict(model), "loss": cpu_state_dict(loss)}


def weights_file(state: dict, cfg: TrainConfig, metrics: dict, epoch: int, global_step: int,
                 encoder_weights: str = "unknown") -> dict:
    """The content of best.pt: a snapshot(), its config and its validation metrics."""
    return {"format": FORMAT, "format_version": FORMAT_VERSION, "kind": "weights",
            "config": dataclasses.asdict(cfg), "model": state["model"], "loss": state["loss"], "metrics": metrics,
            "epoch": epoch, "global_step": global_step, "encoder_weights": encoder_weights}


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict:
    """A checkpoint dict, after checking that it is one of ours.

    Loaded with `weights_only=True`: our checkpoints hold state dicts, tensors and
    plain values only, so a file that needs arbitrary unpickling is refused, not run.
    """
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        raise ValueError(f"{path}: not a Distillery student checkpoint (it holds objects other than tensors "
                         f"and plain values, which are never unpickled): {str(err).splitlines()[0]}") from err
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise ValueError(f"{path}: not a Distillery student checkpoint")
    if ckpt.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{path}: checkpoint format version {ckpt.get('format_version')}, "
                         f"this Distillery reads {FORMAT_VERSION}")
    return ckpt


def load_student(path: str | os.PathLike, device: str | torch.device = "cpu") -> nn.Module:
    """The student of a checkpoint, built from its own config, weights loaded, in eval mode."""
    from distillery.student.model import build_student

    ckpt = load_checkpoint(path)
    cfg = config_from_dict(ckpt["config"], str(path))
    model = build_student(dataclasses.replace(cfg, encoder_weights="random"))
    model.load_state_dict(ckpt["model"])
    model.encoder_weights = f"checkpoint:{path}"
    return model.to(device).eval()
