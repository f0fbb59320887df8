"""ROS 2 bags as robots record them: `distillery extract-bag` then `distillery ingest`, and bad bags.

Bags are written with `rosbags` (tests/bag_util.py) from frames of known
geometry, a chosen depth-to-colour extrinsic on /tf_static and header stamps
whose record times carry different transport delays per topic.
"""

import contextlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import h5py
import hdf5plugin  # noqa: F401 - the manifest's Zstd filter
import numpy as np
import pytest
from bag_util import (EXTRINSIC, K_COLOUR, PERIOD_NS, START_NS, BagSpec, colour_pixels, storage_file,
                      truth_colour_depth, write_bag)

from distillery.cli import main
from distillery.ingest.bags import BagSettings, extract_bag
from distillery.ingest.bags.geometry import reproject_depth
from distillery.ingest.frames import Intrinsics
from distillery.ingest.readers import read_dataset

TOPICS = ["--color-topic", "/cam/color/image_raw", "--depth-topic", "/cam/depth/image_raw"]
SETTINGS = BagSettings("/cam/color/image_raw", "/cam/depth/image_raw", confidence_topic="/cam/depth/ir",
                       confidence_range=[0, 255])
REAL_BAG = Path(os.environ.get("DISTILLERY_ROSBAG1", Path(__file__).resolve().parents[2] / "shared" / "datasets"
                               / "realsense-d435-rosbag1" / "single_depth_color_640x480.bag"))


def distillery(*args: str, check: bool = True) -> SimpleNamespace:
    """`distillery ARGS` through the real entry point, in this process (a subprocess costs seconds of imports)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    proc = SimpleNamespace(returncode=code, stdout=out.getvalue(), stderr=err.getvalue())
    if check and code != 0:
        raise AssertionError(f"distillery {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc


def extract_and_ingest(bag: Path, out: Path, *extra: str, size=(K_COLOUR.height, K_COLOUR.width)) -> Path:
    """extract-bag then ingest, as a user runs them; returns manifest.h5."""
    distillery("extract-bag", str(bag), "--out", str(out / "native"), "--quiet", *extra)
    distillery("ingest", str(out / "native"), "--out", str(out / "ingest"), "--name", "robot", "--split", "train",
               "--height", str(size[0]), "--width", str(size[1]), "--quiet")
    return out / "ingest" / "manifest" / "manifest.h5"


def manifest_arrays(path: Path) -> dict:
    """Every dataset of a manifest except the source paths (which name the extraction folder)."""
    with h5py.File(path, "r") as f:
        return {k: f[k][()] for k in f if isinstance(f[k], h5py.Dataset) and k != "rgb_source"}


def test_mcap_and_db3_of_the_same_frames_give_identical_manifests_aligned_to_colour(tmp_path):
    bags = {s: write_bag(tmp_path / f"bag_{s}", BagSpec(storage=s)) for s in ("mcap", "sqlite3")}
    args = TOPICS + ["--confidence-topic", "/cam/depth/ir", "--confidence-range", "0", "255"]
    manifests = {s: extract_and_ingest(b, tmp_path / s, *args) for s, b in bags.items()}
    a, b = manifest_arrays(manifests["mcap"]), manifest_arrays(manifests["sqlite3"])
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    # Paired by header stamp: depth is recorded 70 ms late, which record times would not pair within 50 ms.
    # Colour frame 3 has no depth (dropped) and is reported, not paired with a neighbour 59 ms away.
    report = json.loads((tmp_path / "mcap" / "native" / "extract.json").read_text())
    assert report["frames"] == 5 and report["unpaired_color"] == 1 and report["stamps"] == "header"
    assert np.allclose(a["timestamp"], [(START_NS + i * PERIOD_NS) / 1e9 for i in (0, 1, 2, 4, 5)], atol=1e-6)
    assert np.array_equal(a["rgb"][3], colour_pixels(4))
    # Depth re-projected with the /tf_static chain lands on the colour camera's truth.
    truth, depth = truth_colour_depth(), a["tof_depth"][0]
    edge = (np.abs(np.diff(truth, axis=1, prepend=truth[:, :1])) > 0.1) | \
        (np.abs(np.diff(truth, axis=0, prepend=truth[:1])) > 0.1)
    near_edge = np.zeros_like(edge)
    for dy in range(-4, 5):
        for dx in range(-4, 5):
            near_edge |= np.roll(edge, (dy, dx), axis=(0, 1))  # disocclusions border the box
    interior = ~near_edge
    interior[:8] = False  # the depth camera's top rows hold no reading
    assert (depth[interior] > 0).all()  # no splat holes that would read as ToF failures
    assert np.abs(depth[interior] - truth[interior]).max() < 0.01
    conf = a["tof_confidence"][0].astype(np.float32)
    levels = np.array([0.0, 50 / 255, 200 / 255])  # IR mono8 / 255, carried with the depth it belongs to
    assert np.abs(conf[..., None] - levels).min(-1).max() < 1e-3
    assert np.allclose(conf[interior & (truth < 1.5)], 50 / 255, atol=1e-3)
    assert report["confidence"]["mapping"] == "clip((value - 0) / (255 - 0), 0, 1)"
    assert report["confidence"]["warning"] is None and report["confidence"]["trusted_share"] > 0.5
    assert not a["confidence_derived"].any()


def test_encodings_compressed_images_and_sequences_by_time(tmp_path):
    plain = extract_bag(str(write_bag(tmp_path / "plain", BagSpec())), str(tmp_path / "x_plain"), SETTINGS, False)
    for name, spec in {"bgr_f32": BagSpec(colour="bgr8", depth="32FC1"),
                       "compressed": BagSpec(colour="png", depth="compressedDepth")}.items():
        extract_bag(str(write_bag(tmp_path / name, spec)), str(tmp_path / f"x_{name}"), SETTINGS, False)
        for i in range(plain["frames"]):
            ref, got = (tmp_path / "x_plain" / "seq-000"), (tmp_path / f"x_{name}" / "seq-000")
            assert (ref / "rgb" / f"{i:06d}.png").read_bytes() == (got / "rgb" / f"{i:06d}.png").read_bytes()
            d_ref, d_got = np.load(ref / "depth" / f"{i:06d}.npy"), np.load(got / "depth" / f"{i:06d}.npy")
            assert np.array_equal(d_ref > 0, d_got > 0) and np.abs(d_ref - d_got).max() <= 0.0006
    cut = BagSettings(SETTINGS.color_topic, SETTINGS.depth_topic, sequence_seconds=0.15)
    report = extract_bag(str(tmp_path / "plain"), str(tmp_path / "x_cut"), cut, False)
    assert report["sequences"] == {"seq-000": 3, "seq-001": 1, "seq-002": 1}
    result = read_dataset(tmp_path / "x_cut", "robot")
    assert sorted({f.sequence for f in result.frames}) == ["seq-000", "seq-001", "seq-002"] and not result.rejects


def test_one_pass_writes_the_same_frames_as_the_two_pass_fallback(tmp_path, monkeypatch):
    """Streamed frames are kept only when they equal the pairing of all stamps: a window too small to
    decide anything falls back to a second pass, and both give the same files."""
    from distillery.ingest.bags import stream

    bag = write_bag(tmp_path / "bag", BagSpec(frames=40, depth="32FC1", drop_depth=(3, 10, 11), confidence=False))
    cut = BagSettings(SETTINGS.color_topic, SETTINGS.depth_topic, sequence_seconds=0.1)
    streamed = extract_bag(str(bag), str(tmp_path / "one"), cut, False)
    monkeypatch.setattr(stream, "WINDOW_MESSAGES", 1)
    fallback = extract_bag(str(bag), str(tmp_path / "two"), cut, False)
    monkeypatch.undo()
    assert (streamed["passes"], fallback["passes"]) == (1, 2)
    assert streamed["frames"] == fallback["frames"] == 37 and streamed["unpaired_color"] == 3
    files = sorted(p.relative_to(tmp_path / "one") for p in (tmp_path / "one").rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(tmp_path / "two") for p in (tmp_path / "two").rglob("*") if p.is_file())
    for name in files:
        if name.name != "extract.json":
            assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes(), name
    with_confidence = extract_bag(str(write_bag(tmp_path / "ir", BagSpec())), str(tmp_path / "ir_out"), SETTINGS, False)
    assert with_confidence["passes"] == 2 and with_confidence["confidence"]["trusted_share"] > 0
    from bag_util import RealsenseSpec, write_realsense_bag

    viewer = write_realsense_bag(tmp_path / "viewer.bag", RealsenseSpec(frames=3))
    unit = extract_bag(str(viewer), str(tmp_path / "unit"), BagSettings(depth_unit=0.00025), False)
    assert unit["passes"] == 1 and unit["depth_unit_m"] == 0.00025 and unit["frames"] == 3


def test_depth_splats_cover_an_upsampled_surface_without_holes():
    k_d, k_c = Intrinsics(50, 50, 31.5, 23.5, 64, 48), Intrinsics(140, 140, 79.5, 59.5, 160, 120)
    depth = np.full((48, 64), 2.0, np.float32)
    out, _ = reproject_depth(depth, k_d, k_c, np.eye(4))
    assert (out > 0).all() and np.allclose(out, 2.0)


@pytest.mark.parametrize("spec, extra, message", [
    (BagSpec(), ["--depth-topic", "/cam/depth/nope"], "no topic '/cam/depth/nope'"),
    (BagSpec(color_info=False), [], "no CameraInfo for the color topic '/cam/color/image_raw'"),
    (BagSpec(tf=False), [], "no /tf_static topic; give the transform with --extrinsic"),
    (BagSpec(colour="8UC3"), [], "'/cam/color/image_raw': unsupported colour encoding '8UC3'"),
    (BagSpec(distortion=[0.1, -0.05, 0.0, 0.0, 0.0]), [], "pass --undistort"),
])
def test_bad_bags_stop_with_the_topic_and_the_fix(tmp_path, spec, extra, message):
    bag = write_bag(tmp_path / "bag", spec)
    proc = distillery("extract-bag", str(bag), "--out", str(tmp_path / "out"), "--quiet", *TOPICS, *extra,
                      check=False)
    assert proc.returncode == 1 and message in proc.stderr, proc.stderr
    assert not (tmp_path / "out").exists()


def test_distortion_and_missing_transform_have_their_ways_out(tmp_path):
    distorted = write_bag(tmp_path / "distorted", BagSpec(distortion=[0.1, -0.05, 0.0, 0.0, 0.0]))
    undistorted = BagSettings(SETTINGS.color_topic, SETTINGS.depth_topic, undistort=True)
    assert extract_bag(str(distorted), str(tmp_path / "a"), undistorted, False)["undistorted"] == ["color"]
    no_tf = write_bag(tmp_path / "no_tf", BagSpec(tf=False))
    given = BagSettings(SETTINGS.color_topic, SETTINGS.depth_topic, extrinsic=EXTRINSIC)
    extract_bag(str(no_tf), str(tmp_path / "b"), given, False)
    extract_bag(str(write_bag(tmp_path / "tf", BagSpec())), str(tmp_path / "c"), given, False)
    for i in range(5):
        name = f"seq-000/depth/{i:06d}.npy"
        assert np.array_equal(np.load(tmp_path / "b" / name), np.load(tmp_path / "c" / name))


@pytest.mark.parametrize("storage, in_folder", [("mcap", False), ("sqlite3", False), ("mcap", True)])
def test_truncated_bag_fails_without_salvage_and_keeps_its_readable_prefix_with_it(tmp_path, storage, in_folder):
    """A recording cut short: a bare storage file, or the bag folder with its metadata.yaml."""
    folder = write_bag(tmp_path / "bag", BagSpec(storage=storage, frames=8))
    whole = storage_file(folder)
    cut = whole if in_folder else tmp_path / f"cut{whole.suffix}"
    data = whole.read_bytes()
    cut.write_bytes(data[: len(data) * 6 // 10])
    cut = folder if in_folder else cut
    refused = distillery("extract-bag", str(cut), "--out", str(tmp_path / "out"), "--quiet", *TOPICS, check=False)
    assert refused.returncode == 1 and "--salvage" in refused.stderr and not (tmp_path / "out").exists()
    count = int(refused.stderr.split("readable prefix holds ")[1].split()[0])
    proc = distillery("extract-bag", str(cut), "--out", str(tmp_path / "out"), "--quiet", "--salvage", *TOPICS)
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["truncated"] is True and summary["readable_messages"] == count > 0
    assert 1 <= summary["frames"] < 7
    assert len(list((tmp_path / "out" / "seq-000" / "rgb").iterdir())) == summary["frames"]


def test_damage_that_is_not_truncation_is_an_error_even_with_salvage(tmp_path):
    folder = write_bag(tmp_path / "bag", BagSpec(frames=4))
    whole = storage_file(folder)
    data = bytearray(whole.read_bytes())
    data[len(data) - 200:len(data) - 100] = b"\xff" * 100  # the summary section overwritten, the file complete
    bad = tmp_path / "bad.mcap"
    bad.write_bytes(bytes(data))
    proc = distillery("extract-bag", str(bad), "--out", str(tmp_path / "out"), "--quiet", "--salvage", *TOPICS,
                      check=False)
    assert proc.returncode == 1 and "not a readable bag" in proc.stderr and "cannot be salvaged" in proc.stderr


def test_compressed_topics_default_to_image_transport_camera_info(tmp_path):
    from distillery.ingest.bags.calibration import info_topic

    assert info_topic("/camera/color/image_raw/compressed") == "/camera/color/camera_info"
    assert info_topic("/camera/depth/image_rect_raw/compressedDepth") == "/camera/depth/camera_info"
    assert info_topic("/camera/color/image_raw") == "/camera/color/camera_info"
    bag = write_bag(tmp_path / "bag", BagSpec(colour="png", depth="compressedDepth", confidence=False))
    listing = distillery("extract-bag", str(bag), "--list-topics")
    assert "/cam/color/image_raw  sensor_msgs/CompressedImage  6" in listing.stdout
    assert "/cam/depth/camera_info  sensor_msgs/CameraInfo  5" in listing.stdout
    missing = distillery("extract-bag", str(bag), "--out", str(tmp_path / "o"), "--depth-topic", "/cam/nope",
                         "--color-topic", "/cam/color/image_raw", check=False)
    assert missing.returncode == 1 and "/cam/depth/image_raw  sensor_msgs/CompressedImage  5" in missing.stderr


def test_ir_as_confidence_needs_a_mapping_and_a_collapsed_trusted_share_warns(tmp_path, caplog):
    bag = write_bag(tmp_path / "bag", BagSpec())
    proc = distillery("extract-bag", str(bag), "--out", str(tmp_path / "a"), "--quiet", *TOPICS,
                      "--confidence-topic", "/cam/depth/ir", check=False)
    assert proc.returncode == 1 and "--confidence-scale" in proc.stderr and "--confidence-range" in proc.stderr
    # IR 50 on the box, 200 on the wall: a range that puts the gate above 200 trusts nothing.
    dim = BagSettings(SETTINGS.color_topic, SETTINGS.depth_topic, confidence_topic="/cam/depth/ir",
                      confidence_range=[0, 1000])
    with caplog.at_level("WARNING"):
        report = extract_bag(str(bag), str(tmp_path / "b"), dim, False)
    assert report["confidence"]["trusted_share"] == 0.0 and "below the floor of 50%" in report["confidence"]["warning"]
    assert "below the floor" in caplog.text


def test_equal_frame_ids_with_different_intrinsics_ask_for_registered_or_extrinsic(tmp_path):
    from bag_util import RealsenseSpec, write_realsense_bag

    from distillery.ingest.bags import calibration, realsense
    from distillery.ingest.bags.source import open_bag

    bag = write_realsense_bag(tmp_path / "rs.bag", RealsenseSpec(frames=2))
    source = open_bag(bag)
    found = calibration.find_cameras(source, BagSettings())
    calibration.first_pass(source, found, BagSettings())
    assert found.cams["color"].frame_id == found.cams["depth"].frame_id == "0"
    found.rs_poses, found.layout = {}, None  # as if the bag had no tf/0 topics
    with pytest.raises(ValueError, match="share the frame id '0'.*--registered.*--extrinsic"):
        calibration.depth_to_colour(found, BagSettings(), source)
    assert realsense.detect(source) is not None


@pytest.mark.skipif(not REAL_BAG.is_file(), reason="the shared RealSense ROS 1 bag is not present")
def test_real_realsense_bag_extracts_as_recorded_and_as_converted_to_db3_and_mcap(tmp_path):
    """The Viewer's .bag read directly (no topic, no extrinsic) equals its ROS 2 conversions given both by hand."""
    topics = {"--color-topic": "/device_0/sensor_1/Color_0/image/data",
              "--depth-topic": "/device_0/sensor_0/Depth_0/image/data",
              "--color-info-topic": "/device_0/sensor_1/Color_0/info/camera_info",
              "--depth-info-topic": "/device_0/sensor_0/Depth_0/info/camera_info"}
    convert = Path(sys.executable).parent / "rosbags-convert"
    # The recorder's colour runs slower than depth: its nearest depth is 0.1 s away.
    extrinsic = {"translation": [0.01431131362915039, 0.000602306448854506, 0.000610804301686585],
                 "rotation": [-5.319880231421298e-05, 0.0064634308469817235, 0.005154853722821664, 0.9999658465385437]}
    args = [a for kv in topics.items() for a in kv] + ["--tolerance", "0.15", "--extrinsic", json.dumps(extrinsic)]
    manifests = {"bag": extract_and_ingest(REAL_BAG, tmp_path / "bag", "--tolerance", "0.15", size=(240, 320))}
    for storage in ("sqlite3", "mcap"):
        bag = tmp_path / f"d435_{storage}"
        subprocess.run([str(convert), "--src", str(REAL_BAG), "--dst", str(bag), "--dst-storage", storage,
                        "--include-topic", *topics.values()], check=True, capture_output=True, timeout=120)
        manifests[storage] = extract_and_ingest(bag, tmp_path / storage, *args, size=(240, 320))
    a, b, direct = (manifest_arrays(manifests[k]) for k in ("sqlite3", "mcap", "bag"))
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert all(np.allclose(a[k], direct[k], atol=1e-6) for k in a if a[k].dtype.kind in "fiub")
    assert len(a["rgb"]) == 1 and a["timestamp"][0] == pytest.approx(360.713523)
    assert a["intrinsics_original"][0] == pytest.approx([613.2037, 613.4193, 319.9388, 239.183], abs=1e-3)
    valid = a["tof_depth"][0][a["tof_depth"][0] > 0]
    assert valid.size > 0.5 * a["tof_depth"][0].size and 0.3 < np.median(valid) < 15
    report = json.loads((tmp_path / "bag" / "native" / "extract.json").read_text())
    assert report["depth_registration"] == "reprojected" and report["depth_unit_m"] == pytest.approx(0.001)
    assert np.array(report["depth_to_color"])[:3, 3] == pytest.approx(extrinsic["translation"], abs=1e-6)


@pytest.mark.slow
def test_bag_dataset_entry_is_extracted_then_indexed_by_the_workflow(tmp_path):
    from workflow_util import snakemake, tiny_config

    from distillery.atomic import read_jsonl

    bag = write_bag(tmp_path / "bag", BagSpec())
    cfg = tiny_config()
    cfg["datasets"].append({"name": "robot", "bag": {
        "path": str(bag), "color_topic": "/cam/color/image_raw", "depth_topic": "/cam/depth/image_raw",
        "confidence_topic": "/cam/depth/ir", "confidence_range": [0, 255], "sequence_seconds": 0.15}})
    snakemake(tmp_path / "wf", "--nolock", "results/index/robot.jsonl", config=cfg)  # option ends --configfile
    index = read_jsonl(tmp_path / "wf" / "results" / "index" / "robot.jsonl")
    assert len(index) == 5 and {r["sequence"] for r in index} == {"seq-000", "seq-001", "seq-002"}
    assert all(r["layout"] == "native" and r["confidence"] for r in index)
    report = json.loads((tmp_path / "wf" / "results" / "bags" / "robot" / "extract.json").read_text())
    assert report["settings"]["sequence_seconds"] == 0.15


def test_undistort_brings_a_distorted_image_back_to_the_pinhole_camera():
    """A smooth pattern in ideal image coordinates, photographed through plumb_bob distortion."""
    from distillery.ingest.bags.geometry import _distort, undistort

    k, d = K_COLOUR, np.array([0.12, -0.05, 0.002, -0.001, 0.01])
    v, u = np.mgrid[0:k.height, 0:k.width].astype(np.float64)
    pattern = lambda x, y: 128 + 100 * np.sin(6 * x) * np.cos(5 * y)  # noqa: E731
    xd, yd = (u - k.cx) / k.fx, (v - k.cy) / k.fy
    x, y = xd.copy(), yd.copy()
    for _ in range(30):  # invert the distortion: the ideal point each distorted pixel sees
        fx, fy = _distort(x, y, "plumb_bob", d)
        x, y = x + (xd - fx), y + (yd - fy)
    photo = np.rint(pattern(x, y)).astype(np.uint8)[..., None].repeat(3, -1)
    out = undistort(photo, k, "plumb_bob", d, nearest=False)[..., 0].astype(np.float64)
    ideal = pattern((u - k.cx) / k.fx, (v - k.cy) / k.fy)
    inside = out > 0
    assert inside.mean() > 0.9 and np.abs(out - ideal)[inside].max() < 3.0
    assert np.abs(photo[..., 0] - ideal).max() > 8  # without undistortion the error is several times larger


# ---------------------------------------------------------------- librealsense recordings (ROS 1)


def _rotation_about(axis, degrees: float) -> np.ndarray:
    """Rodrigues' formula, written here so that the reference does not share the extractor's quaternion code."""
    k = np.asarray(axis, np.float64) / np.linalg.norm(axis)
    a = np.radians(degrees)
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + np.sin(a) * kx + (1 - np.cos(a)) * kx @ kx


def _pinhole_reference(depth_m: np.ndarray, kd: Intrinsics, kc: Intrinsics, rot: np.ndarray, t: np.ndarray):
    """Colour pixel (row, col) and depth of every valid depth pixel: back-project, move, project."""
    v, u = np.nonzero(depth_m > 0)
    z = depth_m[v, u].astype(np.float64)
    pts = np.stack([(u - kd.cx) / kd.fx * z, (v - kd.cy) / kd.fy * z, z])
    pc = rot @ pts + t[:, None]
    uc, vc = kc.fx * pc[0] / pc[2] + kc.cx, kc.fy * pc[1] / pc[2] + kc.cy
    return np.rint(vc).astype(int), np.rint(uc).astype(int), pc[2]


@pytest.mark.parametrize("translation, axis, degrees, unit", [
    ([0.015, 0.0, 0.0], [0, 1, 0], 0.0, 0.001),  # a D435's baseline, millimetre counts
    ([-0.05, 0.012, 0.004], [0.2, 1.0, 0.1], 3.0, 0.0001),  # a larger rig, rotated, 100 um counts
])
def test_librealsense_bag_reprojects_with_its_own_extrinsic_and_depth_unit(tmp_path, translation, axis, degrees, unit):
    from bag_util import K_DEPTH, RealsenseSpec, raycast, write_realsense_bag

    rot, t = _rotation_about(axis, degrees), np.asarray(translation, np.float64)
    t_cd = np.eye(4)
    t_cd[:3, :3], t_cd[:3, 3] = rot, t
    bag = write_realsense_bag(tmp_path / "viewer recording.bag", RealsenseSpec(frames=3, t_cd=t_cd, depth_unit=unit))
    proc = distillery("extract-bag", str(bag), "--out", str(tmp_path / "out"), "--quiet")  # no topic, no flag
    assert json.loads(proc.stdout)["frames"] == 3
    report = json.loads((tmp_path / "out" / "extract.json").read_text())
    assert report["layout"] == "librealsense" and report["depth_registration"] == "reprojected"
    assert np.allclose(report["depth_to_color"], t_cd, atol=1e-6) and report["depth_unit_m"] == pytest.approx(unit)
    assert "tf/0" in report["origins"]["depth_to_color"] and "Depth Units" in report["origins"]["depth_unit"]
    # The depth image as recorded, in counts of `unit`, read back independently of the extractor.
    recorded = np.round(raycast(K_DEPTH, t_cd) / unit) * unit
    recorded[:3] = 0.0
    rows, cols, z = _pinhole_reference(recorded, K_DEPTH, K_COLOUR, rot, t)
    inside = (rows >= 0) & (rows < K_COLOUR.height) & (cols >= 0) & (cols < K_COLOUR.width)
    got = np.load(tmp_path / "out" / "seq-000" / "depth" / "000001.npy")[rows[inside], cols[inside]]
    seen = got > 0
    assert seen.mean() > 0.9
    assert np.median(np.abs(got[seen] - z[inside][seen])) < 0.005  # within 5 mm of the reference
    # The identity transform that equal frame ids ("0") would suggest is measurably worse.
    rows0, cols0, z0 = _pinhole_reference(recorded, K_DEPTH, K_COLOUR, np.eye(3), np.zeros(3))
    ok0 = (rows0 >= 0) & (rows0 < K_COLOUR.height) & (cols0 >= 0) & (cols0 < K_COLOUR.width)
    moved = np.load(tmp_path / "out" / "seq-000" / "depth" / "000001.npy")[rows0[ok0], cols0[ok0]]
    assert np.mean(np.abs(moved - z0[ok0]) > 0.01) > np.mean(np.abs(got[seen] - z[inside][seen]) > 0.01)


SALVAGE_UNDER_A_CAP = """
import json, resource, sys
from distillery.ingest.bags import BagSettings, extract_bag
from distillery.ingest.bags.source import open_bag

bag, out, cap_mib = sys.argv[1], sys.argv[2], int(sys.argv[3])
open_bag(bag, allow_salvage=True)  # warm every import and code path before the cap
with open("/proc/self/statm") as f:
    vm = int(f.read().split()[0]) * resource.getpagesize()
resource.setrlimit(resource.RLIMIT_AS, (vm + cap_mib * 2**20, vm + cap_mib * 2**20))
report = extract_bag(bag, out, BagSettings(salvage=True), progress=False)
print(json.dumps({"frames": report["frames"], "readable": report["readable_messages"]}))
"""


def test_cut_off_viewer_recording_larger_than_its_memory_cap_fails_then_salvages_its_prefix(tmp_path):
    from bag_util import RealsenseSpec, write_realsense_bag

    whole = write_realsense_bag(tmp_path / "whole.bag", RealsenseSpec(frames=6, padding_mib=192))
    cut = tmp_path / "cut.bag"
    os.rename(whole, cut)
    os.truncate(cut, cut.stat().st_size * 3 // 4)  # the disk filled up three quarters in
    cap_mib = 64
    assert cut.stat().st_size > 2 * cap_mib * 2**20
    refused = distillery("extract-bag", str(cut), "--out", str(tmp_path / "no"), "--quiet", check=False)
    assert refused.returncode == 1 and "--salvage" in refused.stderr and "readable prefix holds" in refused.stderr
    count = int(refused.stderr.split("readable prefix holds ")[1].split()[0])
    # RLIMIT_AS counts address space: one malloc arena keeps the worker threads from reserving 64 MiB each.
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "MALLOC_ARENA_MAX": "1"}
    proc = subprocess.run([sys.executable, "-c", SALVAGE_UNDER_A_CAP, str(cut), str(tmp_path / "out"), str(cap_mib)],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["readable"] == count and 3 <= result["frames"] < 6


@pytest.mark.slow
def test_extract_bag_rule_quotes_a_bag_path_with_spaces_and_shell_characters(tmp_path):
    from bag_util import RealsenseSpec, write_realsense_bag
    from workflow_util import snakemake, tiny_config

    folder = tmp_path / "robot runs; echo INJECTED > $HOME_x 'o' & (1)"
    folder.mkdir()
    bag = write_realsense_bag(folder / "d435 $(touch pwned).bag", RealsenseSpec(frames=2))
    cfg = tiny_config()
    cfg["datasets"].append({"name": "robot", "bag": {"path": str(bag)}})
    snakemake(tmp_path / "wf", "--nolock", "results/bags/robot", config=cfg)
    report = json.loads((tmp_path / "wf" / "results" / "bags" / "robot" / "extract.json").read_text())
    assert report["bag"] == str(bag.resolve()) and report["frames"] == 2
    assert not any(p.name in ("pwned", "$HOME_x") for p in tmp_path.rglob("*") if p != bag)


def test_extraction_without_worker_threads_writes_the_same_frames(tmp_path, monkeypatch):
    """Under an address-space cap no worker thread may start: frames are then finished on the reading thread."""
    from bag_util import RealsenseSpec, write_realsense_bag

    from distillery.ingest.bags import BagSettings, extract_bag
    from distillery.ingest.bags import extract as extract_module

    bag = write_realsense_bag(tmp_path / "d435.bag", RealsenseSpec(frames=3))
    threaded = extract_bag(bag, tmp_path / "threaded", BagSettings(), progress=False)

    def no_thread(*args, **kwargs):
        raise RuntimeError("can't start new thread")

    monkeypatch.setattr(extract_module.ThreadPoolExecutor, "submit", no_thread)
    inline = extract_bag(bag, tmp_path / "inline", BagSettings(), progress=False)
    assert inline["frames"] == threaded["frames"] == 3
    for path in sorted((tmp_path / "threaded").rglob("*")):
        if path.is_file() and path.suffix in (".npy", ".png"):
            twin = tmp_path / "inline" / path.relative_to(tmp_path / "threaded")
            assert twin.read_bytes() == path.read_bytes(), path.name
