"""Evaluation throughput: frames/s of `distillery evaluate`, as a share of the student's own forward speed.

Both are measured in the same run on the same frames and model: first the
bare forward pass over frames already in memory (the ceiling), then the whole
evaluation (manifest reads, forward, fusion, every reference x region of
student and fused depth, per-frame confusion matrices, the sequence bootstrap
and the written JSON, frames.jsonl and predictions). The ratio says what the
evaluation adds on top of running the network.

    python benchmarks/bench_evaluate.py                       # generated 240x320 manifest, random weights
    python benchmarks/bench_evaluate.py --manifest results/manifest/manifest.h5 --set rooms
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np
import torch
from common import report

from distillery.evaluation import EvalSettings, evaluate
from distillery.manifest import Manifest, create_layout
from distillery.student.checkpoint import atomic_save, load_student, snapshot, weights_file
from distillery.student.config import TrainConfig
from distillery.student.fold import for_inference
from distillery.student.losses import StudentLoss
from distillery.student.model import build_student


def generated_manifest(path: Path, frames: int, sequences: int, size=(240, 320), seed: int = 0) -> str:
    """A test-split manifest of smooth random scenes with ToF holes, teacher and truth slots filled."""
    rng = np.random.default_rng(seed)
    h, w = size
    ramp = np.linspace(0.5, 4.5, h, dtype=np.float32)[:, None] * np.ones(w, np.float32)
    with h5py.File(path, "w") as f:
        create_layout(f, frames, h, w)
        f.attrs["content_id"] = "bench"
        for i in range(frames):
            truth = ramp * rng.uniform(0.8, 1.2)
            tof = np.where(rng.uniform(size=(h, w)) < 0.3, 0, truth).astype(np.float32)
            sequence = f"seq{i % sequences}"
            f["rgb"][i] = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
            f["tof_depth"][i], f["tof_confidence"][i] = tof, (tof > 0) * 0.9
            f["truth_depth"][i], f["has_truth_depth"][i] = truth, True
            f["teacher_depth"][i], f["has_teacher_depth"][i] = truth * 1.05, True
            f["truth_label"][i], f["has_truth_label"][i] = (ramp * 1.2).astype(np.uint8) % 6, True
            f["key"][i], f["sequence"][i] = f"bench/{sequence}/{i:04d}", sequence
            f["dataset"][i], f["split"][i] = "bench", "test"
    return str(path)


def random_checkpoint(path: Path, backbone: str) -> Path:
    torch.manual_seed(0)
    cfg = TrainConfig(backbone=backbone, encoder_weights="random")
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_save(weights_file(snapshot(build_student(cfg), StudentLoss()), cfg, {}, 0, 0, "random"), path)
    return path


@torch.no_grad()
def forward_fps(checkpoint: Path, manifest: str, dataset: str, batch_size: int, device: str) -> float:
    """Frames/s of the student's forward pass alone, inputs already in memory (one warm-up batch), made for
    inference as the evaluation makes it (BatchNorms folded, NHWC memory format)."""
    model = for_inference(load_student(checkpoint, device))
    m = Manifest(manifest)
    rows = m.indices(split="test", dataset=dataset)
    rgb = torch.from_numpy(np.stack([m.read(int(r), ("rgb",))["rgb"] for r in rows])).permute(0, 3, 1, 2)
    rgb = (rgb.float() / 255).to(device)
    model(rgb[:batch_size])
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for i in range(0, len(rgb), batch_size):
        model(rgb[i:i + batch_size])
    if device == "cuda":
        torch.cuda.synchronize()
    return len(rgb) / (time.perf_counter() - start)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--manifest", help="manifest.h5 to evaluate on (default: a generated one)")
    p.add_argument("--set", default="bench", help="dataset of the manifest (default: the generated one)")
    p.add_argument("--checkpoint", help="student checkpoint (default: random weights)")
    p.add_argument("--backbone", default="efficientvit_b1", help="backbone of the random-weight student")
    p.add_argument("--frames", type=int, default=32, help="frames of the generated manifest")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--resamples", type=int, default=1000)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        manifest = args.manifest or generated_manifest(tmp / "manifest.h5", args.frames, sequences=4)
        checkpoint = Path(args.checkpoint) if args.checkpoint else random_checkpoint(tmp / "V" / "best.pt",
                                                                                       args.backbone)
        fwd = forward_fps(checkpoint, manifest, args.set, args.batch_size, args.device)
        settings = EvalSettings(batch_size=args.batch_size, device=args.device, resamples=args.resamples,
                                progress=False)
        start = time.perf_counter()
        result = evaluate(str(checkpoint), manifest, args.set, str(tmp / "out" / f"{args.set}.json"),
                          str(tmp / "out"), settings)
        seconds = time.perf_counter() - start
    fps = result["frames"] / seconds
    report("evaluate", {"frames": result["frames"], "sequences": result["sequences"],
                        "size": list(Manifest(manifest).size) if args.manifest else [240, 320],
                        "backbone": args.backbone if not args.checkpoint else "checkpoint",
                        "settings": dataclasses.asdict(settings), "threads": torch.get_num_threads(),
                        "forward_frames_per_s": round(fwd, 2), "evaluate_frames_per_s": round(fps, 2),
                        "evaluate_seconds": round(seconds, 2),
                        "evaluate_over_forward_throughput": round(fps / fwd, 3)})


if __name__ == "__main__":
    main()
