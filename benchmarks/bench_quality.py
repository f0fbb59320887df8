"""Does training on teacher labels give a better student, and how few frames need a teacher?

On a generated world (ground truth for every frame, simulated teachers with
structured errors: docs/teachers.md), the workflow builds the manifest; then
the same student (the V4 recipe: EfficientViT-B1, metric teacher, berHu +
Kendall; encoder from random weights, so no frozen epochs and the full
learning rate on it) is trained for a fixed budget of optimiser steps (not
wall time: the figures do not depend on the machine's load) under each
variant, and every variant's best.pt is scored against truth on the held-out
test sequences with the project's evaluation (95 % intervals from
resampling whole sequences):

    teacher_100   every training frame labelled by the teachers (hybrid target)
    tof_only      the same frames, ToF as the only depth target
    novelty_20    20 % of each sequence labelled, chosen by `distillery select`'s novelty
    every5_20     every fifth frame labelled
    random_20     a random 20 %
                  (unlabelled frames train on the ToF fallback of the hybrid target)
    constant      the best constant depth: the mean truth of the test pixels of each region (an oracle)
    teacher_labels  the metric teacher's own labels on the test frames (no student): what the
                  teacher-trained students learn from, scored the same way

Figures: RMSE, AbsRel and delta1 against truth on all pixels and on the
ToF-invalid pixels, mIoU against truth labels, learning curves (validation
RMSE against truth per epoch), and the goals: teacher_100 <= 0.6x the
constant's RMSE; teacher_100 below tof_only on ToF-invalid pixels with
non-overlapping intervals; novelty_20 within the interval of teacher_100 and
better than every5_20 and random_20.

    .venv/bin/python benchmarks/bench_quality.py                  # about 19 minutes on two idle cores (measured: 177 s manifest, 951 s variants)
    .venv/bin/python benchmarks/bench_quality.py --keep q-run --variants teacher_100,constant
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np
import torch
import yaml
from common import report

from distillery.evaluation.bootstrap import depth_summary, sequence_weights
from distillery.evaluation.regions import NUM_CELLS, REGIONS, batch_trusted, cells, references
from distillery.evaluation.runner import REGION_CELLS, EvalSettings, evaluate
from distillery.ingest.shards import sequence_split
from distillery.manifest import Manifest
from distillery.select import SelectSettings, change_from_frames, change_from_poses, read_poses, select_sequence
from distillery.student.config import TrainConfig
from distillery.student.data import FrameDataset, make_loader
from distillery.student.metrics import cell_depth_sums
from distillery.student.train import setup_run, train
from distillery.synth.world import sequence_name

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
DATASET = "bench_rooms"
VARIANTS = ("teacher_100", "tof_only", "novelty_20", "every5_20", "random_20", "constant", "teacher_labels")
LABEL_FLAGS = ("has_teacher_depth", "has_teacher_depth_relative", "has_teacher_label")
SPLITS = {"train": 0.55, "val": 0.1, "test": 0.35}


def split_seed(family: str, seed: int, sequences: int, min_test: int, min_val: int, min_train: int) -> int:
    """The first sharding seed that gives the world at least min_test test, min_val val and min_train train
    sequences."""
    for s in range(1000):
        splits = [sequence_split(DATASET, sequence_name(family, seed, i), SPLITS, s) for i in range(sequences)]
        if splits.count("test") >= min_test and splits.count("val") >= min_val and splits.count("train") >= min_train:
            return s
    raise SystemExit(f"no sharding seed gives {min_test} test sequences of {sequences}; raise --sequences")


def write_config(path: Path, args, sharding_seed: int) -> None:
    """The workflow config of the benchmark: the demo's (a whole configuration, config/demo.yaml) with one
    generated room world in place of the demo's worlds, and its simulated teachers on the CPU."""
    config = yaml.safe_load((ROOT / "config" / "demo.yaml").read_text())
    world = {"family": args.family, "seed": args.world_seed, "sequences": args.sequences, "frames": args.frames}
    config["datasets"] = [{"name": DATASET, "synth": world}]
    config["lineage"] = {"roles": {role: DATASET for role in ("nyu", "sun", "diode", "corridor")}}
    config["sharding"] = {"frames_per_shard": 64, "seed": sharding_seed, "splits": SPLITS}
    config["teachers"]["device"] = "cpu"
    config.pop("select", None)  # the benchmark labels every frame; its *_20 variants choose afterwards
    path.write_text(yaml.safe_dump(config, sort_keys=False))


def build_manifest(workdir: Path, config: Path, cores: int) -> Path:
    """The world, packed and labelled by the simulated teachers, merged: the workflow's own jobs."""
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    cmd = [str(BIN / "snakemake"), "-s", str(ROOT / "Snakefile"), "-d", str(workdir), "--configfile", str(config),
           "--cores", str(cores), "results/manifest/manifest.h5"]
    proc = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"building the benchmark's manifest failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    return workdir / "results" / "manifest" / "manifest.h5"


def train_sequences(manifest: Manifest) -> dict[str, np.ndarray]:
    """Rows of each training sequence, in frame order."""
    out: dict[str, list[int]] = {}
    for row in manifest.indices(split="train"):
        r = manifest.records[row]
        out.setdefault(r["sequence"], []).append(int(row))
    return {seq: np.array(sorted(rows, key=lambda i: manifest.records[i]["key"])) for seq, rows in out.items()}


def novelty_choice(manifest: Manifest, rows: np.ndarray, share: float, world: Path) -> tuple[np.ndarray, str]:
    """`distillery select`'s choice for one sequence: from the world's poses where present, else the frames."""
    settings = SelectSettings(share=share)
    poses_file = world / manifest.records[int(rows[0])]["sequence"] / "poses.txt"
    if poses_file.is_file():
        poses = read_poses(poses_file)
        ids = [manifest.records[int(r)]["key"].rsplit("/", 1)[-1] for r in rows]
        if all(i in poses for i in ids):
            change = change_from_poses(np.stack([poses[i] for i in ids]), settings.translation_m, settings.rotation_deg)
            return select_sequence(change, settings, "poses").selected, "poses"
    frames = [manifest.read(int(r), ("rgb", "tof_depth")) for r in rows]
    change = change_from_frames([f["rgb"] for f in frames], [f["tof_depth"] for f in frames])
    return select_sequence(change, settings, "frames").selected, "frames"


def labelled_rows(manifest_path: Path, variant: str, share: float, world: Path, seed: int) -> tuple[np.ndarray, dict]:
    """Training rows a variant keeps teacher labels on, and how they were chosen."""
    manifest = Manifest(manifest_path)
    keep, sources = [], {}
    rng = np.random.default_rng(seed)
    for seq, rows in sorted(train_sequences(manifest).items()):
        k = max(1, math.ceil(share * len(rows)))
        if variant == "novelty_20":
            chosen, sources[seq] = novelty_choice(manifest, rows, share, world)
            keep += rows[chosen].tolist()
        elif variant == "every5_20":
            keep += rows[:: max(1, round(1 / share))].tolist()
        elif variant == "random_20":
            keep += rng.choice(rows, size=k, replace=False).tolist()
    manifest.close()
    return np.array(sorted(keep)), sources


def partial_manifest(src: Path, out: Path, keep: np.ndarray) -> int:
    """A copy of the manifest whose training frames outside `keep` have no teacher labels (as if unselected).

    `out` must be in the manifest's folder: its images map onto the shards by relative paths (the reader
    refuses a copy whose shards it cannot find)."""
    shutil.copyfile(src, out)
    with h5py.File(out, "r+") as f:
        train = f["split"].asstr()[:] == "train"
        drop = train.copy()
        drop[keep] = False
        for flag in LABEL_FLAGS:
            f[flag][drop] = False
        labelled = int((train & f["has_teacher_depth"][:]).sum())
    return labelled


def train_config(args, depth_target: str) -> TrainConfig:
    """The V4 recipe from random encoder weights: no frozen epochs, the full learning rate on the encoder."""
    return TrainConfig(backbone="efficientvit_b1", encoder_weights="random", depth_teacher="metric",
                       depth_target=depth_target, lr=1e-3, encoder_lr_scale=1.0, freeze_encoder_epochs=0,
                       epochs=args.epochs, samples_per_epoch=args.samples_per_epoch, batch_size=args.batch_size,
                       num_workers=0, max_val_frames=args.val_frames, seed=args.seed, progress=True)


def learning_curve(run_dir: Path) -> list[dict]:
    """Per epoch: step and validation RMSE against truth (and against the run's target) from metrics.jsonl."""
    curve = []
    for line in (run_dir / "metrics.jsonl").read_text().splitlines():
        row = json.loads(line)
        if "depth/truth/rmse" in row:
            curve.append({"epoch": row.get("epoch"), "step": row.get("step"),
                          "val_truth_rmse": row.get("depth/truth/rmse"),
                          "val_truth_tof_invalid_rmse": row.get("depth/truth_tof_invalid/rmse"),
                          "val_truth_miou": row.get("seg/truth/miou")})
    return curve


def figures(result: dict) -> dict:
    """The evaluation JSON reduced to the benchmark's figures: estimate and 95 % interval of each."""
    out = {}
    for region in ("all", "tof_invalid"):
        block = result["depth"].get("truth", {}).get(region, {})
        for metric in ("rmse", "absrel", "delta1"):
            if metric in block:
                out[f"{region}/{metric}"] = block[metric]
    if "segmentation" in result:
        out["miou"] = result["segmentation"]["miou"]
    return out


def region_sums_of(predict, batches: list[dict]) -> np.ndarray:
    """Per-frame error sums [F, len(REGIONS), len(DEPTH_SUMS)] against truth of `predict(batch)`: a
    prediction and the pixels it covers (the truth's valid pixels are further limited to those)."""
    out = []
    for batch in batches:
        reference, valid = references(batch)["truth"]
        pred, covered = predict(batch, reference)
        sums = cell_depth_sums(pred, reference, cells(reference, valid & covered, batch_trusted(batch)), NUM_CELLS)
        out.append(torch.einsum("bcs,cr->brs", sums, REGION_CELLS).numpy())
    return np.concatenate(out)


def constant(value: float):
    """A prediction of `value` everywhere (for region_sums_of)."""
    return lambda batch, reference: (torch.full_like(reference, value), torch.ones_like(reference, dtype=torch.bool))


def teacher_labels(batch: dict, reference: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The metric teacher's depth where it has one (the labels students learn from off trusted ToF)."""
    return references(batch)["teacher"]


def test_frames(manifest_path: Path, resamples: int) -> tuple[list[dict], np.ndarray]:
    """The test frames of the benchmark's world, batched with truth, and the bootstrap's resampling weights
    over their sequences (as the evaluation draws them)."""
    with Manifest(manifest_path) as manifest:
        rows = manifest.indices(split="test", dataset=DATASET)
        batches = list(make_loader(FrameDataset([manifest], [(0, int(r)) for r in rows], with_truth=True), 8, 0))
        ids = [f"{manifest.records[int(r)]['dataset']}/{manifest.records[int(r)]['sequence']}" for r in rows]
    return batches, sequence_weights(ids, resamples, 0)[0]


def region_figures(sums: np.ndarray, weights: np.ndarray, region: str) -> dict:
    """RMSE, AbsRel and delta1 (estimate and interval) of one region's per-frame sums, keyed region/metric."""
    block = depth_summary(sums[:, REGIONS.index(region)], weights)
    return {f"{region}/{m}": block[m] for m in ("rmse", "absrel", "delta1")}


@torch.no_grad()
def constant_figures(manifest_path: Path, resamples: int) -> dict:
    """The best constant depth per region (the mean truth of the region's test pixels: an oracle), scored
    like a student, with the same intervals over sequences."""
    batches, weights = test_frames(manifest_path, resamples)
    near_zero = region_sums_of(constant(1e-6), batches)  # abs_error of a ~0 prediction sums the truth itself
    out = {}
    for region in ("all", "tof_invalid"):
        j = REGIONS.index(region)
        mean = float(near_zero[:, j, 2].sum() / max(near_zero[:, j, 0].sum(), 1.0))
        out.update(region_figures(region_sums_of(constant(mean), batches), weights, region))
        out[f"{region}/constant_m"] = round(mean, 4)
    return out


@torch.no_grad()
def teacher_label_figures(manifest_path: Path, resamples: int) -> dict:
    """The metric teacher's labels themselves on the test frames, scored against truth like a student (on
    the pixels it labels): the yardstick a teacher-trained student approaches."""
    batches, weights = test_frames(manifest_path, resamples)
    sums = region_sums_of(teacher_labels, batches)
    return {k: v for region in ("all", "tof_invalid") for k, v in region_figures(sums, weights, region).items()}


def run_variant(variant: str, manifest: Path, workdir: Path, args) -> dict:
    """Train (unless constant) and score one variant on the test sequences."""
    if variant == "constant":
        return {"figures": constant_figures(manifest, args.resamples)}
    if variant == "teacher_labels":
        return {"figures": teacher_label_figures(manifest, args.resamples)}
    info: dict = {}
    source = manifest
    if variant.endswith("_20"):
        keep, choice = labelled_rows(manifest, variant, args.share, workdir / "results" / "synth" / DATASET, args.seed)
        source = manifest.with_name(f"manifest.{variant}.h5")
        info["labelled_train_frames"] = partial_manifest(manifest, source, keep)
        if choice:
            info["novelty_from"] = sorted(set(choice.values()))
    cfg = train_config(args, "tof_only" if variant == "tof_only" else "hybrid")
    run_dir = workdir / "runs" / variant
    start = time.perf_counter()
    summary = train(setup_run(cfg, [str(source)], run_dir, resume="never"))
    info["train_s"] = round(time.perf_counter() - start, 1)
    info["steps"] = summary["global_step"]
    result = evaluate(str(run_dir / "best.pt"), str(source), DATASET, str(workdir / "eval" / f"{variant}.json"),
                      settings=EvalSettings(resamples=args.resamples, version=variant, progress=False))
    info["test_sequences"] = result["sequences"]
    info["figures"] = figures(result)
    info["learning_curve"] = learning_curve(run_dir)
    return info


def ratio(a: dict, b: dict, key: str) -> float | None:
    x, y = a["figures"].get(key, {}).get("mean"), b["figures"].get(key, {}).get("mean")
    return round(x / y, 3) if x is not None and y else None


def apart(a: dict, b: dict, key: str) -> bool | None:
    """Whether a's interval lies wholly below b's."""
    ia, ib = a["figures"].get(key, {}).get("ci95"), b["figures"].get(key, {}).get("ci95")
    return None if ia is None or ib is None else ia[1] < ib[0]


def within(a: dict, b: dict, key: str) -> bool | None:
    """Whether a's estimate lies inside b's interval (or below it)."""
    x, ib = a["figures"].get(key, {}).get("mean"), b["figures"].get(key, {}).get("ci95")
    return None if x is None or ib is None else x <= ib[1]


def goals(results: dict) -> dict:
    r, out = results, {}
    if {"teacher_100", "constant"} <= r.keys():
        out["teacher_vs_constant_rmse_ratio"] = ratio(r["teacher_100"], r["constant"], "all/rmse")
        out["teacher_at_most_0.6x_constant"] = (out["teacher_vs_constant_rmse_ratio"] or 9) <= 0.6
    if {"teacher_labels", "constant"} <= r.keys():
        out["teacher_labels_vs_constant_rmse_ratio"] = ratio(r["teacher_labels"], r["constant"], "all/rmse")
    if {"teacher_100", "tof_only"} <= r.keys():
        out["teacher_below_tof_only_on_tof_invalid_apart"] = apart(r["teacher_100"], r["tof_only"], "tof_invalid/rmse")
    if {"novelty_20", "teacher_100"} <= r.keys():
        out["novelty_within_teacher_100_interval"] = within(r["novelty_20"], r["teacher_100"], "all/rmse")
        for other in ("every5_20", "random_20"):
            if other in r:
                x, y = (r[v]["figures"].get("all/rmse", {}).get("mean") for v in ("novelty_20", other))
                out[f"novelty_better_than_{other}"] = None if x is None or y is None else x < y
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keep", default=None, help="work in this new or empty folder, kept (default: temporary)")
    parser.add_argument("--manifest", default=None,
                        help="reuse the manifest of an earlier run's --keep folder (its results/manifest/manifest.h5) "
                             "instead of building one; its world settings must be the ones given here")
    parser.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated subset of {VARIANTS}")
    parser.add_argument("--family", default="room")
    parser.add_argument("--world-seed", type=int, default=21)
    parser.add_argument("--sequences", type=int, default=22, help="sequences of the generated world")
    parser.add_argument("--frames", type=int, default=20, help="frames per sequence (30 Hz)")
    parser.add_argument("--min-test", type=int, default=8, help="held-out test sequences, at least")
    parser.add_argument("--min-train", type=int, default=10, help="training sequences, at least")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--samples-per-epoch", type=int, default=320)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--val-frames", type=int, default=24)
    parser.add_argument("--share", type=float, default=0.2, help="labelled share of the *_20 variants")
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=2, help="torch threads (and Snakemake cores)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--name", default="bench_quality", help="benchmarks/out/<name>.json (default bench_quality)")
    args = parser.parse_args()
    variants = [v for v in args.variants.split(",") if v]
    unknown = sorted(set(variants) - set(VARIANTS))
    if unknown:
        sys.exit(f"--variants: unknown {unknown}; choose from {VARIANTS}")
    if args.keep and not args.manifest and Path(args.keep).exists() and any(Path(args.keep).iterdir()):
        sys.exit(f"--keep {args.keep}: the folder is not empty; give a new folder or remove it first")
    torch.set_num_threads(args.threads)
    workdir = Path(args.keep).resolve() if args.keep else Path(tempfile.mkdtemp(prefix="distillery-quality-"))
    workdir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    load = os.getloadavg()[0]
    try:
        seed = split_seed(args.family, args.world_seed, args.sequences, args.min_test, 2, args.min_train)
        if args.manifest:
            manifest = Path(args.manifest).resolve()
            workdir = manifest.parents[2]  # <folder>/results/manifest/manifest.h5: the world is beside it
        else:
            write_config(workdir / "bench.yaml", args, seed)
            manifest = build_manifest(workdir, workdir / "bench.yaml", args.threads)
        data_s = round(time.perf_counter() - start, 1)
        print(f"manifest built in {data_s} s: {manifest}", flush=True)
        results = {}
        for variant in variants:
            print(f"--- {variant}", flush=True)
            results[variant] = run_variant(variant, manifest, workdir, args)
            print(json.dumps(results[variant]["figures"]), flush=True)
    finally:
        if not args.keep and not args.manifest:
            shutil.rmtree(workdir, ignore_errors=True)
    steps = args.epochs * math.ceil(args.samples_per_epoch / args.batch_size)
    report(args.name, {
        "world": {"family": args.family, "seed": args.world_seed, "sequences": args.sequences, "frames": args.frames,
                  "sharding_seed": seed, "splits": SPLITS},
        "budget": {"epochs": args.epochs, "samples_per_epoch": args.samples_per_epoch, "batch_size": args.batch_size,
                   "steps": steps, "recipe": "V4 (efficientvit_b1, metric teacher, berHu + Kendall), encoder from "
                   "random weights: no frozen epochs, encoder_lr_scale 1.0"},
        "share": args.share, "interval": "95 % bootstrap over test sequences",
        "results": results, "goals": goals(results),
        "data_s": data_s, "wall_s": round(time.perf_counter() - start, 1), "threads": args.threads,
        "load_before": round(load, 2),
    })


if __name__ == "__main__":
    main()
