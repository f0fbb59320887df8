"""A consumer-camera recording saved in TUM layout, as the outside world writes one.

Millimetre depth of a room (median about 0.8 m), the sensor's saturation code
65535 and far noise in single pixels, stamps that go backwards once, a
repeated stamp, the recorder's associations.txt, and orphans: a colour image
with no depth partner and a depth image that no list mentions.
"""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from distillery.ingest.frames import DecodedFrame, Intrinsics
from distillery.ingest.index import ingest_folder, reader_options
from distillery.ingest.pack import PackSettings
from distillery.ingest.readers import read_dataset
from distillery.ingest.resize import resize_frame
from distillery.atomic import read_jsonl
from distillery.manifest import Manifest

H, W = 48, 64
K = {"fx": 60.0, "fy": 60.0, "cx": 31.5, "cy": 23.5, "width": W, "height": H}
T0 = 1700000000.0
# Colour stamps in file order: index 5 goes backwards, 6 repeats 7's stamp.
RGB_STAMPS = [T0, T0 + 0.033, T0 + 0.066, T0 + 0.1, T0 + 0.133, T0 + 0.12, T0 + 0.2, T0 + 0.2, T0 + 0.233]


def room_depth_mm(i: int) -> np.ndarray:
    """A tilted wall 0.6-1.0 m away in millimetres, with a saturated pixel and far noise."""
    u = np.arange(W)[None, :]
    mm = (600 + 400 * u / (W - 1) + 0 * np.arange(H)[:, None]).astype(np.uint16)
    mm[3, 3 + i] = 65535  # saturation code
    if i % 2 == 0:
        mm[10, 20 + i] = 30000  # far noise: 30 m, beyond max_depth_m
    mm[0, :] = 0
    return mm


def write_recording(root: Path) -> Path:
    """The TUM-layout folder; returns it. associations.txt lists the usable pairs in file order."""
    for sub in ("rgb", "depth"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    rgb_lines, depth_lines, assoc = [], [], []
    for i, t in enumerate(RGB_STAMPS):
        name = f"{i:03d}_{t:.6f}.png"
        Image.fromarray(np.full((H, W, 3), 20 * i, np.uint8)).save(root / "rgb" / name)
        Image.fromarray(room_depth_mm(i)).save(root / "depth" / name)
        rgb_lines.append(f"{t:.6f} rgb/{name}")
        depth_lines.append(f"{t + 0.004:.6f} depth/{name}")
        assoc.append(f"{t:.6f} rgb/{name} {t + 0.004:.6f} depth/{name}")
    # A colour image the recorder could not pair: listed in rgb.txt, absent from associations.txt.
    Image.fromarray(np.zeros((H, W, 3), np.uint8)).save(root / "rgb" / "lonely.png")
    rgb_lines.append(f"{T0 + 0.3:.6f} rgb/lonely.png")
    # A depth image that nothing lists, close in time to frame 2: re-pairing by stamps would pick it.
    Image.fromarray(room_depth_mm(2)).save(root / "depth" / "stray.png")
    (root / "rgb.txt").write_text("# timestamp filename\n" + "\n".join(rgb_lines) + "\n")
    (root / "depth.txt").write_text("\n".join(depth_lines) + "\n")
    (root / "associations.txt").write_text("\n".join(assoc) + "\n")
    return root


def _ingest(root: Path, out: Path, scale: float | None):
    options = reader_options(scale, K)
    return ingest_folder(str(root), str(out), "cam", options=options, settings=PackSettings(H, W),
                         frames_per_shard=64, split="train", max_bad_share=0.5, progress=False)


def test_mm_recording_keeps_every_paired_frame_and_reports_the_rest(tmp_path):
    root = write_recording(tmp_path / "rec")
    summary = _ingest(root, tmp_path / "out", 1000)
    index = read_jsonl(tmp_path / "out" / "index" / "cam.jsonl")
    # File order kept (frame 5's stamp goes backwards), the two frames sharing a stamp are out.
    assert [Path(r["rgb"]).name[:3] for r in index] == ["000", "001", "002", "003", "004", "005", "008"]
    assert any("earlier than" in w and "line 6" in w for w in summary["index"]["warnings"])
    report = {Path(r["file"]).name: r for r in read_jsonl(tmp_path / "out" / "manifest" / "quarantine.jsonl")}
    assert set(report) == {"006_1700000000.200000.png", "007_1700000000.200000.png", "lonely.png", "stray.png"}
    assert report["lonely.png"]["field"] == "rgb" and "associations.txt" in report["lonely.png"]["reason"]
    assert report["stray.png"]["field"] == "depth" and "associations.txt" in report["stray.png"]["reason"]
    assert "duplicate timestamp" in report["006_1700000000.200000.png"]["reason"]
    keys = [report[f"00{i}_1700000000.200000.png"]["frame"] for i in (6, 7)]
    assert keys[0] != keys[1]  # two frames sharing a stamp are told apart by key, not only by file
    with Manifest(tmp_path / "out" / "manifest" / "manifest.h5") as m:
        assert len(m) == 7
        depth = np.stack([m.read(i, ("tof_depth",))["tof_depth"] for i in range(len(m))])
    assert depth[0, 3, 3] == 0 and depth[2, 10, 22] == 0  # saturated and far pixels are invalid pixels
    valid = depth[depth > 0]
    assert valid.min() == pytest.approx(0.6, abs=1e-3) and valid.max() == pytest.approx(1.0, abs=1e-3)


def test_recording_pairs_as_associations_txt_says(tmp_path):
    root = write_recording(tmp_path / "rec")
    result = read_dataset(root, "cam", options=reader_options(1000, K))
    assert all(Path(f.rgb).name == Path(f.depth).name for f in result.frames)
    assert not any("unpaired" in r.reason for r in result.rejects)


def test_default_tum_scale_on_mm_depth_stops_and_names_the_fix(tmp_path):
    root = write_recording(tmp_path / "rec")
    exe = Path(sys.executable).parent / "distillery"
    proc = subprocess.run([str(exe), "ingest", str(root), "--out", str(tmp_path / "out"), "--quiet",
                           "--intrinsics", json.dumps(K)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert "median valid depth" in proc.stderr and "0.16 m" in proc.stderr
    assert "--depth-scale 1000" in proc.stderr and "datasets[].depth_scale" in proc.stderr
    assert not (tmp_path / "out" / "manifest" / "manifest.h5").exists()


def test_missing_intrinsics_names_the_flag_and_config_key(tmp_path):
    root = write_recording(tmp_path / "rec")
    result = read_dataset(root, "cam", options=reader_options(1000, None))
    reasons = {r.reason for r in result.rejects if r.field == "intrinsics"}
    assert reasons and all("--intrinsics" in r and "datasets[].intrinsics" in r for r in reasons)
    assert any("--intrinsics" in w for w in result.warnings)


def test_a_frame_is_absurd_only_when_its_depth_as_a_whole_is(tmp_path):
    root = write_recording(tmp_path / "rec")
    raw = room_depth_mm(1)
    raw[1:] = 40000  # 40 m everywhere: the whole frame is implausible
    Image.fromarray(raw).save(root / "depth" / f"001_{RGB_STAMPS[1]:.6f}.png")
    _ingest(root, tmp_path / "out", 1000)
    report = [r for r in read_jsonl(tmp_path / "out" / "manifest" / "quarantine.jsonl") if r["stage"] == "pack"]
    assert len(report) == 1 and "absurd depth: median 40.0 m" in report[0]["reason"]


def test_depth_is_resampled_on_the_rgb_geometry():
    """A ramp in u and in v: stored depth at a pixel equals the source depth at that pixel's centre."""
    h, w = 480, 640
    v, u = np.mgrid[0:h, 0:w].astype(np.float32)
    depth = 2.0 + 0.001 * u + 0.0005 * v
    grey = np.minimum(u, 255).astype(np.uint8)  # slope 1 over the first 256 columns
    frame = DecodedFrame(rgb=np.repeat(grey[..., None], 3, -1), depth=depth, confidence=np.ones_like(depth),
                         confidence_derived=False)
    out, k = resize_frame(frame, Intrinsics(500, 500, 319.5, 239.5, w, h), 240, 320, "crop")
    j, i = np.mgrid[0:240, 0:320].astype(np.float32)
    src_u, src_v = (i + 0.5) * 2 - 0.5, (j + 0.5) * 2 - 0.5  # centre-aligned, as scale_intrinsics assumes
    assert np.abs(out.depth - (2.0 + 0.001 * src_u + 0.0005 * src_v)).max() < 1e-5
    # The RGB box filter samples the same place: the grey ramp lands at the same source u.
    assert np.abs(out.rgb[:, :127, 0].astype(np.float32) - src_u[:, :127]).max() <= 0.51
    assert k.cx == pytest.approx(159.5)
    # A depth edge keeps one measured value per pixel: no flying pixel between 1 m and 3 m.
    step = np.where(u < 321, 1.0, 3.0).astype(np.float32)
    edge, _ = resize_frame(DecodedFrame(frame.rgb, step, np.ones_like(step), False),
                           Intrinsics(500, 500, 319.5, 239.5, w, h), 240, 320, "crop")
    assert set(np.unique(edge.depth)) == {1.0, 3.0}


def test_float_depth_in_millimetres_stops_with_the_fix(tmp_path):
    from layouts import make_native

    from distillery.ingest.depthscale import DepthScaleError

    root = make_native(tmp_path / "mm", n_frames=3, depth_m=850.0)  # .npy written in millimetres
    with pytest.raises(DepthScaleError, match=r"median valid depth over 3 sampled frames is 850.00 m.*"
                                              r"--depth-scale 1000.*datasets\[\]\.depth_scale"):
        read_dataset(root, "mm")
    assert read_dataset(root, "mm", options=reader_options(1000, None)).frames


@pytest.mark.parametrize("damage", ["truncated", "overwritten"])
def test_damaged_manifest_is_one_line_naming_the_file_and_the_rule(tmp_path, damage):
    root = write_recording(tmp_path / "rec")
    _ingest(root, tmp_path / "out", 1000)
    h5 = tmp_path / "out" / "manifest" / "manifest.h5"
    data = h5.read_bytes()
    h5.write_bytes(data[: len(data) // 2] if damage == "truncated" else b"\0" * 64 + data[64:])
    with pytest.raises(ValueError) as err:
        Manifest(h5)
    message = str(err.value)
    assert "\n" not in message and str(h5) in message and "merge_manifest" in message and "corrupt" in message


def _cli(*args: str) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).parent / "distillery"
    return subprocess.run([str(exe), *args], capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_damaged_shard_is_one_line_naming_the_file_and_the_rule_at_every_reader(tmp_path, damage):
    root = write_recording(tmp_path / "rec")
    _ingest(root, tmp_path / "out", 1000)
    shard = next((tmp_path / "out" / "shards").glob("*.h5"))
    data = shard.read_bytes()
    # A job killed mid-write leaves a prefix; a bad disk or copy leaves garbage where the header was.
    shard.write_bytes(data[: len(data) // 2] if damage == "truncated" else bytes(range(256)) * 4 + data[1024:])
    teacher = json.dumps({"id": "da3", "backend": "sim_da3"})
    runs = {
        "teach depth": _cli("teach", "depth", "--shard", str(shard), "--out", str(tmp_path / "depth.h5"),
                            "--failures", str(tmp_path / "f.jsonl"), "--teacher", teacher, "--quiet"),
        "teach sanity": _cli("teach", "sanity", "--shards", str(shard), "--out", str(tmp_path / "sanity.json"),
                             "--teacher", teacher),
        "merge": _cli("merge", "--shards", str(shard), "--out-h5", str(tmp_path / "m.h5"), "--out-jsonl",
                      str(tmp_path / "m.jsonl"), "--out-quarantine", str(tmp_path / "q.jsonl"), "--out-summary",
                      str(tmp_path / "s.json"), "--quiet"),
    }
    for name, proc in runs.items():
        lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
        assert proc.returncode == 1, (name, proc.stderr)
        assert len(lines) == 1 and "Traceback" not in proc.stderr, (name, proc.stderr)
        assert str(shard) in lines[0] and "corrupt HDF5" in lines[0], (name, lines[0])
        assert f"snakemake --forcerun pack_shard results/shards/{shard.name}" in lines[0], (name, lines[0])
    assert not (tmp_path / "depth.h5").exists() and not (tmp_path / "m.h5").exists()


def write_ir_as_confidence_recording(root: Path, frames: int = 3) -> tuple[Path, float]:
    """A native-layout folder as a camera tool saves one: 8-bit PNG colour, 16-bit millimetre depth and the
    IR amplitude saved as the confidence image (mostly dark: a quarter of the view is bright); and the
    share of valid depth whose IR is at or above half scale, computed here from the arrays written."""
    for name in ("rgb", "depth", "confidence"):
        (root / name).mkdir(parents=True, exist_ok=True)
    (root / "intrinsics.json").write_text(json.dumps(K))
    rng = np.random.default_rng(3)
    valid = trusted = 0
    for i in range(frames):
        depth = room_depth_mm(i)
        ir = rng.integers(40, 120, size=(H, W)).astype(np.uint8)
        ir[: H // 2, : W // 2] = rng.integers(160, 255, size=(H // 2, W // 2))
        Image.fromarray(rng.integers(0, 255, size=(H, W, 3), dtype=np.uint8)).save(root / "rgb" / f"{i:06d}.png")
        Image.fromarray(depth).save(root / "depth" / f"{i:06d}.png")
        Image.fromarray(ir).save(root / "confidence" / f"{i:06d}.png")
        ok = (depth > 0) & (depth < 20000)
        valid += int(ok.sum())
        trusted += int((ok & (ir >= 128)).sum())
    return root, trusted / valid


def test_ingest_of_ir_saved_as_confidence_warns_in_the_log_and_in_info(tmp_path):
    root, share = write_ir_as_confidence_recording(tmp_path / "lab_tof")
    assert share < 0.5
    packed = _cli("ingest", str(root), "--out", str(tmp_path / "out"), "--height", str(H), "--width", str(W),
                  "--quiet")
    assert packed.returncode == 0, packed.stderr
    warned = [ln for ln in packed.stderr.splitlines() if "confidence trusts" in ln]
    assert len(warned) == 1 and "below the floor of 50%" in warned[0] and "'lab_tof'" in warned[0]
    info = _cli("info", str(tmp_path / "out" / "manifest" / "manifest.h5"))
    summary = json.loads(info.stdout)["confidence"]
    assert summary["trusted_share"] == pytest.approx(share, abs=1e-4)
    assert summary["datasets"]["lab_tof"] == pytest.approx(share, abs=1e-4) and summary["trusted_floor"] == 0.5
    assert len(summary["warnings"]) == 1 and summary["warnings"][0].startswith("lab_tof: confidence trusts")
    # The floor is a setting: a camera documented to trust only a fifth of its depth passes quietly.
    quiet = _cli("ingest", str(root), "--out", str(tmp_path / "out2"), "--height", str(H), "--width", str(W),
                 "--trusted-floor", "0.2", "--quiet")
    assert quiet.returncode == 0 and "confidence trusts" not in quiet.stderr
    info = json.loads(_cli("info", str(tmp_path / "out2" / "manifest" / "manifest.h5")).stdout)["confidence"]
    assert info["warnings"] == [] and info["trusted_floor"] == 0.2
