"""Deployed student on CPU: PyTorch eager, ONNX Runtime FP32 and INT8 latency, fusion, against the FLOP roofline.

One 1x3x240x320 frame, 2 threads everywhere, median and p99 over --runs timed
runs after --warmup untimed ones. PyTorch eager runs in the NHWC memory format
(channels_last), its faster layout on CPU and the one the evaluation uses. In the same run the machine's fp32 matmul
throughput (torch, 2 threads, 1024^3) is measured, and the student's FLOPs are
counted (torch.utils.flop_counter, 2 FLOPs per multiply-add), so every latency
is also given as a ratio to the roofline time FLOPs / matmul throughput: a
ratio near 1 means the runtime keeps the cores as busy as a dense matmul does.
ONNX Runtime's profiler then splits the FP32 graph's time by operator, and its
convolutions by family (pointwise, depthwise, dense, transposed) with their
FLOP rates as a share of the matmul's: where the time is, and which layers
are bound by memory rather than arithmetic.

    python benchmarks/bench_deploy.py [--deploy-dir results/deploy/demo] [--runs 200]

With --deploy-dir the workflow's student.onnx / student.int8.onnx are timed;
otherwise a randomly initialised EfficientViT-B1 student is exported and
quantised here (calibrated on 8 random frames: its latency, not its accuracy,
is what this measures).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
from common import report

from distillery import fusion
from distillery.deploy import spec
from distillery.deploy.engine import FILES, ONNX_FILES
from distillery.deploy.parity import ort_session

THREADS = 2


def latency(fn, warmup: int, runs: int) -> dict:
    """Median, p99 and mean of fn() in ms after `warmup` untimed calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e3)
    t = np.asarray(times)
    return {"median_ms": round(float(np.median(t)), 3), "p99_ms": round(float(np.percentile(t, 99)), 3),
            "mean_ms": round(float(t.mean()), 3), "runs": runs}


def matmul_gflops(n: int = 1024, reps: int = 20) -> float:
    """Best-of fp32 matmul throughput (GFLOP/s) of torch on THREADS threads."""
    a, b = torch.rand(n, n), torch.rand(n, n)
    for _ in range(3):
        a @ b
    best = float("inf")
    for _ in range(reps):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best / 1e9


def student_gflop(model) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(torch.rand(1, 3, spec.HEIGHT, spec.WIDTH))
    return counter.get_total_flops() / 1e9


def onnx_files(deploy_dir: str | None, model, tmp: Path) -> tuple[Path, Path, str]:
    """student.onnx and student.int8.onnx: the workflow's, or exported and quantised here."""
    if deploy_dir:
        d = Path(deploy_dir)
        return d / ONNX_FILES["fp32"], d / ONNX_FILES["int8"], str(d)
    from distillery.deploy.export import export_student
    from distillery.deploy.quantize import quantize_int8

    print("exporting and quantising a random-weight student", flush=True)
    fp32, calib = tmp / ONNX_FILES["fp32"], tmp / FILES["calibration"]
    export_student(model, fp32)
    rng = np.random.default_rng(0)
    np.savez(calib, rgb=rng.integers(0, 256, (8, 3, spec.HEIGHT, spec.WIDTH), dtype=np.uint8),
             keys=np.array([f"random/{i}" for i in range(8)]), datasets=np.array(["random"] * 8),
             seed=np.int64(0), split=np.array("none"))
    quantize_int8(fp32, calib, tmp / ONNX_FILES["int8"])
    return fp32, tmp / ONNX_FILES["int8"], "exported here (random weights)"


def conv_kind(op: str, weight_shape: list) -> str:
    """pointwise, depthwise, dense kxk or transposed: the convolution families of the student."""
    if op == "ConvTranspose":
        return "transposed"
    if weight_shape[1] == 1:
        return "depthwise"
    return "pointwise" if weight_shape[2:] == [1, 1] else "dense_{}x{}".format(*weight_shape[2:])


def conv_flop(op: str, shapes: list, out_shape: list) -> float:
    """2 x multiply-adds of one Conv / ConvTranspose node from the shapes ONNX Runtime's profiler records."""
    x, w = shapes[0], shapes[1]
    if op == "ConvTranspose":  # every input pixel meets every out channel through the whole kernel
        return 2.0 * np.prod(x) * out_shape[1] * 16
    return 2.0 * np.prod(out_shape) * w[1] * w[2] * w[3]


def ort_time_by_operator(path: Path, x: np.ndarray, runs: int, matmul: float) -> dict:
    """ONNX Runtime's own per-node kernel times (its profiler), summed by operator over `runs` runs.

    Convolutions are split by family with their FLOPs, so each family's throughput can be read
    against the matmul's: it shows where a FLOP roofline is out of reach (memory-bound layers).
    """
    session = ort_session(path, THREADS, profile_prefix=str(Path(tempfile.gettempdir()) / "bench_deploy_profile"))
    for _ in range(runs):
        session.run(None, {spec.INPUT: x})
    trace = Path(session.end_profiling())
    events = [e for e in json.loads(trace.read_text()) if e.get("cat") == "Node" and e["name"].endswith("_kernel_time")]
    trace.unlink()
    ms, flop, nodes = defaultdict(float), defaultdict(float), defaultdict(set)
    for e in events:
        op = e["args"]["op_name"]
        if op in ("Conv", "ConvTranspose"):
            shapes = [next(iter(d.values())) for d in e["args"]["input_type_shape"]]
            out = next(iter(e["args"]["output_type_shape"][0].values()))
            flop_count = conv_flop(op, shapes, out)
            op = f"Conv:{conv_kind(op, shapes[1])}"
            flop[op] += flop_count / runs
        ms[op] += e["dur"] / 1e3 / runs
        nodes[op].add(e["name"])
    table = {}
    for op in sorted(ms, key=ms.get, reverse=True):
        row = {"ms": round(ms[op], 3), "nodes": len(nodes[op])}
        if op in flop:
            gflops = flop[op] / ms[op] / 1e6
            row.update(gflop=round(float(flop[op]) / 1e9, 3), gflops=round(float(gflops), 1),
                       of_matmul=round(float(gflops) / matmul, 2))
        table[op] = row
    return {"kernel_ms": round(sum(ms.values()), 3), "by_operator": table}


def fusion_latency(warmup: int, runs: int) -> dict:
    """distillery.fusion.fuse of one frame with ~22 % trusted ToF (numpy)."""
    rng = np.random.default_rng(0)
    student = rng.uniform(0.5, 5, (spec.HEIGHT, spec.WIDTH)).astype(np.float32)
    tof = (student * 1.2).astype(np.float32)
    conf = (rng.random(student.shape) < 0.22).astype(np.float32)
    return latency(lambda: fusion.fuse(student, tof, conf), warmup, runs)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--deploy-dir", default=None, help="results/deploy/<version> of a workflow run")
    p.add_argument("--runs", type=int, default=200)
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--profile-runs", type=int, default=50, help="runs of ONNX Runtime's profiler (FP32 per operator)")
    args = p.parse_args()
    torch.set_num_threads(THREADS)
    from distillery.student.config import TrainConfig
    from distillery.student.model import build_student

    model = build_student(TrainConfig(backbone="efficientvit_b1", encoder_weights="random")).eval()
    x = np.random.default_rng(1).random((1, 3, spec.HEIGHT, spec.WIDTH), dtype=np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        fp32, int8, source = onnx_files(args.deploy_dir, model, Path(tmp))
        figures = {"threads": THREADS, "input": [1, 3, spec.HEIGHT, spec.WIDTH], "onnx": source}
        model = model.to(memory_format=torch.channels_last)
        xt = torch.from_numpy(x).contiguous(memory_format=torch.channels_last)
        print(f"timing {args.runs} runs each after {args.warmup} warm-up runs", flush=True)
        with torch.no_grad():
            figures["torch_eager"] = latency(lambda: model(xt), args.warmup, args.runs)
        # One live session at a time: a session that has run keeps its threads spinning for a while
        # after, and they would take the cores from whatever is timed next.
        for name, path in (("ort_fp32", fp32), ("ort_int8", int8)):
            session = ort_session(path, THREADS)
            figures[name] = latency(lambda: session.run(None, {spec.INPUT: x}), args.warmup, args.runs)
            del session
        gflops = matmul_gflops()
        figures["ort_fp32_profile"] = ort_time_by_operator(fp32, x, args.profile_runs, gflops)
    figures["fusion_numpy"] = fusion_latency(args.warmup, args.runs)
    flop = student_gflop(model)
    roofline_ms = flop / gflops * 1e3
    figures.update(matmul_fp32_gflops=round(gflops, 1), student_gflop=round(flop, 3),
                   roofline_ms=round(roofline_ms, 3))
    figures["ratio_to_roofline"] = {k: round(figures[k]["median_ms"] / roofline_ms, 3)
                                    for k in ("torch_eager", "ort_fp32", "ort_int8")}
    figures["int8_speedup_vs_fp32"] = round(figures["ort_fp32"]["median_ms"] / figures["ort_int8"]["median_ms"], 3)
    report("bench_deploy", figures)


if __name__ == "__main__":
    main()
