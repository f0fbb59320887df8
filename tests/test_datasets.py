"""Dataset readers: every layout on generated data, bad inputs, and the real 7-Scenes sample."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from layouts import (intrinsics_for, invalid_rows, make_7scenes, make_native, make_open3d, make_reference, make_tum,
                     tum_stamp, write_rgb)

from distillery.ingest.readers import LAYOUTS, detect_layout, read_dataset
from distillery.ingest.readers.base import ReaderOptions
from distillery.ingest.frames import Intrinsics, load_frame

SIZE = (48, 64)
K = Intrinsics(**intrinsics_for(SIZE))
WITH_K = ReaderOptions(intrinsics=K)
SAMPLE = Path(os.environ.get("DISTILLERY_7SCENES", Path(__file__).resolve().parents[2] / "shared" / "datasets"
                             / "7scenes-kitchen"))


def rejects_by(result, field_name: str) -> list:
    return [r for r in result.rejects if r.field == field_name]


def assert_metres(ref, expected: float, invalid_top: int | None = None) -> np.ndarray:
    """Decode `ref` and check valid pixels read `expected` metres and the invalid rows read 0."""
    depth = load_frame(ref, max_depth_m=20).depth
    top = invalid_rows(depth.shape[0]) if invalid_top is None else invalid_top
    assert np.allclose(depth[top:], expected, atol=1e-3)
    assert (depth[:top] == 0).all()
    return depth


# ---------------------------------------------------------------- native


def test_native_sequence(tmp_path):
    root = make_native(tmp_path / "corridor")
    result = read_dataset(root, "ds")
    assert [f.frame_id for f in result.frames] == ["000000", "000001", "000002", "000003"]
    assert not result.rejects
    ref = result.frames[1]
    assert (ref.layout, ref.sequence, ref.dataset, ref.key) == ("native", "corridor", "ds", "ds/corridor/000001")
    assert ref.intrinsics == K and ref.timestamp == pytest.approx(0.1)
    assert (ref.depth_encoding, ref.depth_scale) == ("npy", 1.0)
    assert all(Path(p).is_absolute() for p in (ref.rgb, ref.depth, ref.confidence))
    frame = load_frame(ref, max_depth_m=20)
    assert not frame.confidence_derived and frame.confidence.max() == pytest.approx(0.5)
    assert_metres(ref, 1.0)


def test_native_png_millimetres_and_scale_override(tmp_path):
    root = make_native(tmp_path / "seq", depth_format="png", depth_m=1.0, confidence=False)
    ref = read_dataset(root, "ds").frames[0]
    assert (ref.depth_encoding, ref.depth_scale, ref.confidence) == ("png", 1000.0, None)
    assert_metres(ref, 1.0)
    assert_metres(read_dataset(root, "ds", options=ReaderOptions(depth_scale=2000)).frames[0], 0.5)


def test_native_world_folder_of_sequences_with_truth(tmp_path):
    root = make_native(tmp_path / "world", n_frames=2, sequences=["seq_10", "seq_2"], truth=True)
    result = read_dataset(root, "synth")
    assert [(f.sequence, f.frame_id) for f in result.frames] == [
        ("seq_2", "000000"), ("seq_2", "000001"), ("seq_10", "000000"), ("seq_10", "000001")]
    frame = load_frame(result.frames[0], max_depth_m=20)
    assert frame.truth_depth is not None and (frame.truth_semantics == 1).all()
    assert detect_layout(root) == "native"


def test_native_orders_by_timestamp_then_natural_name(tmp_path):
    root = make_native(tmp_path / "seq", n_frames=3, timestamps=False)
    for old, new in (("000001", "f10"), ("000002", "f2")):
        for sub, ext in (("rgb", "png"), ("depth", "npy"), ("confidence", "npy")):
            (root / sub / f"{old}.{ext}").rename(root / sub / f"{new}.{ext}")
    assert [f.frame_id for f in read_dataset(root, "ds").frames] == ["000000", "f2", "f10"]
    (root / "timestamps.txt").write_text("# id seconds\n000000 3.0\nf2 2.0\nf10 1.0\n")
    assert [f.frame_id for f in read_dataset(root, "ds").frames] == ["f10", "f2", "000000"]


# ---------------------------------------------------------------- reference


def test_reference_manifest(tmp_path):
    root = make_reference(tmp_path / "corridor_eval_data", depth_m=2.5)
    result = read_dataset(root, "ref")
    assert [f.frame_id for f in result.frames] == ["00000", "00001", "00002", "00003"]
    assert not result.rejects and result.frames[0].intrinsics == K
    assert result.frames[0].layout == "reference"
    assert_metres(result.frames[2], 2.5)


def test_reference_build_manifest_keys_and_matrix_intrinsics(tmp_path):
    root = make_reference(tmp_path / "seq", depth_key="depth", intrinsics=False)
    k = intrinsics_for(SIZE)
    (root / "intrinsics.json").write_text(json.dumps({"K": [[k["fx"], 0, k["cx"]], [0, k["fy"], k["cy"]], [0, 0, 1]]}))
    lines = [json.loads(x) for x in (root / "manifest.jsonl").read_text().splitlines()]
    lines[0].update(stem="first", confidence="depth/00000.npy", da3_depth="da3_depth/00000.npy")
    (root / "manifest.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    result = read_dataset(root, "ref")
    assert not result.rejects and len(result.frames) == 4
    first = next(f for f in result.frames if f.frame_id == "first")
    assert first.intrinsics == K and first.confidence.endswith("depth/00000.npy")


def test_reference_per_line_intrinsics_and_cameras(tmp_path):
    root = make_reference(tmp_path / "lilocbench", intrinsics=False)
    k = {key: v for key, v in intrinsics_for(SIZE).items() if key in ("fx", "fy", "cx", "cy")}
    lines = [json.loads(x) for x in (root / "manifest.jsonl").read_text().splitlines()]
    for i, line in enumerate(lines):
        line.update(camera=f"camera_{i % 2}", timestamp=100.0 + i // 2, intrinsics=k, stem=f"{i:06d}")
    (root / "manifest.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    result = read_dataset(root, "liloc")
    assert not result.rejects
    assert [(f.sequence, f.timestamp) for f in result.frames] == [
        ("lilocbench_camera_0", 100.0), ("lilocbench_camera_0", 101.0),
        ("lilocbench_camera_1", 100.0), ("lilocbench_camera_1", 101.0)]
    assert result.frames[0].intrinsics == K  # width/height from the rgb header


def test_reference_line_to_missing_file_and_unlisted_files(tmp_path):
    root = make_reference(tmp_path / "seq")
    with (root / "manifest.jsonl").open("a") as f:
        f.write(json.dumps({"rgb": "rgb/00001.png", "sensor_depth": "depth/gone.npy", "stem": "x"}) + "\n")
        f.write(json.dumps({"rgb": "rgb/nope.png", "sensor_depth": "depth/00001.npy"}) + "\n")
        f.write("{not json\n")
    write_rgb(root / "rgb" / "stray.png", SIZE, seed=9)
    result = read_dataset(root, "ref")
    assert len(result.frames) == 4
    reasons = {(r.field, Path(r.file).name): r.reason for r in result.rejects}
    assert reasons[("depth", "gone.npy")] == "manifest.jsonl line 5 points at a missing file"
    assert reasons[("rgb", "nope.png")] == "manifest.jsonl line 6 points at a missing file"
    assert "line 7" in reasons[("manifest", "manifest.jsonl")]
    assert "not listed" in reasons[("manifest", "stray.png")]


# ---------------------------------------------------------------- TUM


def test_tum_association_scale_and_intrinsics_from_config(tmp_path):
    root = make_tum(tmp_path / "rgbd_dataset_freiburg1_xyz", dt=0.01, depth_m=1.0)
    result = read_dataset(root, "tum", options=WITH_K)
    assert [f.frame_id for f in result.frames] == [f"{tum_stamp(i):.6f}" for i in range(4)]
    ref = result.frames[0]
    assert ref.timestamp == pytest.approx(tum_stamp(0)) and ref.depth_scale == 5000.0
    assert ref.depth.endswith(f"{tum_stamp(0) + 0.01:.6f}.png") and ref.intrinsics == K
    assert any("no intrinsics" in w for w in result.warnings)
    assert_metres(ref, 1.0)


def test_tum_without_intrinsics_rejects_every_frame(tmp_path):
    result = read_dataset(make_tum(tmp_path / "seq"), "tum")
    assert not result.frames and len(rejects_by(result, "intrinsics")) == 4
    assert any("docs/datasets.md" in w for w in result.warnings)


def test_tum_pair_too_far_apart_is_unpaired(tmp_path):
    result = read_dataset(make_tum(tmp_path / "seq", dt=0.05, period=0.2), "tum", options=WITH_K)
    assert not result.frames
    rgb_side, depth_side = rejects_by(result, "depth"), rejects_by(result, "rgb")
    assert len(rgb_side) == 4 and len(depth_side) == 4
    assert rgb_side[0].reason.startswith("unpaired") and "nearest depth 0.050 s away" in rgb_side[0].reason
    assert len(read_dataset(tmp_path / "seq", "tum", options=ReaderOptions(intrinsics=K, max_pair_dt=0.06)).frames) == 4


def test_tum_associations_file(tmp_path):
    root = make_tum(tmp_path / "seq", lists=False, associations=True)
    assert detect_layout(root) == "tum"
    assert len(read_dataset(root, "tum", options=WITH_K).frames) == 4
    loose = read_dataset(root, "tum", options=ReaderOptions(intrinsics=K, max_pair_dt=0.005))
    assert not loose.frames and len(rejects_by(loose, "depth")) == 4


def test_tum_duplicate_timestamp_rejects_both(tmp_path):
    root = make_tum(tmp_path / "seq")
    stamp = f"{tum_stamp(1):.6f}"
    write_rgb(root / "rgb" / "copy.png", SIZE, seed=7)
    with (root / "rgb.txt").open("a") as f:
        f.write(f"{stamp} rgb/copy.png\n")
    result = read_dataset(root, "tum", options=WITH_K)
    assert len(result.frames) == 3
    dup = rejects_by(result, "timestamp")
    assert len(dup) == 2 and all("duplicate timestamp" in r.reason for r in dup)
    assert {r.frame for r in dup} == {f"tum/seq/{stamp}", f"tum/seq/{stamp}_1"}


# ---------------------------------------------------------------- 7-Scenes


def test_7scenes_sequences_invalid_values_and_intrinsics_file(tmp_path):
    root = make_7scenes(tmp_path / "kitchen", sequences=["seq-02", "seq-01"], color_ext="jpg", depth_mm=1500)
    result = read_dataset(root, "7s")
    assert [(f.sequence, f.frame_id) for f in result.frames][:2] == [("seq-01", "frame-000000"),
                                                                    ("seq-01", "frame-000001")]
    assert len(result.frames) == 8 and not result.rejects
    ref = result.frames[0]
    assert ref.depth_invalid == [65535] and ref.intrinsics == K and ref.rgb.endswith(".color.jpg")
    depth = assert_metres(ref, 1.5)
    assert (depth[0] == 0).all()  # the 65535 row


def test_7scenes_intrinsics_fallbacks(tmp_path):
    small = make_7scenes(tmp_path / "small", intrinsics=None)
    assert rejects_by(read_dataset(small, "7s"), "intrinsics")
    assert read_dataset(small, "7s", options=WITH_K).frames[0].intrinsics == K
    in_seq = make_7scenes(tmp_path / "per_seq", sequences=["seq-01"], intrinsics="sequence")
    assert read_dataset(in_seq, "7s").frames[0].intrinsics == K
    full = make_7scenes(tmp_path / "full", n_frames=1, size=(480, 640), intrinsics=None)
    result = read_dataset(full, "7s")
    assert result.frames[0].intrinsics == Intrinsics(585.0, 585.0, 320.0, 240.0, 640, 480)
    assert any("published 7-Scenes" in w for w in result.warnings)


# ---------------------------------------------------------------- Open3D


def test_open3d_column_major_intrinsics_and_scale(tmp_path):
    root = make_open3d(tmp_path / "recording", depth_mm=2000)
    result = read_dataset(root, "o3d")
    assert len(result.frames) == 4 and result.frames[0].intrinsics == K
    assert result.frames[0].layout == "open3d" and result.frames[0].depth_scale == 1000.0
    assert_metres(result.frames[0], 2.0)
    assert_metres(read_dataset(root, "o3d", options=ReaderOptions(depth_scale=4000)).frames[0], 0.5)


# ---------------------------------------------------------------- detection and index-level rejects


MAKERS = {"native": make_native, "reference": make_reference, "tum": make_tum, "7scenes": make_7scenes,
          "open3d": make_open3d}


@pytest.mark.parametrize("layout", LAYOUTS)
def test_detect_each_layout(tmp_path, layout):
    root = MAKERS[layout](tmp_path / "data", n_frames=1)
    assert detect_layout(root) == layout
    assert read_dataset(root, "d", layout=layout, options=WITH_K).frames[0].layout == layout


def test_nothing_matches_names_folder_and_layouts(tmp_path):
    (tmp_path / "photos" / "misc").mkdir(parents=True)
    with pytest.raises(ValueError) as err:
        detect_layout(tmp_path / "photos")
    message = str(err.value)
    assert str(tmp_path / "photos") in message
    assert all(f"  {name}:" in message for name in LAYOUTS) and "manifest.jsonl" in message
    with pytest.raises(ValueError, match="layout='tum'"):
        read_dataset(make_native(tmp_path / "nat"), "d", layout="tum")
    with pytest.raises(ValueError, match="unknown layout"):
        read_dataset(tmp_path / "nat", "d", layout="kinect")


def test_mixed_sequence_layouts(tmp_path):
    make_native(tmp_path / "mixed" / "a", n_frames=2)
    make_open3d(tmp_path / "mixed" / "b", n_frames=2)
    (tmp_path / "mixed" / "notes").mkdir()
    with pytest.raises(ValueError, match="different layouts"):
        detect_layout(tmp_path / "mixed")
    result = read_dataset(tmp_path / "mixed", "d")
    assert [f.layout for f in result.frames] == ["native", "native", "open3d", "open3d"]
    assert any("notes" in w for w in result.warnings)


def test_unpaired_rgb_and_depth_are_rejected(tmp_path):
    root = make_native(tmp_path / "seq")
    (root / "depth" / "000001.npy").unlink()
    (root / "rgb" / "000002.png").unlink()
    result = read_dataset(root, "ds")
    assert [f.frame_id for f in result.frames] == ["000000", "000003"]
    no_depth, no_rgb = rejects_by(result, "depth"), rejects_by(result, "rgb")
    assert no_depth[0].frame == "ds/seq/000001" and no_depth[0].file.endswith("rgb/000001.png")
    assert no_rgb[0].frame == "ds/seq/000002" and no_rgb[0].file.endswith("depth/000002.npy")
    assert all(r.reason.startswith("unpaired frame") for r in no_depth + no_rgb)


def test_ambiguous_files_are_rejected(tmp_path):
    root = make_7scenes(tmp_path / "seq")
    write_rgb(root / "frame-000001.color.jpg", SIZE, seed=1)
    result = read_dataset(root, "7s")
    assert len(result.frames) == 3 and "ambiguous" in rejects_by(result, "rgb")[0].reason


def test_missing_intrinsics_rejected_or_taken_from_config(tmp_path):
    root = make_native(tmp_path / "seq", intrinsics=False)
    result = read_dataset(root, "ds")
    assert not result.frames and len(rejects_by(result, "intrinsics")) == 4
    configured = read_dataset(root, "ds", options=WITH_K)
    assert len(configured.frames) == 4 and configured.frames[0].intrinsics == K and configured.warnings


def test_duplicate_native_timestamp_rejects_both(tmp_path):
    root = make_native(tmp_path / "seq")
    (root / "timestamps.txt").write_text("000000 0.0\n000001 0.5\n000002 0.5\n000003 0.9\n")
    result = read_dataset(root, "ds")
    assert [f.frame_id for f in result.frames] == ["000000", "000003"]
    assert sorted(r.frame for r in rejects_by(result, "timestamp")) == ["ds/seq/000001", "ds/seq/000002"]


def test_broken_intrinsics_file_raises(tmp_path):
    root = make_native(tmp_path / "seq")
    (root / "intrinsics.json").write_text(json.dumps({"fx": 500}))
    with pytest.raises(ValueError, match="intrinsics.json"):
        read_dataset(root, "ds")


# ---------------------------------------------------------------- the real 7-Scenes sample


@pytest.mark.skipif(not SAMPLE.is_dir(), reason=f"7-Scenes sample not found at {SAMPLE}")
def test_real_7scenes_kitchen_sample():
    assert detect_layout(SAMPLE) == "7scenes"
    result = read_dataset(SAMPLE, "kitchen")
    assert len(result.frames) == 200 and not result.rejects
    assert result.frames[0].intrinsics == Intrinsics(585.0, 585.0, 320.0, 240.0, 640, 480)
    invalid = total = 0
    for ref in result.frames:
        depth = load_frame(ref, max_depth_m=20).depth
        invalid, total = invalid + int((depth == 0).sum()), total + depth.size
    share = invalid / total
    print(f"7-Scenes kitchen sample: invalid depth share {share:.4f}")
    assert 0.0 < share < 1.0
