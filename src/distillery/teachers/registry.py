"""Which backends exist, what they need, and `build_teacher(cfg)`.

The table of backends (`backends.py`) is plain data so that the workflow
(common.smk) can check a config and list weight files without importing
torch or any model package; a backend's module is imported only when it is
built.
"""

from __future__ import annotations

import importlib

from distillery.teachers.backends import BACKENDS, Backend, backend_info
from distillery.teachers.base import TASKS, Runtime, Teacher, make_settings

__all__ = ["BACKENDS", "Backend", "backend_info", "build_teacher", "check_config", "check_entry"]


# Keys of a teacher's config entry that the runner or workflow consumes; the rest go to the backend.
GENERIC_KEYS = ("id", "task", "kind", "backend", "weights", "batch_size")
# The manifest's teacher slots ("roles"): which task, and for depth which kind, fills each.
ROLES = {"metric_depth": ("depth", "metric"), "relative_depth": ("depth", "relative"),
         "detect": ("detect", None), "segment": ("segment", None)}


def backend_class(name: str) -> type[Teacher]:
    info = backend_info(name)
    return getattr(importlib.import_module(info.module), info.cls)


def backend_kind(name: str) -> str | None:
    """"metric" or "relative" for a depth backend, None for the other tasks."""
    return backend_class(name).kind()


def backend_settings(cfg: dict) -> dict:
    """The backend's own settings of a config entry (everything but the generic keys)."""
    return {k: v for k, v in cfg.items() if k not in GENERIC_KEYS}


def check_task_config(task: str, cfg: dict, where: str | None = None) -> None:
    """Raise ValueError naming the key when a teacher's config entry cannot work."""
    where = where or f"teachers.{task}"
    if task not in TASKS:
        raise ValueError(f"unknown teacher task {task!r}; tasks are {TASKS}")
    info = backend_info(cfg.get("backend", ""))
    if info.task != task:
        raise ValueError(f"{where}.backend: {cfg['backend']!r} is a {info.task} backend, not a {task} one")
    if not info.simulated and not cfg.get("weights"):
        raise ValueError(f"{where}.weights is required for backend {cfg['backend']!r} "
                         "(a local path, hf://org/repo[/file], or 'random' for untrained weights)")
    if info.simulated and cfg.get("weights"):
        raise ValueError(f"{where}.weights: simulated backend {cfg['backend']!r} loads no weights")
    kind = backend_kind(cfg["backend"])
    if cfg.get("kind") not in (None, kind):
        raise ValueError(f"{where}.kind: {cfg['backend']!r} gives {kind or 'no'} depth, not {cfg['kind']!r}")


def build_teacher(cfg: dict, runtime: Runtime | None = None, task: str | None = None) -> Teacher:
    """Build a teacher from its config entry: {"id"?, "backend", "weights": <local path|random>, settings...}.

    `weights` must already be a local path (see `weights.resolve`) or
    "random" (untrained weights: tests and benchmarks only). The id names the
    teacher in layer files and the manifest; it defaults to the backend's name.
    """
    cfg = dict(cfg)
    info = backend_info(cfg.get("backend", ""))
    check_task_config(task or cfg.get("task") or info.task, cfg)
    cls = backend_class(cfg["backend"])
    settings = make_settings(cls.Settings, backend_settings(cfg), cfg["backend"])
    teacher = cls(settings, runtime or Runtime(), cfg.get("weights"))
    teacher.id = str(cfg.get("id") or cfg["backend"])
    return teacher


def check_entry(cfg: dict, where: str) -> dict:
    """Check one `teachers.models` entry; return it with `task` and `kind` filled in from its backend."""
    info = backend_info(cfg.get("backend", ""))
    task = cfg.get("task") or info.task
    check_task_config(task, cfg, where)
    try:
        make_settings(backend_class(cfg["backend"]).Settings, backend_settings(cfg), cfg["backend"])
    except (TypeError, ValueError) as err:
        raise ValueError(f"{where}: {err}") from err
    return dict(cfg, task=task, kind=backend_kind(cfg["backend"]))


def role_of(entry: dict) -> str:
    return next(role for role, (task, kind) in ROLES.items() if (task, kind) == (entry["task"], entry["kind"]))


def check_config(teachers: dict) -> dict[str, dict]:
    """Check a workflow's `teachers` section at DAG build; return the teacher entry of each role in use.

    `teachers.use` maps a role to a model id (null leaves the role empty); a
    role it does not name takes the one model of that role, and must name one
    when there are several. The segment stage's labeller needs the metric
    depth and the boxes, so a segment teacher needs both roles filled.
    """
    models = [check_entry(cfg, f"teachers.models[{i}] ({cfg.get('id')})")
              for i, cfg in enumerate(teachers.get("models") or [])]
    by_id = {}
    for entry in models:
        if entry["id"] in by_id:
            raise ValueError(f"teachers.models: two teachers with id {entry['id']!r}; ids must be unique")
        by_id[entry["id"]] = entry
    use = teachers.get("use") or {}
    roles = {}
    for role in ROLES:
        if role in use:
            if use[role] is None:
                continue
            if use[role] not in by_id:
                raise ValueError(f"teachers.use.{role}: no teacher with id {use[role]!r} in teachers.models "
                                 f"(ids: {sorted(by_id)})")
            if role_of(by_id[use[role]]) != role:
                raise ValueError(f"teachers.use.{role}: {use[role]!r} is a {role_of(by_id[use[role]])} teacher")
            roles[role] = by_id[use[role]]
            continue
        fits = [e for e in models if role_of(e) == role]
        if len(fits) > 1:
            raise ValueError(f"teachers.models has {len(fits)} {role} teachers ({[e['id'] for e in fits]}): "
                             f"choose one with teachers.use.{role}")
        if fits:
            roles[role] = fits[0]
    if "segment" in roles and not {"metric_depth", "detect"} <= set(roles):
        raise ValueError(f"teachers: segment teacher {roles['segment']['id']!r} needs a metric depth and a detect "
                         "teacher (its labeller reads metric depth and boxes); add them to teachers.models")
    return roles
