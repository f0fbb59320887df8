"""Student losses against hand-computed values, and every branch of the depth target."""

import math

import pytest
import torch

from distillery.student.losses import (KendallWeighting, StudentLoss, berhu_loss, depth_target,
                                       edge_aware_smoothness, l1_loss, segmentation_loss, tof_usable)


def _img(values) -> torch.Tensor:
    """A [1, 1, H, W] image from nested lists."""
    return torch.tensor(values, dtype=torch.float32)[None, None]


def test_berhu_matches_hand_computation():
    pred, target = _img([[1.0, 2.0, 3.0, 4.0]]), _img([[1.0, 1.0, 1.0, 1.0]])
    # errors 0, 1, 2, 3; c = 0.2 * 3 = 0.6: 0, (1 + .36) / 1.2, (4 + .36) / 1.2, (9 + .36) / 1.2
    expected = (0 + 1.36 / 1.2 + 4.36 / 1.2 + 9.36 / 1.2) / 4
    assert berhu_loss(pred, target, torch.ones_like(pred, dtype=torch.bool)).item() == pytest.approx(expected)
    valid = _img([[1, 1, 1, 0]]).bool()  # the largest error is masked out: c = 0.4
    expected = (0 + 1.16 / 0.8 + 4.16 / 0.8) / 3
    assert berhu_loss(pred, target, valid).item() == pytest.approx(expected)


def test_berhu_below_c_is_l1_and_c_is_detached():
    pred = _img([[1.0, 1.1, 4.0]]).requires_grad_()
    target = _img([[1.0, 1.0, 1.0]])
    loss = berhu_loss(pred, target, torch.ones_like(target, dtype=torch.bool))
    loss.backward()
    c = 0.6
    # d/dpred: 0 at e=0 (|e| branch), 1/3 at e=0.1 <= c, (e/c)/3 at e=3 with c held constant
    assert pred.grad.flatten().tolist() == pytest.approx([0.0, 1 / 3, (3 / c) / 3])


def test_empty_mask_gives_zero_with_gradient_not_nan():
    pred = torch.rand(1, 1, 4, 4, requires_grad=True)
    none = torch.zeros_like(pred, dtype=torch.bool)
    for loss in (berhu_loss(pred, torch.zeros_like(pred), none), l1_loss(pred, torch.zeros_like(pred), none)):
        assert loss.item() == 0.0
        (grad,) = torch.autograd.grad(loss, pred)
        assert torch.isfinite(grad).all() and grad.abs().sum() == 0


def test_l1_matches_hand_computation():
    pred, target = _img([[1.0, 3.0, 0.5]]), _img([[2.0, 1.0, 9.0]])
    assert l1_loss(pred, target, _img([[1, 1, 0]]).bool()).item() == pytest.approx(1.5)


def test_cross_entropy_ignores_255_and_matches_hand_computation():
    logits = torch.zeros(1, 6, 1, 2)
    logits[0, 1, 0, 0] = math.log(3.0)  # class 1: e^ln3 / (e^ln3 + 5) = 3 / 8
    labels = torch.tensor([[[1, 255]]])
    assert segmentation_loss(logits, labels).item() == pytest.approx(-math.log(3 / 8))


def test_all_ignored_batch_gives_exactly_zero_with_gradients():
    logits = torch.randn(2, 6, 4, 4, requires_grad=True)
    loss = segmentation_loss(logits, torch.full((2, 4, 4), 255))
    assert loss.item() == 0.0
    loss.backward()
    assert logits.grad is not None and torch.isfinite(logits.grad).all()


def test_edge_aware_smoothness_matches_hand_computation():
    depth = _img([[0.0, 1.0], [2.0, 4.0]])
    flat = torch.zeros(1, 3, 2, 2)
    assert edge_aware_smoothness(depth, flat).item() == pytest.approx(1.5 + 2.5)  # mean |dx d| + mean |dy d|
    edge = torch.tensor([[0.0, 1.0], [0.0, 1.0]]).expand(1, 3, 2, 2)  # |dx I| = 1 on both rows
    assert edge_aware_smoothness(depth, edge).item() == pytest.approx(1.5 * math.exp(-1) + 2.5)


def test_kendall_weighting_matches_formula_and_clamps():
    kendall = KendallWeighting(clamp=2.0)
    with torch.no_grad():
        kendall.s_depth.fill_(0.5)
        kendall.s_seg.fill_(-0.3)
    expected = 0.5 * math.exp(-0.5) * 2.0 + 0.25 + math.exp(0.3) * 1.0 - 0.15
    assert kendall(torch.tensor(2.0), torch.tensor(1.0)).item() == pytest.approx(expected)
    with torch.no_grad():
        kendall.s_depth.fill_(3.0)
        kendall.s_seg.fill_(-5.0)
    expected = 0.5 * math.exp(-2) * 2.0 + 1.0 + math.exp(2) * 1.0 - 1.0
    assert kendall(torch.tensor(2.0), torch.tensor(1.0)).item() == pytest.approx(expected)


def _two_frame_batch() -> dict:
    """Frame 0 has teacher depth, frame 1 has none; ToF is invalid or unconfident on some pixels."""
    tof = torch.tensor([[[[1.0, 0.0, 2.0, 12.0]]], [[[3.0, 0.0, 4.0, 0.04]]]])
    conf = torch.tensor([[[[0.9, 0.0, 0.3, 0.9]]], [[[0.9, 0.0, 0.9, 0.9]]]])
    teacher = torch.tensor([[[[1.5, 2.5, 3.5, 4.5]]], [[[0.0, 0.0, 0.0, 0.0]]]])
    return {"tof_depth": tof, "tof_confidence": conf, "teacher_depth": teacher,
            "has_teacher_depth": torch.tensor([True, False]), "rgb": torch.zeros(2, 3, 1, 4),
            "teacher_label": torch.full((2, 1, 4), 255)}


def test_hybrid_target_takes_the_teacher_branch_and_the_tof_branch():
    target, valid = depth_target(_two_frame_batch(), "hybrid")
    assert target[0].flatten().tolist() == [1.5, 2.5, 3.5, 4.5]  # teacher branch
    assert target[1].flatten().tolist() == pytest.approx([3.0, 0.0, 4.0, 0.04])  # ToF branch
    assert valid[1].flatten().tolist() == [True, False, True, True]


def test_fusion_target_takes_trusted_tof_then_teacher_per_pixel():
    target, valid = depth_target(_two_frame_batch(), "fusion")
    # frame 0: ToF trusted only at pixel 0 (pixel 2 unconfident, pixel 3 beyond 10 m)
    assert target[0].flatten().tolist() == [1.0, 2.5, 3.5, 4.5]
    # frame 1 has no teacher: trusted ToF only (0.04 m is below the 0.05 m range)
    assert target[1].flatten().tolist() == [3.0, 0.0, 4.0, 0.0]
    assert valid[1].flatten().tolist() == [True, False, True, False]


def test_tof_only_target_ignores_the_teacher():
    batch = _two_frame_batch()
    target, valid = depth_target(batch, "tof_only")
    assert torch.equal(target, batch["tof_depth"]) and valid[0].flatten().tolist() == [True, False, True, True]
    assert tof_usable(batch["tof_depth"], batch["tof_confidence"])[0].flatten().tolist() == [True, False, False,
                                                                                               False]


def test_student_loss_never_reads_truth_and_absent_seg_leaves_its_weight_alone():
    batch = _two_frame_batch()
    outputs = {"depth": torch.full((2, 1, 1, 4), 2.0, requires_grad=True),
               "segmentation": torch.zeros(2, 6, 1, 4, requires_grad=True)}
    loss_fn = StudentLoss()
    parts = loss_fn(outputs, batch)
    with_truth = loss_fn(outputs, {**batch, "truth_depth": torch.full((2, 1, 1, 4), 99.0),
                                   "truth_label": torch.zeros(2, 1, 4, dtype=torch.long)})
    assert with_truth["loss"].item() == parts["loss"].item()
    parts["loss"].backward()
    assert loss_fn.kendall.s_seg.grad.item() == 0.0 and loss_fn.kendall.s_depth.grad.item() != 0.0


def test_l1_option_and_no_kendall_sum():
    batch = _two_frame_batch()
    outputs = {"depth": torch.full((2, 1, 1, 4), 2.0), "segmentation": torch.zeros(2, 6, 1, 4)}
    parts = StudentLoss(depth_loss="l1", kendall=False, lambda_e=0.0)(outputs, batch)
    target, valid = depth_target(batch, "hybrid")
    assert parts["loss"].item() == pytest.approx((2.0 - target)[valid].abs().mean().item())
    with pytest.raises(ValueError):
        StudentLoss(depth_target="teacher_sometimes")


def test_edge_term_is_lambda_e_times_l_edge_outside_the_kendall_weighting():
    """The spec: 0.5 exp(-s_d) L_d + 0.5 s_d + exp(-s_s) L_s + 0.5 s_s + lambda_e L_edge."""
    batch = _two_frame_batch()
    batch["rgb"] = torch.rand(2, 3, 1, 4, generator=torch.Generator().manual_seed(0))
    batch["teacher_label"] = torch.tensor([[[0, 1, 255, 2]], [[1, 1, 0, 255]]])
    depth = torch.tensor([[[[1.0, 2.0, 4.0, 3.0]]], [[[2.0, 5.0, 1.0, 2.0]]]])
    outputs = {"depth": depth, "segmentation": torch.randn(2, 6, 1, 4, generator=torch.Generator().manual_seed(1))}
    loss_fn = StudentLoss(lambda_e=0.3)
    with torch.no_grad():
        loss_fn.kendall.s_depth.fill_(1.5)
        loss_fn.kendall.s_seg.fill_(-0.5)
    parts = loss_fn(outputs, batch)
    fit, seg, edge = parts["depth_fit"].item(), parts["seg"].item(), parts["smoothness"].item()
    assert edge == pytest.approx(edge_aware_smoothness(depth, batch["rgb"]).item()) and edge > 0
    expected = 0.5 * math.exp(-1.5) * fit + 0.75 + math.exp(0.5) * seg - 0.25 + 0.3 * edge
    assert parts["loss"].item() == pytest.approx(expected, rel=1e-6)
    # The edge weight does not follow s_d: only the Kendall terms change with it.
    with torch.no_grad():
        loss_fn.kendall.s_depth.fill_(-1.0)
    again = loss_fn(outputs, batch)["loss"].item()
    assert again - expected == pytest.approx(0.5 * (math.exp(1.0) - math.exp(-1.5)) * fit - 1.25, rel=1e-6)
    # Without Kendall: L_d + seg_weight L_s + lambda_e L_edge.
    plain = StudentLoss(kendall=False, seg_weight=2.0, lambda_e=0.3)(outputs, batch)["loss"].item()
    assert plain == pytest.approx(fit + 2.0 * seg + 0.3 * edge, rel=1e-6)


def test_lambda_e_defaults_to_the_spec_and_old_configs_still_load():
    from distillery.student.config import TrainConfig, config_from_dict

    assert TrainConfig().lambda_e == 0.1 and StudentLoss().lambda_e == 0.1
    assert config_from_dict({"smoothness_weight": 0.2}).lambda_e == 0.2  # a checkpoint written before the rename
