"""Teachers label the frame as captured: a 480x640 7-Scenes dataset's teachers get 480x640 frames.

The shard keeps the camera image's file bytes; every real adapter (DA3, DA2,
YOLOv8, SAM 2; untrained, small variants of the real architectures) is called
with the source frame and its intrinsics, and its output comes onto the
240x320 grid per kind: depth by the valid-aware area rule, classes by their
mode, boxes scaled. The per-kind resampling is checked against references
written out here pixel by pixel, not with the code under test.
"""

import os
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
from frames_util import write_frames, write_shard_list
from PIL import Image
from test_teachers_models import DA3_TINY

from distillery.ingest.index import index_dataset
from distillery.ingest.pack import PackSettings, pack_shard
from distillery.ingest.resize import crop_box, resize_rgb
from distillery.ingest.shards import plan_shards
from distillery.manifest import Manifest
from distillery.manifest.info import manifest_info
from distillery.manifest.merge import merge_shards
from distillery.teachers import Runtime
from distillery.teachers.base import Teacher
from distillery.teachers.grid import FrameGrid
from distillery.teachers.runner import run_shard
from distillery.teachers.stages import build_stage

KITCHEN = Path(os.environ.get("DISTILLERY_7SCENES",
                              Path(__file__).resolve().parents[2] / "shared" / "datasets" / "7scenes-kitchen"))
FRAMES = ("frame-000000", "frame-000100")
K_SOURCE = [585.0, 585.0, 320.0, 240.0]  # 7-Scenes' Kinect at 640x480


# ---- per-kind resampling against pixel-by-pixel references -------------------------------------------

def ref_depth(src, top, left, f, h, w):
    """Each f x f footprint: 0 when less than half valid, the lower median of the valid values across an
    edge (spread above 5 %), else their mean."""
    out = np.zeros((h, w), np.float32)
    for i in range(h):
        for j in range(w):
            block = src[top + i * f:top + (i + 1) * f, left + j * f:left + (j + 1) * f].ravel()
            valid = np.sort(block[block > 0])
            if 2 * len(valid) < f * f:
                continue
            edge = valid[-1] - valid[0] > 0.05 * valid[0]
            out[i, j] = valid[(len(valid) - 1) // 2] if edge else valid.mean()
    return out


def ref_mode(src, top, left, f, h, w):
    """Each f x f footprint: the most frequent id, the smaller id on a tie."""
    out = np.zeros((h, w), np.uint8)
    for i in range(h):
        for j in range(w):
            block = src[top + i * f:top + (i + 1) * f, left + j * f:left + (j + 1) * f].ravel()
            out[i, j] = np.argmax(np.bincount(block, minlength=256))
    return out


@pytest.fixture
def wide():
    """A 72x128 (16:9) source onto a 24x32 grid: centre crop 72x96 at left 16, then 3x3 footprints."""
    box = crop_box(128, 72, 32, 24, "crop")
    assert (box.left, box.top, box.width, box.height) == (16, 0, 96, 72)
    return FrameGrid.of((box.left, box.top, box.width, box.height), (72, 128), (24, 32))


def test_depth_is_resampled_valid_aware(wide):
    rng = np.random.default_rng(0)
    depth = rng.uniform(1.0, 1.04, (72, 128)).astype(np.float32)  # smooth surface: area mean
    depth[:, 60:] += 2.0  # a depth edge inside footprints: a measured value, never a blend
    depth[rng.random((72, 128)) < 0.3] = 0.0  # holes: invalid stays invalid
    depth[30:36, 30:39] = 0.0  # a hole covering whole footprints
    out = wide.depth(depth)
    expected = ref_depth(depth, 0, 16, 3, 24, 32)
    np.testing.assert_allclose(out, expected, rtol=1e-6)
    assert (out[10:12, 5:8] == 0).all() and (out == 0).any() and (out > 0).mean() > 0.5
    blended = (out > 1.1) & (out < 2.9)
    assert not blended.any()  # no value between the two surfaces


def test_classes_take_the_mode_never_an_interpolated_id(wide):
    rng = np.random.default_rng(1)
    labels = rng.choice(np.array([0, 1, 2, 3, 255], np.uint8), (72, 128), p=[0.1, 0.2, 0.3, 0.1, 0.3])
    labels[:, :64] = np.repeat(labels[:, :64:3], 3, axis=1)[:, :64]  # structure wider than a footprint
    out = wide.labels(labels)
    np.testing.assert_array_equal(out, ref_mode(labels, 0, 16, 3, 24, 32))
    assert set(np.unique(out)) <= {0, 1, 2, 3, 255}
    tie = np.full((72, 128), 255, np.uint8)
    tie[:, 16::2] = 2  # columns alternate: footprints of 3 columns hold 2 of one id and 1 of the other
    out = wide.labels(tie)
    assert set(np.unique(out)) == {2, 255}


def test_boxes_follow_the_crop_and_scale_of_the_stored_frame(wide):
    boxes = np.array([[40, 12, 70, 60, 0.9, 2],  # inside the crop
                      [0, 0, 30, 30, 0.8, 3],  # partly left of the crop: clipped
                      [0, 0, 10, 72, 0.7, 3]], np.float32)  # wholly left of it: dropped
    out, keep = wide.boxes(boxes)
    s = 32 / 96
    np.testing.assert_allclose(out, [[(40 - 16) * s, 12 * s, (70 - 16) * s, 60 * s, 0.9, 2],
                                     [0, 0, (30 - 16) * s, 30 * s, 0.8, 3]], rtol=1e-6)
    assert keep.tolist() == [True, True, False]
    np.testing.assert_allclose(wide.boxes_to_input(out[:1]), boxes[:1], rtol=1e-6)
    # the same geometry as the stored RGB: a white rectangle lands where its box says
    rgb = np.zeros((72, 128, 3), np.uint8)
    rgb[12:60, 40:70] = 255
    small = resize_rgb(rgb, wide.crop, 32, 24)
    rows, cols = np.flatnonzero(small[..., 0].max(1) > 0), np.flatnonzero(small[..., 0].max(0) > 0)
    x1, y1, x2, y2 = out[0, :4]
    assert (cols[0], rows[0], cols[-1] + 1, rows[-1] + 1) == (np.floor(x1), np.floor(y1), np.ceil(x2), np.ceil(y2))


# ---- the real adapters on a 480x640 dataset ------------------------------------------------------------

@pytest.fixture(scope="module")
def kitchen(tmp_path_factory):
    """Two frames of the 7-Scenes kitchen sample (640x480 JPEG colour, 16-bit PNG depth), packed."""
    if not KITCHEN.is_dir():
        pytest.skip("shared 7-Scenes sample not present")
    root = tmp_path_factory.mktemp("kitchen")
    shutil.copy(KITCHEN / "camera-intrinsics.txt", root)
    for name in FRAMES:
        for suffix in (".color.jpg", ".depth.png", ".pose.txt"):
            shutil.copy(KITCHEN / f"{name}{suffix}", root)
    work = root.parent / "work"
    index_dataset(str(root), "kitchen", str(work / "kitchen.jsonl"), str(work / "q.jsonl"))
    plan = plan_shards([str(work / "kitchen.jsonl")], str(work / "plan"), 8, {"train": 1.0})
    shard = str(work / f"{plan['shards'][0]}.h5")
    pack_shard(str(work / "plan" / f"{plan['shards'][0]}.jsonl"), shard, str(work / "pq.jsonl"), progress=False)
    return {"root": root, "work": work, "shard": shard}


def spy(obj, name, calls):
    """Record the rgb and intrinsics of every call of obj.<name>(batch), and what it returned."""
    original = getattr(obj, name)

    def wrapper(batch):
        out = original(batch)
        calls.append({"rgb": tuple(batch["rgb"].shape), "intrinsics": batch["intrinsics"].numpy().copy(),
                      "boxes": batch.get("boxes"), "out": out})
        return out

    setattr(obj, name, wrapper)


@pytest.fixture(scope="module")
def layers(kitchen):
    """Depth (DA3, DA2), detect (YOLOv8) and segment (SAM 2 + labeller) layers of the kitchen shard."""
    work, shard = kitchen["work"], kitchen["shard"]
    cpu = Runtime("cpu")
    # Processing sizes below the published ones keep this cheap on a CPU; what is checked is the frame
    # each adapter is handed and how its output comes back, which the processing size does not change.
    stages = {"da3": build_stage("depth", dict(DA3_TINY, process_res=252), cpu),
              "da2": build_stage("depth", {"backend": "da2", "weights": "random", "arch": "small",
                                           "process_res": 252}, cpu),
              "yolo": build_stage("detect", {"backend": "yolo", "weights": "random", "arch": "yolov8n.yaml",
                                             "conf": 0.0, "max_det": 20}, cpu),
              "sam2": build_stage("segment", {"backend": "sam2", "weights": "random", "image_size": 512,
                                              "model_cfg": "configs/sam2.1/sam2.1_hiera_t.yaml"}, cpu)}
    calls = {name: [] for name in stages}
    processed = []
    da3 = stages["da3"]
    preprocess = da3.preprocess
    da3.preprocess = lambda rgb: processed.append(tuple(rgb.shape)) or preprocess(rgb)
    for name in ("da3", "da2", "yolo"):
        spy(stages[name], "predict", calls[name])
    spy(stages["sam2"].masker, "predict", calls["sam2"])
    out = {name: str(work / f"{name}.h5") for name in stages}
    for name in ("da3", "da2", "yolo"):
        run_shard(stages[name], shard, out[name], str(work / f"{name}.jsonl"), progress=False)
    run_shard(stages["sam2"], shard, out["sam2"], str(work / "sam2.jsonl"), depth_layer=out["da3"],
              detect_layer=out["yolo"], progress=False)
    return {"paths": out, "calls": calls, "da3_processed": processed}


def test_the_shard_keeps_the_camera_image_as_its_file(kitchen):
    with h5py.File(kitchen["shard"], "r") as f:
        keys = [k.decode() for k in f["key"][:]]
        for row, key in enumerate(keys):
            jpg = kitchen["root"] / f"{key.rsplit('/', 1)[1]}.color.jpg"
            assert f["rgb_encoded"][row].tobytes() == jpg.read_bytes()  # the file's bytes, not re-encoded
        assert f["rgb"].shape[1:] == (240, 320, 3)
        assert f["original_size"][:].tolist() == [[480, 640]] * 2
        assert f["source_crop"][:].tolist() == [[0, 0, 640, 480]] * 2
        np.testing.assert_allclose(f["intrinsics_original"][:], [K_SOURCE] * 2)


def test_every_real_teacher_is_called_with_the_480x640_frame_and_its_intrinsics(layers):
    for name, calls in layers["calls"].items():
        assert [c["rgb"] for c in calls] == [(2, 480, 640, 3)], name
        np.testing.assert_allclose(calls[0]["intrinsics"], [K_SOURCE] * 2, err_msg=name)
    assert layers["da3_processed"] == [(2, 480, 640, 3)]  # DA3 then resizes to its processing size itself
    for path in layers["paths"].values():
        with h5py.File(path, "r") as f:
            assert f["input_size"][:].tolist() == [[480, 640]] * 2


def test_depth_layers_are_the_teachers_output_resampled_valid_aware(layers):
    for name, slot in (("da3", "teacher_depth"), ("da2", "teacher_depth_relative")):
        raw = layers["calls"][name][0]["out"]
        with h5py.File(layers["paths"][name], "r") as f:
            stored = f[slot][:].astype(np.float32)
        for i, result in enumerate(raw):
            assert result["teacher_depth"].shape == (480, 640)
            expected = ref_depth(result["teacher_depth"], 0, 0, 2, 240, 320)
            as_stored = expected.astype(np.float16).astype(np.float32)  # the layer stores float16
            np.testing.assert_allclose(stored[i], as_stored, rtol=2e-3, atol=1.2e-7, err_msg=name)


def test_boxes_are_scaled_to_the_grid_and_sam2_is_prompted_in_source_pixels(layers):
    raw = layers["calls"]["yolo"][0]["out"]
    with h5py.File(layers["paths"]["yolo"], "r") as f:
        offsets, boxes = f["box_offsets"][:], f["boxes"][:]
    prompts = layers["calls"]["sam2"][0]["boxes"]
    for i, result in enumerate(raw):
        source = result["boxes"]
        assert len(source) and source[:, [0, 2]].max() > 320  # boxes in 640-wide pixels
        layer = boxes[offsets[i]:offsets[i + 1]]
        keep = (source[:, 2] > source[:, 0]) & (source[:, 3] > source[:, 1])
        np.testing.assert_allclose(layer[:, :4], source[keep, :4] / 2, rtol=1e-6)
        np.testing.assert_array_equal(layer[:, 4:], source[keep, 4:])
        np.testing.assert_allclose(prompts[i][:, :4], source[keep, :4], rtol=1e-5)


def test_sam2_masks_come_onto_the_grid_by_their_mode(layers):
    call = layers["calls"]["sam2"][0]
    with h5py.File(layers["paths"]["sam2"], "r") as f:
        labels = f["teacher_label"][:]
    for i, masks in enumerate(call["out"]):
        assert masks["masks"].shape[1:] == (480, 640)
        painted = np.full((480, 640), 255, np.uint8)
        for k in np.argsort(masks["scores"], kind="stable"):  # higher scores painted last
            painted[masks["masks"][k]] = masks["classes"][k]
        expected = ref_mode(painted, 0, 0, 2, 240, 320)
        masked = expected != 255
        assert masked.any()
        np.testing.assert_array_equal(labels[i][masked], expected[masked])


def test_the_manifest_and_info_say_at_which_size_each_teacher_labelled(kitchen, layers, tmp_path):
    out = tmp_path / "manifest.h5"
    merge_shards([kitchen["shard"]], str(out), progress=False,
                 layer_paths=[layers["paths"][n] for n in ("da3", "da2", "yolo", "sam2")])
    with Manifest(out) as m:
        assert m.file["input_size_teacher_depth"][:].tolist() == [[480, 640]] * 2
        assert m.file["input_size_boxes"][:].tolist() == [[480, 640]] * 2
        assert "rgb_encoded" not in m.file  # the source frames stay in the shards
        info = manifest_info(m)
    assert {t["backend"]: t["input_size"] for t in info["teachers"]} == {
        "da3": {"480x640": 2}, "da2": {"480x640": 2}, "yolo": {"480x640": 2}, "sam2": {"480x640": 2}}


class LumaDepth(Teacher):
    """A stand-in network: depth 1 + luma / 255 at the size of the frame it is given."""

    task, backend, reads, depth_kind = "depth", "luma", ("rgb",), "metric"

    def __init__(self):
        super().__init__(self.Settings(), Runtime())
        self.calls = []

    def predict(self, batch):
        self.calls.append(tuple(batch["rgb"].shape))
        return [{"teacher_depth": 1.0 + im.mean(-1) / 255} for im in batch["rgb"].numpy().astype(np.float32)]

    def describe(self):
        return {"id": "luma", "task": "depth", "backend": "luma", "kind": "metric", "depth_kind": "metric"}


def test_a_wider_source_frame_is_labelled_whole_and_cropped_onto_the_grid(tmp_path):
    """A 16:9 camera (72x128 here): the teacher sees all 128 columns; the stored 4:3 frame is their centre."""
    rows = write_frames(tmp_path / "wide", 1, size=(72, 128))
    shard = tmp_path / "wide.h5"
    pack_shard(write_shard_list(tmp_path / "frames.jsonl", rows), str(shard), str(tmp_path / "q.jsonl"),
               PackSettings(height=24, width=32), progress=False)
    teacher = LumaDepth()
    assert teacher.sees() == "source" and build_stage("depth", {"backend": "sim_da3"}, Runtime()).sees() == "stored"
    run_shard(teacher, str(shard), str(tmp_path / "d.h5"), str(tmp_path / "d.jsonl"), progress=False)
    assert teacher.calls == [(1, 72, 128, 3)]
    source = np.asarray(Image.open(rows[0]["rgb"]), np.float32)
    with h5py.File(tmp_path / "d.h5", "r") as f:
        stored = f["teacher_depth"][0].astype(np.float32)
        assert f["input_size"][0].tolist() == [72, 128]
    with h5py.File(shard, "r") as f:
        assert f["source_crop"][0].tolist() == [16, 0, 96, 72]
    np.testing.assert_allclose(stored, ref_depth(1.0 + source.mean(-1) / 255, 0, 16, 3, 24, 32), rtol=1e-3)
