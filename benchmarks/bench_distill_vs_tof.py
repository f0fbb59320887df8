"""Does distillation pay? The same student trained on teacher depth vs. on ToF alone, judged on truth.

Both variants train briefly on CPU with identical settings and seed; only the
depth target differs (`hybrid`: teacher depth where a frame has it, else ToF;
`tof_only`). They are then scored on the validation split against synthetic
ground truth (`truth_depth`), overall and on the pixels where ToF is not
usable, the pixels the student exists to fill. The claim to check: the
distilled student wins there.

    python benchmarks/bench_distill_vs_tof.py --manifest results/manifest/manifest.h5

The manifest needs truth depth on its validation frames and teacher depth on
its training frames: the demo's manifest (`make demo`), whose teacher depth
comes from the simulated Depth Anything 3 of the workflow (the sample world's
truth with a metric teacher's errors), qualifies.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
from pathlib import Path

import h5py
import torch
from common import report

from distillery.manifest import Manifest
from distillery.student.checkpoint import load_student
from distillery.student.config import TrainConfig
from distillery.student.data import build_val_dataset, make_loader
from distillery.student.metrics import Evaluator
from distillery.student.train import setup_run, train

METRICS = ("rmse", "mae", "absrel", "delta1")


def teacher_backend(path: str) -> str:
    """Which depth teacher labelled the manifest, from the layer provenance in its folder, if recorded."""
    layer_dir = Path(path).resolve().parents[1] / "teachers" / "depth"
    for layer in sorted(layer_dir.glob("shard-*.h5")):
        with h5py.File(layer, "r") as f:
            return json.loads(f.attrs.get("teacher", "{}")).get("backend", "unknown")
    return "unknown"


def check_manifest(path: str) -> None:
    m = Manifest(path)
    if not len(m.indices(split="val", require=("has_truth_depth",))):
        raise SystemExit(f"{path}: no validation frames with truth_depth; use a synthetic world's manifest")
    if not len(m.indices(split="train", require=("has_teacher_depth",))):
        raise SystemExit(f"{path}: no training frames with teacher depth; run the teachers first (make demo)")


@torch.no_grad()
def score(checkpoint: Path, manifest: str, batch_size: int) -> dict:
    """Validation metrics of a checkpoint: every depth reference, truth included."""
    model = load_student(checkpoint)
    cfg = TrainConfig(batch_size=batch_size)
    evaluator = Evaluator(model.seg_decoder.head.out_channels, "hybrid")
    for batch in make_loader(build_val_dataset([Manifest(manifest)], cfg), batch_size, 0):
        evaluator.update(model(batch["rgb"]), batch)
    return evaluator.compute()


def train_variant(cfg: TrainConfig, manifest: str, out: Path) -> dict:
    summary = train(setup_run(cfg, [manifest], out, resume="never"))
    return {"steps": summary["global_step"], "best_epoch": summary["best_epoch"]}


def compare(results: dict) -> dict:
    """Per reference and metric: the two variants and which wins (lower is better but for delta1)."""
    table = {}
    for reference in ("truth_tof_invalid", "truth", "tof"):
        for metric in METRICS:
            key = f"depth/{reference}/{metric}"
            a, b = results["teacher"].get(key), results["tof_only"].get(key)
            if a is None or b is None:
                continue
            teacher_wins = a > b if metric == "delta1" else a < b
            table[key] = {"teacher": round(a, 4), "tof_only": round(b, 4),
                          "winner": "teacher" if teacher_wins else "tof_only"}
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--manifest", required=True, help="manifest.h5 with truth depth (a synthetic world)")
    parser.add_argument("--backbone", default="efficientvit_b1", choices=("efficientvit_b1", "mobilenetv3_small"))
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--samples-per-epoch", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    check_manifest(args.manifest)
    cfg = TrainConfig(backbone=args.backbone, encoder_weights="auto", epochs=args.epochs, freeze_encoder_epochs=1,
                      samples_per_epoch=args.samples_per_epoch, batch_size=args.batch_size, num_workers=args.workers,
                      augment=True, seed=args.seed, progress=True)
    with tempfile.TemporaryDirectory() as tmp:
        manifest = args.manifest
        results, runs = {}, {}
        for name, target in (("teacher", "hybrid"), ("tof_only", "tof_only")):
            out = Path(tmp) / name
            runs[name] = train_variant(dataclasses.replace(cfg, depth_target=target), manifest, out)
            results[name] = score(out / "best.pt", manifest, args.batch_size)
    table = compare(results)
    for key, row in table.items():
        print(f"{key:36s} teacher {row['teacher']:8.4f}  tof_only {row['tof_only']:8.4f}  -> {row['winner']}")
    report("bench_distill_vs_tof", {
        "manifest": args.manifest, "teacher": teacher_backend(args.manifest),
        "backbone": args.backbone, "epochs": args.epochs, "samples_per_epoch": args.samples_per_epoch,
        "runs": runs, "comparison": table,
        "teacher_wins_on_tof_invalid_rmse": table.get("depth/truth_tof_invalid/rmse", {}).get("winner") == "teacher",
    })


if __name__ == "__main__":
    main()
