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
precision is in the file: TensorRT 11 builds strongly typed networks only;
on TensorRT 10, as on JetPack 6, the FP16 builder flag is set as well); int8
builds the explicitly quantised student.int8.onnx (Q/DQ, no calibrator;
TensorRT 10 also gets the INT8 and FP16 flags). One optimisation profile:
batch 1 (min), 1 (opt), 8 (max); 1 GiB workspace.

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

PROFILE_BATCH = (1, 1, 8)
WORKSPACE_BYTES = 1 << 30
ONNX_FILES = {"fp32": "student.onnx", "fp16": "student.fp16.onnx", "int8": "student.int8.onnx"}
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
    return trt


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


def _flags(trt, precision: str) -> list:
    """Builder flags of TensorRT 10 (weakly typed); TensorRT 11 has none, the ONNX file decides."""
    wanted = {"fp32": [], "fp16": ["FP16"], "int8": ["INT8", "FP16"]}[precision]
    return [getattr(trt.BuilderFlag, f) for f in wanted if hasattr(trt.BuilderFlag, f)]


def build_engine(onnx_path: str, precision: str, out: str, meta_out: str | None = None) -> dict:
    """Parse an ONNX file, build a serialized engine with the batch-1/1/8 profile and 1 GiB workspace."""
    trt = import_tensorrt()
    cuda = Cuda()
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(Path(onnx_path).read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise RuntimeError(f"{onnx_path}: TensorRT cannot parse it: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, WORKSPACE_BYTES)
    flags = _flags(trt, precision)
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
    tmp = f"{out}.tmp"
    with open(tmp, "wb") as fh:
        fh.write(serialized)
    os.replace(tmp, out)
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


def sample_inputs(runner: Runner, frames: str | None, batch: int) -> dict:
    """Real frames from a calibration file (rgb uint8) where given, else uniform [0, 1] noise."""
    rng = np.random.default_rng(0)
    out = {}
    for name in runner.inputs:
        shape = runner.host[name].shape
        if frames and name == "rgb":
            with np.load(frames) as z:
                rgb = z["rgb"][:batch].astype(np.float32) / 255.0
            out[name] = np.resize(rgb, shape).astype(np.float32)
        else:
            out[name] = rng.random(shape, dtype=np.float32) * (4.0 if name == "tof" else 1.0)
    return out


def benchmark(engine_path: str, batch: int = 1, warmup: int = 50, runs: int = 1000, frames: str | None = None) -> dict:
    """Latency of execute (+ stream sync) after warm-up: mean, p50, p99, min (ms), and GPU memory."""
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
        return {"engine": str(engine_path), "batch": batch, "warmup": warmup, "runs": runs,
                "mean_ms": float(t.mean()), "p50_ms": float(np.percentile(t, 50)), "p99_ms": float(np.percentile(t, 99)),
                "min_ms": float(t.min()), "gpu_memory_bytes": runner.gpu_memory_bytes,
                "tensorrt": runner.trt.__version__, **runner.cuda.device()}
    finally:
        runner.close()


def agreement(engine: str, reference: str, frames: str | None, batch: int = 1) -> dict:
    """Outputs of `engine` against `reference` (e.g. FP16 vs FP32) on the same frames."""
    a, b = Runner(engine, batch), Runner(reference, batch)
    try:
        inputs = sample_inputs(a, frames, batch)
        out_a, out_b = a.run(inputs), b.run(inputs)
    finally:
        a.close()
        b.close()
    result = {}
    if "depth" in out_a:
        result["depth_max_abs_m"] = float(np.abs(out_a["depth"] - out_b["depth"]).max())
        result["depth_mean_abs_m"] = float(np.abs(out_a["depth"] - out_b["depth"]).mean())
    if "segmentation" in out_a:
        result["seg_argmax_agreement"] = float((out_a["segmentation"].argmax(1) == out_b["segmentation"].argmax(1)).mean())
    return result


def write_json(path, data) -> None:
    tmp = f"{path}.tmp"
    Path(tmp).write_text(json.dumps(data, indent=1))
    os.replace(tmp, path)


def run_all(bundle: str, runs: int, warmup: int) -> dict:
    """In a bundle folder: build every precision into engines/, benchmark each, compare with FP32."""
    root = Path(bundle)
    frames = str(root / "calibration.npz") if (root / "calibration.npz").is_file() else None
    (root / "engines").mkdir(exist_ok=True)
    summary = {"engines": {}, "latency": {}, "agreement_vs_fp32": {}}
    for precision, onnx_name in ONNX_FILES.items():
        plan = root / "engines" / f"{precision}.plan"
        summary["engines"][precision] = build_engine(str(root / onnx_name), precision, str(plan),
                                                     str(plan.with_suffix(".json")))
        summary["latency"][precision] = benchmark(str(plan), 1, warmup, runs, frames)
        print(f"{precision}: mean {summary['latency'][precision]['mean_ms']:.3f} ms, "
              f"p99 {summary['latency'][precision]['p99_ms']:.3f} ms", flush=True)
    for precision in ("fp16", "int8"):
        summary["agreement_vs_fp32"][precision] = agreement(str(root / "engines" / f"{precision}.plan"),
                                                            str(root / "engines" / "fp32.plan"), frames)
    write_json(root / "engines" / "summary.json", summary)
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
    p.add_argument("--warmup", type=int, default=50, help="untimed runs first (default 50)")
    p.add_argument("--runs", type=int, default=1000, help="timed runs (default 1000)")
    p.add_argument("--frames", default=None, help="calibration.npz: time on real frames")
    p.add_argument("--out", required=out_required, default=None, help="latency JSON to write")


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="build_and_bench.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    add_build_arguments(sub.add_parser("build", help="build one engine from an ONNX file"))
    add_bench_arguments(sub.add_parser("bench", help="time one engine: warm-up, then many timed runs"))
    a = sub.add_parser("all", help="in a bundle folder: build fp32/fp16/int8, benchmark, compare")
    a.add_argument("--bundle", default=str(Path(__file__).resolve().parent))
    a.add_argument("--warmup", type=int, default=50)
    a.add_argument("--runs", type=int, default=1000, help="timed runs per engine (default 1000)")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        if args.command == "build":
            result = build_engine(args.onnx, args.precision, args.out, args.meta)
        elif args.command == "bench":
            result = benchmark(args.engine, args.batch, args.warmup, args.runs, args.frames)
            if args.out:
                write_json(args.out, result)
        else:
            result = run_all(args.bundle, args.runs, args.warmup)
    except Unavailable as err:
        print(f"cannot build or run TensorRT engines here: {err}", file=sys.stderr)
        return 2
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
