"""Which backends exist, what they need, and `build_teacher(cfg)`.

The table is plain data so that the workflow (common.smk) can check a
config and list weight files without importing torch or any model package;
a backend's module is imported only when it is built.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from distillery.teachers.base import TASKS, Runtime, Teacher, make_settings


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

# Keys of a task's config entry that the runner or workflow consumes; the rest go to the backend.
GENERIC_KEYS = ("backend", "weights", "batch_size")


def backend_info(name: str) -> Backend:
    if name not in BACKENDS:
        raise ValueError(f"unknown teacher backend {name!r}; known: {sorted(BACKENDS)}")
    return BACKENDS[name]


def backend_class(name: str) -> type[Teacher]:
    info = backend_info(name)
    return getattr(importlib.import_module(info.module), info.cls)


def check_task_config(task: str, cfg: dict) -> None:
    """Raise ValueError naming the key when a task's config entry cannot work."""
    if task not in TASKS:
        raise ValueError(f"unknown teacher task {task!r}; tasks are {TASKS}")
    info = backend_info(cfg.get("backend", ""))
    if info.task != task:
        raise ValueError(f"teachers.{task}.backend: {cfg['backend']!r} is a {info.task} backend")
    if not info.simulated and not cfg.get("weights"):
        raise ValueError(f"teachers.{task}.weights is required for backend {cfg['backend']!r} "
                         "(a local path, hf://org/repo[/file], or 'random' for untrained weights)")
    if info.simulated and cfg.get("weights"):
        raise ValueError(f"teachers.{task}.weights: simulated backend {cfg['backend']!r} loads no weights")


def build_teacher(cfg: dict, runtime: Runtime | None = None, task: str | None = None) -> Teacher:
    """Build a teacher from its config entry: {"backend": ..., "weights": <local path|random>, settings...}.

    `weights` must already be a local path (see `weights.resolve`) or
    "random" (untrained weights: tests and benchmarks only).
    """
    cfg = dict(cfg)
    info = backend_info(cfg.get("backend", ""))
    check_task_config(task or info.task, cfg)
    cls = backend_class(cfg["backend"])
    settings = make_settings(cls.Settings, {k: v for k, v in cfg.items() if k not in GENERIC_KEYS}, cfg["backend"])
    return cls(settings, runtime or Runtime(), cfg.get("weights"))


def check_config(teachers: dict) -> None:
    """Check a workflow's `teachers` section at DAG build: backends fit their tasks, settings their backends."""
    for task in TASKS:
        cfg = teachers[task]
        check_task_config(task, cfg)
        settings = {k: v for k, v in cfg.items() if k not in GENERIC_KEYS}
        cls = backend_class(cfg["backend"])
        try:
            make_settings(cls.Settings, settings, cfg["backend"])
        except (TypeError, ValueError) as err:
            raise ValueError(f"teachers.{task}: {err}") from err
        if task == "depth" and cls.depth_kind != "metric":
            raise ValueError(f"teachers.depth: {cfg['backend']!r} gives {cls.depth_kind} depth, but the manifest's "
                             "teacher_depth slot and the geometric labeller need metres; run a relative teacher "
                             "with `distillery teach depth` for the lineage's comparison (docs/teachers.md)")
