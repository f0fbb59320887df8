"""The Jetson bundle: everything a robot needs to build and benchmark its own engines.

A TensorRT engine is specific to the GPU, JetPack and TensorRT version it was
built with, so engines for the robot are built on the robot. The bundle is a
folder (and the same as a .tar.gz) that needs nothing from this project:

    student.onnx, student.fp16.onnx, student.int8.onnx, fused.onnx
    calibration.npz       the frames INT8 was calibrated on (real train frames)
    test_frames.npz       test frames: engines are timed on them and compared with the FP32 engine
    model_card.json       provenance, I/O contract, parity and INT8 figures, SHA-256 of every file
    build_and_bench.py    build + benchmark, Python standard library + numpy + TensorRT only
    SHA256SUMS            `sha256sum -c SHA256SUMS` after copying
    README.md
"""

from __future__ import annotations

import json
import os
import shutil
import tarfile
from pathlib import Path

from distillery import atomic
from distillery.atomic import atomic_write
from distillery.deploy import engine, spec
from distillery.manifest.content import file_sha256

README = """# {version}: student for the robot

Built by Distillery. Input `rgb` float32 [N,3,{h},{w}] in [0, 1] (camera RGB / 255, NCHW, no
normalisation); outputs `depth` [N,1,{h},{w}] metres and `segmentation` [N,6,{h},{w}] logits
(classes: {classes}). `fused.onnx` takes `rgb`, `tof` (metres) and `confidence` [N,1,{h},{w}] and
returns `fused_depth` (ToF where trusted, else the scaled student) and the per-frame `scale`; its
median is found by bisection over every trusted pixel (no TopK), see model_card.json for its error.

## Check the copy

    sha256sum -c SHA256SUMS

## Build and benchmark the engines on this device

Needs Python 3, numpy and TensorRT (JetPack ships TensorRT and its Python bindings):

    python3 build_and_bench.py all            # fp32, fp16, int8 engines -> engines/, latency vs budget, agreement

or one at a time:

    python3 build_and_bench.py build --onnx student.fp16.onnx --precision fp16 --out engines/fp16.plan --meta engines/fp16.json
    python3 build_and_bench.py bench --engine engines/fp16.plan --frames test_frames.npz --runs 1000 --budget-ms 5 --out engines/fp16.latency.json
    python3 build_and_bench.py agree --engine engines/fp16.plan --reference engines/fp32.plan --frames test_frames.npz --precision fp16

Latency is judged against a budget of 5 ms a frame (p99 at batch 1; `--budget-ms`): the student's share of
30 FPS for the whole perception. Needs TensorRT 8.5 or newer (JetPack 5.1 onwards).

INT8 is built from the explicitly quantised `student.int8.onnx` (Q/DQ nodes, calibrated on the real
frames of calibration.npz), so no calibrator runs here. Optimisation profile: batch 1/1/8;
workspace 1 GiB. An engine only runs on the device and TensorRT version that built it.

## Checks this export passed

{checks}
"""


def _checks(card: dict) -> str:
    lines = []
    for batch, fig in (card.get("parity") or {}).get("batches", {}).items():
        lines.append(f"- FP32 ONNX vs PyTorch, batch {batch}: depth max |diff| {fig['depth_max_abs_m']:.2e} m, "
                     f"argmax agreement {fig['seg_argmax_agreement']:.5f}")
    q = card.get("quantization") or {}
    for name in ("fp32", "int8"):
        if name in q:
            lines.append(f"- {name.upper()} on {q.get('frames')} {q.get('set')} frames vs teacher: "
                         + ", ".join(f"{k} {v:.4f}" for k, v in q[name].items() if isinstance(v, float)))
    gate = q.get("gate") or {}
    if gate.get("checks"):
        lines.append("- INT8 gate vs FP32 on the same frames: " + ", ".join(
            f"{m} cost {c['cost']:.4f} (bound {c['bound']}, {c['config_key']})" for m, c in gate["checks"].items()))
    f = card.get("fused_graph") or {}
    if "median_scale_rel_error" in f:
        lines.append(f"- fused graph scale vs exact median: max relative error {f['median_scale_rel_error']['max']:.4f}")
    return "\n".join(lines) or "- none recorded"


def assemble(out_dir: str | os.PathLike, files: dict[str, str], card_path: str | os.PathLike,
             tarball: str | os.PathLike | None = None) -> dict:
    """Write the bundle folder `out_dir` (replacing it) from {name in bundle: source path}, and a tarball."""
    out = Path(out_dir)
    card = json.loads(Path(card_path).read_text())
    with atomic_write(out, folder=True) as tmp:
        names = _fill(tmp, files, card_path, card)
    if tarball:
        with atomic_write(tarball) as part, tarfile.open(part, "w:gz", compresslevel=1) as tar:
            tar.add(out, arcname=f"{card['version']}_jetson_bundle")  # weights barely compress: level 9 only costs time
    return {"folder": str(out), "files": names + ["SHA256SUMS"], "tarball": str(tarball) if tarball else None}


def _fill(tmp: Path, files: dict[str, str], card_path, card: dict) -> list[str]:
    """Copy the bundle's files into the folder `tmp`, with the engine script and its writer; returns the names."""
    for name, src in {**files, engine.FILES["card"]: str(card_path)}.items():
        shutil.copyfile(src, tmp / name)
    script = tmp / "build_and_bench.py"
    shutil.copyfile(engine.__file__, script)
    script.chmod(0o755)
    shutil.copyfile(atomic.__file__, tmp / "atomic.py")  # the script's durable writer, off the package
    from distillery.classes import CLASS_NAMES

    (tmp / "README.md").write_text(README.format(
        version=card["version"], h=spec.HEIGHT, w=spec.WIDTH, classes=", ".join(CLASS_NAMES),
        checks=_checks(card)))
    names = sorted(p.name for p in tmp.iterdir())
    (tmp / "SHA256SUMS").write_text("".join(f"{file_sha256(tmp / n)}  {n}\n" for n in names))
    return names
