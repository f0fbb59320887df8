"""Confidence-gated fusion: the gate, the per-frame scale, batching, numpy/torch agreement, bad inputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from distillery.fusion import CONF_MIN, DEPTH_MAX_M, DEPTH_MIN_M, fuse, masked_median, trusted_tof
from distillery.student import losses, metrics


def test_gate_bounds_are_strict_on_depth_and_inclusive_on_confidence():
    tof = np.array([DEPTH_MIN_M, 0.06, 9.99, DEPTH_MAX_M, 2.0, 2.0, np.nan, np.inf, -1.0])
    conf = np.array([1.0, 1.0, 1.0, 1.0, CONF_MIN, 0.49, 1.0, 1.0, 1.0])
    assert trusted_tof(tof, conf).tolist() == [False, True, True, False, True, False, False, False, False]
    assert not trusted_tof(np.array([2.0]), np.array([np.nan]))[0]


def test_losses_and_metrics_use_the_fusion_gate():
    tof = torch.tensor([0.04, 0.5, 3.0, 12.0])
    conf = torch.tensor([1.0, 0.6, 0.4, 1.0])
    assert torch.equal(losses.tof_usable(tof, conf), trusted_tof(tof, conf))
    assert metrics.trusted_tof is trusted_tof and losses.trusted_tof is trusted_tof


def test_scale_is_the_median_ratio_over_trusted_pixels_and_untrusted_pixels_are_scaled():
    student = np.array([[1.0, 2.0, 4.0], [1.0, 1.0, 3.0]])
    tof = np.array([[2.0, 4.0, 0.0], [3.0, 2.5, 0.0]])  # ratios 2, 2, 3, 2.5; 0 = no ToF
    out = fuse(student, tof, np.ones_like(tof))
    assert out.scale == pytest.approx(2.25)  # even count: mean of the middle two (2, 2.5)
    assert not out.no_trusted
    np.testing.assert_allclose(out.depth, [[2.0, 4.0, 9.0], [3.0, 2.5, 6.75]])


def test_frame_without_trusted_pixels_keeps_scale_one_and_says_so():
    student = np.full((2, 4, 4), 2.0, np.float32)
    tof = np.full_like(student, 3.0)
    conf = np.ones_like(student)
    conf[1] = 0.3  # frame 1: nothing trusted
    out = fuse(student, tof, conf)
    assert out.no_trusted.tolist() == [False, True]
    assert out.scale.tolist() == pytest.approx([1.5, 1.0])
    np.testing.assert_allclose(out.depth[1], 2.0)
    np.testing.assert_allclose(out.depth[0], 3.0)


def test_nan_negative_and_zero_inputs_never_make_nan():
    rng = np.random.default_rng(0)
    student = rng.uniform(0.5, 4, (3, 1, 6, 7)).astype(np.float32)
    tof = student * 1.3
    conf = rng.uniform(0, 1, student.shape).astype(np.float32)
    student[0, 0, :2] = np.nan
    student[0, 0, 2] = -1.0
    student[1] = 0.0  # a dead student frame
    tof[0, 0, 3] = np.nan
    conf[0, 0, 4] = np.nan
    tof[2] = np.inf
    student[2, 0, 0, 0] = np.inf
    out = fuse(student, tof, conf)
    assert np.isfinite(out.depth).all() and (out.depth >= 0).all()
    assert out.no_trusted.tolist() == [False, True, True]
    bad = ~np.isfinite(student) | (student <= 0)
    assert (out.depth[bad & ~trusted_tof(tof, conf)] == 0).all()


@pytest.mark.parametrize("shape", [(5, 6), (3, 5, 6), (3, 1, 5, 6)])
def test_numpy_and_torch_agree_in_every_shape(shape):
    rng = np.random.default_rng(1)
    student = rng.uniform(0.2, 5, shape).astype(np.float32)
    tof = (student * rng.uniform(0.8, 1.5)).astype(np.float32)
    tof[rng.uniform(size=shape) < 0.4] = 0
    conf = rng.uniform(0, 1, shape).astype(np.float32)
    a = fuse(student, tof, conf)
    b = fuse(torch.from_numpy(student), torch.from_numpy(tof), torch.from_numpy(conf))
    assert isinstance(b.depth, torch.Tensor) and b.depth.shape == shape and a.depth.shape == shape
    np.testing.assert_allclose(b.depth.numpy(), a.depth, rtol=1e-6)
    np.testing.assert_allclose(np.asarray(b.scale), np.asarray(a.scale), rtol=1e-6)
    assert np.asarray(a.scale).shape == (() if len(shape) == 2 else (shape[0],))


def test_batched_equals_frame_by_frame():
    rng = np.random.default_rng(2)
    student = rng.uniform(0.2, 5, (4, 8, 8))
    tof = np.where(rng.uniform(size=student.shape) < 0.5, student * 2.0 + rng.normal(0, 0.1, student.shape), 0)
    conf = np.ones_like(tof)
    batch = fuse(student, tof, conf)
    for i in range(4):
        one = fuse(student[i], tof[i], conf[i])
        np.testing.assert_array_equal(batch.depth[i], one.depth)
        assert batch.scale[i] == one.scale


def test_median_matches_numpy_median_for_odd_and_even_counts():
    rng = np.random.default_rng(3)
    values = rng.uniform(0, 10, (6, 5, 5))
    mask = rng.uniform(size=values.shape) < 0.5
    mask[5] = False
    expected = [np.median(v[m]) if m.any() else np.nan for v, m in zip(values, mask)]
    np.testing.assert_allclose(masked_median(values, mask), expected)
    np.testing.assert_allclose(masked_median(torch.from_numpy(values), torch.from_numpy(mask)).numpy(), expected)


def test_mismatched_shapes_are_refused_naming_them():
    with pytest.raises(ValueError, match="shapes differ"):
        fuse(np.ones((2, 3)), np.ones((3, 2)), np.ones((2, 3)))
    with pytest.raises(ValueError, match=r"\[N, 1, H, W\]"):
        fuse(np.ones((2, 2, 3, 3)), np.ones((2, 2, 3, 3)), np.ones((2, 2, 3, 3)))
