#!/usr/bin/env python3
"""Build and benchmark TensorRT engines of the student's ONNX files.

Needs only the Python standard library, numpy and TensorRT: this file is
copied unchanged into every Jetson bundle as `build_and_bench.py`, because a
Jetson's Python and JetPack differ from the cluster's and an engine must be
built on the device that runs it. CUDA memory and streams come from the CUDA
runtime library through ctypes (no pycuda, no torch).

    python3 build_and_bench.py all                        # in a bundle: every precision, then a summary
    python3 build_and_bench.py build --onnx student.onnx --precision fp32 --out fp32.plan --meta fp32.json
    python3 build_and_bench.py bench --engine fp32.plan --out fp32.latency.json [--frames calibration.npz]

Precisions: fp32 builds student.onnx; fp16 builds student.fp16.onnx (the
precision is in the file); int8 builds the explicitly quantised
student.int8.onnx (Q/DQ, no calibrator). One optimisation profile: batch 1
(min), 1 (opt), 8 (max); 1 GiB workspace.

TensorRT 8.5 and newer (JetPack 5.1 onwards). The API differs between major
versions in two places, each handled in one function:
  network_flags    8.x: the EXPLICIT_BATCH flag (the 8.x ONNX parser refuses an
                   implicit-batch network); 10.x: none (always explicit batch,
                   the flag is deprecated); 11.x: none (strongly typed by default)
  precision_flags  8.x and 10.x (weakly typed): BuilderFlag FP16, and INT8 + FP16
                   for the Q/DQ graph; 11.x: none (the flags are removed, the
                   ONNX file's types decide)
Everything else uses the API that 8.5 through 11 share: set_memory_pool_limit
(not max_workspace_size, removed in 10), build_serialized_network (not
build_engine, removed in 10), the named-tensor I/O API (num_io_tensors,
get_tensor_*, set_input_shape, set_tensor_address, execute_async_v3; not the
binding API, removed in 10).

Latency is compared with a per-frame budget (--budget-ms, default 5 ms a
frame at batch 1: the student's share of 30 FPS for the whole perception on
the Jetson); the verdict is printed and written, pass or fail.

Exit status 2 with a one-line message when TensorRT, the CUDA runtime or a GPU
is missing; see the README section "Deployment: TensorRT engines".
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import glob
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

try:  # in the package; a Jetson bundle ships the writer as atomic.py beside this script
    from distillery.atomic import atomic_write
except ImportError:
    from atomic import atomic_write

PROFILE_BATCH = (1, 1, 8)
WORKSPACE_BYTES = 1 << 30
MIN_TENSORRT = (8, 5)  # JetPack 5.1; the named-tensor I/O API starts here
# Defaults of the engine settings (deploy.engine_warmup, engine_runs, latency_budget_ms, agreement_frames): they
# live here because this file travels alone in the bundle; distillery.deploy.settings reads them from here.
WARMUP = 50  # untimed runs before timing (deploy.engine_warmup)
RUNS = 1000  # timed runs (deploy.engine_runs)
BUDGET_MS = 5.0  # per frame at batch 1 (deploy.latency_budget_ms)
AGREEMENT_FRAMES = 32  # frames of the engine agreement check (deploy.agreement_frames)
# Engine-vs-FP32-engine bounds (the FP16 ONNX parity bounds of distillery.deploy.spec; this file imports
# nothing from the project). INT8 is gated on accuracy at quantisation; its engine agreement is reported.
AGREEMENT_BOUNDS = {"fp16": {"depth_p99_rel": 0.01, "seg_argmax_agreement_min": 0.98}}
DEPTH_REL_FLOOR_M = 0.1  # relative depth error is taken against max(FP32 depth, this)
# The deployed files' names, in results/deploy/ and in the Jetson bundle. They live here because this file
# travels alone in the bundle; the package (distillery.deploy) and the workflow (common.smk) read them from here.
FILES = {"fp32": "student.onnx", "fp16": "student.fp16.onnx", "int8": "student.int8.onnx", "fused": "fused.onnx",
         "calibration": "calibration.npz", "test_frames": "test_frames.npz", "card": "model_card.json"}
ONNX_FILES = {precision: FILES[precision] for precision in ("fp32", "fp16", "int8")}  # the student, per precision
README_SECTION = 'README "Deployment: TensorRT engines"'
H2D, D2H = 1, 2  # cudaMemcpyKind


class Unavailable(RuntimeError):
    """TensorRT, the CUDA runtime or a GPU is missing on this machine."""


def import_tensorrt():
    try:
        import tensorrt as trt
    except ImportError as err:
        raise Unavailable(f"TensorRT's Python package is not installed ({err}); on a GPU node: "
                          f"pip install '.[tensorrt]'; on a Jetson it comes with JetPack; see {README_SECTION}")
    if trt_version(trt) < MIN_TENSORRT:
        raise Unavailable(f"TensorRT {trt.__version__} is older than {'.'.join(map(str, MIN_TENSORRT))} "
                          f"(JetPack 5.1); upgrade JetPack or TensorRT; see {README_SECTION}")
    return trt


def trt_version(trt) -> tuple[int, int]:
    """(major, minor) of an imported tensorrt module."""
    major, minor = (trt.__version__.split(".") + ["0"])[:2]
    return int(major), int(minor)


def network_flags(trt) -> int:
    """create_network's flags: EXPLICIT_BATCH on 8.x, none on 10.x (always explicit) and 11.x (strongly typed)."""
    if trt_version(trt)[0] < 10:
        return 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    return 0


def _cudart_candidates() -> list[str]:
    names = [ctypes.util.find_library("cudart")] + [f"libcudart.so{v}" for v in ("", ".13", ".12", ".11.0")]
    for root in sys.path + ["/usr/local/cuda/lib64", "/usr/local/cuda/targets/aarch64-linux/lib"]:
        names += sorted(glob.glob(os.path.join(root, "nvidia", "*", "lib", "libcudart.so*")))
        names += sorted(glob.glob(os.path.join(root, "libcudart.so*")))
    return [n for n in names if n]


class Cuda:
    """The few CUDA runtime calls an engine needs, through ctypes."""

    def __init__(self):
        self.lib = None
        for name in _cudart_candidates():
            try:
                self.lib = ctypes.CDLL(name)
                break
            except OSError:
                continue
        if self.lib is None:
            raise Unavailable(f"the CUDA runtime library (libcudart) was not found; see {README_SECTION}")
        count = ctypes.c_int(0)
        if self.lib.cudaGetDeviceCount(ctypes.byref(count)) != 0 or count.value == 0:
            raise Unavailable(f"no NVIDIA GPU is visible to the CUDA runtime; see {README_SECTION}")

    def check(self, status: int, what: str) -> None:
        if status != 0:
            self.lib.cudaGetErrorString.restype = ctypes.c_char_p
            raise RuntimeError(f"CUDA {what} failed: {self.lib.cudaGetErrorString(status).decode()}")

    def malloc(self, nbytes: int) -> int:
        ptr = ctypes.c_void_p()
        self.check(self.lib.cudaMalloc(ctypes.byref(ptr), ctypes.c_size_t(nbytes)), "cudaMalloc")
        return ptr.value

    def free(self, ptr: int) -> None:
        self.lib.cudaFree(ctypes.c_void_p(ptr))

    def copy(self, dst, src, nbytes: int, kind: int) -> None:
        self.check(self.lib.cudaMemcpy(ctypes.c_void_p(dst), ctypes.c_void_p(src), ctypes.c_size_t(nbytes), kind),
                   "cudaMemcpy")

    def stream(self) -> int:
        s = ctypes.c_void_p()
        self.check(self.lib.cudaStreamCreate(ctypes.byref(s)), "cudaStreamCreate")
        return s.value or 0

    def sync(self, stream: int) -> None:
        self.check(self.lib.cudaStreamSynchronize(ctypes.c_void_p(stream)), "cudaStreamSynchronize")

    def mem_used(self) -> int:
        free, total = ctypes.c_size_t(), ctypes.c_size_t()
        self.check(self.lib.cudaMemGetInfo(ctypes.byref(free), ctypes.byref(total)), "cudaMemGetInfo")
        return total.value - free.value

    def device(self) -> dict:
        """GPU name and compute capability of device 0."""
        props = ctypes.create_string_buffer(8192)  # cudaDeviceProp; its first field is char name[256]
        fn = getattr(self.lib, "cudaGetDeviceProperties_v2", None) or self.lib.cudaGetDeviceProperties
        self.check(fn(props, 0), "cudaGetDeviceProperties")
        major, minor = ctypes.c_int(), ctypes.c_int()
        self.lib.cudaDeviceGetAttribute(ctypes.byref(major), 75, 0)  # cudaDevAttrComputeCapabilityMajor
        self.lib.cudaDeviceGetAttribute(ctypes.byref(minor), 76, 0)
        return {"gpu": props.raw[:256].split(b"\0", 1)[0].decode(), "compute_capability": f"{major.value}.{minor.value}"}


def precision_flags(trt, precision: str) -> list:
    """Builder flags of 8.x and 10.x (weakly typed: FP16, INT8 + FP16 for Q/DQ); none on 11.x, which removed
    them (strongly typed: the ONNX file's types decide)."""
    if trt_version(trt)[0] >= 11:
        return []
    wanted = {"fp32": [], "fp16": ["FP16"], "int8": ["INT8", "FP16"]}[precision]
    return [getattr(trt.BuilderFlag, f) for f in wanted]


def build_engine(onnx_path: str, precision: str, out: str, meta_out: str | None = None) -> dict:
    """Parse an ONNX file, build a serialized engine with the batch-1/1/8 profile and 1 GiB workspace."""
    trt = import_tensorrt()
    cuda = Cuda()
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(network_flags(trt))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(Path(onnx_path).read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise RuntimeError(f"{onnx_path}: TensorRT cannot parse it: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, WORKSPACE_BYTES)
    flags = precision_flags(trt, precision)
    for flag in flags:
        config.set_flag(flag)
    profile = builder.create_optimization_profile()
    for i in range(network.num_inputs):
        tensor = network.get_input(i)
        dims = list(tensor.shape)[1:]
        profile.set_shape(tensor.name, *[(b, *dims) for b in PROFILE_BATCH])
    config.add_optimization_profile(profile)
    start = time.perf_counter()
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise RuntimeError(f"{onnx_path}: TensorRT could not build a {precision} engine (see the log above)")
    with atomic_write(out) as tmp, open(tmp, "wb") as fh:
        fh.write(serialized)
    meta = {"onnx": str(onnx_path), "engine": str(out), "precision": precision, "tensorrt": trt.__version__,
            **cuda.device(), "builder_flags": [str(f) for f in flags], "profile_batch_min_opt_max": list(PROFILE_BATCH),
            "workspace_bytes": WORKSPACE_BYTES, "build_s": round(time.perf_counter() - start, 1),
            "engine_bytes": os.path.getsize(out)}
    if meta_out:
        write_json(meta_out, meta)
    return meta


class Runner:
    """A deserialized engine with device buffers for one batch size; run(inputs) -> outputs (numpy)."""

    def __init__(self, engine_path: str, batch: int):
        trt = import_tensorrt()
        self.cuda = Cuda()
        self.trt = trt
        self.mem_before = self.cuda.mem_used()
        self.runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        self.engine = self.runtime.deserialize_cuda_engine(Path(engine_path).read_bytes())
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self.inputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self.outputs = [n for n in names if n not in self.inputs]
        for name in self.inputs:
            self.context.set_input_shape(name, (batch, *list(self.engine.get_tensor_shape(name))[1:]))
        self.host, self.device = {}, {}
        for name in names:
            dtype = np.dtype(trt.nptype(self.engine.get_tensor_dtype(name)))
            self.host[name] = np.zeros(tuple(self.context.get_tensor_shape(name)), dtype)
            self.device[name] = self.cuda.malloc(self.host[name].nbytes)
            self.context.set_tensor_address(name, self.device[name])
        self.stream = self.cuda.stream()
        self.gpu_memory_bytes = self.cuda.mem_used() - self.mem_before

    def set_inputs(self, inputs: dict) -> None:
        for name in self.inputs:
            arr = np.ascontiguousarray(inputs[name], dtype=self.host[name].dtype)
            self.cuda.copy(self.device[name], arr.ctypes.data, arr.nbytes, H2D)

    def execute(self) -> None:
        if not self.context.execute_async_v3(self.stream):
            raise RuntimeError("TensorRT execution failed")
        self.cuda.sync(self.stream)

    def outputs_host(self) -> dict:
        for name in self.outputs:
            self.cuda.copy(self.host[name].ctypes.data, self.device[name], self.host[name].nbytes, D2H)
        return {name: self.host[name].copy() for name in self.outputs}

    def run(self, inputs: dict) -> dict:
        self.set_inputs(inputs)
        self.execute()
        return self.outputs_host()

    def close(self) -> None:
        for ptr in self.device.values():
            self.cuda.free(ptr)


def load_rgb(frames: str, count: int | None = None) -> np.ndarray:
    """rgb of a frames file (calibration.npz or test_frames.npz: uint8 [N,3,H,W]) as float32 in [0, 1]."""
    with np.load(frames) as z:
        rgb = z["rgb"][:count]
    return rgb.astype(np.float32) / 255.0


def sample_inputs(runner: Runner, frames: str | None, batch: int) -> dict:
    """Real frames from a frames file (rgb uint8) where given, else uniform [0, 1] noise."""
    rng = np.random.default_rng(0)
    out = {}
    for name in runner.inputs:
        shape = runner.host[name].shape
        if frames and name == "rgb":
            out[name] = np.resize(load_rgb(frames, batch), shape).astype(np.float32)
        else:
            out[name] = rng.random(shape, dtype=np.float32) * (4.0 if name == "tof" else 1.0)
    return out


def budget_verdict(result: dict, budget_ms: float) -> dict:
    """Compare the p99 latency per frame (p99 of a batch / batch size) with the per-frame budget."""
    per_frame = result["p99_ms"] / result["batch"]
    return {"budget_ms_per_frame": budget_ms, "p99_ms_per_frame": per_frame,
            "within_budget": bool(per_frame <= budget_ms), "verdict": "pass" if per_frame <= budget_ms else "fail"}


def benchmark(engine_path: str, batch: int = 1, warmup: int = WARMUP, runs: int = RUNS, frames: str | None = None,
              budget_ms: float = BUDGET_MS) -> dict:
    """Latency of execute (+ stream sync) after warm-up: mean, p50, p99, min (ms), GPU memory, and the
    verdict against the per-frame budget."""
    runner = Runner(engine_path, batch)
    try:
        runner.set_inputs(sample_inputs(runner, frames, batch))
        for _ in range(warmup):
            runner.execute()
        times = []
        for _ in range(runs):
            start = time.perf_counter()
            runner.execute()
            times.append((time.perf_counter() - start) * 1e3)
        t = np.asarray(times)
        result = {"engine": str(engine_path), "batch": batch, "warmup": warmup, "runs": runs,
                  "mean_ms": float(t.mean()), "p50_ms": float(np.percentile(t, 50)),
                  "p99_ms": float(np.percentile(t, 99)), "min_ms": float(t.min()),
                  "gpu_memory_bytes": runner.gpu_memory_bytes, "tensorrt": runner.trt.__version__,
                  **runner.cuda.device()}
    finally:
        runner.close()
    result["budget"] = budget_verdict(result, budget_ms)
    b = result["budget"]
    print(f"{engine_path}: latency budget {b['verdict'].upper()}: p99 {b['p99_ms_per_frame']:.3f} ms a frame "
          f"at batch {batch}, budget {budget_ms:g} ms", flush=True)
    return result


def run_batches(runner: Runner, name: str, rgb: np.ndarray, batch: int) -> dict:
    """Outputs of an engine over all frames, `batch` at a time (the last batch padded, the padding dropped)."""
    outs: dict[str, list] = {}
    for i in range(0, len(rgb), batch):
        chunk = rgb[i:i + batch]
        padded = np.concatenate([chunk, np.repeat(chunk[-1:], batch - len(chunk), 0)])
        for key, value in runner.run({name: padded}).items():
            outs.setdefault(key, []).append(value[:len(chunk)])
    return {k: np.concatenate(v) for k, v in outs.items()}


def agreement(engine: str, reference: str, frames: str, count: int = AGREEMENT_FRAMES,
              batch: int = PROFILE_BATCH[2], bounds: dict | None = None) -> dict:
    """Outputs of `engine` against `reference` (e.g. FP16 vs FP32) on the first `count` frames of a frames
    file, run `batch` at a time; with `bounds`, `passed` and what missed them."""
    rgb = load_rgb(frames, count)
    a, b = Runner(engine, batch), Runner(reference, batch)
    try:
        out_a, out_b = run_batches(a, "rgb", rgb, batch), run_batches(b, "rgb", rgb, batch)
    finally:
        a.close()
        b.close()
    diff = np.abs(out_a["depth"].astype(np.float64) - out_b["depth"])
    rel = diff / np.maximum(np.abs(out_b["depth"]), DEPTH_REL_FLOOR_M)
    result = {"engine": str(engine), "reference": str(reference), "frames": len(rgb), "frames_file": str(frames),
              "batch": batch, "depth_max_abs_m": float(diff.max()), "depth_mean_abs_m": float(diff.mean()),
              "depth_max_rel": float(rel.max()), "depth_p99_rel": float(np.percentile(rel, 99)),
              "seg_argmax_agreement": float((out_a["segmentation"].argmax(1) == out_b["segmentation"].argmax(1)).mean())}
    if bounds:
        failures = []
        if result["depth_p99_rel"] > bounds["depth_p99_rel"]:
            failures.append(f"depth p99 |diff| {result['depth_p99_rel']:.3g} of the FP32 depth > {bounds['depth_p99_rel']}")
        if result["seg_argmax_agreement"] < bounds["seg_argmax_agreement_min"]:
            failures.append(f"argmax agreement {result['seg_argmax_agreement']:.4f} < {bounds['seg_argmax_agreement_min']}")
        result.update(bounds=bounds, passed=not failures, failures=failures)
    return result


def write_json(path, data) -> None:
    with atomic_write(path) as tmp:
        Path(tmp).write_text(json.dumps(data, indent=1))


def bundle_frames(root: Path) -> str | None:
    """The frames a bundle times and compares engines on: its test frames, else its calibration frames."""
    for name in (FILES["test_frames"], FILES["calibration"]):
        if (root / name).is_file():
            return str(root / name)
    return None


def run_all(bundle: str, runs: int, warmup: int, budget_ms: float = BUDGET_MS,
            count: int = AGREEMENT_FRAMES) -> dict:
    """In a bundle folder: build every precision into engines/, benchmark each against the budget, compare
    FP16 and INT8 with FP32 over `count` frames; summary.json says what passed."""
    root = Path(bundle)
    frames = bundle_frames(root)
    (root / "engines").mkdir(exist_ok=True)
    summary = {"engines": {}, "latency": {}, "agreement_vs_fp32": {}, "budget_ms_per_frame": budget_ms}
    for precision, onnx_name in ONNX_FILES.items():
        plan = root / "engines" / f"{precision}.plan"
        summary["engines"][precision] = build_engine(str(root / onnx_name), precision, str(plan),
                                                     str(plan.with_suffix(".json")))
        summary["latency"][precision] = benchmark(str(plan), 1, warmup, runs, frames, budget_ms)
    if frames:
        for precision in ("fp16", "int8"):
            summary["agreement_vs_fp32"][precision] = agreement(
                str(root / "engines" / f"{precision}.plan"), str(root / "engines" / "fp32.plan"), frames, count,
                bounds=AGREEMENT_BOUNDS.get(precision))
    summary["within_budget"] = {p: r["budget"]["within_budget"] for p, r in summary["latency"].items()}
    write_json(root / "engines" / "summary.json", summary)
    for precision, r in summary["latency"].items():
        print(f"{precision}: mean {r['mean_ms']:.3f} ms, p99 {r['p99_ms']:.3f} ms, budget {budget_ms:g} ms a frame: "
              f"{r['budget']['verdict'].upper()}", flush=True)
    return summary


def add_build_arguments(p: argparse.ArgumentParser, meta_required: bool = False) -> None:
    """The `build` options (shared with `distillery engine-build`)."""
    p.add_argument("--onnx", required=True, help="ONNX file; the precision must match its tensors")
    p.add_argument("--precision", choices=tuple(ONNX_FILES), required=True)
    p.add_argument("--out", required=True, help="engine file (.plan) to write")
    p.add_argument("--meta", required=meta_required, default=None, help="engine metadata JSON to write")


def add_bench_arguments(p: argparse.ArgumentParser, out_required: bool = False) -> None:
    """The `bench` options (shared with `distillery engine-bench`)."""
    p.add_argument("--engine", required=True, help="engine file (.plan)")
    p.add_argument("--batch", type=int, default=1, help="batch size timed (default 1)")
    p.add_argument("--warmup", type=int, default=WARMUP, help=f"untimed runs first (default {WARMUP})")
    p.add_argument("--runs", type=int, default=RUNS, help=f"timed runs (default {RUNS})")
    p.add_argument("--frames", default=None, help="calibration.npz or test_frames.npz: time on real frames")
    p.add_argument("--budget-ms", type=float, default=BUDGET_MS,
                   help=f"latency budget per frame, p99 (default {BUDGET_MS:g} ms: the Jetson's share at batch 1)")
    p.add_argument("--out", required=out_required, default=None, help="latency JSON to write")


def add_agreement_arguments(p: argparse.ArgumentParser) -> None:
    """The `agree` options (shared with `distillery engine-agreement`)."""
    p.add_argument("--engine", required=True, help="engine compared (e.g. fp16.plan)")
    p.add_argument("--reference", required=True, help="reference engine (fp32.plan)")
    p.add_argument("--frames", required=True, help="test_frames.npz (or calibration.npz)")
    p.add_argument("--count", type=int, default=AGREEMENT_FRAMES, help=f"frames compared (default {AGREEMENT_FRAMES})")
    p.add_argument("--precision", choices=tuple(ONNX_FILES), default=None,
                   help="check the bounds of this precision (fp16: depth p99 within 1 %% of FP32, argmax >= 98 %%)")
    p.add_argument("--out", default=None, help="agreement JSON to write")


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="build_and_bench.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    add_build_arguments(sub.add_parser("build", help="build one engine from an ONNX file"))
    add_bench_arguments(sub.add_parser("bench", help="time one engine: warm-up, timed runs, budget verdict"))
    add_agreement_arguments(sub.add_parser("agree", help="one engine against another over a batch of frames"))
    a = sub.add_parser("all", help="in a bundle folder: build fp32/fp16/int8, benchmark, compare")
    a.add_argument("--bundle", default=str(Path(__file__).resolve().parent))
    a.add_argument("--warmup", type=int, default=WARMUP, help=f"untimed runs per engine (default {WARMUP})")
    a.add_argument("--runs", type=int, default=RUNS, help=f"timed runs per engine (default {RUNS})")
    a.add_argument("--budget-ms", type=float, default=BUDGET_MS, help=f"per-frame budget (default {BUDGET_MS:g})")
    a.add_argument("--count", type=int, default=AGREEMENT_FRAMES, help="frames of the agreement check")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        if args.command == "build":
            result = build_engine(args.onnx, args.precision, args.out, args.meta)
        elif args.command == "bench":
            result = benchmark(args.engine, args.batch, args.warmup, args.runs, args.frames, args.budget_ms)
            if args.out:
                write_json(args.out, result)
        elif args.command == "agree":
            result = check_agreement(args)
        else:
            result = run_all(args.bundle, args.runs, args.warmup, args.budget_ms, args.count)
    except Unavailable as err:
        print(f"cannot build or run TensorRT engines here: {err}", file=sys.stderr)
        return 2
    except AgreementError as err:
        print(err, file=sys.stderr)
        return 1
    print(json.dumps(result, indent=1))
    return 0


class AgreementError(RuntimeError):
    """An engine's outputs differ from the reference engine's past the bounds of its precision."""


def check_agreement(args) -> dict:
    """`agree`: the agreement figures, written to --out, and an AgreementError past the bounds."""
    result = agreement(args.engine, args.reference, args.frames, args.count,
                       bounds=AGREEMENT_BOUNDS.get(args.precision))
    if args.out:
        write_json(args.out, result)
    if result.get("passed") is False:
        raise AgreementError(f"{args.engine}: {args.precision} engine vs {args.reference} on {result['frames']} "
                             f"frames of {args.frames}: " + "; ".join(result["failures"]))
    return result


if __name__ == "__main__":
    sys.exit(main())
