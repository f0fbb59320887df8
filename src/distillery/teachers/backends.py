"""The table of teacher backends: task, module and class, and the weight files each loads.

Plain data with no import of the teacher classes, so that weight resolution
(`weights.py`) and the workflow's config checks read it without importing
torch, a model package, or `registry` (which builds teachers).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Backend:
    """A teacher backend: its task, where its class lives, and the weight files it loads.

    `weight_files` lists the files a hub repository snapshot must hold
    (relative to the repository folder); None means the weights are one
    file, named by the config (e.g. a .pt checkpoint).
    """

    task: str
    module: str
    cls: str
    simulated: bool = False
    weight_files: tuple[str, ...] | None = None


BACKENDS: dict[str, Backend] = {
    "da3": Backend("depth", "distillery.teachers.depth_da3", "DA3Depth", weight_files=("model.safetensors",)),
    "da2": Backend("depth", "distillery.teachers.depth_da2", "DA2Depth",
                   weight_files=("config.json", "model.safetensors")),
    "yolo": Backend("detect", "distillery.teachers.detect_yolo", "YoloDetect"),
    "sam2": Backend("segment", "distillery.teachers.segment_sam2", "Sam2Masks"),
    "sim_da3": Backend("depth", "distillery.teachers.sim", "SimDA3", simulated=True),
    "sim_da2": Backend("depth", "distillery.teachers.sim", "SimDA2", simulated=True),
    "sim_yolo": Backend("detect", "distillery.teachers.sim", "SimYolo", simulated=True),
    "sim_sam2": Backend("segment", "distillery.teachers.sim", "SimSam2", simulated=True),
}


def backend_info(name: str) -> Backend:
    if name not in BACKENDS:
        raise ValueError(f"unknown teacher backend {name!r}; known: {sorted(BACKENDS)}")
    return BACKENDS[name]
