"""TensorRT engines through recording stand-ins of TensorRT 8.6, 10 and 11 (tests/trt_standin.py, which
cites the TensorRT documentation each stand-in follows): the calls and flags each version gets, the
bundle's build_and_bench.py end to end, the latency budget, engine agreement over a batch of test frames,
the fused graph's engine. No GPU is needed: the stand-in engine runs its ONNX file with ONNX Runtime."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest
from test_deploy import _checkpoint, work  # noqa: F401  (the module-scoped export fixture)
from trt_standin import PARSER_EXPLICIT_BATCH, VERSIONS, install

from distillery.cli import main
from distillery.deploy import engine

MAJOR = {v: int(v.split(".")[0]) for v in VERSIONS}
PROFILE = ((1, 3, 240, 320), (1, 3, 240, 320), (8, 3, 240, 320))


@pytest.fixture(scope="module")
def frames(work):  # noqa: F811
    """The 8 test frames of the manifest as `distillery test-frames` writes them (asked for 10: all there are)."""
    out = work["dir"] / "test_frames.npz"
    if not out.exists():
        assert main(["test-frames", "--manifest", work["manifest"], "--out", str(out), "--frames", "10"]) == 0
    return str(out)


def _calls(calls, name):
    return [c[1:] for c in calls if c[0] == name]


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
def test_each_tensorrt_version_gets_its_own_calls(work, tmp_path, monkeypatch, version, precision):  # noqa: F811
    calls = install(monkeypatch, engine, version)
    meta = engine.build_engine(str(work["dir"] / engine.ONNX_FILES[precision]), precision,
                               str(tmp_path / "e.plan"), str(tmp_path / "e.json"))
    explicit = 1 << 0  # NetworkDefinitionCreationFlag.EXPLICIT_BATCH
    assert _calls(calls, "create_network") == [(explicit if MAJOR[version] == 8 else 0,)]
    assert _calls(calls, "set_memory_pool_limit") == [("MemoryPoolType.WORKSPACE", 1 << 30)]
    assert _calls(calls, "set_shape") == [("rgb", *PROFILE)]
    weakly_typed = {"fp32": [], "fp16": ["BuilderFlag.FP16"], "int8": ["BuilderFlag.INT8", "BuilderFlag.FP16"]}
    flags = weakly_typed[precision] if MAJOR[version] < 11 else []  # 11.x: strongly typed, the flags are gone
    assert _calls(calls, "build_serialized_network") == [(flags,)]
    assert not _calls(calls, "deprecated")
    assert meta["tensorrt"] == version and json.loads((tmp_path / "e.json").read_text())["builder_flags"] == flags


def test_an_implicit_batch_network_is_refused_by_the_8x_parser(work, tmp_path, monkeypatch):  # noqa: F811
    """What the old `create_network(0)` got on JetPack 5 / 6.0: the parser's assertion, named in the error."""
    install(monkeypatch, engine, "8.6.2")
    monkeypatch.setattr(engine, "network_flags", lambda trt: 0)
    with pytest.raises(RuntimeError, match="explicit batch dimension"):
        engine.build_engine(str(work["dir"] / "student.onnx"), "fp32", str(tmp_path / "e.plan"))
    assert "EXPLICIT_BATCH" in PARSER_EXPLICIT_BATCH and not (tmp_path / "e.plan").exists()


def test_tensorrt_older_than_8_5_is_refused_with_the_jetpack_to_upgrade(work, tmp_path, monkeypatch, capsys):  # noqa: F811
    install(monkeypatch, engine, "8.4.1")
    rc = main(["engine-build", "--onnx", str(work["dir"] / "student.onnx"), "--precision", "fp32",
               "--out", str(tmp_path / "e.plan"), "--meta", str(tmp_path / "e.json")])
    err = capsys.readouterr().err
    assert rc == 2 and "TensorRT 8.4.1 is older than 8.5" in err and "JetPack 5.1" in err


@pytest.mark.parametrize("version", VERSIONS)
def test_latency_is_judged_against_the_per_frame_budget(work, tmp_path, monkeypatch, frames, version):  # noqa: F811
    calls = install(monkeypatch, engine, version)
    plan = str(tmp_path / "fp32.plan")
    engine.build_engine(str(work["dir"] / "student.onnx"), "fp32", plan)
    generous = engine.benchmark(plan, 2, 1, 3, frames, budget_ms=1e6)
    assert generous["budget"]["verdict"] == "pass" and generous["budget"]["within_budget"]
    assert generous["budget"]["p99_ms_per_frame"] == pytest.approx(generous["p99_ms"] / 2)
    assert _calls(calls, "set_input_shape")[-1] == ("rgb", (2, 3, 240, 320))
    # the stand-in runs ONNX Runtime on 2 CPU cores: tens of ms a frame, far over the Jetson's 5 ms
    default = engine.benchmark(plan, 1, 1, 3, frames)
    assert default["budget"]["budget_ms_per_frame"] == 5.0 and default["budget"]["verdict"] == "fail"
    assert not _calls(calls, "deprecated")


def test_agreement_runs_a_batch_of_test_frames_and_catches_a_wrong_engine(work, tmp_path, monkeypatch,  # noqa: F811
                                                                           frames, capsys):
    from distillery.deploy.export import export_student
    from distillery.student.checkpoint import load_student

    calls = install(monkeypatch, engine, "10.3.0")
    plans = {}
    for precision in ("fp32", "fp16"):
        plans[precision] = str(tmp_path / f"{precision}.plan")
        engine.build_engine(str(work["dir"] / engine.ONNX_FILES[precision]), precision, plans[precision])
    result = engine.agreement(plans["fp16"], plans["fp32"], frames, 10, batch=3, bounds=engine.AGREEMENT_BOUNDS["fp16"])
    assert result["frames"] == 8 and result["batch"] == 3 and result["passed"]
    assert 0 < result["depth_max_rel"] <= 0.01  # FP16 weights differ from FP32 ones, within the bound
    runs = [c[0]["rgb"] for c in _calls(calls, "execute_async_v3")]
    assert runs == [(3, 3, 240, 320)] * 6  # three batches (3 + 3 + 2 padded to 3) per engine

    export_student(load_student(_checkpoint(tmp_path / "other.pt", seed=1)), tmp_path / "other.onnx")
    engine.build_engine(str(tmp_path / "other.onnx"), "fp16", str(tmp_path / "other.plan"))
    out = tmp_path / "agreement.json"
    rc = main(["engine-agreement", "--engine", str(tmp_path / "other.plan"), "--reference", plans["fp32"],
               "--frames", frames, "--count", "10", "--precision", "fp16", "--out", str(out)])
    err = capsys.readouterr().err
    assert rc == 1 and "fp16 engine" in err and "8 frames" in err and "argmax agreement" in err
    assert json.loads(out.read_text())["passed"] is False


def test_the_fused_graph_builds_an_engine_and_runs(work, tmp_path, monkeypatch, frames):  # noqa: F811
    calls = install(monkeypatch, engine, "8.6.2")
    plan = str(tmp_path / "fused.plan")
    engine.build_engine(str(work["dir"] / "fused.onnx"), "fp32", plan)
    assert [c[0] for c in _calls(calls, "set_shape")] == ["rgb", "tof", "confidence"]
    assert _calls(calls, "create_network") == [(1,)]
    runner = engine.Runner(plan, 2)
    try:
        out = runner.run(engine.sample_inputs(runner, frames, 2))
    finally:
        runner.close()
    assert out["fused_depth"].shape == (2, 1, 240, 320) and np.isfinite(out["fused_depth"]).all()
    assert out["scale"].shape[0] == 2 and (out["scale"] > 0).all()


@pytest.mark.parametrize("version", ["8.6.2", "11.4.0"])
def test_the_bundles_build_and_bench_runs_end_to_end(work, tmp_path, monkeypatch, frames, version):  # noqa: F811
    d = work["dir"]
    assert main(["model-card", "--version", "demo", "--checkpoint", work["checkpoint"], "--manifest",
                 work["manifest"], "--deploy-dir", str(d), "--out", str(d / "model_card.json")]) == 0
    bundle = tmp_path / "bundle"
    assert main(["jetson-bundle", "--deploy-dir", str(d), "--test-frames", frames, "--out-dir", str(bundle)]) == 0
    spec = importlib.util.spec_from_file_location("build_and_bench", bundle / "build_and_bench.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    calls = install(monkeypatch, script, version)
    assert script.main(["all", "--bundle", str(bundle), "--runs", "3", "--warmup", "1", "--count", "10"]) == 0
    summary = json.loads((bundle / "engines" / "summary.json").read_text())
    assert set(summary["engines"]) == {"fp32", "fp16", "int8"}
    assert all(summary["engines"][p]["tensorrt"] == version for p in summary["engines"])
    assert summary["budget_ms_per_frame"] == 5.0 and set(summary["within_budget"]) == {"fp32", "fp16", "int8"}
    fp16 = summary["agreement_vs_fp32"]["fp16"]
    assert fp16["frames"] == 8 and fp16["frames_file"].endswith("test_frames.npz") and fp16["passed"]
    assert "passed" not in summary["agreement_vs_fp32"]["int8"]  # INT8 is gated at quantisation, reported here
    assert len(_calls(calls, "create_network")) == 3 and not _calls(calls, "deprecated")
