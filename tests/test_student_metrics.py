"""Depth and segmentation metrics against hand-computed values; accumulation equals one-shot."""

import math

import pytest
import torch

from distillery.student.metrics import (Evaluator, confusion_matrix, depth_metrics, segmentation_from_confusion,
                                        segmentation_metrics)


def test_depth_metrics_match_hand_computation():
    pred = torch.tensor([1.0, 2.0, 3.0, 8.0])
    target = torch.tensor([1.0, 2.5, 2.0, 0.0])  # the last pixel has no reference
    m = depth_metrics(pred, target, torch.ones(4, dtype=torch.bool))
    # errors 0, -0.5, 1 on three pixels
    assert m["pixels"] == 3
    assert m["rmse"] == pytest.approx(math.sqrt((0 + 0.25 + 1) / 3))
    assert m["mae"] == pytest.approx(1.5 / 3)
    assert m["absrel"] == pytest.approx((0 + 0.5 / 2.5 + 1 / 2) / 3)
    # ratios 1, 1.25, 1.5: delta1 counts < 1.25 only
    assert (m["delta1"], m["delta2"], m["delta3"]) == pytest.approx((1 / 3, 3 / 3, 3 / 3))


def test_miou_is_the_nan_mean_over_classes_present():
    pred = torch.tensor([0, 0, 1, 1, 2, 2])
    labels = torch.tensor([0, 1, 1, 1, 255, 255])
    m = segmentation_from_confusion(confusion_matrix(pred, labels, 6))
    # class 0: tp 1, union 2; class 1: tp 2, union 3; others absent -> NaN, left out of the mean
    assert m["iou_floor"] == pytest.approx(0.5) and m["iou_wall"] == pytest.approx(2 / 3)
    assert math.isnan(m["iou_glass"])
    assert m["miou"] == pytest.approx((0.5 + 2 / 3) / 2)
    assert m["pixel_acc"] == pytest.approx(3 / 4) and m["pixels"] == 4


def test_segmentation_metrics_from_logits():
    logits = torch.zeros(1, 6, 1, 2)
    logits[0, 3, 0, 0] = logits[0, 4, 0, 1] = 5.0
    m = segmentation_metrics(logits, torch.tensor([[[3, 5]]]))
    assert m["iou_furniture"] == 1.0 and m["iou_glass"] == 0.0 and m["iou_other"] == 0.0


def _batch(pred_offset: float) -> tuple[dict, dict]:
    truth = torch.linspace(1, 4, 32).reshape(1, 1, 4, 8).repeat(2, 1, 1, 1)
    tof = truth.clone()
    tof[:, :, :1] = 0.0
    batch = {"tof_depth": tof, "tof_confidence": (tof > 0).float(), "teacher_depth": truth * 1.1,
             "has_teacher_depth": torch.tensor([True, False]), "truth_depth": truth,
             "has_truth_depth": torch.tensor([True, True]), "teacher_label": torch.zeros(2, 4, 8, dtype=torch.long),
             "truth_label": torch.ones(2, 4, 8, dtype=torch.long), "rgb": torch.zeros(2, 3, 4, 8)}
    logits = torch.zeros(2, 6, 4, 8)
    logits[:, 0] = 1.0
    return {"depth": truth + pred_offset, "segmentation": logits}, batch


def test_evaluator_references_masks_and_accumulation():
    evaluator = Evaluator(6, "hybrid")
    for offset in (0.1, 0.3):
        evaluator.update(*_batch(offset))
    m = evaluator.compute()
    assert m["depth/truth/pixels"] == 2 * 2 * 32 and m["depth/truth/mae"] == pytest.approx(0.2)
    assert m["depth/truth/rmse"] == pytest.approx(math.sqrt((0.01 + 0.09) / 2))
    assert m["depth/truth_tof_invalid/pixels"] == 2 * 2 * 8  # the top row of both frames
    assert m["depth/teacher/pixels"] == 2 * 32  # only frame 0 has a teacher
    assert m["seg/teacher/miou"] == 1.0 and m["seg/truth/miou"] == 0.0
    restored = Evaluator(6, "hybrid")
    restored.load_state(evaluator.state() * 1)
    assert restored.compute() == pytest.approx(m, nan_ok=True)


def test_evaluator_without_truth_reports_no_truth_metrics():
    outputs, batch = _batch(0.0)
    for key in ("truth_depth", "has_truth_depth", "truth_label"):
        batch.pop(key)
    evaluator = Evaluator(6)
    evaluator.update(outputs, batch)
    assert not any("truth" in k for k in evaluator.compute())
