"""Frame selection: novelty from poses or frames, a share or a threshold, the first frame kept, the reasons
recorded, the teachers skipping what is not selected, and the plan's teacher GPU-hours at the share."""

import json

import h5py
import numpy as np
import pytest

from distillery.select import SelectSettings, change_from_frames, change_from_poses, read_poses, select_sequence


def pose(x: float, yaw_deg: float = 0.0) -> np.ndarray:
    a = np.radians(yaw_deg)
    out = np.eye(4)
    out[:3, :3] = [[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]]
    out[0, 3] = x
    return out


def test_a_share_spends_labels_where_the_camera_moves_and_keeps_the_first_frame():
    # 10 frames standing still, then 10 frames walking 0.1 m per frame
    poses = np.stack([pose(0.0)] * 10 + [pose(0.1 * i) for i in range(1, 11)])
    change = change_from_poses(poses, translation_m=0.25, rotation_deg=10.0)
    assert change[0] == 0 and np.allclose(change[1:10], 0) and np.allclose(change[10:], 0.4, atol=1e-6)
    choice = select_sequence(change, SelectSettings(share=0.2), "poses")
    picked = np.flatnonzero(choice.selected)
    assert picked[0] == 0 and len(picked) == 4
    assert (picked[1:] >= 10).all()  # nothing more from the still stretch
    assert choice.reasons[0] == "first frame of the sequence"
    assert all("poses" in r for r in choice.reasons[1:]) and choice.reasons[3].startswith("skipped")


def test_rotation_counts_as_motion_and_a_threshold_labels_once_enough_has_changed():
    poses = np.stack([pose(0.0, 5.0 * i) for i in range(9)])  # turning 5 degrees a frame
    change = change_from_poses(poses, translation_m=0.25, rotation_deg=10.0)
    assert np.allclose(change[1:], 0.5, atol=1e-6)
    choice = select_sequence(change, SelectSettings(share=None, threshold=1.0), "poses")
    assert np.flatnonzero(choice.selected).tolist() == [0, 2, 4, 6, 8]


def test_without_poses_novelty_comes_from_the_images_and_tof_depth():
    rng = np.random.default_rng(0)
    still = rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)
    depth = np.full((48, 64), 2.0, np.float32)
    other = rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)
    change = change_from_frames([still, still, still, other], [depth, depth, depth * 1.5, depth])
    assert change[1] == 0 and change[2] > 0.3 and change[3] > change[2]  # depth, then image and depth changed


def test_a_sequence_that_never_changes_still_gets_evenly_spaced_labels():
    choice = select_sequence(np.zeros(10), SelectSettings(share=0.3), "frames")
    assert np.flatnonzero(choice.selected).tolist() == [0, 3, 6]


def test_settings_need_exactly_one_of_share_and_threshold():
    with pytest.raises(ValueError, match="exactly one"):
        SelectSettings(share=0.2, threshold=1.0)
    with pytest.raises(ValueError, match="share must be in"):
        SelectSettings(share=1.5)


def test_poses_txt_quaternions_read_as_rotations(tmp_path):
    q = np.sin(np.radians(45)), np.cos(np.radians(45))  # 90 degrees about z
    (tmp_path / "poses.txt").write_text(f"000000 1 2 3 0 0 {q[0]:.9f} {q[1]:.9f}\n# comment\n")
    p = read_poses(tmp_path / "poses.txt")["000000"]
    assert np.allclose(p[:3, 3], [1, 2, 3]) and np.allclose(p[:3, :3] @ [1, 0, 0], [0, 1, 0], atol=1e-6)


def test_the_plan_scales_teacher_rows_to_the_share_and_notes_both_figures():
    from distillery.plan.estimate import Plan, RuleEstimate
    from distillery.plan.selection import apply_selection

    def row(rule, unit="frames", gpu_h=10.0):
        return RuleEstimate(rule, "x", "gpu", 5, 1, 4, "gpu", 1000.0, unit, gpu_h, gpu_h, 100.0, 500.0, None,
                            "default", "default")

    plan = Plan([row("teacher_depth"), row("teacher_segment", gpu_h=30.0), row("teacher_sanity", "job", 4.0)],
                2, "slurm")
    figures = apply_selection(plan, {"select": {"share": 0.2}})
    assert figures["teacher_gpu_hours_every_frame"] == 40.0
    assert figures["teacher_gpu_hours_selected"] == pytest.approx(8.0)
    assert plan.rules[2].gpu_hours == 4.0  # the sanity gate is per job, not per frame
    assert "8 teacher GPU-hours instead of 40 for every frame" in plan.notes[-1]
    assert apply_selection(Plan([row("teacher_depth")], 2, "slurm"), {"select": None}) is None


def test_select_cli_on_a_shard_and_the_runner_skips_unselected_frames(tmp_path):
    from teacher_scenes import Corridor, write_shard

    from distillery.cli import main
    from distillery.teachers.base import Runtime
    from distillery.teachers.runner import run_shard
    from distillery.teachers.stages import build_stage

    frames = [Corridor(pitch_deg=3.0 * i).render() for i in range(6)]
    shard = tmp_path / "shard-00000000000000aa.h5"
    write_shard(shard, frames, np.array([110.0, 110.0, 79.5, 59.5], np.float32))
    out = tmp_path / "selection.json"
    assert main(["select", "--shard", str(shard), "--share", "0.5", "--out", str(out)]) == 0
    data = json.loads(out.read_text())
    chosen = [f["selected"] for f in data["frames"]]
    assert chosen[0] and sum(chosen) == 3 and {f["source"] for f in data["frames"]} == {"frames"}
    assert all(f["reason"] for f in data["frames"])
    stage = build_stage("depth", {"id": "sim", "backend": "sim_da3"}, Runtime())
    result = run_shard(stage, str(shard), str(tmp_path / "layer.h5"), str(tmp_path / "failures.jsonl"),
                       progress=False, selection=str(out))
    assert result["skipped"] == 3 and result["failed"] == 0 and result["computed"] == 3
    with h5py.File(tmp_path / "layer.h5") as f:
        assert f["has_teacher_depth"][:].tolist() == chosen and f.attrs["frames_skipped"] == 3
