"""Learning from a relative depth teacher: the scale-and-shift-invariant loss, its masks, and that it never
mixes ToF metres into a unitless target; and the choice of depth teacher per training version."""

import pytest
import torch

from distillery.student.config import config_from_dict
from distillery.student.data import frame_sample
from distillery.student.losses import StudentLoss, depth_target, disparity, ssi_loss, target_mode
from distillery.student.metrics import Evaluator


def _scene(frames: int = 2, height: int = 8, width: int = 12, seed: int = 0) -> torch.Tensor:
    """Metric depth [B, 1, H, W] of a few frames: a ramp plus a box, different per frame."""
    g = torch.Generator().manual_seed(seed)
    ramp = torch.linspace(1.0, 4.0, width).expand(height, width)
    depth = ramp + torch.rand(frames, 1, height, width, generator=g)
    depth[..., 2:5, 3:7] = 0.8
    return depth


def _batch(depth: torch.Tensor, has_relative=(True, True), scale=(2.0, 7.0), shift=(0.3, 1.5)) -> dict:
    """A batch whose relative teacher is affine inverse depth with a different scale and shift per frame."""
    b = depth.shape[0]
    a = torch.tensor(scale).view(b, 1, 1, 1)
    s = torch.tensor(shift).view(b, 1, 1, 1)
    flags = torch.tensor(has_relative)
    relative = torch.where(flags.view(b, 1, 1, 1), a / depth + s, torch.zeros_like(depth))
    return {"rgb": torch.zeros(b, 3, *depth.shape[-2:]), "tof_depth": depth.clone(),
            "tof_confidence": torch.ones_like(depth), "teacher_depth": torch.zeros_like(depth),
            "has_teacher_depth": torch.zeros(b, dtype=torch.bool), "teacher_depth_relative": relative,
            "has_teacher_depth_relative": flags, "teacher_label": torch.full((b, *depth.shape[-2:]), 255)}


def test_ssi_loss_ignores_each_frames_scale_and_shift_but_not_errors():
    depth = _scene()
    target, valid = depth_target(_batch(depth), "relative")
    assert ssi_loss(disparity(depth), target, valid).item() == pytest.approx(0.0, abs=1e-5)
    other = depth_target(_batch(depth, scale=(0.1, 40.0), shift=(5.0, 0.0)), "relative")[0]
    assert ssi_loss(disparity(depth), other, valid).item() == pytest.approx(0.0, abs=1e-5)
    wrong = depth.flip(-1)  # same values, wrong places
    assert ssi_loss(disparity(wrong), target, valid).item() > 0.3


def test_ssi_loss_respects_its_mask_and_is_zero_with_a_gradient_without_pixels():
    depth = _scene()
    target, valid = depth_target(_batch(depth), "relative")
    broken = disparity(depth).clone()
    broken[..., 0, :] = 100.0  # garbage on the first row, masked out below
    keep = valid.clone()
    keep[..., 0, :] = False
    assert ssi_loss(broken, target, keep).item() == pytest.approx(0.0, abs=1e-5)
    assert ssi_loss(broken, target, valid).item() > 0.1
    pred = disparity(depth).requires_grad_()
    loss = ssi_loss(pred, target, torch.zeros_like(valid))
    loss.backward()
    assert loss.item() == 0.0 and torch.equal(pred.grad, torch.zeros_like(pred))


def test_a_relative_target_takes_no_tof_for_frames_without_a_relative_teacher():
    depth = _scene()
    batch = _batch(depth, has_relative=(True, False))
    target, valid = depth_target(batch, "relative")
    assert valid[0].all() and not valid[1].any()  # frame 1 has ToF, but no relative teacher: no target at all
    loss = StudentLoss(depth_teacher="relative", kendall=False, lambda_e=0.0)
    outputs = {"depth": depth.clone(), "segmentation": torch.zeros(2, 6, *depth.shape[-2:])}
    base = loss(outputs, batch)["depth_fit"]
    batch["tof_depth"] = batch["tof_depth"] * 3.0  # the ToF cannot move a relative run's loss
    assert loss(outputs, batch)["depth_fit"].item() == pytest.approx(base.item())
    none = _batch(depth, has_relative=(False, False))
    assert loss(outputs, none)["depth_fit"].item() == 0.0


def test_a_plain_l1_on_a_relative_teacher_regresses_its_unitless_values_as_metres():
    """The reference V1 recipe: the student that fits best is the teacher's raw values, not the scene's metres."""
    depth = _scene()
    batch = _batch(depth)
    plain = StudentLoss(depth_teacher="relative", depth_loss="l1", kendall=False, lambda_e=0.0)
    ssi = StudentLoss(depth_teacher="relative", kendall=False, lambda_e=0.0)
    seg = torch.zeros(2, 6, *depth.shape[-2:])
    metric = {"depth": depth.clone(), "segmentation": seg}
    raw = {"depth": batch["teacher_depth_relative"].clone(), "segmentation": seg}
    assert ssi(metric, batch)["depth_fit"].item() == pytest.approx(0.0, abs=1e-5)
    assert plain(raw, batch)["depth_fit"].item() == pytest.approx(0.0, abs=1e-6)
    assert plain(metric, batch)["depth_fit"].item() > 0.5  # right metres, wrong (unitless) target values
    assert config_from_dict({"depth_teacher": "relative"}).depth_loss == "ssi"
    assert config_from_dict({"depth_teacher": "relative", "depth_loss": "l1"}).depth_loss == "l1"
    assert config_from_dict({}).depth_loss == "berhu"
    with pytest.raises(ValueError, match="depth_loss 'ssi' is for a relative teacher"):
        config_from_dict({"depth_loss": "ssi"})


def test_each_depth_teacher_picks_its_own_target():
    depth = _scene()
    batch = _batch(depth)
    batch["teacher_depth"], batch["has_teacher_depth"] = depth * 1.1, torch.tensor([True, False])
    assert target_mode("metric", "hybrid") == "hybrid" and target_mode("tof", "hybrid") == "tof_only"
    metric, _ = depth_target(batch, target_mode("metric"))
    assert torch.allclose(metric[0], depth[0] * 1.1) and torch.allclose(metric[1], depth[1])  # ToF fallback
    tof, _ = depth_target(batch, target_mode("tof"))
    assert torch.allclose(tof, depth)
    with pytest.raises(ValueError, match="mixes ToF metres into a relative target"):
        target_mode("relative", "fusion")


def test_training_config_names_the_depth_teacher():
    assert config_from_dict({}).depth_teacher == "metric"
    relative = config_from_dict({"depth_teacher": "relative"})
    assert relative.best_metric == "depth/target/ssi"  # no metres to take an RMSE in
    with pytest.raises(ValueError, match="depth_target='fusion' mixes ToF metres"):
        config_from_dict({"depth_teacher": "relative", "depth_target": "fusion"})
    with pytest.raises(ValueError, match="depth_teacher='sonar'"):
        config_from_dict({"depth_teacher": "sonar"})


def test_validation_of_a_relative_run_reports_the_ssi_error_and_the_error_in_the_teachers_units():
    depth = _scene()
    batch = _batch(depth)
    outputs = {"depth": depth, "segmentation": torch.zeros(2, 6, *depth.shape[-2:])}
    evaluator = Evaluator(6, "relative")
    evaluator.update(outputs, batch)
    evaluator.update({"depth": depth.flip(-1), "segmentation": outputs["segmentation"]}, batch)
    restored = Evaluator(6, "relative")
    restored.load_state(evaluator.state() * 1)
    m = restored.compute()
    assert m["depth/target/frames"] == 4 and 0.1 < m["depth/target/ssi"] < 1.0
    rel = batch["teacher_depth_relative"]
    squared = torch.cat([((depth - rel) ** 2).flatten(), ((depth.flip(-1) - rel) ** 2).flatten()])
    assert m["depth/target/rmse"] == pytest.approx(squared.double().mean().sqrt().item(), rel=1e-5)
    assert "depth/tof/rmse" in m


def test_a_manifest_frame_with_relative_depth_becomes_a_sample_with_its_flag():
    import numpy as np

    frame = {"row": 0, "key": "w/s/0", "rgb": np.zeros((4, 6, 3), np.uint8), "tof_depth": np.ones((4, 6)),
             "tof_confidence": np.ones((4, 6)), "teacher_depth": None, "teacher_label": None,
             "teacher_depth_relative": np.full((4, 6), 2.5, np.float16)}
    sample = frame_sample(frame)
    assert sample["has_teacher_depth_relative"] and sample["teacher_depth_relative"].shape == (1, 4, 6)
    assert not sample["has_teacher_depth"] and float(sample["teacher_depth_relative"].mean()) == 2.5


def test_a_relative_version_trains_on_the_relative_slot_and_refuses_a_manifest_without_it(tmp_path):
    import dataclasses

    import h5py
    from test_student_data import write_manifest
    from test_student_train import tiny_config

    from distillery.student.train import setup_run, train

    path = write_manifest(tmp_path / "m.h5")
    cfg = dataclasses.replace(tiny_config(depth_teacher="relative", augment=False), epochs=1,
                              best_metric="depth/target/ssi")
    with pytest.raises(ValueError, match="no training frame of .* has relative teacher depth"):
        setup_run(cfg, [path], tmp_path / "none")
    with h5py.File(path, "r+") as f:
        truth = f["truth_depth"][:]
        f["teacher_depth_relative"][:] = (3.0 / truth + 0.5).astype("float16")
        f["has_teacher_depth_relative"][:] = True
    summary = train(setup_run(cfg, [path], tmp_path / "run"))
    assert summary["status"] == "done" and 0 <= summary["metrics"]["depth/target/ssi"] < 2
    assert summary["metrics"]["depth/target/rmse"] > 0  # in the relative teacher's unitless values


def test_a_fresh_run_starts_at_its_targets_median_unless_its_loss_fixes_no_scale(tmp_path):
    """berhu on metres and l1 on a relative teacher start the head at the median target (V1's in the
    teacher's units, far from metres); ssi fixes no scale (2 m); an explicit depth_init_m wins."""
    import dataclasses

    import h5py
    import numpy as np
    from test_student_data import write_manifest
    from test_student_train import tiny_config

    from distillery.student.train import setup_run

    path = write_manifest(tmp_path / "m.h5")
    with h5py.File(path, "r+") as f:
        truth = f["truth_depth"][:]
        f["teacher_depth"][:] = truth.astype("float16")
        f["has_teacher_depth"][:] = True
        f["teacher_depth_relative"][:] = (150.0 / np.maximum(truth, 0.1)).astype("float16")
        f["has_teacher_depth_relative"][:] = True

    def initial_depth(**cfg) -> float:
        run = setup_run(dataclasses.replace(tiny_config(augment=False), epochs=1, **cfg), [path],
                        tmp_path / str(len(list(tmp_path.iterdir()))))
        run.model.eval()
        with torch.no_grad():
            return float(run.model(torch.rand(1, 3, 32, 48))["depth"].median())

    metric = float(np.median(truth[truth > 0]))
    assert initial_depth() == pytest.approx(metric, rel=0.25)
    relative = initial_depth(depth_teacher="relative", depth_loss="l1")
    assert relative == pytest.approx(150.0 / metric, rel=0.35) and relative > 10 * metric
    assert initial_depth(depth_teacher="relative") == pytest.approx(2.0, rel=0.25)  # ssi: 2 m
    assert initial_depth(depth_init_m=5.0) == pytest.approx(5.0, rel=0.25)
