"""Simulated teachers: realistic errors around the truth, reproducible, and never without truth."""

import numpy as np
import pytest
from teacher_scenes import FURNITURE, Corridor

from distillery.teachers import TeacherError, build_teacher
from distillery.teachers.registry import check_config


def batch_of(frames, keys=None, boxes=None):
    keys = keys or [f"w/s/{i:06d}" for i in range(len(frames))]
    out = {"key": keys, "truth_depth": [f["depth"] for f in frames], "truth_label": [f["label"] for f in frames]}
    if boxes is not None:
        out["boxes"] = boxes
    return out


@pytest.fixture(scope="module")
def frames():
    return [Corridor(box=(2.0, 2.6, -1.2, -0.6, 0.8)).render(), Corridor(pitch_deg=5).render()]


def test_sim_da3_is_metric_with_a_small_per_frame_scale_and_smooth_error(frames):
    out = build_teacher({"backend": "sim_da3"}).predict(batch_of(frames))
    for f, o in zip(frames, out):
        ratio = o["teacher_depth"] / f["depth"]
        assert o["teacher_depth"].dtype == np.float32 and o["teacher_depth"].shape == f["depth"].shape
        assert 0.85 < np.median(ratio) < 1.15 and ratio.std() < 0.06  # small, smooth error
        assert ratio.std() > 1e-4  # but an error all the same
    again = build_teacher({"backend": "sim_da3"}).predict(batch_of(frames))
    assert np.array_equal(out[0]["teacher_depth"], again[0]["teacher_depth"])
    other_seed = build_teacher({"backend": "sim_da3", "seed": 1}).predict(batch_of(frames))
    assert not np.array_equal(out[0]["teacher_depth"], other_seed[0]["teacher_depth"])


def test_sim_da2_is_affine_inverse_depth_without_metric_scale(frames):
    teacher = build_teacher({"backend": "sim_da2"})
    assert teacher.depth_kind == "relative_inverse"
    out = teacher.predict(batch_of(frames))
    for f, o in zip(frames, out):
        rel, inv = o["teacher_depth"], 1.0 / f["depth"]
        assert np.corrcoef(rel.ravel(), inv.ravel())[0, 1] > 0.95  # larger is nearer
        assert np.corrcoef(rel.ravel(), f["depth"].ravel())[0, 1] < 0
    scales = [np.polyfit(1.0 / f["depth"].ravel(), o["teacher_depth"].ravel(), 1)[0] for f, o in zip(frames, out)]
    assert abs(scales[0] - scales[1]) > 0.05  # a different unknown scale per frame


def test_sim_yolo_boxes_the_truth_regions_with_jitter_and_our_class_ids(frames):
    out = build_teacher({"backend": "sim_yolo", "miss_rate": 0.0}).predict(batch_of(frames))
    boxes = out[0]["boxes"]
    assert boxes.shape == (1, 6) and boxes.dtype == np.float32 and boxes[0, 5] == FURNITURE
    ys, xs = np.nonzero(frames[0]["label"] == FURNITURE)
    truth = np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
    assert np.abs(boxes[0, :4] - truth).max() < 0.25 * (truth[2] - truth[0]) and 0.3 <= boxes[0, 4] <= 1
    assert len(out[1]["boxes"]) == 0 and out[0]["source_class"].tolist() == [-1]
    missed = build_teacher({"backend": "sim_yolo", "miss_rate": 1.0}).predict(batch_of(frames))
    assert len(missed[0]["boxes"]) == 0


def test_sim_sam2_masks_the_boxed_truth_region_with_boundary_noise(frames):
    boxes = build_teacher({"backend": "sim_yolo", "miss_rate": 0.0}).predict(batch_of(frames))
    out = build_teacher({"backend": "sim_sam2"}).predict(batch_of(frames, boxes=[b["boxes"] for b in boxes]))
    mask, truth = out[0]["masks"][0], frames[0]["label"] == FURNITURE
    overlap = (mask & truth).sum() / (mask | truth).sum()
    assert out[0]["masks"].shape == (1, *truth.shape) and 0.7 < overlap < 1.0
    assert out[0]["classes"].tolist() == [FURNITURE] and out[1]["masks"].shape[0] == 0


def test_a_sim_teacher_on_a_frame_without_truth_fails_clearly(frames):
    batch = batch_of(frames)
    batch["truth_depth"][1] = None
    with pytest.raises(TeacherError, match="sim_da3.*truth_depth.*w/s/000001.*real backend"):
        build_teacher({"backend": "sim_da3"}).predict(batch)


def models(*entries):
    return {"models": [dict(e, id=e.get("id", e["backend"])) for e in entries]}


SIMS = ({"backend": "sim_da3"}, {"backend": "sim_da2"}, {"backend": "sim_yolo"}, {"backend": "sim_sam2"})


def test_config_checks_name_the_wrong_key():
    roles = check_config(models(*SIMS))
    assert {r: e["id"] for r, e in roles.items()} == {"metric_depth": "sim_da3", "relative_depth": "sim_da2",
                                                     "detect": "sim_yolo", "segment": "sim_sam2"}
    assert roles["relative_depth"]["kind"] == "relative" and roles["detect"]["task"] == "detect"
    with pytest.raises(ValueError, match=r"teachers.models\[0\] \(x\).backend: 'sim_da3' is a depth backend"):
        check_config(models({"id": "x", "backend": "sim_da3", "task": "detect"}))
    with pytest.raises(ValueError, match=r"teachers.models\[0\].*process_res"):
        check_config(models({"backend": "sim_da3", "process_res": 504}))
    with pytest.raises(ValueError, match=r"teachers.models\[0\].*weights is required"):
        check_config(models({"backend": "da3"}))
    with pytest.raises(ValueError, match="kind: 'sim_da2' gives relative depth, not 'metric'"):
        check_config(models({"backend": "sim_da2", "kind": "metric"}))
    with pytest.raises(ValueError, match="two teachers with id 'sim_da3'"):
        check_config(models({"backend": "sim_da3"}, {"backend": "sim_da3"}))


def test_the_teacher_of_each_role_is_the_only_one_or_the_one_named_by_use():
    two = models({"backend": "sim_da3"}, {"id": "other", "backend": "sim_da3", "seed": 1})
    with pytest.raises(ValueError, match=r"2 metric_depth teachers \(\['sim_da3', 'other'\]\).*teachers.use.metric_depth"):
        check_config(two)
    assert check_config(dict(two, use={"metric_depth": "other"}))["metric_depth"]["id"] == "other"
    assert check_config(dict(two, use={"metric_depth": None})) == {}
    with pytest.raises(ValueError, match="teachers.use.relative_depth: 'other' is a metric_depth teacher"):
        check_config(dict(two, use={"metric_depth": "other", "relative_depth": "other"}))
    with pytest.raises(ValueError, match="teachers.use.detect: no teacher with id 'yolo'"):
        check_config(dict(two, use={"metric_depth": "other", "detect": "yolo"}))
    with pytest.raises(ValueError, match="segment teacher 'sim_sam2' needs a metric depth and a detect teacher"):
        check_config(models({"backend": "sim_da2"}, {"backend": "sim_sam2"}))
    assert set(check_config(models({"backend": "sim_da2"}))) == {"relative_depth"}  # relative depth alone is fine
    assert check_config({"models": None}) == {}


def test_the_config_schema_declares_exactly_the_backends_and_their_settings():
    import dataclasses
    from pathlib import Path

    import yaml

    from distillery.teachers.registry import BACKENDS, GENERIC_KEYS, backend_class

    schema = yaml.safe_load((Path(__file__).parents[1] / "workflow/schemas/config.schema.yaml").read_text())
    teacher = schema["$defs"]["teacher"]["properties"]
    settings = {f.name for name in BACKENDS for f in dataclasses.fields(backend_class(name).Settings)}
    assert set(teacher) - set(GENERIC_KEYS) == settings
    assert set(teacher) >= set(GENERIC_KEYS) and set(teacher["backend"]["enum"]) == set(BACKENDS)
