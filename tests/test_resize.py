import numpy as np
import pytest

from distillery.ingest.frames import DecodedFrame, Intrinsics
from distillery.ingest.resize import crop_box, resize_frame, scale_intrinsics


def _frame(h, w):
    depth = np.arange(h * w, dtype=np.float32).reshape(h, w)
    return DecodedFrame(rgb=np.zeros((h, w, 3), np.uint8), depth=depth, confidence=np.ones((h, w), np.float32),
                        confidence_derived=True)


def test_halving_scales_focal_and_centre_with_pixel_centres():
    k = Intrinsics(585.0, 585.0, 320.0, 240.0, 640, 480)
    out, k2 = resize_frame(_frame(480, 640), k, 240, 320, "crop")
    assert out.rgb.shape == (240, 320, 3) and out.depth.shape == (240, 320)
    assert (k2.fx, k2.fy, k2.width, k2.height) == (292.5, 292.5, 320, 240)
    assert k2.cx == pytest.approx(159.75) and k2.cy == pytest.approx(119.75)


def test_crop_keeps_square_pixels_on_wide_frames():
    box = crop_box(1280, 720, 320, 240, "crop")
    assert (box.width, box.height) == (960, 720) and box.left == 160
    k = scale_intrinsics(Intrinsics(747.84, 747.48, 643.36, 347.86, 1280, 720), box, 320, 240)
    assert k.fx / k.fy == pytest.approx(747.84 / 747.48)
    assert k.cx == pytest.approx((643.36 - 160 + 0.5) / 3 - 0.5)


def test_stretch_scales_axes_apart():
    k = scale_intrinsics(Intrinsics(100, 100, 50, 50, 1280, 720), crop_box(1280, 720, 320, 240, "stretch"), 320, 240)
    assert k.fx == pytest.approx(25.0) and k.fy == pytest.approx(100 / 3)


def test_invalid_depth_never_blends_into_valid_depth():
    frame = _frame(480, 640)
    frame.depth[:, ::2] = 0.0  # every other column invalid
    out, _ = resize_frame(frame, Intrinsics(1, 1, 0, 0, 640, 480), 240, 320, "crop")
    assert (out.depth[1:] > 0).all()  # half-valid footprints keep their valid half
    assert set(np.unique(out.depth[1:] % 2)) <= {1.0}  # means of odd-column values only, never of a 0
    frame.depth[:, 1::4] = 0.0  # now three of four columns invalid: footprints over them are invalid
    out, _ = resize_frame(frame, Intrinsics(1, 1, 0, 0, 640, 480), 240, 320, "crop")
    assert (out.depth[:, ::2] == 0).all() and (out.depth[1:, 1::2] > 0).all()


def test_unknown_fit_is_rejected():
    with pytest.raises(ValueError, match="fit"):
        crop_box(10, 10, 5, 5, "squash")
