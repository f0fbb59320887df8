"""Per-shard runs: layer files the merge accepts, recorded failures, and resuming a killed run."""

import json
import os
import signal
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest
from teacher_scenes import GLASS, Corridor, iou, write_shard

from distillery.atomic import read_jsonl
from distillery.manifest import Manifest
from distillery.manifest.merge import merge_shards, write_manifest_jsonl
from distillery.teachers import Runtime, TeacherError
from distillery.teachers.runner import partial_path, run_shard
from distillery.teachers.stages import build_stage

# The plumbing tests want every pane seen (the labeller finds glass where the teacher sees the pane).
SIM = {"depth": {"backend": "sim_da3", "glass_through_share": 0.0}, "detect": {"backend": "sim_yolo", "miss_rate": 0.0},
       "segment": {"backend": "sim_sam2"}}


class Recording:
    """Wraps a stage: records the frames it labels, fails on chosen keys, or 'dies' on a chosen batch."""

    def __init__(self, stage, fail_keys=(), die_on_batch=None):
        self.stage, self.fail_keys, self.die_on_batch = stage, set(fail_keys), die_on_batch
        self.seen, self.batches = [], 0
        self.task, self.reads, self.simulated, self.runtime = stage.task, stage.reads, stage.simulated, Runtime()
        self.kind = getattr(stage, "kind", lambda: None)
        self.sees = stage.sees

    def predict(self, batch):
        self.batches += 1
        if self.batches == self.die_on_batch:
            raise KeyboardInterrupt  # what a kill looks like from inside: nothing after this line runs
        if self.fail_keys & set(batch["key"]):
            raise RuntimeError("model crashed")
        self.seen += batch["index"].tolist()
        return self.stage.predict(batch)

    def describe(self):
        return self.stage.describe()


def scene_frames(n):
    return [Corridor(box=(2.0 + 0.2 * i, 2.6 + 0.2 * i, -1.2, -0.6, 0.8), pitch_deg=i % 3 - 1).render()
            for i in range(n)]


@pytest.fixture(scope="module")
def shard(tmp_path_factory):
    path = tmp_path_factory.mktemp("shard") / "shard-00000.h5"
    write_shard(path, scene_frames(6), Corridor().intrinsics)
    return str(path)


def run(task, shard, out_dir, stage=None, **kw):
    stage = stage or build_stage(task, SIM[task], Runtime(), {})
    layers = {"depth_layer": str(out_dir / "depth.h5"), "detect_layer": str(out_dir / "detect.h5")} \
        if task == "segment" else {}
    return run_shard(stage, shard, str(out_dir / f"{task}.h5"), str(out_dir / f"{task}.jsonl"),
                     kw.pop("batch_size", 4), progress=False, **layers, **kw)


def test_three_stages_write_layers_that_merge_into_the_manifest(shard, tmp_path):
    for task in ("depth", "detect", "segment"):
        assert run(task, shard, tmp_path) == {"shard": "shard-00000", "frames": 6, "computed": 6, "resumed": 0,
                                              "failed": 0}
        assert read_jsonl(tmp_path / f"{task}.jsonl") == [] and not partial_path(tmp_path / f"{task}.h5").exists()
    with h5py.File(tmp_path / "depth.h5") as f:
        assert f.attrs["depth_kind"] == "metric" and json.loads(f.attrs["teacher"])["backend"] == "sim_da3"
        assert f["teacher_depth"].dtype == np.float16 and "frame_status" not in f
    out = tmp_path / "manifest.h5"
    merge_shards([shard], str(out), progress=False,
                 layer_paths=[str(tmp_path / f"{t}.h5") for t in ("depth", "detect", "segment")])
    write_manifest_jsonl(str(out), str(tmp_path / "manifest.jsonl"))
    m = Manifest(out)
    for row in range(len(m)):
        frame = m.read(row)
        assert frame["teacher_depth"] is not None and frame["teacher_label"] is not None
        assert np.median(np.abs(frame["teacher_depth"] / frame["truth_depth"] - 1)) < 0.15
        assert iou(frame["teacher_label"], frame["truth_label"], GLASS) > 0.8
        assert m.boxes(row)[:, 5].tolist() == [3.0]  # the furniture box, our class id


def test_a_frame_the_teacher_fails_on_is_recorded_and_the_shard_completes(shard, tmp_path):
    with h5py.File(shard) as f:
        bad = f["key"][2].decode()
    stage = Recording(build_stage("depth", SIM["depth"], Runtime()), fail_keys=[bad])
    result = run("depth", shard, tmp_path, stage=stage)
    assert result["failed"] == 1 and result["computed"] == 6
    failures = read_jsonl(tmp_path / "depth.jsonl")
    assert [(r["frame"], r["stage"]) for r in failures] == [(bad, "teacher_depth")]
    assert "model crashed" in failures[0]["reason"]
    with h5py.File(tmp_path / "depth.h5") as f:
        assert f["has_teacher_depth"][:].tolist() == [True, True, False, True, True, True]


def test_a_killed_run_resumes_and_labels_every_frame_exactly_once(shard, tmp_path):
    first = Recording(build_stage("depth", SIM["depth"], Runtime()), die_on_batch=3)
    with pytest.raises(KeyboardInterrupt):
        run("depth", shard, tmp_path, stage=first, batch_size=2)
    assert not (tmp_path / "depth.h5").exists() and partial_path(tmp_path / "depth.h5").exists()
    second = Recording(build_stage("depth", SIM["depth"], Runtime()))
    result = run("depth", shard, tmp_path, stage=second, batch_size=2)
    assert first.seen == [0, 1, 2, 3] and second.seen == [4, 5]
    assert result["resumed"] == 4 and result["computed"] == 2
    once = tmp_path / "once"
    once.mkdir()
    run("depth", shard, once)
    with h5py.File(tmp_path / "depth.h5") as a, h5py.File(once / "depth.h5") as b:
        assert np.array_equal(a["teacher_depth"][:], b["teacher_depth"][:]) and a["has_teacher_depth"][:].all()


def test_a_partial_file_of_other_settings_is_started_anew(shard, tmp_path):
    first = Recording(build_stage("depth", SIM["depth"], Runtime()), die_on_batch=2)
    with pytest.raises(KeyboardInterrupt):
        run("depth", shard, tmp_path, stage=first, batch_size=2)
    other = Recording(build_stage("depth", {"backend": "sim_da3", "seed": 7}, Runtime()))
    assert run("depth", shard, tmp_path, stage=other, batch_size=2)["resumed"] == 0
    assert other.seen == list(range(6))


def test_a_sim_teacher_on_a_shard_without_truth_fails_before_writing(tmp_path):
    path = tmp_path / "shard-00001.h5"
    write_shard(path, scene_frames(2), Corridor().intrinsics, truth=False)
    with pytest.raises(TeacherError, match="needs truth_depth.*0 of 2 frames.*real backend"):
        run("depth", str(path), tmp_path)
    assert not partial_path(tmp_path / "depth.h5").exists()


def test_the_labeller_refuses_relative_depth(shard, tmp_path):
    run("depth", shard, tmp_path, stage=build_stage("depth", {"backend": "sim_da2"}, Runtime(), None))
    run("detect", shard, tmp_path)
    with pytest.raises(TeacherError, match="needs metric depth.*relative_inverse"):
        run("segment", shard, tmp_path)


def test_failed_frames_upstream_fail_the_label_not_the_shard(shard, tmp_path):
    with h5py.File(shard) as f:
        bad = f["key"][1].decode()
    run("depth", shard, tmp_path, stage=Recording(build_stage("depth", SIM["depth"], Runtime()), fail_keys=[bad]))
    run("detect", shard, tmp_path)
    assert run("segment", shard, tmp_path)["failed"] == 1
    assert "depth teacher failed" in read_jsonl(tmp_path / "segment.jsonl")[0]["reason"]


@pytest.mark.slow
def test_sigkill_mid_shard_then_rerun_completes_with_every_frame_once(tmp_path):
    shard = tmp_path / "shard-00000.h5"
    frames = [Corridor(height=240, width=320, focal=220.0).render()] * 120
    write_shard(shard, frames, Corridor(height=240, width=320, focal=220.0).intrinsics)
    out, log = tmp_path / "depth.h5", tmp_path / "first.log"
    cmd = [sys.executable, "-m", "distillery.cli", "-v", "teach", "depth", "--shard", str(shard), "--out", str(out),
           "--failures", str(tmp_path / "f.jsonl"), "--teacher", '{"backend": "sim_da3"}', "--batch-size", "2",
           "--quiet"]
    with open(log, "w") as fh:
        proc = subprocess.Popen(cmd, stderr=fh, stdout=fh)
        deadline = time.time() + 120
        while "wrote frames" not in log.read_text() and time.time() < deadline and proc.poll() is None:
            time.sleep(0.01)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    written = log.read_text().count("wrote frames")
    assert proc.returncode == -signal.SIGKILL and written >= 1 and not out.exists()
    second = subprocess.run(cmd, capture_output=True, text=True, check=True)
    result = json.loads(second.stdout.strip().splitlines()[-1])
    assert result["resumed"] >= 2 * written and result["resumed"] + result["computed"] == 120
    assert second.stderr.count("wrote frames") * 2 >= result["computed"]
    with h5py.File(out) as f:
        assert f["has_teacher_depth"][:].all() and f.attrs["frames_failed"] == 0


def test_dataloader_worker_processes_give_the_same_layer(shard, tmp_path):
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    run("detect", shard, tmp_path / "a", batch_size=2)
    run("detect", shard, tmp_path / "b", batch_size=2, workers=2)
    with h5py.File(tmp_path / "a/detect.h5") as a, h5py.File(tmp_path / "b/detect.h5") as b:
        assert np.array_equal(a["boxes"][:], b["boxes"][:]) and np.array_equal(a["box_offsets"][:], b["box_offsets"][:])
        assert a["box_source_class"][:].tolist() == [-1] * len(a["boxes"])
