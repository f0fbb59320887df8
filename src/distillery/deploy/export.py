"""Export a student checkpoint to ONNX: trace, check, simplify, check again; and an FP16 copy.

The graph follows `spec`: opset 17, input `rgb` [N,3,H,W] float32 in
[0, 1] (H x W: spec.HEIGHT x spec.WIDTH), outputs `depth` and `segmentation`, dynamic batch. Tracing uses the
TorchScript exporter (`dynamo=False`): the student has no data-dependent
control flow, and the traced graph is the one the existing ONNX tooling and
TensorRT's parser know best. onnxslim then folds constants and removes the
Identity/Shape chains tracing leaves, and `onnx.checker` runs its full check
(with shape inference) before and after.

The FP16 copy (weights and arithmetic in float16, inputs and outputs kept
float32) is what a TensorRT 11 FP16 engine is built from: TensorRT 11 builds
strongly typed networks only, so the precision must be in the ONNX file.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import onnx
import torch

from distillery.deploy import spec
from distillery.atomic import atomic_target, atomic_write

log = logging.getLogger(__name__)


class _TupleOutputs(torch.nn.Module):
    """The student with positional outputs (depth, segmentation), as ONNX export needs."""

    def __init__(self, student: torch.nn.Module):
        super().__init__()
        self.student = student

    def forward(self, rgb: torch.Tensor):
        out = self.student(rgb)
        return out["depth"], out["segmentation"]


def check_model(path: str | os.PathLike) -> onnx.ModelProto:
    """Load an ONNX file and run onnx.checker's full check (type and shape inference included)."""
    onnx.checker.check_model(str(path), full_check=True)
    return onnx.load(str(path))


def save_atomic(model: onnx.ModelProto, path: str | os.PathLike) -> Path:
    """onnx.save through the durable writer (temporary sibling, fsync, rename)."""
    with atomic_write(path) as tmp:
        onnx.save(model, str(tmp))
    return Path(path)


def set_output_shapes(model: onnx.ModelProto, shapes: dict[str, list]) -> None:
    """Write the contract's output shapes (symbolic batch, fixed C/H/W) into the graph's outputs; tracing
    through resizes leaves them as generated names."""
    for output in model.graph.output:
        dims = output.type.tensor_type.shape.dim
        for dim, value in zip(dims, shapes[output.name]):
            if isinstance(value, str):
                dim.dim_param = value
            else:
                dim.dim_value = value


def simplify(model: onnx.ModelProto) -> onnx.ModelProto:
    """The graph simplified by onnxslim (constant folding, dead and redundant nodes removed)."""
    import onnxslim

    slim = onnxslim.slim(model)
    if slim is None:
        raise RuntimeError("onnxslim returned no model")
    return slim


def trace_to_onnx(module: torch.nn.Module, example: tuple, path: Path, input_names, output_names) -> None:
    """torch.onnx.export with the contract's opset and a dynamic batch on every input and output.

    The module must be in eval mode: the exporter restores the mode it found afterwards, and a
    wrapper left in training mode would switch the wrapped student's BatchNorm to batch statistics.
    """
    if module.training:
        raise ValueError("trace_to_onnx: put the module in eval mode first")
    axes = {name: {0: spec.BATCH} for name in (*input_names, *output_names)}
    torch.onnx.export(module, example, str(path), input_names=list(input_names), output_names=list(output_names),
                      opset_version=spec.OPSET, dynamic_axes=axes, do_constant_folding=True, dynamo=False)


def student_classes(student: torch.nn.Module) -> int:
    """Number of segmentation classes (the seg head's output channels)."""
    return student.seg_decoder.head.out_channels


def export_student(student: torch.nn.Module, out: str | os.PathLike, simplify_graph: bool = True) -> dict:
    """Write the student as checked (and simplified) ONNX at `out`; returns node counts before and after."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    raw = atomic_target(out.with_suffix(".raw.onnx"))
    try:
        example = (torch.rand(1, 3, spec.HEIGHT, spec.WIDTH),)
        with torch.no_grad():
            trace_to_onnx(_TupleOutputs(student).eval(), example, raw, [spec.INPUT], spec.OUTPUTS)
        model = check_model(raw)
    finally:
        raw.unlink(missing_ok=True)
    nodes_before = len(model.graph.node)
    if simplify_graph:
        model = simplify(model)
    set_output_shapes(model, {spec.OUTPUTS[0]: [spec.BATCH, 1, spec.HEIGHT, spec.WIDTH],
                              spec.OUTPUTS[1]: [spec.BATCH, student_classes(student), spec.HEIGHT, spec.WIDTH]})
    save_atomic(model, out)
    check_model(out)
    info = {"opset": spec.OPSET, "nodes_traced": nodes_before, "nodes": len(model.graph.node),
            "simplifier": "onnxslim" if simplify_graph else None}
    log.info("exported %s: %d nodes (%d traced)", out, info["nodes"], nodes_before)
    return info


def topological_sort(graph: onnx.GraphProto) -> None:
    """Reorder a graph's nodes so that every input is produced before use (the FP16 converter appends its
    input casts at the end, which onnx.checker rejects)."""
    known = {i.name for i in graph.input} | {t.name for t in graph.initializer} | {""}
    pending, ordered = list(graph.node), []
    while pending:
        ready = [n for n in pending if all(i in known for i in n.input)]
        if not ready:
            raise ValueError(f"ONNX graph has a cycle or a missing input near node {pending[0].name!r}")
        for n in ready:
            known.update(n.output)
        ordered += ready
        ready_ids = {id(n) for n in ready}
        pending = [n for n in pending if id(n) not in ready_ids]
    copies = [onnx.NodeProto.FromString(n.SerializeToString()) for n in ordered]
    del graph.node[:]
    graph.node.extend(copies)


def convert_fp16(fp32_path: str | os.PathLike, out: str | os.PathLike) -> dict:
    """An FP16 copy of an FP32 ONNX graph, float32 at its inputs and outputs; checked."""
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = convert_float_to_float16(onnx.load(str(fp32_path)), keep_io_types=True)
    topological_sort(model.graph)
    save_atomic(model, out)
    check_model(out)
    return {"nodes": len(model.graph.node), "io_types": "float32"}
