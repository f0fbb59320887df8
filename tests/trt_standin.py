"""Recording stand-ins of the `tensorrt` Python module for TensorRT 8.6, 10 and 11, and of the CUDA runtime.

Each stand-in has the classes, methods and enum members of its version that the
engine code could reach, records every call with its flags and shapes, and
fails as the real module does: an attribute a version does not have raises
AttributeError (pybind11 modules do); the 8.x ONNX parser refuses a network
made without the EXPLICIT_BATCH flag, returning False with the assertion text
of onnx-tensorrt's ModelImporter::importModel; a dynamic input without an
optimisation profile builds nothing (None); an engine deserialized by another
version is refused (None). APIs that a version still has but deprecates are
recorded as ("deprecated", name) so a test can forbid them. The engine "runs"
the ONNX file it was built from with ONNX Runtime on the CPU, so outputs,
agreement and latency are real numbers (of the CPU, not of a GPU).

What each version has, from NVIDIA's documentation and code:
- Python API reference, Builder / NetworkDefinitionCreationFlag, per release:
  docs.nvidia.com/deeplearning/tensorrt/archives/tensorrt-843/api/python_api/infer/Core/Builder.html
  (8.x: EXPLICIT_BATCH "Creating a network without this flag has been deprecated", EXPLICIT_PRECISION),
  docs.nvidia.com/deeplearning/tensorrt/api/python_api/infer/Core/Builder.html (10.x: EXPLICIT_BATCH
  "[DEPRECATED] Ignored because networks are always explicit batch in TensorRT 10.0", STRONGLY_TYPED).
- Migrating 10.x to 11.x, Python API reference and patterns:
  docs.nvidia.com/deeplearning/tensorrt/latest/api/migration/tensorrt-10x-to-11x-python-api-reference.html
  (removed: BuilderFlag.FP16, INT8, FP8, BF16, OBEY/PREFER_PRECISION_CONSTRAINTS, int8_calibrator,
  quantization flags); tensorrt-10x-to-11x-python-api-patterns.html ("Strong typing is always on in 11.x";
  `builder.create_network()` without flags); TensorRT 11.0.0 release notes ("createNetworkV2() produces a
  strongly typed network by default"; "JetPack is not supported" in 11.3/11.4).
- The 8.x parser assertion: onnx-tensorrt ModelImporter.cpp, importModel (ASSERT on
  hasImplicitBatchDimension, "This version of the ONNX parser only supports TensorRT INetworkDefinitions
  with an explicit batch dimension ...").
- Removed in 10.0 (8.6 has them, deprecated): IBuilderConfig.max_workspace_size, Builder.build_engine,
  ICudaEngine binding API (num_bindings, get_binding_*), IExecutionContext.execute_async_v2; the named
  tensor API (num_io_tensors, get_tensor_*, set_input_shape, set_tensor_address, execute_async_v3) exists
  from 8.5 on. Sources: "Migrating Python Code from TensorRT 8.x to 10.x"
  (docs.nvidia.com/deeplearning/tensorrt/10.16.1/api/tensorrt-8x-to-10x-python-api.html: binding API ->
  name-based tensor API, enqueueV3, build_serialized_network); "API Changes For TensorRT 8.5.1"
  (docs.nvidia.com/deeplearning/tensorrt/archives/tensorrt-851/pdf/TensorRT-API.pdf); microsoft/onnxruntime
  PR 24298 ("Remove explicit batch network flag for TRT 10+": kEXPLICIT_BATCH for NV_TENSORRT_MAJOR <= 8).
"""

from __future__ import annotations

import ctypes
import json
import types

import numpy as np
import onnx

PARSER_EXPLICIT_BATCH = ("Assertion failed: !_importer_ctx.network()->hasImplicitBatchDimension() && \"This version "
                         "of the ONNX parser only supports TensorRT INetworkDefinitions with an explicit batch "
                         "dimension. Please ensure the network was created using the EXPLICIT_BATCH "
                         "NetworkDefinitionCreationFlag.\"")
VERSIONS = ("8.6.2", "10.3.0", "11.4.0")


class Enum(int):
    """An enum member: an int with the name pybind11 prints (str -> 'BuilderFlag.FP16')."""

    def __new__(cls, kind: str, name: str, value: int):
        obj = super().__new__(cls, value)
        obj.label = f"{kind}.{name}"
        return obj

    def __str__(self):
        return self.label

    __repr__ = __str__


def enum(kind: str, names: list[str]):
    return types.SimpleNamespace(**{n: Enum(kind, n, i) for i, n in enumerate(names)})


def _onnx_io(model: onnx.ModelProto):
    def dims(v):
        return tuple(d.dim_value if d.dim_value else -1 for d in v.type.tensor_type.shape.dim)

    inits = {i.name for i in model.graph.initializer}
    inputs = [(v.name, dims(v)) for v in model.graph.input if v.name not in inits]
    return inputs, [(v.name, dims(v)) for v in model.graph.output]


def make_tensorrt(version: str, calls: list) -> types.ModuleType:
    """A `tensorrt` module of `version` ("8.6.2", "10.3.0", "11.4.0") appending its calls to `calls`."""
    major = int(version.split(".")[0])
    trt = types.ModuleType("tensorrt")
    trt.__version__ = version
    trt.Logger = type("Logger", (), {"WARNING": 2, "__init__": lambda self, severity=2: None})
    flags = {8: ["EXPLICIT_BATCH", "EXPLICIT_PRECISION"], 10: ["EXPLICIT_BATCH", "STRONGLY_TYPED"],
             11: ["STRONGLY_TYPED"]}[major]
    trt.NetworkDefinitionCreationFlag = enum("NetworkDefinitionCreationFlag", flags)
    builder_flags = ["GPU_FALLBACK", "REFIT", "TF32", "SPARSE_WEIGHTS"]
    if major < 11:
        builder_flags = ["FP16", "INT8", "DEBUG", *builder_flags, "OBEY_PRECISION_CONSTRAINTS"]
    trt.BuilderFlag = enum("BuilderFlag", builder_flags)
    trt.MemoryPoolType = enum("MemoryPoolType", ["WORKSPACE", "DLA_MANAGED_SRAM"])
    trt.TensorIOMode = enum("TensorIOMode", ["NONE", "INPUT", "OUTPUT"])
    trt.DataType = enum("DataType", ["FLOAT", "HALF", "INT8", "INT32", "BOOL"])
    trt.nptype = lambda dt: {0: np.float32, 1: np.float16, 2: np.int8, 3: np.int32, 4: np.bool_}[int(dt)]

    def deprecated(name):
        calls.append(("deprecated", name))

    class Tensor:
        def __init__(self, name, shape):
            self.name, self.shape, self.dtype = name, shape, trt.DataType.FLOAT

    class Network:
        def __init__(self, flags: int):
            self.flags = flags
            explicit = major >= 10 or flags & (1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH))
            self.implicit_batch = not explicit
            self.inputs, self.outputs, self.onnx = [], [], None

        num_inputs = property(lambda self: len(self.inputs))
        num_outputs = property(lambda self: len(self.outputs))

        def get_input(self, i):
            return self.inputs[i]

        def get_output(self, i):
            return self.outputs[i]

    class OnnxParser:
        def __init__(self, network, logger):
            self.network, self.errors = network, []

        num_errors = property(lambda self: len(self.errors))

        def get_error(self, i):
            return f"In node -1 (importModel): INVALID_VALUE: {self.errors[i]}"

        def parse(self, model: bytes, path: str | None = None) -> bool:
            calls.append(("parse", len(model)))
            if self.network.implicit_batch:
                self.errors.append(PARSER_EXPLICIT_BATCH)
                return False
            proto = onnx.load_from_string(bytes(model))
            inputs, outputs = _onnx_io(proto)
            self.network.inputs = [Tensor(n, s) for n, s in inputs]
            self.network.outputs = [Tensor(n, s) for n, s in outputs]
            self.network.onnx = bytes(model)
            return True

    class Profile:
        def __init__(self):
            self.shapes = {}

        def set_shape(self, name, min, opt, max):
            calls.append(("set_shape", name, tuple(min), tuple(opt), tuple(max)))
            self.shapes[name] = (tuple(min), tuple(opt), tuple(max))

    class BuilderConfig:
        def __init__(self):
            self.flags, self.profiles, self.pools = [], [], {}

        def set_flag(self, flag):
            calls.append(("set_flag", str(flag)))
            self.flags.append(flag)

        def set_memory_pool_limit(self, pool, size):
            calls.append(("set_memory_pool_limit", str(pool), size))
            self.pools[int(pool)] = size

        def add_optimization_profile(self, profile):
            calls.append(("add_optimization_profile", dict(profile.shapes)))
            self.profiles.append(profile)
            return len(self.profiles) - 1

    if major < 10:
        def _workspace(self, size):
            deprecated("IBuilderConfig.max_workspace_size")
            self.pools[0] = size

        BuilderConfig.max_workspace_size = property(lambda self: self.pools.get(0, 0), _workspace)

    class Builder:
        def __init__(self, logger):
            calls.append(("Builder",))

        def create_network(self, flags: int = 0):
            calls.append(("create_network", int(flags)))
            return Network(int(flags))

        def create_builder_config(self):
            return BuilderConfig()

        def create_optimization_profile(self):
            return Profile()

        def build_serialized_network(self, network, config):
            calls.append(("build_serialized_network", [str(f) for f in config.flags]))
            shapes = config.profiles[0].shapes if config.profiles else {}
            if network.onnx is None or any(-1 in t.shape and t.name not in shapes for t in network.inputs):
                return None  # the real builder logs "Network has dynamic or shape inputs, but no optimization profile"
            header = json.dumps({"version": version, "flags": [str(f) for f in config.flags],
                                 "profile": {k: v for k, v in shapes.items()}}).encode()
            return len(header).to_bytes(4, "little") + header + network.onnx

    if major < 10:
        def build_engine(self, network, config):
            deprecated("Builder.build_engine")
            return Runtime(None).deserialize_cuda_engine(self.build_serialized_network(network, config))

        Builder.build_engine = build_engine

    class Engine:
        def __init__(self, header: dict, model: bytes):
            import onnxruntime as ort

            self.header = header
            self.session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
            inputs, outputs = _onnx_io(onnx.load_from_string(model))
            self.io = [(n, s, trt.TensorIOMode.INPUT) for n, s in inputs]
            self.io += [(n, s, trt.TensorIOMode.OUTPUT) for n, s in outputs]

        num_io_tensors = property(lambda self: len(self.io))

        def get_tensor_name(self, i):
            return self.io[i][0]

        def _io(self, name):
            return next(t for t in self.io if t[0] == name)

        def get_tensor_mode(self, name):
            return self._io(name)[2]

        def get_tensor_shape(self, name):
            return self._io(name)[1]

        def get_tensor_dtype(self, name):
            return trt.DataType.FLOAT

        def create_execution_context(self):
            return Context(self)

    if major < 10:
        Engine.num_bindings = property(lambda self: deprecated("ICudaEngine.num_bindings") or len(self.io))
        Engine.get_binding_name = lambda self, i: deprecated("ICudaEngine.get_binding_name") or self.io[i][0]

    class Context:
        def __init__(self, engine):
            self.engine, self.shapes, self.addresses = engine, {}, {}

        def set_input_shape(self, name, shape):
            calls.append(("set_input_shape", name, tuple(shape)))
            self.shapes[name] = tuple(shape)
            return True

        def get_tensor_shape(self, name):
            if name in self.shapes:
                return self.shapes[name]
            batch = next(iter(self.shapes.values()))[0]
            return tuple(batch if d == -1 else d for d in self.engine.get_tensor_shape(name))

        def set_tensor_address(self, name, ptr):
            self.addresses[name] = int(ptr)
            return True

        def _view(self, name):
            shape = self.get_tensor_shape(name)
            n = int(np.prod(shape))
            return np.ctypeslib.as_array((ctypes.c_float * n).from_address(self.addresses[name])).reshape(shape)

        def execute_async_v3(self, stream_handle):
            calls.append(("execute_async_v3", {n: self.shapes[n] for n in self.shapes}))
            feeds = {n: self._view(n).copy() for n, _, m in self.engine.io if m == trt.TensorIOMode.INPUT}
            names = [n for n, _, m in self.engine.io if m == trt.TensorIOMode.OUTPUT]
            for name, value in zip(names, self.engine.session.run(names, feeds)):
                self._view(name)[...] = value
            return True

    if major < 10:
        def execute_async_v2(self, bindings, stream_handle):
            deprecated("IExecutionContext.execute_async_v2")
            return True

        Context.execute_async_v2 = execute_async_v2

    class Runtime:
        def __init__(self, logger):
            pass

        def deserialize_cuda_engine(self, data: bytes):
            size = int.from_bytes(data[:4], "little")
            header = json.loads(data[4:4 + size])
            if header["version"] != version:
                return None  # the real runtime logs "The engine plan file is not compatible with this version"
            calls.append(("deserialize_cuda_engine", header["flags"]))
            return Engine(header, bytes(data[4 + size:]))

    trt.Builder, trt.OnnxParser, trt.Runtime = Builder, OnnxParser, Runtime
    return trt


class FakeCuda:
    """The engine module's Cuda, on host memory: malloc gives a numpy buffer's address, copy is memmove."""

    def __init__(self):
        self.buffers = {}

    def malloc(self, nbytes: int) -> int:
        buf = np.zeros(max(nbytes, 1), np.uint8)
        self.buffers[buf.ctypes.data] = buf
        return buf.ctypes.data

    def free(self, ptr: int) -> None:
        self.buffers.pop(ptr, None)

    def copy(self, dst, src, nbytes: int, kind: int) -> None:
        ctypes.memmove(dst, src, nbytes)

    def stream(self) -> int:
        return 1

    def sync(self, stream: int) -> None:
        pass

    def mem_used(self) -> int:
        return sum(b.nbytes for b in self.buffers.values())

    def device(self) -> dict:
        return {"gpu": "stand-in (ONNX Runtime on the CPU)", "compute_capability": "8.7"}


def install(monkeypatch, module, version: str) -> list:
    """Make `module` (distillery.deploy.engine or a bundle's build_and_bench) use the stand-in of `version`;
    returns the list its calls are recorded in."""
    import sys

    calls: list = []
    monkeypatch.setitem(sys.modules, "tensorrt", make_tensorrt(version, calls))
    monkeypatch.setattr(module, "Cuda", FakeCuda)
    return calls
