"""Student training throughput on CPU: training and loader samples/s, forward latency, parameter count.

The loader should outrun training by at least 5x (goal), so that data never
limits a run. Forward latency is PyTorch on CPU for one 240x320 frame with 2
threads (median and p99 over many runs after a warm-up), a reference point
for the deployed TensorRT engine, not a substitute for it.

    python benchmarks/bench_train.py [--manifest results/manifest/manifest.h5] [--steps 10]

Without --manifest, a manifest of random 240x320 frames (every teacher slot
filled) is written to a temporary folder.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np
import torch
from common import report

from distillery.manifest import Manifest, create_layout
from distillery.student.config import TrainConfig
from distillery.student.data import build_train_data, make_loader
from distillery.student.model import build_student, count_parameters
from distillery.student.train import setup_run, train_step


def random_manifest(path: Path, frames: int, size=(240, 320), seed: int = 0) -> str:
    """A manifest of random frames with ToF, teacher depth and labels, as the benchmark's data."""
    rng = np.random.default_rng(seed)
    h, w = size
    with h5py.File(path, "w") as f:
        create_layout(f, frames, h, w)
        for i in range(frames):
            depth = rng.uniform(0.5, 5.0, (h, w)).astype(np.float32)
            f["rgb"][i] = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
            f["tof_depth"][i] = np.where(rng.random((h, w)) < 0.3, depth, 0)
            f["tof_confidence"][i] = (f["tof_depth"][i] > 0) * 0.9
            f["teacher_depth"][i], f["has_teacher_depth"][i] = depth, True
            f["teacher_label"][i], f["has_teacher_label"][i] = rng.integers(0, 6, (h, w), dtype=np.uint8), True
            f["key"][i], f["dataset"][i], f["sequence"][i] = f"bench/s/{i:05d}", "bench", "s"
            f["split"][i] = "train"
    return str(path)


def training_samples_per_s(cfg: TrainConfig, manifest: str, out: Path, steps: int, compile_model: bool = False,
                           warmup: int = 1) -> float:
    """Optimiser steps per second x batch size, data loading excluded (batches are prepared first)."""
    run = setup_run(cfg, [manifest], out, resume="never")
    batches = [next(iter(run.train_loader)) for _ in range(2)]
    run.model.train()
    model = torch.compile(run.model) if compile_model else run.model
    for i in range(warmup):  # allocator, kernels, and compilation
        train_step(run, model, batches[i % 2])
    synchronize(run.device)
    start = time.perf_counter()
    for i in range(steps):
        train_step(run, model, batches[i % 2])
    synchronize(run.device)
    return steps * cfg.batch_size / (time.perf_counter() - start)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def gpu_training(cfg: TrainConfig, manifest: str, tmp: Path, steps: int) -> dict:
    """Training samples/s on CUDA per AMP mode, eager and with torch.compile."""
    rates = {}
    for amp in ("bf16", "off"):
        for compiled in (False, True):
            run_cfg = dataclasses.replace(cfg, device="cuda", amp=amp, num_workers=0)
            key = f"{amp}{'_compiled' if compiled else '_eager'}"
            rates[key] = round(training_samples_per_s(run_cfg, manifest, tmp / key, steps, compiled, warmup=5), 1)
    return {"device": torch.cuda.get_device_name(), "torch": torch.__version__,
            "batch_size": cfg.batch_size, "train_samples_per_s": rates}


def loader_samples_per_s(cfg: TrainConfig, manifest: str, batches: int) -> float:
    """Samples per second out of the training DataLoader (read, decode, augment, collate)."""
    dataset, sampler = build_train_data([Manifest(manifest)], cfg)
    loader = make_loader(dataset, cfg.batch_size, cfg.num_workers, sampler)
    iterator = iter(loader)
    next(iterator)  # worker start-up is not throughput
    start = time.perf_counter()
    n = 0
    for _, batch in zip(range(batches), iterator):
        n += len(batch["rgb"])
    return n / (time.perf_counter() - start)


def forward_latency_ms(backbone: str, runs: int, threads: int = 2) -> dict:
    """Eager forward of one frame, channels_last as the evaluation runs it."""
    torch.set_num_threads(threads)
    model = build_student(TrainConfig(backbone=backbone, encoder_weights="random")).eval()
    model = model.to(memory_format=torch.channels_last)
    x = torch.rand(1, 3, 240, 320).contiguous(memory_format=torch.channels_last)
    times = []
    with torch.inference_mode():
        for _ in range(10):
            model(x)
        for _ in range(runs):
            start = time.perf_counter()
            model(x)
            times.append((time.perf_counter() - start) * 1e3)
    times.sort()
    return {"median": round(statistics.median(times), 2), "p99": round(times[int(0.99 * (len(times) - 1))], 2),
            "mean": round(statistics.fmean(times), 2)}


def parameter_counts(backbone: str) -> dict:
    model = build_student(TrainConfig(backbone=backbone, encoder_weights="random"))
    total, encoder = count_parameters(model), count_parameters(model.encoder)
    return {"total": total, "encoder": encoder, "decoders": total - encoder}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--manifest", default=None, help="manifest.h5 (default: random 240x320 frames)")
    parser.add_argument("--backbone", default="efficientvit_b1", choices=("efficientvit_b1", "mobilenetv3_small"))
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--workers", type=int, default=1, help="DataLoader workers (default 1)")
    parser.add_argument("--steps", type=int, default=10, help="timed training steps")
    parser.add_argument("--latency-runs", type=int, default=200)
    parser.add_argument("--gpu", action="store_true",
                        help="CUDA mode: training samples/s per AMP mode, eager and torch.compile (e.g. --batch-size 64)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        manifest = args.manifest or random_manifest(Path(tmp) / "bench.h5", max(64, 2 * args.batch_size))
        cfg = TrainConfig(backbone=args.backbone, encoder_weights="random", batch_size=args.batch_size,
                          num_workers=args.workers, augment=True, progress=False, freeze_encoder_epochs=0)
        if args.gpu:
            report("bench_train_gpu", {"backbone": args.backbone, **gpu_training(cfg, manifest, Path(tmp), args.steps)})
            return
        train_rate = training_samples_per_s(dataclasses.replace(cfg, num_workers=0), manifest, Path(tmp) / "run",
                                            args.steps)
        loader_rate = loader_samples_per_s(cfg, manifest, batches=max(8, args.steps))
        plain_loader = loader_samples_per_s(dataclasses.replace(cfg, augment=False), manifest, max(8, args.steps))
    report("bench_train", {
        "backbone": args.backbone, "batch_size": args.batch_size, "loader_workers": args.workers,
        "torch_threads": torch.get_num_threads(), "manifest": args.manifest or "random 240x320 frames",
        "train_samples_per_s": round(train_rate, 2),
        "loader_samples_per_s_augmented": round(loader_rate, 1),
        "loader_samples_per_s_plain": round(plain_loader, 1),
        "loader_over_training": round(loader_rate / train_rate, 1),
        "forward_latency_ms_1x3x240x320_2_threads": forward_latency_ms(args.backbone, args.latency_runs),
        "parameters": parameter_counts(args.backbone),
    })


if __name__ == "__main__":
    main()
