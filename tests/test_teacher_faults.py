"""Teacher faults: fatal errors fail the job, per-frame failures are gated at the merge, and a resumed
shard trusts only frames whose stored bytes match their checksum (kill tests at random points)."""

import json
import os
import random
import re
import signal
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest
from teacher_scenes import Corridor, write_shard

from distillery.atomic import read_jsonl
from distillery.manifest.failures import TooManyFailedFrames
from distillery.manifest.merge import merge_manifest
from distillery.teachers import Runtime
from distillery.teachers.faults import FatalTeacherError, is_fatal
from distillery.teachers.partial import DONE, PartialLayer
from distillery.teachers.runner import partial_path, run_shard
from distillery.teachers.stages import build_stage

SIM_DEPTH = {"backend": "sim_da3"}


@pytest.fixture(scope="module")
def shard(tmp_path_factory):
    path = tmp_path_factory.mktemp("shard") / "shard-00000.h5"
    scenes = [Corridor(box=(2.0 + 0.1 * i, 2.6 + 0.1 * i, -1.2, -0.6, 0.8)).render() for i in range(24)]
    write_shard(path, scenes, Corridor().intrinsics)
    return str(path)


class Crashing:
    """A depth stage whose device breaks on the n-th batch."""

    def __init__(self, on_batch, error):
        self.stage = build_stage("depth", SIM_DEPTH, Runtime())
        self.task, self.reads, self.simulated, self.runtime = "depth", self.stage.reads, True, Runtime()
        self.on_batch, self.error, self.batches = on_batch, error, 0

    def predict(self, batch):
        self.batches += 1
        if self.batches >= self.on_batch:
            raise self.error
        return self.stage.predict(batch)

    def __getattr__(self, name):
        return getattr(self.stage, name)


def test_errors_of_the_device_or_model_are_fatal_and_errors_of_a_frame_are_not():
    assert is_fatal(RuntimeError("CUDA error: an illegal memory access was encountered"))
    assert is_fatal(RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB"))
    assert is_fatal(MemoryError()) and is_fatal(ImportError("no module named sam2"))
    assert not is_fatal(ValueError("cannot reshape array of size 0")) and not is_fatal(RuntimeError("bad frame"))


def test_a_fatal_error_stops_the_shard_and_keeps_what_was_labelled(shard, tmp_path):
    stage = Crashing(3, RuntimeError("CUDA error: device-side assert triggered"))
    with pytest.raises(FatalTeacherError, match="fatal teacher error on frames .*device-side assert"):
        run_shard(stage, shard, str(tmp_path / "d.h5"), str(tmp_path / "d.jsonl"), 4, progress=False)
    assert not (tmp_path / "d.h5").exists()
    with h5py.File(partial_path(tmp_path / "d.h5")) as f:
        assert (f["frame_status"][:] == DONE).sum() == 8  # two batches labelled, none marked failed
    result = run_shard(build_stage("depth", SIM_DEPTH, Runtime()), shard, str(tmp_path / "d.h5"),
                       str(tmp_path / "d.jsonl"), 4, progress=False)
    assert result["resumed"] == 8 and result["failed"] == 0


def _teach(shard, out, env=None, batch_size=2):
    cmd = [sys.executable, "-m", "distillery.cli", "-v", "teach", "depth", "--shard", str(shard), "--out", str(out),
           "--failures", str(out).replace(".h5", ".failures.jsonl"), "--teacher", json.dumps(SIM_DEPTH),
           "--batch-size", str(batch_size), "--quiet"]
    return cmd, dict(os.environ, **(env or {}))


def test_the_teach_command_exits_non_zero_on_a_fatal_error_and_zero_on_frame_failures(shard, tmp_path):
    cmd, env = _teach(shard, tmp_path / "fatal" / "shard-00000.h5", {"DISTILLERY_TEACHER_FAULT": "fatal"})
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    assert proc.returncode != 0 and "fatal teacher error" in proc.stderr and "CUDA error" in proc.stderr
    cmd, env = _teach(shard, tmp_path / "sim" / "shard-00000.h5", {"DISTILLERY_TEACHER_FAULT": "frames:0.5"})
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    failed = read_jsonl(tmp_path / "sim" / "shard-00000.failures.jsonl")
    assert 4 <= len(failed) <= 20 and all("injected per-frame failure" in r["reason"] for r in failed)


def test_the_merge_stops_naming_teacher_shard_and_share_and_reports_every_share(shard, tmp_path):
    lists = tmp_path / "teachers"
    (lists / "da3").mkdir(parents=True)
    (lists / "yolo").mkdir()
    rows = [{"frame": f"scene/seq/{i:06d}", "stage": "teacher_depth", "reason": "RuntimeError: boom"} for i in range(6)]
    (lists / "da3" / "shard-00000.failures.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (lists / "yolo" / "shard-00000.failures.jsonl").write_text("")
    out = tmp_path / "manifest"
    args = ([shard], [], str(out / "m.h5"), str(out / "m.jsonl"), str(out / "q.jsonl"), str(out / "summary.json"), 1.0)
    paths = [str(lists / "da3" / "shard-00000.failures.jsonl"), str(lists / "yolo" / "shard-00000.failures.jsonl")]
    with pytest.raises(TooManyFailedFrames, match=r"teacher da3, shard shard-00000: failed on 6 of 24 frames \(25.0%\)"):
        merge_manifest(*args, progress=False, failure_paths=paths, max_failed_share=0.2)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["teacher_failures"]["da3/shard-00000"]["failed_share"] == 0.25
    assert summary["teacher_failures"]["yolo/shard-00000"]["ok"] and not (out / "m.h5").exists()
    summary = merge_manifest(*args, progress=False, failure_paths=paths, max_failed_share=0.3)
    assert summary["teacher_failures"]["da3/shard-00000"]["ok"] and (out / "m.h5").exists()


def test_a_done_frame_whose_data_fails_its_checksum_is_labelled_again(shard, tmp_path):
    out = tmp_path / "d.h5"
    stage = Crashing(4, KeyboardInterrupt())  # a kill after three batches
    with pytest.raises(KeyboardInterrupt):
        run_shard(stage, shard, str(out), str(tmp_path / "d.jsonl"), 4, progress=False)
    with h5py.File(partial_path(out), "r+") as f:  # what a kill during a flush can leave: status without data
        f["teacher_depth"][5] = np.zeros_like(f["teacher_depth"][5])
    result = run_shard(build_stage("depth", SIM_DEPTH, Runtime()), shard, str(out), str(tmp_path / "d.jsonl"), 4,
                       progress=False)
    assert result["resumed"] == 11 and result["computed"] == 13
    once = tmp_path / "once.h5"
    run_shard(build_stage("depth", SIM_DEPTH, Runtime()), shard, str(once), str(tmp_path / "o.jsonl"), 4,
              progress=False)
    with h5py.File(out) as a, h5py.File(once) as b:
        assert np.array_equal(a["teacher_depth"][:], b["teacher_depth"][:])


def _written(log: str) -> list[int]:
    return [int(i) for m in re.finditer(r"wrote frames \[([\d, ]+)\]", log) for i in m.group(1).split(",")]


@pytest.mark.slow
def test_kills_at_random_points_then_a_resume_give_the_uninterrupted_layer_each_frame_once(tmp_path):
    shard = tmp_path / "shard-00000.h5"
    scenes = [Corridor(box=(2.0 + 0.02 * i, 2.6, -1.2, -0.6, 0.8)).render() for i in range(96)]
    write_shard(shard, scenes, Corridor().intrinsics)
    out = tmp_path / "killed" / "shard-00000.h5"
    rng = random.Random(13)
    logs, kills = [], 0
    for attempt in range(6):
        cmd, env = _teach(shard, out)
        with open(tmp_path / f"run{attempt}.log", "w") as fh:
            proc = subprocess.Popen(cmd, env=env, stdout=fh, stderr=fh)
            log = tmp_path / f"run{attempt}.log"
            deadline = time.monotonic() + 120
            while "wrote frames" not in log.read_text() and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.005)
            time.sleep(rng.uniform(0.0, 0.05))  # a random point of the labelling: mid-batch, mid-flush, between
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)
                kills += 1
            proc.wait()
        logs.append((tmp_path / f"run{attempt}.log").read_text())
        if out.exists():
            break
    cmd, env = _teach(shard, out)
    final = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    logs.append(final.stderr)
    assert kills >= 3
    once = tmp_path / "once" / "shard-00000.h5"
    cmd, env = _teach(shard, once)
    subprocess.run(cmd, env=env, capture_output=True, check=True)
    with h5py.File(out) as a, h5py.File(once) as b:
        assert a["has_teacher_depth"][:].all() and a.attrs["frames_failed"] == 0
        assert np.array_equal(a["teacher_depth"][:], b["teacher_depth"][:])
    # A frame written (data and status flushed) by one run is never labelled again by a later one,
    # unless the resume found its bytes failing their checksum.
    seen: set = set()
    for log in logs:
        relabelled = len(re.findall(r"re-labelling", log))
        written = _written(log)
        assert relabelled or not (set(written) & seen), (sorted(set(written) & seen), log[-1500:])
        seen |= set(written)
    # A run can be killed after flushing a batch and before logging it: those frames are in no log, but
    # they are done in the layer (checked above against the uninterrupted run) and no later run redid them.
    assert seen <= set(range(96)) and len(seen) >= 96 - 2 * kills  # at most one batch of 2 per kill


def test_frames_a_relative_teacher_fails_on_are_recorded_not_fatal(shard, tmp_path, monkeypatch):
    monkeypatch.setenv("DISTILLERY_TEACHER_FAULT", "frames:0.5")
    stage = build_stage("depth", {"backend": "sim_da2"}, Runtime())
    result = run_shard(stage, shard, str(tmp_path / "r.h5"), str(tmp_path / "r.jsonl"), 4, progress=False)
    assert 0 < result["failed"] < 24 and len(read_jsonl(tmp_path / "r.jsonl")) == result["failed"]


STAGES = {"depth": {"backend": "sim_da3"}, "relative_depth": {"backend": "sim_da2"},
          "detect": {"backend": "sim_yolo", "miss_rate": 0.1}, "segment": {"backend": "sim_sam2"}}
# Where a run is killed: at a random moment of the labelling (a SIGKILL from outside), or at one step of the
# finalise (the process SIGKILLs itself there: distillery.atomic.crash_point) - after the failures report, with
# the new layer written but not renamed, after the rename before the partial file is deleted, and before the
# first rename of any file of the run.
KILLS = ("random", "finalise:failures-written", "random", "finalise:layer-written", "atomic:before-rename",
         "random", "finalise:layer-renamed")


@pytest.fixture(scope="module")
def stage_inputs(tmp_path_factory):
    """A shard, and its depth and detect layers (what the segment stage reads), made by uninterrupted runs."""
    root = tmp_path_factory.mktemp("stages")
    shard = root / "shard-00000.h5"
    scenes = [Corridor(box=(2.0 + 0.05 * i, 2.6 + 0.05 * i, -1.2, -0.6, 0.8), pitch_deg=i % 3 - 1).render()
              for i in range(20)]
    write_shard(shard, scenes, Corridor().intrinsics)
    for task in ("depth", "detect"):
        run_shard(build_stage(task, STAGES[task], Runtime()), str(shard), str(root / f"{task}.h5"),
                  str(root / f"{task}.jsonl"), 2, progress=False)
    return {"shard": shard, "depth_layer": root / "depth.h5", "detect_layer": root / "detect.h5"}


def _stage_cmd(name: str, inputs: dict, out):
    task = "depth" if name == "relative_depth" else name
    cmd = [sys.executable, "-m", "distillery.cli", "-v", "teach", task, "--shard", str(inputs["shard"]),
           "--out", str(out), "--failures", str(out).replace(".h5", ".failures.jsonl"), "--teacher",
           json.dumps(STAGES[name]), "--batch-size", "2", "--quiet"]
    if task == "segment":
        cmd += ["--depth-layer", str(inputs["depth_layer"]), "--detect-layer", str(inputs["detect_layer"])]
    return cmd


def _layer(path) -> dict:
    """Every dataset (as lists) and attribute of a layer file."""
    with h5py.File(path, "r") as f:
        data = {name: f[name][:].tolist() for name in f}
        return {"data": data, "attrs": {k: str(v) for k, v in f.attrs.items()}}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(STAGES))
def test_kills_at_random_points_of_every_stage_and_its_finalise_then_a_rerun_give_the_uninterrupted_layer(
        name, stage_inputs, tmp_path):
    once = tmp_path / "once" / "shard-00000.h5"
    subprocess.run(_stage_cmd(name, stage_inputs, once), capture_output=True, check=True)
    out = tmp_path / "killed" / "shard-00000.h5"
    rng = random.Random(hash(name) % 1000)
    killed = 0
    for attempt, point in enumerate(KILLS):
        log = tmp_path / f"run{attempt}.log"
        env = dict(os.environ, DISTILLERY_CRASH_AT="" if point == "random" else point)
        with open(log, "w") as fh:
            proc = subprocess.Popen(_stage_cmd(name, stage_inputs, out), env=env, stdout=fh, stderr=fh)
            if point == "random":
                deadline = time.monotonic() + 120
                while "wrote frames" not in log.read_text() and proc.poll() is None and time.monotonic() < deadline:
                    time.sleep(0.005)
                time.sleep(rng.uniform(0.0, 0.15))  # mid-batch, mid-flush, between batches, in the finalise
                if proc.poll() is None:
                    os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
        killed += proc.returncode == -signal.SIGKILL
        assert proc.returncode in (0, -signal.SIGKILL), log.read_text()[-2000:]
        if out.exists():  # a layer under its name is always the finished one
            assert _layer(out) == _layer(once), (point, log.read_text()[-2000:])
    assert killed >= 5
    final = subprocess.run(_stage_cmd(name, stage_inputs, out), capture_output=True, text=True)
    assert final.returncode == 0, final.stderr[-2000:]
    result = json.loads(final.stdout.strip().splitlines()[-1])  # killed after the rename: nothing is redone
    assert result["computed"] == 0 and result["resumed"] == 20, result
    assert _layer(out) == _layer(once)
    assert read_jsonl(str(out).replace(".h5", ".failures.jsonl")) == \
        read_jsonl(str(once).replace(".h5", ".failures.jsonl"))
    left = sorted(p.name for p in out.parent.iterdir())
    assert left == ["shard-00000.failures.jsonl", "shard-00000.h5"], left  # no partial file, no temporaries
