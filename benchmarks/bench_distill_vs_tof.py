"""Does distillation pay? The same student trained on teacher depth vs. on ToF alone, judged on truth.

Both variants train briefly on CPU with identical settings and seed; only the
depth target differs (`hybrid`: teacher depth where a frame has it, else ToF;
`tof_only`). They are then scored on the validation split against synthetic
ground truth (`truth_depth`), overall and on the pixels where ToF is not
usable, the pixels the student exists to fill. The claim to check: the
distilled student wins there.

    python benchmarks/bench_distill_vs_tof.py --manifest results/manifest/manifest.h5

The manifest needs truth depth on its validation frames and teacher depth on
its training frames. Until the teachers exist, --simulate-teacher-from-truth
makes a copy whose teacher depth is the truth with a simulated teacher's error
(per-frame scale error, smooth low-frequency error, blurred edges, pixel
noise). That is a rehearsal of the comparison, not evidence for it, and the
output says so.
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from common import report

from distillery.manifest import Manifest
from distillery.student.checkpoint import load_student
from distillery.student.config import TrainConfig
from distillery.student.data import build_val_dataset, make_loader
from distillery.student.metrics import Evaluator
from distillery.student.train import setup_run, train

SIMULATED_BANNER = ("!" * 78 + "\n!! SIMULATED TEACHER: teacher_depth was made from truth_depth plus simulated "
                    "error.\n!! This rehearses the comparison; it is NOT evidence that distillation beats ToF.\n"
                    + "!" * 78)
METRICS = ("rmse", "mae", "absrel", "delta1")


def simulated_teacher(truth: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Truth depth with the errors of a metric monocular teacher: a per-frame scale error (~5 %), a
    smooth low-frequency error field (~5 %), over-smoothed depth edges and 1 % pixel noise."""
    h, w = truth.shape
    depth = torch.from_numpy(truth.astype(np.float32))[None, None]
    blurred = F.avg_pool2d(F.pad(depth, (2, 2, 2, 2), mode="replicate"), 5, stride=1)
    field = F.interpolate(torch.from_numpy(rng.normal(0, 0.05, (1, 1, 4, 5)).astype(np.float32)), size=(h, w),
                          mode="bicubic", align_corners=False)
    scale = float(np.exp(rng.normal(0, 0.05)))
    noise = torch.from_numpy(rng.normal(0, 0.01, (h, w)).astype(np.float32))
    teacher = blurred[0, 0] * scale * (1 + field[0, 0]) * (1 + noise)
    return np.where(truth > 0, teacher.clamp_min(0).numpy(), 0).astype(np.float16)


def with_simulated_teacher(manifest: str, folder: Path, seed: int = 0) -> str:
    """A copy of the manifest (and its jsonl) whose frames with truth get a simulated teacher depth."""
    import h5py

    src = Path(manifest)
    dst = folder / src.name
    shutil.copyfile(src, dst)
    if src.with_suffix(".jsonl").exists():
        shutil.copyfile(src.with_suffix(".jsonl"), dst.with_suffix(".jsonl"))
    rng = np.random.default_rng(seed)
    with h5py.File(dst, "r+") as f:
        for row in np.flatnonzero(f["has_truth_depth"][:]):
            f["teacher_depth"][row] = simulated_teacher(f["truth_depth"][row], rng)
            f["has_teacher_depth"][row] = True
    jsonl = dst.with_suffix(".jsonl")
    if jsonl.exists():  # keep the jsonl's flags in step with the HDF5 file
        jsonl.unlink()
    return str(dst)


def check_manifest(path: str, simulate: bool) -> None:
    m = Manifest(path)
    if not len(m.indices(split="val", require=("has_truth_depth",))):
        raise SystemExit(f"{path}: no validation frames with truth_depth; use a synthetic world's manifest")
    if not simulate and not len(m.indices(split="train", require=("has_teacher_depth",))):
        raise SystemExit(f"{path}: no training frames with teacher depth. Run the teachers first, or pass "
                         "--simulate-teacher-from-truth for a rehearsal with a simulated teacher.")


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
    parser.add_argument("--simulate-teacher-from-truth", action="store_true",
                        help="fill teacher depth from truth + simulated error (rehearsal only)")
    parser.add_argument("--backbone", default="efficientvit_b1", choices=("efficientvit_b1", "mobilenetv3_small"))
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--samples-per-epoch", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    check_manifest(args.manifest, args.simulate_teacher_from_truth)
    if args.simulate_teacher_from_truth:
        print(SIMULATED_BANNER)
    cfg = TrainConfig(backbone=args.backbone, encoder_weights="auto", epochs=args.epochs, freeze_encoder_epochs=1,
                      samples_per_epoch=args.samples_per_epoch, batch_size=args.batch_size, num_workers=args.workers,
                      augment=True, seed=args.seed, progress=True)
    with tempfile.TemporaryDirectory() as tmp:
        manifest = (with_simulated_teacher(args.manifest, Path(tmp), args.seed) if args.simulate_teacher_from_truth
                    else args.manifest)
        results, runs = {}, {}
        for name, target in (("teacher", "hybrid"), ("tof_only", "tof_only")):
            out = Path(tmp) / name
            runs[name] = train_variant(dataclasses.replace(cfg, depth_target=target), manifest, out)
            results[name] = score(out / "best.pt", manifest, args.batch_size)
    table = compare(results)
    for key, row in table.items():
        print(f"{key:36s} teacher {row['teacher']:8.4f}  tof_only {row['tof_only']:8.4f}  -> {row['winner']}")
    report("bench_distill_vs_tof", {
        "manifest": args.manifest, "simulated_teacher": args.simulate_teacher_from_truth,
        "backbone": args.backbone, "epochs": args.epochs, "samples_per_epoch": args.samples_per_epoch,
        "runs": runs, "comparison": table,
        "teacher_wins_on_tof_invalid_rmse": table.get("depth/truth_tof_invalid/rmse", {}).get("winner") == "teacher",
    })
    if args.simulate_teacher_from_truth:
        print(SIMULATED_BANNER)


if __name__ == "__main__":
    main()
