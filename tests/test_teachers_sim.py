"""Simulated teachers: realistic errors around the truth, reproducible, and never without truth."""

import numpy as np
import pytest
from teacher_scenes import FURNITURE, GLASS, Corridor

from distillery.teachers import TeacherError, build_teacher
from distillery.teachers.registry import check_config


def batch_of(frames, keys=None, boxes=None):
    keys = keys or [f"w/s/{i:06d}" for i in range(len(frames))]
    out = {"key": keys, "rgb": np.stack([f["rgb"] for f in frames]), "truth_depth": [f["depth"] for f in frames],
           "truth_label": [f["label"] for f in frames]}
    if boxes is not None:
        out["boxes"] = boxes
    return out


@pytest.fixture(scope="module")
def frames():
    return [Corridor(box=(2.0, 2.6, -1.2, -0.6, 0.8)).render(), Corridor(pitch_deg=5).render()]


def test_sim_da3_is_metric_with_a_small_scale_error_and_reproducible(frames):
    out = build_teacher({"backend": "sim_da3"}).predict(batch_of(frames))
    for f, o in zip(frames, out):
        ratio = o["teacher_depth"] / f["depth"]
        assert o["teacher_depth"].dtype == np.float32 and o["teacher_depth"].shape == f["depth"].shape
        assert 0.8 < np.median(ratio) < 1.2
    again = build_teacher({"backend": "sim_da3"}).predict(batch_of(frames))
    assert np.array_equal(out[0]["teacher_depth"], again[0]["teacher_depth"])
    other_seed = build_teacher({"backend": "sim_da3", "seed": 1}).predict(batch_of(frames))
    assert not np.array_equal(out[0]["teacher_depth"], other_seed[0]["teacher_depth"])


def log_error(frame, teacher_depth, where):
    return np.log(teacher_depth[where] / frame["depth"][where])


def test_sim_da3_error_is_structured_not_white_noise(frames):
    """Neighbouring pixels share their error (smooth fields, per-frame scale), unlike white noise."""
    teacher = build_teacher({"backend": "sim_da3", "glass_through": [0.0, 0.0]})
    f, o = frames[1], teacher.predict(batch_of(frames))[1]
    err = np.log(o["teacher_depth"] / f["depth"])
    wall = (f["label"] == 1)[:, :-1] & (f["label"] == 1)[:, 1:]
    assert np.corrcoef(err[:, :-1][wall], err[:, 1:][wall])[0, 1] > 0.95


def test_sim_da3_shares_a_scale_bias_within_a_sequence(frames):
    """Frames of one sequence share a scale bias; another sequence has its own (a scene's scale error)."""
    teacher = build_teacher({"backend": "sim_da3", "scale_sigma": 0.0, "shift_sigma": 0.0, "lowfreq_amp": 0.0,
                             "sequence_scale_sigma": 0.2})
    same = [teacher.predict(batch_of([frames[1]], keys=[f"w/a/{i:06d}"]))[0] for i in range(2)]
    other = [teacher.predict(batch_of([frames[1]], keys=[f"w/{s}/000000"]))[0] for s in "bcdefg"]
    wall = frames[1]["label"] == 1
    med = lambda o: float(np.median(log_error(frames[1], o["teacher_depth"], wall)))  # noqa: E731
    assert abs(med(same[0]) - med(same[1])) < 0.01
    assert np.std([med(o) for o in other]) > 0.05


def test_sim_da3_sees_through_glass_and_smooths_edges(frames):
    f = frames[0]
    o = build_teacher({"backend": "sim_da3", "sequence_scale_sigma": 0.0, "scale_sigma": 0.0,
                       "shift_sigma": 0.0}).predict(batch_of(frames))[0]
    glass = f["label"] == GLASS
    assert glass.sum() > 100
    assert np.median(log_error(f, o["teacher_depth"], glass)) > np.log(1.3)  # the room behind the pane
    assert abs(np.median(log_error(f, o["teacher_depth"], f["label"] == 1))) < 0.1
    jump = np.abs(np.diff(f["depth"], axis=1)) > 1.0  # a depth edge: the teacher is in between
    rows, cols = np.nonzero(jump)
    near, far = np.minimum(f["depth"][rows, cols], f["depth"][rows, cols + 1]), \
        np.maximum(f["depth"][rows, cols], f["depth"][rows, cols + 1])
    between = (o["teacher_depth"][rows, cols] > near * 1.02) & (o["teacher_depth"][rows, cols] < far * 0.98)
    assert between.mean() > 0.3


def test_sim_da3_errs_more_on_dark_surfaces(frames):
    f = dict(frames[1])
    rgb = f["rgb"].copy()
    rgb[:, : rgb.shape[1] // 2] //= 10  # the left half of the image dark
    f["rgb"] = rgb
    teacher = build_teacher({"backend": "sim_da3", "sequence_scale_sigma": 0.0, "scale_sigma": 0.0,
                             "shift_sigma": 0.0, "lowfreq_amp": 0.0, "edge_sigma": 0.0})
    errs = []
    for i in range(6):
        o = teacher.predict(batch_of([f], keys=[f"w/s/{i:06d}"]))[0]
        err = np.abs(np.log(o["teacher_depth"] / f["depth"]))
        w = f["rgb"].shape[1]
        errs.append((err[:, : w // 2 - 4].mean(), err[:, w // 2 + 4:].mean()))
    dark, bright = np.mean(errs, axis=0)
    assert dark > 0.05 and bright < 0.01


def test_sim_da2_is_affine_inverse_depth_without_metric_scale(frames):
    teacher = build_teacher({"backend": "sim_da2"})
    assert teacher.depth_kind == "relative_inverse"
    out = teacher.predict(batch_of(frames))
    for f, o in zip(frames, out):
        rel, inv = o["teacher_depth"], 1.0 / f["depth"]
        assert np.corrcoef(rel.ravel(), inv.ravel())[0, 1] > 0.9  # larger is nearer (less so on glass)
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


def test_sim_yolo_misses_small_objects_more_and_confuses_classes():
    labels = np.zeros((120, 160), np.uint8)
    labels[10:14, 10:14] = FURNITURE  # 16 px: small
    labels[40:100, 60:140] = FURNITURE  # large
    teacher = build_teacher({"backend": "sim_yolo", "miss_rate": 0.05, "confusion": 0.2})
    found_small = found_large = swapped = 0
    for i in range(200):
        boxes = teacher.detect(labels, np.random.default_rng(i))
        widths = boxes[:, 2] - boxes[:, 0]
        found_small += int((widths < 20).any())
        found_large += int((widths >= 20).any())
        swapped += int((boxes[:, 5] != FURNITURE).sum())
    assert found_small < 0.7 * found_large and found_large > 170
    assert 0.1 * 400 * 0.5 < swapped < 0.3 * 400
