"""`distillery train`: train one student version from one or more manifests.

    distillery train --config train.yaml --manifest results/manifest/manifest.h5 --out results/train/v5
    distillery train --config config/config.yaml --version demo --manifest ... --out ...
    distillery train ... --init-from results/train/v5/best.pt      # fine-tune: parent weights, fresh optimiser
    distillery train ... --submit --partition gpu --account lab --gpus 4   # a Slurm job through submitit
    torchrun --nproc_per_node 4 -m distillery.cli train ...              # DDP on one node

Resuming is automatic: when <out>/last.pt is an interrupted run with the
same settings and inputs (manifest content ids, parent best.pt hash), the
run continues from it (--resume insists on it). Anything else, a finished
run included, starts fresh after moving the folder's files to
<out>/previous/<UTC stamp>/ (--no-resume always does). A run stopped by
SIGTERM or SIGUSR1 saves last.pt and exits with status 75, meaning
"re-run me to continue".

    distillery archive-run results/train/v5   # move a run aside: the next run starts from scratch
"""

from __future__ import annotations

import argparse
import json
import sys

import yaml


def _setting(text: str) -> tuple[str, object]:
    """KEY=VALUE with a YAML value (numbers, booleans, lists); dotted keys reach nested settings."""
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    key, value = text.split("=", 1)
    return key.strip(), yaml.safe_load(value)


def _nest(pairs: list[tuple[str, object]]) -> dict:
    out: dict = {}
    for key, value in pairs:
        *parents, leaf = key.split(".")
        node = out
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return out


def register(sub) -> None:
    p = sub.add_parser("train", help="train a student from manifests (fresh, fine-tune or resume)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--manifest", action="append", required=True, help="manifest.h5 (repeat to mix several)")
    p.add_argument("--weight", action="append", type=float, default=None,
                   help="mixing weight of each --manifest, in order (default: by frame count)")
    p.add_argument("--out", required=True, help="run folder: last.pt, best.pt, metrics.jsonl, tensorboard/")
    p.add_argument("--config", default=None, help="YAML of training settings, or a workflow config (+ --version)")
    p.add_argument("--version", default=None, help="version under training.versions of a workflow config")
    p.add_argument("--config-json", default=None, help="JSON object of settings, applied after --config")
    p.add_argument("--set", action="append", type=_setting, default=[], metavar="KEY=VALUE",
                   help="one setting, applied last (e.g. --set epochs=2 --set augmentation.flip_p=0)")
    p.add_argument("--init-from", default=None,
                   help="fine-tune from this checkpoint's weights (fresh optimiser); empty: train from scratch")
    resume = p.add_mutually_exclusive_group()
    resume.add_argument("--resume", dest="resume", action="store_const", const="always", default="auto",
                        help="continue from <out>/last.pt; fail when it is missing or from other settings")
    resume.add_argument("--no-resume", dest="resume", action="store_const", const="never",
                        help="start over even when <out>/last.pt exists")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    slurm = p.add_argument_group("Slurm (with --submit, through submitit)")
    slurm.add_argument("--submit", action="store_true", help="submit as a Slurm job instead of training here")
    slurm.add_argument("--partition", default=None)
    slurm.add_argument("--account", default=None)
    slurm.add_argument("--qos", default=None)
    slurm.add_argument("--constraint", default=None)
    slurm.add_argument("--gres", default=None, help="typed GPU request, e.g. gpu:l40s:1 (instead of --gpus)")
    slurm.add_argument("--gpus", type=int, default=1, help="GPUs per node; one DDP rank each (default 1)")
    slurm.add_argument("--nodes", type=int, default=1)
    slurm.add_argument("--cpus-per-gpu", type=int, default=8)
    slurm.add_argument("--mem-gb", type=int, default=32)
    slurm.add_argument("--time-min", type=int, default=720, help="time limit in minutes (default 720)")
    slurm.add_argument("--cluster", default=None, choices=("slurm", "local", "debug"), help=argparse.SUPPRESS)
    p.set_defaults(func=run)
    a = sub.add_parser("archive-run", help="move a training run's files to <out>/previous/<stamp>/",
                       description="Move every file of a run folder (last.pt, best.pt, metrics.jsonl, "
                       "tensorboard/) to <out>/previous/<UTC stamp>/, so that the next `distillery train` "
                       "or Snakemake run of that version starts from scratch instead of resuming. "
                       "Nothing is deleted.")
    a.add_argument("out", help="run folder, e.g. results/train/v5")
    a.add_argument("--reason", default="moved aside by distillery archive-run", help="recorded in archived.json")
    a.set_defaults(func=archive)


def training_config(args):
    """The TrainConfig of parsed arguments: --config, then --config-json, --set, --weight, --init-from."""
    from distillery.student.config import load_config

    overrides = json.loads(args.config_json) if args.config_json else {}
    for key, value in _nest(args.set).items():
        if isinstance(value, dict) and isinstance(overrides.get(key), dict):
            overrides[key] = {**overrides[key], **value}
        else:
            overrides[key] = value
    if args.weight is not None:
        overrides["manifest_weights"] = args.weight
    if args.init_from:
        overrides["init_from"] = args.init_from
    if args.quiet:
        overrides["progress"] = False
    return load_config(args.config, args.version, overrides)


def slurm_options(args):
    """The SlurmOptions of parsed --submit arguments."""
    from distillery.student.submit import SlurmOptions

    return SlurmOptions(partition=args.partition, account=args.account, gpus=args.gpus, nodes=args.nodes,
                        cpus_per_gpu=args.cpus_per_gpu, mem_gb=args.mem_gb, timeout_min=args.time_min,
                        qos=args.qos, constraint=args.constraint, gres=args.gres)


def archive(args) -> int:
    from distillery.student.rundir import archive_run

    dest = archive_run(args.out, args.reason)
    print(json.dumps({"out": args.out, "archived_to": str(dest) if dest else None}))
    return 0


def run(args) -> int:
    import torch

    from distillery.student.distributed import PREEMPTED_EXIT_CODE
    from distillery.student.submit import submit
    from distillery.student.train import Preempted, run_training

    cfg = training_config(args)
    if args.submit:
        job = submit(cfg, args.manifest, args.out, slurm_options(args), args.cluster)
        print(json.dumps({"job_id": job.job_id, "out": args.out}))
        return 0
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        summary = run_training(cfg, args.manifest, args.out, args.resume)
    except Preempted as stopped:
        print(f"distillery train: pre-empted: {stopped}; re-run the same command to resume", file=sys.stderr)
        return PREEMPTED_EXIT_CODE
    print(json.dumps({k: summary[k] for k in ("status", "epoch", "global_step", "best_epoch")}))
    return 0


def main(argv: list[str] | None = None) -> int:
    """`python -m distillery.student.cli train ...`: the train subcommand on its own."""
    import logging

    parser = argparse.ArgumentParser(prog="distillery-train")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return args.func(args)
    except (FileNotFoundError, ValueError) as err:
        print(f"distillery train: error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
