"""`distillery teach <step>`: the teacher stages as the workflow's rules call them.

    distillery teach depth    --shard S.h5 --out L.h5 --failures F.jsonl --teacher '{"backend": "da3", ...}'
    distillery teach detect   (the same options)
    distillery teach segment  (the same, plus --depth-layer and --detect-layer, --labeller '{...}')
    distillery teach sanity   --shards S1.h5 S2.h5 ... --teacher '{...}' --out sanity.json
    distillery teach download-weights --repo org/repo --file model.safetensors --cache weights
    distillery teach settings --settings '{"teacher": {...}}' --out results/teachers/<id>/settings.json

`--teacher` is the teacher's config entry (`teachers.models`) as JSON: its
`id` names it in the layer's provenance, `weights` may be a local path,
hf://org/repo[/file] (looked up in --weights-cache) or `random`. A relative
depth teacher fills the layer's teacher_depth_relative slot, a metric one
teacher_depth.
"""

from __future__ import annotations

import argparse
import json
import sys

from distillery.teachers.settings import BATCH_SIZE, PRECISION, WEIGHTS_CACHE

DESCRIPTION = ("Label the frames of packed shards with teacher networks (or their simulations) and write "
               "per-shard layer files that `distillery merge --layers` copies into the manifest.")


def _add_runtime(p) -> None:
    p.add_argument("--teacher", required=True,
                   help="the teacher's config entry as JSON (id, backend, weights, settings)")
    p.add_argument("--weights-cache", default=WEIGHTS_CACHE, help="folder of hub weights (default: %(default)s)")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default cpu)")
    p.add_argument("--precision", default=PRECISION, choices=("bf16", "fp16", "fp32"),
                   help="autocast precision on CUDA (default %(default)s); CPU always runs fp32")


def _add_stage(sub, task: str, help_text: str) -> None:
    p = sub.add_parser(task, help=help_text, description=help_text + ". Resumes a killed run of the same shard.")
    p.add_argument("--shard", required=True, help="packed shard file (results/shards/shard-NNNNN.h5)")
    p.add_argument("--out", required=True, help="layer file to write")
    p.add_argument("--failures", required=True, help="jsonl of the frames the teacher failed on")
    if task == "segment":
        p.add_argument("--depth-layer", required=True, help="the shard's depth layer (metric teacher depth)")
        p.add_argument("--detect-layer", required=True, help="the shard's detect layer (boxes)")
        p.add_argument("--labeller", default="{}", help="geometric labeller settings as JSON")
    _add_runtime(p)
    p.add_argument("--batch-size", type=int, default=BATCH_SIZE, help="frames per batch (default %(default)s)")
    p.add_argument("--threads", type=int, default=1,
                   help="CPU threads of the job: the main process plus threads - 1 DataLoader workers that "
                        "decode frames while the device works (default 1)")
    p.add_argument("--selection", default=None,
                   help="a `distillery select` JSON: label only its selected frames (the rest stay unlabelled)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_run_stage, task=task)


def _add_sanity(sub) -> None:
    p = sub.add_parser("sanity", help="check the depth teacher on a few frames before a full run",
                       description="Run the depth teacher on frames spread over the shards; fail on all-zero depth, "
                                   "max/mean depth too large or poor correlation with valid ToF.")
    p.add_argument("--shards", nargs="+", required=True, help="packed shard files")
    p.add_argument("--out", required=True, help="report to write (JSON) when the gate passes")
    p.add_argument("--limits", default="{}", help="JSON overrides of frames, max_depth_m, max_mean_m, fail_r, warn_r")
    _add_runtime(p)
    p.set_defaults(func=_run_sanity, task="depth")


def _add_download(sub) -> None:
    p = sub.add_parser("download-weights", help="fetch one weights file from the Hugging Face hub into the cache",
                       description="Run on a machine with internet (a login node); GPU jobs then read the cache.")
    p.add_argument("--repo", required=True, help="hub repository, org/name")
    p.add_argument("--file", required=True, help="file of the repository")
    p.add_argument("--cache", required=True, help="weights cache folder")
    p.set_defaults(func=_run_download)


def _add_settings(sub) -> None:
    p = sub.add_parser("settings", help="write what a teacher's labels depend on (the workflow's re-label trigger)",
                       description="Write the settings of one teacher as indented JSON; every job of the teacher "
                                   "reads the file, so the workflow re-labels a teacher's layers when it changes.")
    p.add_argument("--settings", required=True, help="the settings as JSON")
    p.add_argument("--out", required=True, help="file to write")
    p.set_defaults(func=_run_settings)


def _run_settings(args) -> int:
    from distillery.atomic import write_text_atomic

    write_text_atomic(args.out, json.dumps(json.loads(args.settings), indent=1, sort_keys=True) + "\n")
    return 0


def register(sub) -> None:
    """Add `teach` and its steps to the top-level `distillery` parser."""
    p = sub.add_parser("teach", help="teacher stages: depth, boxes and 6-class labels per shard",
                       description=DESCRIPTION)
    steps = p.add_subparsers(dest="teach_step", required=True, metavar="<step>")
    _add_stage(steps, "depth", "label a shard with metric (DA3) or relative (DA2) depth, or their simulations")
    _add_stage(steps, "detect", "detect persons and furniture in a shard (YOLOv8 or simulated)")
    _add_stage(steps, "segment", "segment the boxes (SAM 2 or simulated) and label the rest geometrically")
    _add_sanity(steps)
    _add_settings(steps)
    _add_download(steps)


def _teacher_config(args) -> dict:
    from distillery.teachers import weights
    from distillery.teachers.registry import backend_info

    cfg = json.loads(args.teacher)
    backend = cfg.get("backend", "")
    backend_info(backend)
    if cfg.get("weights"):
        weights.check_present(backend, cfg["weights"], args.weights_cache)
        cfg["weights"] = weights.resolve(backend, cfg["weights"], args.weights_cache)
    return cfg


def _guarded(run):
    """Turn teacher and sanity errors into one readable line and exit status 1."""

    def wrapper(args) -> int:
        from distillery.teachers.base import TeacherError
        from distillery.teachers.sanity import SanityError

        try:
            return run(args)
        except (TeacherError, SanityError) as err:
            print(f"distillery teach {args.teach_step}: error: {err}", file=sys.stderr)
            return 1
    return wrapper


@_guarded
def _run_stage(args) -> int:
    from distillery.teachers.base import Runtime
    from distillery.teachers.runner import run_shard
    from distillery.teachers.stages import build_stage

    import torch

    torch.set_num_threads(max(args.threads, 1))
    runtime = Runtime(args.device, args.precision)
    labeller = json.loads(args.labeller) if args.task == "segment" else None
    stage = build_stage(args.task, _teacher_config(args), runtime, labeller, args.threads)
    result = run_shard(stage, args.shard, args.out, args.failures, args.batch_size, max(args.threads - 1, 0),
                       getattr(args, "depth_layer", None), getattr(args, "detect_layer", None), not args.quiet,
                       args.selection or None)
    print(json.dumps(result))
    return 0


@_guarded
def _run_sanity(args) -> int:
    from distillery.teachers.base import Runtime, make_settings
    from distillery.teachers.registry import build_teacher
    from distillery.teachers.sanity import SanityLimits, run_sanity

    limits = make_settings(SanityLimits, json.loads(args.limits), "sanity")
    teacher = build_teacher(_teacher_config(args), Runtime(args.device, args.precision), "depth")
    report = run_sanity(teacher, args.shards, limits, args.out)
    print(json.dumps({k: report[k] for k in ("tof_r", "tof_pixels", "warnings", "passed")}))
    return 0


def _run_download(args) -> int:
    from distillery.teachers.weights import download

    print(download(args.repo, args.file, args.cache))
    return 0
