"""Deployment: ONNX export with parity, calibration, INT8 Q/DQ, fused graph, model card, Jetson bundle, engines."""

from __future__ import annotations

import ast
import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from test_student_data import write_manifest

from distillery import fusion
from distillery.cli import main
from distillery.deploy import spec
from distillery.deploy.fused import bisection_median
from distillery.deploy.parity import check_parity, require_parity
from distillery.student.checkpoint import atomic_save, snapshot, weights_file
from distillery.student.config import TrainConfig
from distillery.student.losses import StudentLoss
from distillery.student.model import build_student

CFG = TrainConfig(backbone="mobilenetv3_small", encoder_weights="random")


def _checkpoint(path: Path, seed: int) -> str:
    """best.pt as training writes it, of a randomly initialised student."""
    torch.manual_seed(seed)
    model = build_student(CFG).eval()
    atomic_save(weights_file(snapshot(model, StudentLoss()), CFG, {"val/target/rmse": 1.0}, 1, 10), path)
    return str(path)


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """A 240x320 manifest of two datasets (8 test frames), a checkpoint, and its export through the CLI."""
    root = tmp_path_factory.mktemp("deploy")
    manifest = write_manifest(root / "manifest.h5", frames=12, size=(spec.HEIGHT, spec.WIDTH),
                              datasets=("rooms", "halls"), splits=("train", "val", "test"))
    ckpt = _checkpoint(root / "best.pt", seed=0)
    d = root / "deploy"
    d.mkdir()
    common = ["--manifest", manifest, "--threads", "2"]
    assert main(["export", "--checkpoint", ckpt, *common, "--out", str(d / "student.onnx"),
                 "--fp16-out", str(d / "student.fp16.onnx"), "--parity-out", str(d / "parity.json")]) == 0
    assert main(["calibrate", "--manifest", manifest, "--out", str(d / "calibration.npz"), "--frames", "6"]) == 0
    assert main(["quantize", "--onnx", str(d / "student.onnx"), "--calibration", str(d / "calibration.npz"), *common,
                 "--out", str(d / "student.int8.onnx"), "--report", str(d / "quantization.json")]) == 0
    assert main(["fused-graph", "--checkpoint", ckpt, *common, "--out", str(d / "fused.onnx"),
                 "--report", str(d / "fused.json"), "--frames", "4"]) == 0
    return {"root": root, "manifest": manifest, "checkpoint": ckpt, "dir": d}


def test_export_follows_the_contract_and_passes_parity_at_batch_1_and_8(work):
    model = onnx.load(str(work["dir"] / "student.onnx"))
    assert model.opset_import[0].version == spec.OPSET
    (rgb,) = model.graph.input
    dims = [d.dim_param or d.dim_value for d in rgb.type.tensor_type.shape.dim]
    assert rgb.name == "rgb" and dims == ["N", 3, 240, 320] and rgb.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    outputs = {o.name: [d.dim_param or d.dim_value for d in o.type.tensor_type.shape.dim] for o in model.graph.output}
    assert outputs == {"depth": ["N", 1, 240, 320], "segmentation": ["N", 6, 240, 320]}
    onnx.checker.check_model(str(work["dir"] / "student.onnx"), full_check=True)
    report = json.loads((work["dir"] / "parity.json").read_text())
    assert report["export"]["nodes"] < report["export"]["nodes_traced"]  # the simplifier did something
    for precision, key, bound in (("fp32", "depth_max_abs_m", spec.DEPTH_MAX_ABS_M),
                                  ("fp16_weights", "depth_p99_rel", spec.FP16_DEPTH_P99_REL),
                                  ("fp16_arithmetic", "depth_p99_rel", spec.FP16_DEPTH_P99_REL)):
        assert report[precision]["passed"] and report[precision]["frames"] == 8
        assert set(report[precision]["batches"]) == {"1", "8"} and report[precision]["bounds"][key] == bound
        assert all(b[key] <= bound for b in report[precision]["batches"].values())
    fp16 = onnx.load(str(work["dir"] / "student.fp16.onnx"))
    assert fp16.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert any(t.data_type == onnx.TensorProto.FLOAT16 for t in fp16.graph.initializer)


def test_parity_fails_for_a_graph_of_other_weights(work, tmp_path):
    from distillery.deploy.export import export_student
    from distillery.deploy.frames import load_frames
    from distillery.student.checkpoint import load_student

    export_student(load_student(_checkpoint(tmp_path / "other.pt", seed=1)), tmp_path / "other.onnx")
    frames = load_frames(work["manifest"], "test", 2)
    report = check_parity(tmp_path / "other.onnx", load_student(work["checkpoint"]), frames["rgb"], frames["keys"])
    assert not report["passed"]
    with pytest.raises(ValueError, match="ONNX Runtime .* against PyTorch float32: outputs do not match"):
        require_parity(report, tmp_path / "other.onnx")


def test_calibration_set_is_seeded_stratified_train_only_and_plain_numpy(work, tmp_path):
    from distillery.deploy.calibration import build_calibration
    from distillery.manifest import Manifest

    with np.load(work["dir"] / "calibration.npz", allow_pickle=False) as z:
        keys, datasets, rgb = list(z["keys"]), list(z["datasets"]), z["rgb"]
    assert rgb.dtype == np.uint8 and rgb.shape == (6, 3, 240, 320)
    assert datasets.count("rooms") == datasets.count("halls") == 3
    with Manifest(work["manifest"]) as m:
        split = {r["key"]: r["split"] for r in m.records}
    assert {split[k] for k in keys} == {"train"}
    again = build_calibration(work["manifest"], tmp_path / "a.npz", 6, 0)
    other = build_calibration(work["manifest"], tmp_path / "b.npz", 6, 1)
    assert again["keys"] == keys and other["keys"] != keys


def test_int8_is_explicit_symmetric_qdq_and_reports_its_accuracy_cost(work):
    model = onnx.load(str(work["dir"] / "student.int8.onnx"))
    ops = [n.op_type for n in model.graph.node]
    assert ops.count("QuantizeLinear") > 10 and ops.count("DequantizeLinear") > 10
    inits = {t.name: onnx.numpy_helper.to_array(t) for t in model.graph.initializer}
    zero_points = [inits[n.input[2]] for n in model.graph.node if n.op_type == "QuantizeLinear" and len(n.input) > 2]
    assert zero_points and all((z == 0).all() for z in zero_points)  # TensorRT takes symmetric Q/DQ only
    per_channel = [n for n in model.graph.node if n.op_type == "DequantizeLinear"
                   and inits.get(n.input[1], np.zeros(1)).size > 1]
    assert per_channel  # per-channel weight scales
    report = json.loads((work["dir"] / "quantization.json").read_text())
    assert report["set"] == "test" and report["frames"] == 8
    for precision in ("fp32", "int8"):
        assert {"delta1", "absrel", "miou"} <= set(report[precision])
        assert 0 <= report[precision]["delta1"] <= 1
    assert report["int8_vs_fp32"]["depth_max_abs_m"] > 0  # INT8 is not the FP32 graph


def test_fused_graph_matches_fusion_without_topk(work):
    model = onnx.load(str(work["dir"] / "fused.onnx"))
    assert [i.name for i in model.graph.input] == list(spec.FUSED_INPUTS)
    assert [o.name for o in model.graph.output] == list(spec.FUSED_OUTPUTS)
    assert not [n for n in model.graph.node if n.op_type in ("TopK", "Sort")]  # TensorRT's TopK takes k <= 3840
    report = json.loads((work["dir"] / "fused.json").read_text())
    assert report["passed"] and report["frames"] == 4
    assert all(r["trusted_max_abs_m"] == 0 for r in report["per_frame"])  # trusted ToF passes through exactly


def test_bisection_median_is_the_exact_one_and_survives_bad_pixels():
    rng = np.random.default_rng(0)
    student = torch.from_numpy(rng.uniform(0.5, 4, (3, 1, 240, 320)).astype(np.float32))
    tof = student * 1.3 * torch.from_numpy(rng.normal(1, 0.05, student.shape).astype(np.float32))
    conf = torch.from_numpy((rng.random(student.shape) < 0.22).astype(np.float32))  # 22 % trusted, as in corridors
    tof[0, 0, :10] = float("nan")
    conf[2] = 0  # a frame without trusted ToF
    ratio, usable = tof[:, 0] / student[:, 0], fusion.trusted_tof(tof, conf)[:, 0]
    ratio[1, 0, :5] = ratio[1, 0, 5]  # ties
    usable[1, 100:, :] &= ratio[1, 100:, :] > 1.3  # a skewed distribution, where a subsample's median drifts
    bisected, count = bisection_median(ratio, usable)
    exact = fusion.masked_median(ratio, usable)
    assert torch.allclose(bisected[:2], exact[:2], rtol=1e-6) and count[2] == 0
    odd = usable.clone()
    odd[0].view(-1)[odd[0].view(-1).nonzero()[0]] = False  # an odd count: one middle value
    assert int(odd[0].sum()) % 2 != int(usable[0].sum()) % 2
    assert torch.allclose(bisection_median(ratio, odd)[0][:1], fusion.masked_median(ratio, odd)[:1], rtol=1e-6)

    from distillery.deploy.fused import FusedGraph

    class Fixed(torch.nn.Module):
        def forward(self, rgb):
            return {"depth": student}

    fused, scale = FusedGraph(Fixed())(torch.zeros(3, 3, 240, 320), tof, conf)
    assert torch.isfinite(fused).all() and scale[2] == 1


def test_model_card_and_a_self_contained_jetson_bundle(work, tmp_path):
    d = work["dir"]
    assert main(["model-card", "--version", "demo", "--parent", "V0", "--checkpoint", work["checkpoint"],
                 "--manifest", work["manifest"], "--deploy-dir", str(d), "--out", str(d / "model_card.json")]) == 0
    card = json.loads((d / "model_card.json").read_text())
    assert card["version"] == "demo" and card["parent"] == "V0"
    assert card["io"]["inputs"]["rgb"]["shape"] == ["N", 3, 240, 320] and card["io"]["inputs"]["rgb"]["range"] == [0, 1]
    assert card["classes"]["0"] == "floor" and len(card["classes"]) == 6
    assert card["files"]["fp32"]["sha256"] == hashlib.sha256((d / "student.onnx").read_bytes()).hexdigest()
    assert card["parity"]["passed"] and card["quantization"]["int8"] and "teacher_provenance" in card
    out = tmp_path / "bundle"
    assert main(["jetson-bundle", "--deploy-dir", str(d), "--out-dir", str(out), "--tarball", str(tmp_path / "b.tgz")]) == 0
    names = {p.name for p in out.iterdir()}
    assert {"student.onnx", "student.fp16.onnx", "student.int8.onnx", "fused.onnx", "calibration.npz",
            "model_card.json", "build_and_bench.py", "README.md", "SHA256SUMS"} <= names
    subprocess.run(["sha256sum", "-c", "SHA256SUMS", "--quiet"], cwd=out, check=True)
    tree = ast.parse((out / "build_and_bench.py").read_text())
    imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert imported - sys.stdlib_module_names <= {"numpy", "tensorrt", "__future__", "distillery", "atomic"}
    writer = ast.parse((out / "atomic.py").read_text())  # the script's writer when distillery is not installed
    assert {a.name.split(".")[0] for n in ast.walk(writer) if isinstance(n, ast.Import) for a in n.names} | \
        {n.module.split(".")[0] for n in ast.walk(writer) if isinstance(n, ast.ImportFrom) and n.module} <= \
        set(sys.stdlib_module_names) | {"__future__"}
    proc = subprocess.run([sys.executable, "build_and_bench.py", "--help"], cwd=out, capture_output=True, text=True)
    assert proc.returncode == 0 and "fp16" in proc.stdout


def _tensorrt_gpu() -> str | None:
    """Why engine tests cannot run here, or None when TensorRT and a GPU are present."""
    from distillery.deploy import engine

    try:
        engine.import_tensorrt()
        engine.Cuda()
    except engine.Unavailable as err:
        return str(err)
    return None


def test_engine_build_without_tensorrt_says_what_is_missing(work, tmp_path, capsys):
    if _tensorrt_gpu() is None:
        pytest.skip("TensorRT and a GPU are present: test_engines_build_and_run_on_a_gpu covers this machine")
    rc = main(["engine-build", "--onnx", str(work["dir"] / "student.onnx"), "--precision", "fp32",
               "--out", str(tmp_path / "e.plan"), "--meta", str(tmp_path / "e.json")])
    err = capsys.readouterr().err
    assert rc == 2 and "Deployment: TensorRT engines" in err and ("TensorRT" in err or "GPU" in err)
    assert not (tmp_path / "e.plan").exists()


@pytest.mark.gpu
def test_engines_build_and_run_on_a_gpu(work, tmp_path):
    reason = _tensorrt_gpu()
    if reason:
        pytest.skip(f"engine builds need TensorRT and an NVIDIA GPU: {reason}")
    from distillery.deploy import engine

    for precision, name in engine.ONNX_FILES.items():
        meta = engine.build_engine(str(work["dir"] / name), precision, str(tmp_path / f"{precision}.plan"))
        assert meta["gpu"] and meta["compute_capability"]
        latency = engine.benchmark(str(tmp_path / f"{precision}.plan"), 1, 5, 20, str(work["dir"] / "calibration.npz"))
        assert latency["p99_ms"] >= latency["p50_ms"] > 0
    agree = engine.agreement(str(tmp_path / "fp16.plan"), str(tmp_path / "fp32.plan"), str(work["dir"] / "calibration.npz"))
    assert agree["seg_argmax_agreement"] > 0.95


def _workflow_config(engines: bool) -> dict:
    from workflow_util import tiny_config

    cfg = tiny_config(training={"build": ["demo"], "versions": {"demo": {"backbone": "mobilenetv3_small",
                                                                         "epochs": 1, "encoder_weights": "random"}}},
                      deploy={"engines": engines, "precisions": ["fp32", "int8"]})
    cfg["ingest"] = {**cfg["ingest"], "height": 240, "width": 320}  # the deployed graph's size (dry runs only)
    return cfg


@pytest.mark.parametrize("engines", [False, True])
def test_workflow_deploys_every_built_version_and_engines_only_when_switched_on(tmp_path, engines):
    from workflow_util import snakemake

    proc = snakemake(tmp_path, "-n", "--quiet", "rules", config=_workflow_config(engines))
    out = proc.stdout + proc.stderr
    for rule in ("export_onnx", "calibration_set", "quantize_int8", "model_card", "test_frames", "jetson_bundle"):
        assert rule in out
    assert "fused_graph" not in out  # the export job writes the fused graph in the same process
    for rule in ("build_engine", "engine_latency", "engine_agreement"):
        assert (rule in out) == engines


def test_engine_rule_without_tensorrt_stops_naming_what_is_missing(work, tmp_path):
    from workflow_util import snakemake

    if _tensorrt_gpu() is None:
        pytest.skip("TensorRT and a GPU are present: the engine rule would build")
    deploy = tmp_path / "results/deploy/demo"
    deploy.mkdir(parents=True)
    (deploy / "student.fp16.onnx").write_bytes((work["dir"] / "student.fp16.onnx").read_bytes())
    # --retries 2 as in profiles/slurm: a missing TensorRT is not transient, the rule's `retries: 0` wins
    proc = snakemake(tmp_path, "-p", "results/deploy/demo/engines/fp16.plan", "--allowed-rules", "build_engine",
                     "--retries", "2", config=_workflow_config(True), check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "Deployment: TensorRT engines" in out
    assert out.count("Error in rule build_engine") == 1 and "Trying to restart" not in out


def test_int8_rule_fails_past_its_bounds_naming_the_version_and_key(work, tmp_path):
    """Through the rule: with bounds of 0, the INT8 graph's small measured cost fails quantize_int8."""
    import shutil

    from workflow_util import snakemake

    report = json.loads((work["dir"] / "quantization.json").read_text())
    assert report["gate"]["checks"]["delta1"]["cost"] > 0  # what this test relies on: INT8 costs something
    (tmp_path / "results/manifest").mkdir(parents=True)
    (tmp_path / "results/deploy/demo").mkdir(parents=True)
    shutil.copyfile(work["manifest"], tmp_path / "results/manifest/manifest.h5")
    shutil.copyfile(work["dir"] / "calibration.npz", tmp_path / "results/deploy/calibration.npz")
    shutil.copyfile(work["dir"] / "student.onnx", tmp_path / "results/deploy/demo/student.onnx")
    cfg = _workflow_config(False)
    cfg["deploy"].update(int8_max_delta1_drop=0.0, int8_max_absrel_increase=0.0, int8_max_miou_drop=0.0)
    proc = snakemake(tmp_path, "-p", "results/deploy/demo/student.int8.onnx", "--allowed-rules", "quantize_int8",
                     config=cfg, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "demo: " in out and "deploy.int8_max_delta1_drop = 0.0" in out, out
    assert not (tmp_path / "results/deploy/demo/student.int8.onnx").exists()  # Snakemake removes a failed job's output


def _break_depth_scale(path: Path, factor: float = 10.0) -> str:
    """Give the QuantizeLinear nearest the depth output its own scale, `factor` times the calibrated one, as a
    calibration on the wrong range would (its DequantizeLinear keeps the calibrated scale, so the activation
    comes out `factor` times too small and coarsely rounded)."""
    model = onnx.load(str(path))
    producer = {o: n for n in model.graph.node for o in n.output}
    inits = {t.name: t for t in model.graph.initializer}
    frontier, seen = ["depth"], set()
    while frontier:
        node = producer.get(frontier.pop(0))
        if node is None or node.name in seen:
            continue
        seen.add(node.name)
        if node.op_type == "QuantizeLinear" and node.input[0] not in inits:
            scale = onnx.numpy_helper.to_array(inits[node.input[1]]) * np.float32(factor)
            model.graph.initializer.append(onnx.numpy_helper.from_array(scale, f"{node.name}_broken_scale"))
            node.input[1] = f"{node.name}_broken_scale"
            onnx.save(model, str(path))
            return node.name
        frontier += list(node.input)
    raise AssertionError("no activation QuantizeLinear on the depth path")


def test_int8_with_a_broken_scale_fails_its_gate_naming_version_metric_bound_and_key(work, tmp_path, monkeypatch,
                                                                                     capsys):
    from distillery.deploy import quantize

    real = quantize.quantize_int8

    def broken(fp32_path, calibration, out):
        info = real(fp32_path, calibration, out)
        _break_depth_scale(Path(out))
        return info

    d = work["dir"]
    args = ["quantize", "--onnx", str(d / "student.onnx"), "--calibration", str(d / "calibration.npz"),
            "--manifest", work["manifest"], "--threads", "2", "--version", "V7"]
    good = json.loads((d / "quantization.json").read_text())
    assert good["gate"]["passed"] and set(good["gate"]["checks"]) == {"delta1", "absrel", "miou"}
    monkeypatch.setattr(quantize, "quantize_int8", broken)
    rc = main([*args, "--out", str(tmp_path / "int8.onnx"), "--report", str(tmp_path / "q.json")])
    err = capsys.readouterr().err
    report = json.loads((tmp_path / "q.json").read_text())
    assert rc == 1 and not report["gate"]["passed"], (report["gate"], report["int8_vs_fp32"])
    assert "V7" in err and "INT8 costs too much accuracy" in err
    assert not (tmp_path / "int8.onnx").exists() and (tmp_path / "int8.onnx.rejected").exists()
    failed = [m for m, c in report["gate"]["checks"].items() if not c["passed"]]
    assert "delta1" in failed or "absrel" in failed
    for metric in failed:
        assert metric in err and report["gate"]["checks"][metric]["config_key"] in err
    assert ("deploy.int8_max_delta1_drop = 0.02" if "delta1" in failed else "deploy.int8_max_absrel_increase = 0.1") in err


def test_fp16_parity_is_measured_with_fp16_arithmetic(work):
    from distillery.deploy.frames import load_frames
    from distillery.deploy.parity import check_half, run_torch_half
    from distillery.student.checkpoint import load_student

    report = json.loads((work["dir"] / "parity.json").read_text())
    assert "float16" in report["fp16_arithmetic"]["measured"] and "ONNX Runtime" in report["fp16_weights"]["measured"]
    student = load_student(work["checkpoint"])
    frames = load_frames(work["manifest"], "test", 2)
    depth, _ = run_torch_half(student, frames["rgb"], 2)
    assert depth.dtype == np.float32 and np.all(depth == depth.astype(np.float16))  # came out of float16 maths
    strict = check_half(student, frames["rgb"], frames["keys"], depth_bound=1e-6)
    assert not strict["passed"] and strict["batches"]["1"]["depth_p99_rel"] > 1e-6  # FP16 rounding shows
    with pytest.raises(ValueError, match="float16 .* against PyTorch float32: outputs do not match"):
        require_parity(strict, "best.pt in float16")
