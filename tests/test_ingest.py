"""`distillery ingest` as a user runs it: every layout to a manifest, bad frames, the real 7-Scenes sample."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from frames_util import truncate
from layouts import make_7scenes, make_native, make_open3d, make_reference, make_tum

from distillery.atomic import read_jsonl
from distillery.manifest import Manifest

SEVEN_SCENES = Path(os.environ.get("DISTILLERY_7SCENES",
                                   Path(__file__).resolve().parents[2] / "shared" / "datasets" / "7scenes-kitchen"))


def distillery(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).parent / "distillery"
    proc = subprocess.run([str(exe), *args], capture_output=True, text=True, timeout=300)
    if check and proc.returncode != 0:
        raise AssertionError(f"distillery {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc


@pytest.mark.parametrize("make", [make_native, make_reference, make_tum, make_7scenes, make_open3d])
def test_every_layout_ingests_to_metres_at_storage_size(tmp_path, make):
    extra = {"intrinsics": json.dumps({"fx": 57.6, "fy": 51.2, "cx": 31.5, "cy": 24.25, "width": 64, "height": 48})}
    root = make(tmp_path / "data", n_frames=3, size=(48, 64))
    args = ["ingest", str(root), "--out", str(tmp_path / "out"), "--height", "24", "--width", "32", "--quiet"]
    if make is make_tum:
        args += ["--intrinsics", extra["intrinsics"]]
    distillery(*args)
    m = Manifest(tmp_path / "out" / "manifest" / "manifest.h5")
    assert len(m) == 3 and m.size == (24, 32)
    depth = m.read(0, ("tof_depth",))["tof_depth"]
    valid = depth[depth > 0]
    assert valid.size and np.allclose(valid, 1.0, atol=1e-3)  # every layout's default scale yields metres
    assert m.records[0]["intrinsics"][0] == pytest.approx(0.9 * 64 / 2, rel=1e-4)


def test_truncated_png_and_size_mismatch_are_quarantined_rest_kept(tmp_path):
    root = make_native(tmp_path / "data", n_frames=6, size=(48, 64))
    truncate(str(root / "rgb" / "000001.png"))
    np.save(root / "depth" / "000004.npy", np.ones((20, 20), np.float32))
    out = tmp_path / "out"
    distillery("ingest", str(root), "--out", str(out), "--frames-per-shard", "6", "--max-bad-share", "0.5", "--quiet")
    report = {r["frame"].rsplit("/", 1)[1]: r for r in read_jsonl(out / "manifest" / "quarantine.jsonl")}
    assert set(report) == {"000001", "000004"}
    assert report["000001"]["field"] == "rgb" and "truncated" in report["000001"]["reason"]
    assert report["000001"]["file"].endswith("rgb/000001.png")
    assert report["000004"]["field"] == "depth" and "size mismatch" in report["000004"]["reason"]
    keys = [r["key"].rsplit("/", 1)[1] for r in Manifest(out / "manifest" / "manifest.h5").records]
    assert keys == ["000000", "000002", "000003", "000005"]  # the rest of the same shard


def test_too_many_bad_frames_fail_with_a_readable_error(tmp_path):
    root = make_native(tmp_path / "data", n_frames=4, size=(48, 64))
    truncate(str(root / "rgb" / "000002.png"))
    proc = distillery("ingest", str(root), "--out", str(tmp_path / "out"), "--quiet", check=False)
    assert proc.returncode == 1
    assert "1 of 4 frames quarantined (25.0%)" in proc.stderr and "Traceback" not in proc.stderr
    assert "000002.png" in proc.stderr


def test_missing_folder_is_a_one_line_error(tmp_path):
    proc = distillery("ingest", str(tmp_path / "nope"), "--out", str(tmp_path / "out"), check=False)
    assert proc.returncode == 1 and "not found" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.skipif(not SEVEN_SCENES.is_dir(), reason="shared 7-Scenes sample not present")
def test_real_7scenes_sample_gives_200_frames_scaled_intrinsics_and_real_holes(tmp_path):
    distillery("ingest", str(SEVEN_SCENES), "--out", str(tmp_path / "out"), "--quiet")
    m = Manifest(tmp_path / "out" / "manifest" / "manifest.h5")
    assert len(m) == 200 and m.size == (240, 320)
    k = m.file["intrinsics"][:]
    np.testing.assert_allclose(k, np.tile([292.5, 292.5, 159.75, 119.75], (200, 1)))
    np.testing.assert_allclose(m.file["intrinsics_original"][0], [585, 585, 320, 240])
    invalid = 1 - float(m.file["tof_valid_share"][:].mean())
    print(f"7-Scenes kitchen sample: invalid depth share {invalid:.4f}")
    assert 0.05 < invalid < 0.2  # Kinect holes: about 11 % of pixels
    assert all(r["confidence_derived"] for r in m.records)  # 7-Scenes has no confidence channel
