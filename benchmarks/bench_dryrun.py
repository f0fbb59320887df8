"""Wall time of `snakemake -n` over a 1,000,000-frame index cut into 500 shards.

Builds a scratch working directory holding a frame index and a shard plan as
the ingest stage would have written them (the plan by the real `plan_shards`,
timed too), then times a dry run of the real workflow over it: the DAG must
stay cheap when data is large. Goals: the default size in at most 20 s; at
fleet scale, `--frames 10000000 --shards 5000` (25,030 jobs) in at most 30 s
on two cores, and `plan_shards` at least 200,000 frames/s.

In the same run it times Snakemake's own floor: a dry run of a minimal
Snakefile with the same shape (one pack job per shard, one job per shard and
teacher with a named input, two outputs, a log and a benchmark, a target rule
over every layer) and nothing else: no config, params, resources or input
functions. `dry_run_vs_floor` is the workflow's time over that floor's.

    python benchmarks/bench_dryrun.py [--frames 1000000] [--shards 500]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from common import report, timer

from distillery.ingest.shards import plan_shards

ROOT = Path(__file__).resolve().parents[1]


def write_index(path: Path, frames: int, sequences: int) -> None:
    per_seq = frames // sequences
    with open(path, "w") as fh:
        for i in range(frames):
            seq, j = divmod(i, per_seq)
            fh.write(json.dumps({"dataset": "big", "sequence": f"seq{seq:04d}", "frame_id": f"{j:06d}",
                                 "rgb": f"/data/big/seq{seq:04d}/rgb/{j:06d}.png",
                                 "depth": f"/data/big/seq{seq:04d}/depth/{j:06d}.png",
                                 "depth_encoding": "png", "depth_scale": 1000.0}) + "\n")


def benchmark_config(data: Path, frames_per_shard: int) -> dict:
    """A complete config of its own (not the default's): one large dataset filling every lineage role,
    simulated teachers (every teacher stage is in the DAG, no weights needed) and a short lineage
    with a root, a sibling and a fine-tuned child, evaluated and reported."""
    metric = {"backbone": "mobilenetv3_small", "depth_teacher": "metric", "lr": 1.0e-3, "datasets": ["nyu"],
              "val_datasets": ["nyu"]}
    return {
        "datasets": [{"name": "big", "path": str(data)}],
        "lineage": {"roles": {"nyu": "big", "sun": "big", "diode": "big", "corridor": "big"}},
        "ingest": {}, "sharding": {"frames_per_shard": frames_per_shard}, "manifest": {},
        "teachers": {"device": "cpu", "models": [{"id": "da3_sim", "backend": "sim_da3"},
                                                 {"id": "da2_sim", "backend": "sim_da2"},
                                                 {"id": "yolo_sim", "backend": "sim_yolo"},
                                                 {"id": "sam2_sim", "backend": "sim_sam2"}]},
        "training": {"build": None, "versions": {
            "V1": dict(metric, depth_teacher="relative", depth_loss="l1", kendall=False),
            "V3": metric,
            "V7": dict(metric, parent="V3", lr=3.0e-4, freeze_encoder_epochs=0, datasets=["corridor"],
                       val_datasets=["corridor"])}},
        "evaluation": {"sets": None, "device": "cpu"},
    }


def prepare(workdir: Path, frames: int, shards: int, t: dict) -> Path:
    data = workdir / "data"
    data.mkdir()
    config = benchmark_config(data, frames // shards)
    cfg = workdir / "config.yaml"
    cfg.write_text(yaml.safe_dump(config))
    index = workdir / "results" / "index" / "big.jsonl"
    index.parent.mkdir(parents=True)
    with timer(t, "write_index_s"):
        write_index(index, frames, max(1, frames // 2000))
    (index.parent / "big.quarantine.jsonl").write_text("")
    with timer(t, "plan_shards_s"):
        plan_shards([str(index)], str(workdir / "results" / "shards" / "plan"), frames // shards,
                    {"train": 0.8, "val": 0.1, "test": 0.1})
    return cfg


FLOOR_SNAKEFILE = """
NAMES = open("names.txt").read().split()
TEACHERS = [f"t{i}" for i in range(int(open("teachers.txt").read()))]

rule all:
    input: expand("labels/{teacher}/{shard}.h5", teacher=TEACHERS, shard=NAMES)

rule pack:
    input: "plan/{shard}.jsonl"
    output: h5="shards/{shard}.h5", quarantine="shards/{shard}.quarantine.jsonl"
    log: "logs/pack/{shard}.log"
    benchmark: "benchmarks/pack/{shard}.tsv"
    shell: "pack {input:q} {output.h5:q} {output.quarantine:q} > {log:q} 2>&1"

rule teach:
    input: shard="shards/{shard}.h5", settings="settings/{teacher}.json"
    output: layer="labels/{teacher}/{shard}.h5", failures="labels/{teacher}/{shard}.failures.jsonl"
    log: "logs/teach/{teacher}/{shard}.log"
    benchmark: "benchmarks/teach/{teacher}/{shard}.tsv"
    shell: "teach {input.shard:q} {input.settings:q} {output.layer:q} {output.failures:q} > {log:q} 2>&1"

rule settings:
    output: "settings/{teacher}.json"
    shell: "echo {{}} > {output:q}"
"""


def floor_workdir(workdir: Path, shards: list[str], teachers: int) -> Path:
    """A minimal workflow of the same shape over the same shard names (see the module docstring)."""
    floor = workdir / "floor"
    (floor / "plan").mkdir(parents=True)
    (floor / "Snakefile").write_text(FLOOR_SNAKEFILE)
    (floor / "names.txt").write_text("\n".join(shards))
    (floor / "teachers.txt").write_text(str(teachers))
    for name in shards:
        (floor / "plan" / f"{name}.jsonl").touch()
    return floor


def dry_run(workdir: Path, cfg: Path | None) -> tuple[float, str]:
    """Seconds of `snakemake -n` of the workflow with `cfg` (None: the floor's own Snakefile) and its output."""
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    workflow = ["-s", str(ROOT / "Snakefile"), "--configfile", str(cfg)] if cfg else ["-s", "Snakefile"]
    cmd = [str(Path(sys.executable).parent / "snakemake"), *workflow, "-d", str(workdir),
           "-n", "--cores", "2", "--quiet", "rules"]
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT if cfg else workdir, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"dry run failed:\n{proc.stdout}\n{proc.stderr}")
    return wall, proc.stdout + proc.stderr


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=1_000_000, help="frames in the index")
    parser.add_argument("--shards", type=int, default=500, help="shards to cut them into")
    args = parser.parse_args()
    t: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        cfg = prepare(workdir, args.frames, args.shards, t)
        wall, out = dry_run(workdir, cfg)
        shards = json.loads((workdir / "results" / "shards" / "plan" / "shards.json").read_text())["shards"]
        teachers = len(yaml.safe_load(cfg.read_text())["teachers"]["models"])
        floor = floor_workdir(workdir, shards, teachers)
        floor_wall, floor_out = dry_run(floor, None)
    pack_jobs = next((line.split()[-1] for line in out.splitlines() if line.strip().startswith("pack_shard")), "?")
    floor_jobs = next((line.split()[-1] for line in floor_out.splitlines() if line.strip().startswith("total")), "?")
    report("dryrun", {"frames": args.frames, "shards": args.shards, "pack_shard_jobs": pack_jobs,
                      "dry_run_s": round(wall, 2), "goal_s": 30 if args.frames >= 10_000_000 else 20,
                      "floor_jobs": floor_jobs, "floor_dry_run_s": round(floor_wall, 2),
                      "dry_run_vs_floor": round(wall / floor_wall, 2),
                      "plan_shards_s": round(t["plan_shards_s"], 2),
                      "plan_shards_frames_per_s": round(args.frames / t["plan_shards_s"]),
                      "plan_shards_goal_frames_per_s": 200_000,
                      "write_index_s": round(t["write_index_s"], 2)})


if __name__ == "__main__":
    main()
