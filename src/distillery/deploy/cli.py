"""`distillery export | calibrate | quantize | test-frames | fused-graph | model-card | jetson-bundle | engine-*`.

The deployment stages of one version, in the order the workflow runs them:

    distillery export --checkpoint best.pt --manifest manifest.h5 --out student.onnx --fp16-out student.fp16.onnx --parity-out parity.json \
        --fused-out fused.onnx --fused-report fused.json        # the fused graph too, in the same process
    distillery calibrate --manifest manifest.h5 --out calibration.npz                       # one set for every version
    distillery quantize --onnx student.onnx --calibration calibration.npz --manifest manifest.h5 --out student.int8.onnx --report quantization.json
    distillery test-frames --manifest manifest.h5 --out test_frames.npz                             # engines are compared on these
    distillery fused-graph --checkpoint best.pt --manifest manifest.h5 --out fused.onnx --report fused.json   # alone
    distillery model-card --version V5 --checkpoint best.pt --manifest manifest.h5 --deploy-dir results/deploy/V5 --calibration calibration.npz --out model_card.json
    distillery jetson-bundle --deploy-dir results/deploy/V5 --calibration calibration.npz --out-dir jetson_bundle --tarball jetson_bundle.tar.gz
    distillery engine-build --onnx student.fp16.onnx --precision fp16 --out fp16.plan --meta fp16.json     # TensorRT + GPU
    distillery engine-bench --engine fp16.plan --out fp16.latency.json                     # TensorRT + GPU
    distillery engine-agreement --engine fp16.plan --reference fp32.plan --frames test_frames.npz --precision fp16
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from distillery.atomic import move_durable, write_text_atomic
from distillery.deploy.engine import FILES
from distillery.deploy.settings import DEFAULTS

BUNDLE_FILES = tuple(FILES[k] for k in ("fp32", "fp16", "int8", "fused", "calibration"))  # from --deploy-dir


def _optional_int(text: str) -> int | None:
    """A count, or None for `None` / `null` (a config setting left unset)."""
    return None if text in ("None", "null", "") else int(text)


def _write_json(path, data) -> None:
    write_text_atomic(path, json.dumps(data, indent=1) + "\n")


def _threads(n: int | None) -> None:
    import torch

    if n:
        torch.set_num_threads(n)


def _run_export(args) -> int:
    from distillery.deploy import export, parity, spec
    from distillery.deploy.frames import load_frames
    from distillery.student.checkpoint import load_student

    _threads(args.threads)
    student = load_student(args.checkpoint)
    info = export.export_student(student, args.out)
    frames = load_frames(args.manifest, "test", args.parity_frames)
    report = {"export": info, "fp32": parity.check_parity(args.out, student, frames["rgb"], frames["keys"])}
    if args.fp16_out:
        report["fp16_export"] = export.convert_fp16(args.out, args.fp16_out)
        report["fp16_weights"] = parity.check_parity(args.fp16_out, student, frames["rgb"], frames["keys"],
                                                     spec.FP16_DEPTH_P99_REL, spec.FP16_SEG_MIN_AGREEMENT,
                                                     "depth_p99_rel")
        report["fp16_arithmetic"] = parity.check_half(student, frames["rgb"], frames["keys"])
    _write_json(args.parity_out, report)
    parity.require_parity(report["fp32"], args.out)
    if args.fp16_out:
        parity.require_parity(report["fp16_weights"], args.fp16_out)
        parity.require_parity(report["fp16_arithmetic"], f"{args.checkpoint} in float16")
    print(json.dumps({k: report[k]["batches"] for k in ("fp32", "fp16_weights", "fp16_arithmetic") if k in report}))
    if args.fused_out:  # one process for every graph of a version: loading torch and the student costs seconds
        report_path = args.fused_report or str(Path(args.fused_out).with_suffix(".json"))
        _export_fused(student, args.manifest, args.fused_out, report_path, args.fused_frames)
    return 0


def _run_calibrate(args) -> int:
    from distillery.deploy.calibration import build_calibration

    summary = build_calibration(args.manifest, args.out, args.frames, args.seed)
    print(json.dumps({k: v for k, v in summary.items() if k != "keys"}))
    return 0


def _run_quantize(args) -> int:
    from distillery.deploy.frames import load_frames
    from distillery.deploy.quantize import int8_accuracy, int8_gate, quantize_int8, require_int8

    _threads(args.threads)
    info = quantize_int8(args.onnx, args.calibration, args.out)
    report = int8_accuracy(args.onnx, args.out, load_frames(args.manifest, "test", args.eval_frames), args.threads)
    report["quantization"] = info
    report["gate"] = int8_gate(report, {"int8_max_delta1_drop": args.max_delta1_drop,
                                        "int8_max_absrel_increase": args.max_absrel_increase,
                                        "int8_max_miou_drop": args.max_miou_drop})
    _write_json(args.report, report)
    print(json.dumps({k: report[k] for k in ("fp32", "int8", "int8_vs_fp32", "gate")}))
    if not report["gate"]["passed"]:  # out of the way of anything that bundles student.int8.onnx; kept to inspect
        rejected = Path(f"{args.out}.rejected")
        move_durable(args.out, rejected)
        print(f"INT8 graph moved to {rejected}", file=sys.stderr)
    require_int8(report, args.out, args.version)
    return 0


def _run_test_frames(args) -> int:
    from distillery.deploy.frames import write_frames

    summary = write_frames(args.manifest, args.out, "test", args.frames)
    print(json.dumps({k: v for k, v in summary.items() if k != "keys"}))
    return 0


def _export_fused(student, manifest: str, out: str, report_path: str, frames: int | None) -> None:
    from distillery.deploy.frames import load_frames
    from distillery.deploy.fused import check_fused, export_fused

    info = export_fused(student, out)
    report = {"graph": info, **check_fused(out, student, load_frames(manifest, "test", frames))}
    _write_json(report_path, report)
    if not report["passed"]:
        raise ValueError(f"{out}: fused graph differs from distillery.fusion past its bounds; see {report_path}")
    print(json.dumps({"median_scale_rel_error": report["median_scale_rel_error"], "frames": report["frames"]}))


def _run_fused(args) -> int:
    from distillery.student.checkpoint import load_student

    _threads(args.threads)
    _export_fused(load_student(args.checkpoint), args.manifest, args.out, args.report, args.frames)
    return 0


def _load(path):
    return json.loads(Path(path).read_text()) if Path(path).is_file() else None


def _run_card(args) -> int:
    from distillery.deploy.card import build_card

    d = Path(args.deploy_dir)
    files = {k: d / FILES[k] for k in ("fp32", "fp16", "int8", "fused")}
    files["calibration"] = Path(args.calibration or d / FILES["calibration"])
    missing = [str(p) for p in files.values() if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"model card: missing {', '.join(missing)}; run the export stages first")
    parity = _load(d / "parity.json")
    card = build_card(args.version, args.checkpoint, args.manifest, files, parity and parity.get("fp32"),
                      _load(d / "quantization.json"), _load(d / "fused.json"), args.evaluation_dir,
                      parity and parity.get("export"), args.parent or None)
    if card["fused_graph"]:
        card["fused_graph"].pop("per_frame", None)
    _write_json(args.out, card)
    print(f"model card: {args.out}")
    return 0


def _run_bundle(args) -> int:
    from distillery.deploy.bundle import assemble

    d = Path(args.deploy_dir)
    files = {name: str(d / name) for name in BUNDLE_FILES}
    if args.calibration:
        files[FILES["calibration"]] = args.calibration
    if args.test_frames:
        files[FILES["test_frames"]] = args.test_frames
    result = assemble(args.out_dir, files, d / FILES["card"], args.tarball)
    print(json.dumps(result))
    return 0


def _run_engine_build(args) -> int:
    from distillery.deploy import engine

    try:
        meta = engine.build_engine(args.onnx, args.precision, args.out, args.meta)
    except engine.Unavailable as err:
        print(f"distillery engine-build: cannot build a TensorRT engine on this machine: {err}", file=sys.stderr)
        return 2
    print(json.dumps(meta))
    return 0


def _run_engine_bench(args) -> int:
    from distillery.deploy import engine

    try:
        result = engine.benchmark(args.engine, args.batch, args.warmup, args.runs, args.frames, args.budget_ms)
    except engine.Unavailable as err:
        print(f"distillery engine-bench: cannot run a TensorRT engine on this machine: {err}", file=sys.stderr)
        return 2
    _write_json(args.out, result)
    print(json.dumps(result))
    return 0


def _run_engine_agreement(args) -> int:
    from distillery.deploy import engine

    try:
        result = engine.check_agreement(args)
    except engine.Unavailable as err:
        print(f"distillery engine-agreement: cannot run TensorRT engines on this machine: {err}", file=sys.stderr)
        return 2
    except engine.AgreementError as err:
        print(f"distillery engine-agreement: {err}", file=sys.stderr)
        return 1
    print(json.dumps(result))
    return 0


def _common(p, checkpoint: bool = False, manifest: bool = True) -> None:
    if checkpoint:
        p.add_argument("--checkpoint", required=True, help="student checkpoint (best.pt)")
    if manifest:
        p.add_argument("--manifest", required=True, help="manifest.h5 whose test/train frames are used")
    p.add_argument("--threads", type=int, default=None, help="CPU threads (default: the libraries' choice)")


def _subparser(sub, name: str, summary: str):
    return sub.add_parser(name, help=summary, description=__doc__,
                          formatter_class=argparse.RawDescriptionHelpFormatter)


def register(sub) -> None:
    from distillery.deploy import engine

    p = _subparser(sub, "export", "checkpoint -> ONNX (opset 17), checked, simplified, parity vs PyTorch")
    _common(p, checkpoint=True)
    p.add_argument("--out", required=True, help="student.onnx to write")
    p.add_argument("--fp16-out", default=None, help="also write an FP16 copy (float32 I/O) here")
    p.add_argument("--parity-out", required=True, help="parity report (JSON) to write")
    p.add_argument("--parity-frames", type=int, default=DEFAULTS.parity_frames,
                   help="test frames compared (default %(default)s)")
    p.add_argument("--fused-out", default=None, help="also write the fused graph (as fused-graph --out)")
    p.add_argument("--fused-report", default=None, help="its check against distillery.fusion (default: --fused-out with .json)")
    p.add_argument("--fused-frames", type=int, default=DEFAULTS.fused_frames,
                   help="test frames the fused graph is checked on (default %(default)s)")
    p.set_defaults(func=_run_export)

    p = _subparser(sub, "calibrate", "draw the INT8 calibration set from the train split")
    _common(p)
    p.add_argument("--out", required=True, help="calibration.npz to write")
    p.add_argument("--frames", type=int, default=DEFAULTS.calibration_frames,
                   help="frames in the set (default %(default)s)")
    p.add_argument("--seed", type=int, default=DEFAULTS.calibration_seed, help="seed of the draw (default %(default)s)")
    p.set_defaults(func=_run_calibrate)

    p = _subparser(sub, "quantize", "Q/DQ INT8 ONNX with ONNX Runtime, and its accuracy vs FP32")
    _common(p)
    p.add_argument("--onnx", required=True, help="FP32 student.onnx")
    p.add_argument("--calibration", required=True, help="calibration.npz")
    p.add_argument("--out", required=True, help="student.int8.onnx to write")
    p.add_argument("--report", required=True, help="quantization.json to write")
    p.add_argument("--eval-frames", type=_optional_int, default=DEFAULTS.eval_frames,
                   help="test frames evaluated (None: all; default %(default)s)")
    p.add_argument("--version", default=None, help="version name, for the failure message")
    p.add_argument("--max-delta1-drop", type=float, default=DEFAULTS.int8_max_delta1_drop,
                   help="fail if INT8's delta1 is lower than FP32's by more (deploy.int8_max_delta1_drop, "
                        "default %(default)s)")
    p.add_argument("--max-absrel-increase", type=float, default=DEFAULTS.int8_max_absrel_increase,
                   help="fail if INT8's AbsRel is higher than FP32's by more than this share of FP32's AbsRel "
                        "(deploy.int8_max_absrel_increase, default %(default)s)")
    p.add_argument("--max-miou-drop", type=float, default=DEFAULTS.int8_max_miou_drop,
                   help="fail if INT8's mIoU is lower than FP32's by more (deploy.int8_max_miou_drop, "
                        "default %(default)s)")
    p.set_defaults(func=_run_quantize)

    p = _subparser(sub, "test-frames", "the test frames engines are compared on (npz, travels in the bundle)")
    _common(p)
    p.add_argument("--out", required=True, help="test_frames.npz to write")
    p.add_argument("--frames", type=int, default=DEFAULTS.agreement_frames,
                   help="frames, evenly spread over the test split (default %(default)s)")
    p.set_defaults(func=_run_test_frames)

    p = _subparser(sub, "fused-graph", "student + ToF fusion as one TensorRT-buildable ONNX graph")
    _common(p, checkpoint=True)
    p.add_argument("--out", required=True, help="fused.onnx to write")
    p.add_argument("--report", required=True, help="fused.json (check against distillery.fusion) to write")
    p.add_argument("--frames", type=int, default=DEFAULTS.fused_frames, help="test frames checked (default %(default)s)")
    p.set_defaults(func=_run_fused)

    p = _subparser(sub, "model-card", "model_card.json of an exported version")
    _common(p, checkpoint=True)
    p.add_argument("--version", required=True, help="version name")
    p.add_argument("--parent", default=None, help="parent version (fine-tunes; empty: none)")
    p.add_argument("--deploy-dir", required=True, help="folder with the exported files and reports")
    p.add_argument("--calibration", default=None, help="calibration.npz (default: the one in --deploy-dir)")
    p.add_argument("--evaluation-dir", default=None, help="the version's evaluation JSON folder, if any")
    p.add_argument("--out", required=True, help="model_card.json to write")
    p.set_defaults(func=_run_card)

    p = _subparser(sub, "jetson-bundle", "self-contained folder + tarball to build engines on a Jetson")
    p.add_argument("--deploy-dir", required=True, help="folder with the exported files and model_card.json")
    p.add_argument("--calibration", default=None, help="calibration.npz (default: the one in --deploy-dir)")
    p.add_argument("--test-frames", default=None, help="test_frames.npz: the frames engines are compared on")
    p.add_argument("--out-dir", required=True, help="bundle folder to write")
    p.add_argument("--tarball", default=None, help="also write the bundle as this .tar.gz")
    p.set_defaults(func=_run_bundle)

    p = _subparser(sub, "engine-build", "TensorRT engine from an ONNX file (needs TensorRT and a GPU)")
    engine.add_build_arguments(p, meta_required=True)
    p.set_defaults(func=_run_engine_build)

    p = _subparser(sub, "engine-bench", "latency of a TensorRT engine (needs TensorRT and a GPU)")
    engine.add_bench_arguments(p, out_required=True)
    p.set_defaults(func=_run_engine_bench)

    p = _subparser(sub, "engine-agreement", "an engine against the FP32 engine over test frames (TensorRT + GPU)")
    engine.add_agreement_arguments(p)
    p.set_defaults(func=_run_engine_agreement)
