"""The three per-shard stages the workflow runs: depth, detect, and segment (masks + geometric labeller).

Depth and detect stages are teachers as built by `build_teacher`. The
segment stage wraps a mask teacher (SAM 2 or its simulation) and the
geometric labeller: it paints the masks, then labels the rest from the
depth layer's metric depth, the intrinsics and the ToF.
"""

from __future__ import annotations

import dataclasses
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from distillery.teachers.base import FrameFailure, Runtime, Teacher, TeacherError, frame_seed, make_settings
from distillery.teachers.grid import batch_grids
from distillery.teachers.labeller import LabellerSettings, label_frame, paint_masks
from distillery.teachers.registry import build_teacher

LAYER_FIELDS = {"depth": ("teacher_depth",), "detect": (), "segment": ("teacher_label",)}
LAYER_BOXES = {"depth": False, "detect": True, "segment": False}
RELATIVE_SLOT = "teacher_depth_relative"


def layer_fields(stage) -> tuple[str, ...]:
    """The manifest slots a stage's layer fills: a relative depth teacher fills teacher_depth_relative,
    never the metric teacher_depth slot (metres), which the labeller and metric students read."""
    if stage.task == "depth" and stage.kind() == "relative":
        return (RELATIVE_SLOT,)
    return LAYER_FIELDS[stage.task]


def slot_result(stage, result: dict) -> dict:
    """A checked result keyed by the slot it fills (a relative teacher's depth moves to its own slot)."""
    if stage.task == "depth" and stage.kind() == "relative":
        result = dict(result)
        result[RELATIVE_SLOT] = result.pop("teacher_depth")
    return result


class LabelStage:
    """Masks from a segment teacher, painted by score, then the geometric labeller for the rest.

    The mask teacher sees the frame its `sees()` names (SAM 2: the source frame, prompted with the
    detect layer's boxes mapped back to its pixels); its masks are painted at that size, and the painted
    classes are brought onto the stored grid by their mode. The labeller then works on the stored grid,
    where the teacher depth, the ToF and the stored intrinsics are."""

    task = "segment"

    def __init__(self, masker: Teacher, settings: LabellerSettings, threads: int = 1):
        if masker.task != "segment":
            raise TeacherError(f"the segment stage needs a segment backend, not {masker.backend!r}")
        self.masker = masker
        self.settings = settings
        self.simulated = masker.simulated
        self.threads = max(threads, 1)
        base = ("stored_rgb", "stored_intrinsics", "tof_depth", "tof_confidence", "teacher_depth", "boxes")
        self.reads = tuple(dict.fromkeys(base + masker.reads))

    def sees(self) -> str:
        return self.masker.sees()

    def label(self, batch: dict, i: int, masks: dict, grid) -> dict | FrameFailure:
        depth = batch["teacher_depth"][i]
        if depth is None:
            return FrameFailure("no teacher depth for this frame (the depth teacher failed on it)")
        if masks["masks"].shape[1:] != grid.input_hw:
            return FrameFailure(f"masks of shape {masks['masks'].shape[1:]}, the input frame is {grid.input_hw}")
        painted = grid.labels(paint_masks(masks["masks"], masks["scores"], masks["classes"], grid.input_hw))
        rng = frame_seed(self.settings.seed, batch["key"][i], 5)
        label = label_frame(depth, batch["stored_intrinsics"][i], batch["tof_depth"][i], batch["tof_confidence"][i],
                            batch["stored_rgb"][i], painted, self.settings, rng)
        return {"teacher_label": label}

    def predict(self, batch: dict) -> list:
        undetected = [b is None for b in batch["boxes"]]
        grids = batch_grids(batch)
        boxes = [np.zeros((0, 6), np.float32) if b is None else g.boxes_to_input(b)
                 for b, g in zip(batch["boxes"], grids)]
        masks = self.masker.predict(dict(batch, boxes=boxes))
        masks = [FrameFailure("no detections for this frame (the detect teacher failed on it)") if missing else m
                 for m, missing in zip(masks, undetected)]

        def one(i: int):
            return masks[i] if isinstance(masks[i], FrameFailure) else self.label(batch, i, masks[i], grids[i])

        # The labeller is numpy on the CPU, mostly outside the GIL: frames in parallel keep up with the GPU.
        with ThreadPoolExecutor(max_workers=self.threads) as pool:
            return list(pool.map(one, range(len(masks))))

    def describe(self) -> dict:
        out = self.masker.describe()
        out["labeller"] = dataclasses.asdict(self.settings)
        return out


def build_stage(task: str, cfg: dict, runtime: Runtime, labeller: dict | None = None, threads: int = 1):
    """The object `run_shard` drives for a task: a teacher, or the segment stage around one."""
    teacher = build_teacher(cfg, runtime, task)
    if task != "segment":
        return teacher
    return LabelStage(teacher, make_settings(LabellerSettings, labeller or {}, "labeller"), threads)


def check_result(task: str, result: dict, shape: tuple[int, int]) -> str | None:
    """Why a frame's result cannot be stored, or None when it is fine."""
    if task == "depth":
        d = result["teacher_depth"]
        if d.shape != shape or not np.isfinite(d).all():
            return f"depth of shape {d.shape} or non-finite"
        if not (d > 0).any():
            return "depth is zero everywhere"
    elif task == "detect":
        b = result["boxes"]
        if b.ndim != 2 or b.shape[1] != 6 or not np.isfinite(b).all():
            return f"boxes of shape {b.shape} or non-finite"
    elif task == "segment":
        lab = result["teacher_label"]
        if lab.shape != shape or not np.isin(lab, (0, 1, 2, 3, 4, 5, 255)).all():
            return "label of wrong shape or with class ids outside 0-5, 255"
    return None
