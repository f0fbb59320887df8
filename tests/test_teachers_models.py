"""The real teacher adapters: real architectures from their packages' configs, untrained, small variants.

They check what the adapters own: pre-processing, batching, the metric
scaling, units, shapes, dtypes and class ids. The metric formula is pinned
with known focals so that the reference's 1.27x error cannot come back.
"""

import math

import numpy as np
import pytest
import torch

from distillery.teachers import Runtime, build_teacher
from distillery.teachers.depth_da3 import metric_from_raw, processed_focal, processed_size
from distillery.teachers.detect_yolo import COCO_FURNITURE, letterbox_geometry, to_boxes

# DA3METRIC-LARGE's architecture (DinoV2 + DPT head, no camera branch) at ViT-S width.
DA3_TINY = {"backend": "da3", "weights": "random", "arch": "da3metric-large",
            "arch_overrides": ["net.name=vits", "net.out_layers=[2,5,8,11]", "head.dim_in=384", "head.features=64",
                               "head.out_channels=[48,96,192,384]"]}


def frames(n=2, height=240, width=320, seed=0):
    rng = np.random.default_rng(seed)
    return {"rgb": torch.from_numpy(rng.integers(0, 256, (n, height, width, 3), dtype=np.uint8)),
            "intrinsics": torch.tensor([[260.0, 260.0, 159.5, 119.5]] * n), "key": [f"k/{i}" for i in range(n)]}


def test_processed_size_follows_the_package_upper_bound_resize():
    assert processed_size(240, 320, 504) == (378, 504)
    assert processed_size(480, 640, 504) == (378, 504)
    assert processed_size(720, 1280, 504) == (280, 504)  # 283.5 -> nearest multiple of 14


def test_metric_depth_uses_the_focal_of_the_processed_resolution():
    # 240x320 stored, fx = fy = 300: at 378x504 the focal is 300 * 504 / 320 = 472.5
    focal = processed_focal(np.array([[300.0, 300.0, 159.5, 119.5]]), (240, 320), (378, 504))
    assert focal == pytest.approx([472.5])
    assert metric_from_raw(np.ones((1, 2, 2)), focal)[0, 0, 0] == pytest.approx(1.575)
    # NYU (fx 518.86, fy 519.47 at 640x480) stored at 320x240: the reference used the 640-wide focal on a
    # 504-wide output and got depth 640 / 504 = 1.27x too deep
    nyu = np.array([[518.86 / 2, 519.47 / 2, 162.8, 126.9]])
    right = metric_from_raw(np.ones((1, 1, 1)), processed_focal(nyu, (240, 320), (378, 504)))
    wrong = metric_from_raw(np.ones((1, 1, 1)), np.array([(518.86 + 519.47) / 2]))
    assert wrong[0, 0, 0] / right[0, 0, 0] == pytest.approx(640 / 504, rel=2e-3)


@pytest.fixture(scope="module")
def da3():
    return build_teacher(DA3_TINY, Runtime("cpu"))


def test_da3_returns_metric_depth_at_the_stored_size(da3):
    batch = frames()
    out = da3.predict(batch)
    assert len(out) == 2 and da3.depth_kind == "metric"
    for o in out:
        assert o["teacher_depth"].shape == (240, 320) and o["teacher_depth"].dtype == np.float32
        assert np.isfinite(o["teacher_depth"]).all()
    x = da3.preprocess(batch["rgb"])
    assert tuple(x.shape) == (2, 3, 378, 504)
    raw = da3.forward_raw(x)
    expected = (260.0 * 504 / 320 + 260.0 * 378 / 240) / 2 * raw / 300
    resized = torch.nn.functional.interpolate(expected[:, None], size=(240, 320), mode="bilinear")[:, 0]
    assert np.allclose(out[0]["teacher_depth"], resized[0].numpy(), rtol=1e-4, atol=1e-5)


def test_da3_depth_scales_with_the_focal(da3):
    batch = frames(1)
    double = dict(batch, intrinsics=batch["intrinsics"] * torch.tensor([2.0, 2.0, 1.0, 1.0]))
    a, b = da3.predict(batch)[0]["teacher_depth"], da3.predict(double)[0]["teacher_depth"]
    assert np.allclose(b, 2 * a, rtol=1e-4)


def test_a_frames_da3_depth_does_not_depend_on_its_batch(da3):
    # Untrained sky heads see no sky; shift this one's output so that part of each frame is sky.
    head = da3.net.head.scratch.sky_output_conv2[-1]
    original = head.bias.detach().clone()
    a, b = frames(3, seed=0), frames(3, seed=1)
    neighbours = dict(a, rgb=torch.cat([a["rgb"][:1], b["rgb"][1:]]), key=["k/0", "n/1", "n/2"])

    def sky():
        with torch.inference_mode():
            return da3.net(da3.preprocess(a["rgb"])[:, None])["sky"]

    logits = []  # the sky head's pre-activation map: shift its median to the activation's 0.3 level
    hook = head.register_forward_hook(lambda module, inputs, output: logits.append(output.detach()))
    sky()
    hook.remove()
    level = math.log(0.3 / 0.7) if da3.net.head.sky_activation == "sigmoid" else 0.3  # relu or linear: 0.3
    with torch.no_grad():
        head.bias += level - logits[0].median()
    try:
        assert 0.05 < (sky() >= 0.3).float().mean() < 0.95  # the sky step really runs
        torch.manual_seed(0)
        first = da3.predict(a)[0]["teacher_depth"]
        torch.manual_seed(1)
        second = da3.predict(neighbours)[0]["teacher_depth"]
        assert np.array_equal(first, second)
    finally:
        with torch.no_grad():
            head.bias.copy_(original)


def test_da2_returns_relative_inverse_depth_at_the_stored_size():
    da2 = build_teacher({"backend": "da2", "weights": "random", "arch": "small"}, Runtime("cpu"))
    assert tuple(da2.preprocess(frames(1)["rgb"]).shape) == (1, 3, 392, 518)
    out = da2.predict(frames(2, 120, 160))
    assert da2.depth_kind == "relative_inverse" and da2.describe()["depth_kind"] == "relative_inverse"
    assert [o["teacher_depth"].shape for o in out] == [(120, 160)] * 2
    assert all(o["teacher_depth"].dtype == np.float32 and (o["teacher_depth"] >= 0).all() for o in out)


def test_letterbox_and_box_mapping_to_our_classes():
    scale, size, pad = letterbox_geometry(240, 320, 640, 32)
    assert (scale, size, pad) == (2.0, (480, 640), (0, 0))
    assert letterbox_geometry(250, 320, 640, 32) == (2.0, (500, 640), (6, 0))
    det = np.array([[20, 40, 100, 200, 0.9, 0], [0, 6, 640, 486, 0.5, 56], [10, 10, 20, 20, 0.8, 2]], np.float32)
    out = to_boxes(det, 2.0, (6, 0), 250, 320)
    assert out["boxes"].tolist() == [[10, 17, 50, 97, 0.8999999761581421, 2], [0, 0, 320, 240, 0.5, 3]]
    assert out["source_class"].tolist() == [0, 56]  # the car (COCO 2) is no class of ours


def test_yolo_batches_frames_into_boxes_of_person_and_furniture():
    yolo = build_teacher({"backend": "yolo", "weights": "random", "arch": "yolov8n.yaml", "conf": 0.0},
                         Runtime("cpu"))
    out = yolo.predict(frames(2))
    for o in out:
        boxes = o["boxes"]
        assert boxes.dtype == np.float32 and boxes.shape[1] == 6 and 0 < len(boxes) <= 100
        assert set(np.unique(boxes[:, 5])) <= {2.0, 3.0}
        assert set(o["source_class"].tolist()) <= {0, *COCO_FURNITURE}
        assert (boxes[:, 2] >= boxes[:, 0]).all() and boxes[:, [0, 2]].max() <= 320 and boxes[:, [1, 3]].max() <= 240
        assert ((boxes[:, 5] == 2) == (o["source_class"] == 0)).all()
    strict = build_teacher({"backend": "yolo", "weights": "random", "arch": "yolov8n.yaml"}, Runtime("cpu"))
    assert all((o["boxes"][:, 4] >= 0.3).all() for o in strict.predict(frames(1)))


def test_sam2_encodes_each_image_once_and_matches_the_package_predictor(monkeypatch):
    from sam2.sam2_image_predictor import SAM2ImagePredictor

    sam = build_teacher({"backend": "sam2", "weights": "random", "model_cfg": "configs/sam2.1/sam2.1_hiera_t.yaml",
                         "image_size": 512}, Runtime("cpu"))
    batch = frames(3, 120, 160)
    batch["boxes"] = [np.array([[10, 10, 80, 60, 0.9, 2], [40, 30, 150, 110, 0.5, 3]], np.float32),
                      np.zeros((0, 6), np.float32), np.array([[0, 0, 60, 60, 0.7, 3]], np.float32)]
    encoded, decoded = [], []
    encode, decode = sam.encode, sam.decode
    monkeypatch.setattr(sam, "encode", lambda rgb: encoded.append(len(rgb)) or encode(rgb))
    monkeypatch.setattr(sam, "decode", lambda *a: decoded.append(len(a[3])) or decode(*a))
    out = sam.predict(batch)
    assert encoded == [2] and decoded == [2, 1]  # frames with boxes, once; all boxes of a frame in one call
    assert [o["masks"].shape for o in out] == [(2, 120, 160), (0, 120, 160), (1, 120, 160)]
    assert out[0]["masks"].dtype == bool and out[0]["classes"].tolist() == [2, 3]
    predictor = SAM2ImagePredictor(sam.model)
    predictor._bb_feat_sizes = [(128, 128), (64, 64), (32, 32)]  # the predictor assumes 1024
    predictor.set_image(batch["rgb"][0].numpy())
    masks, _, _ = predictor.predict(box=batch["boxes"][0][:, :4], multimask_output=False)
    assert (masks[:, 0].astype(bool) == out[0]["masks"]).mean() > 0.995


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_da3_on_cuda_with_bf16_autocast_matches_cpu_roughly(da3):
    gpu = build_teacher(DA3_TINY, Runtime("cuda", "bf16"))
    gpu.net.load_state_dict(da3.net.state_dict())
    batch = frames(2)
    a = da3.predict(batch)[0]["teacher_depth"]
    b = gpu.predict(dict(batch, rgb=batch["rgb"].pin_memory()))[0]["teacher_depth"]
    assert np.abs(a - b).mean() / np.abs(a).mean() < 0.05
