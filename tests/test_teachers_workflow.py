"""The teacher stage in the workflow: sim teachers end to end, resume, the sanity gate, absent weights."""

import json
import os
import re

import numpy as np
import pytest
from test_teachers_runner import Recording
from workflow_util import snakemake, tiny_config

from distillery.atomic import read_jsonl
from distillery.manifest import Manifest
from distillery.teachers import Runtime
from distillery.teachers.runner import partial_path, run_shard
from distillery.teachers.stages import build_stage

SIM_MODELS = {"depth": {"id": "depth", "backend": "sim_da3"}, "relative": {"id": "relative", "backend": "sim_da2"},
              "detect": {"id": "detect", "backend": "sim_yolo"}, "segment": {"id": "segment", "backend": "sim_sam2"}}


def job_counts(dry_run: str) -> dict[str, int]:
    """The `Job stats` table of a dry run as {rule: count}."""
    table = dry_run.split("Job stats:")[1].split("\n\n")[0].splitlines()[3:]
    return {rule: int(n) for rule, n in (line.split() for line in table) if rule != "total"}


def teacher_config(device="cpu", **models):
    """Corridors only (12 frames, 3 shards) with simulated teachers; `models` replaces entries by role."""
    entries = [dict(SIM_MODELS[role], **models.get(role, {})) for role in SIM_MODELS]
    teachers = {"device": device, "precision": "fp32", "weights_cache": "weights", "batch_size": 2,
                "models": entries}
    cfg = tiny_config(teachers=teachers)
    cfg["datasets"] = [{"name": "corridors", "synth": {"family": "corridor", "seed": 1, "sequences": 3,
                                                        "frames": 4, "height": 60, "width": 80}}]
    cfg["training"] = {"build": []}  # the default config's demo training is not this test's business
    cfg["lineage"] = {"roles": {role: "corridors" for role in ("nyu", "sun", "diode", "corridor")}}
    return cfg


@pytest.mark.slow
def test_sim_teachers_fill_every_frame_resume_a_killed_shard_and_the_gate_stops_absurd_depth(tmp_path):
    cfg = teacher_config()
    snakemake(tmp_path, "--cores", "2", "results/teachers/depth/sanity.json", config=cfg)  # ends --configfile's list
    names = sorted(p.name.split(".")[0] for p in (tmp_path / "results/shards").glob("shard-*.h5"))
    first, last = names[0], names[-1]
    shard = tmp_path / f"results/shards/{first}.h5"
    layer = tmp_path / f"results/teachers/depth/{first}.h5"
    killed = Recording(build_stage("depth", SIM_MODELS["depth"], Runtime()), die_on_batch=2)
    with pytest.raises(KeyboardInterrupt):  # the job dies after its first batch of 2 frames
        run_shard(killed, str(shard), str(layer), str(layer.with_suffix(".failures.jsonl")), 2, progress=False)
    assert partial_path(layer).exists() and not layer.exists()

    snakemake(tmp_path, config=cfg)
    log = (tmp_path / f"logs/teacher_depth/depth/{first}.log").read_text()
    assert "resuming" in log and json.loads(log.strip().splitlines()[-1])["resumed"] == 2
    assert json.loads(log.strip().splitlines()[-1])["computed"] == 2
    m = Manifest(tmp_path / "results/manifest/manifest.h5")
    assert len(m) == 12
    assert all(r["has_teacher_depth"] and r["has_teacher_depth_relative"] and r["has_seg"] and r["has_boxes"]
               for r in m.records)
    assert [(t["id"], t["backend"], t["kind"]) for t in m.teachers] == [
        ("depth", "sim_da3", "metric"), ("detect", "sim_yolo", None), ("relative", "sim_da2", "relative"),
        ("segment", "sim_sam2", None)]
    assert m.teacher("relative_depth")["weights_sha256"] == "simulated teacher: no weights"
    for row in range(len(m)):
        frame = m.read(row)
        assert np.median(np.abs(frame["teacher_depth"] / frame["truth_depth"] - 1)) < 0.2  # glass: see sim.py
        assert set(np.unique(frame["teacher_label"])) <= {0, 1, 2, 3, 4, 5, 255}
        assert (frame["teacher_label"] == frame["truth_label"]).mean() > 0.6
    for teacher, rule in (("depth", "depth"), ("relative", "depth"), ("detect", "detect"), ("segment", "segment")):
        assert read_jsonl(tmp_path / f"results/teachers/{teacher}/{last}.failures.jsonl") == []
        assert (tmp_path / f"results/benchmarks/teacher_{rule}/{teacher}/{last}.tsv").exists()
    assert "Nothing to be done" in snakemake(tmp_path, "-n", config=cfg).stdout
    # One teacher's setting changed: that teacher's gate and layers, then the merge; no other teacher.
    plan = job_counts(snakemake(tmp_path, "-n", config=teacher_config(relative={"seed": 3})).stdout)
    assert plan == {"teacher_settings": 1, "teacher_sanity": 1, "teacher_depth": len(names), "merge_manifest": 1,
                    "all": 1}

    real = teacher_config(depth={"backend": "da3", "weights": "random"}, device="cuda")
    sanity_job = snakemake(tmp_path, "-n", config=real).stdout.split("rule teacher_sanity:")[1].split("\n\n")[0]
    assert "gpu=1" in sanity_job and "--device cuda" in sanity_job  # real backends ask for a GPU, sim ones not

    depth_log = tmp_path / f"logs/teacher_depth/depth/{first}.log"
    before = depth_log.stat().st_mtime_ns
    absurd = teacher_config(depth={"backend": "sim_da3", "scale_sigma": 3.0})
    proc = snakemake(tmp_path, config=absurd, check=False)
    assert proc.returncode != 0 and "failed the sanity gate" in proc.stdout + proc.stderr
    assert depth_log.stat().st_mtime_ns == before  # no teacher job ran after the gate failed


@pytest.mark.slow
def test_a_per_frame_failure_share_above_the_threshold_stops_the_merge_naming_shard_and_share(tmp_path, monkeypatch):
    monkeypatch.setenv("DISTILLERY_TEACHER_FAULT", "frames:0.5")  # every teacher fails on about half its frames
    proc = snakemake(tmp_path, "-p", "results/manifest/manifest.h5", config=teacher_config(), check=False)
    assert proc.returncode != 0
    log = (tmp_path / "logs" / "merge_manifest" / "merge_manifest.log").read_text()
    assert re.search(r"teacher \w+, shard shard-[0-9a-f]{16}: failed on \d+ of \d+ frames \(\d+\.\d%\)", log), log
    assert "raise teachers.max_failed_share" in log
    for listed in re.findall(r"list: (\S+\.failures\.jsonl)", log):  # the per-frame lists it names are kept
        assert read_jsonl(tmp_path / listed), listed
    assert not (tmp_path / "results" / "manifest" / "manifest.h5").exists()  # no manifest with the holes


def test_a_missing_local_weights_file_stops_the_dag_before_any_job(tmp_path):
    missing = tmp_path / "weights/models/yolov8l.pt"  # inside the weights cache, where pickles may be loaded from
    cfg = teacher_config(detect={"backend": "yolo", "weights": str(missing)})
    proc = snakemake(tmp_path, "-n", config=cfg, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and str(missing) in out and "copy the file there" in out
    assert not (tmp_path / "results").exists()


def test_hub_weights_are_downloaded_by_a_local_rule_before_any_teacher_job(tmp_path):
    cfg = teacher_config(segment={"backend": "sam2", "weights": "hf://facebook/sam2.1-hiera-large/sam2.1_hiera_large.pt"})
    plan = snakemake(tmp_path, "-n", "--cores", "1", "download_weights_all", config=cfg).stdout
    assert "rule download_weights:" in plan and "weights/facebook/sam2.1-hiera-large/sam2.1_hiera_large.pt" in plan
    os.environ["HF_HUB_OFFLINE"] = "1"  # no network here: the download must fail, naming the file
    try:
        proc = snakemake(tmp_path, "--cores", "1", "download_weights_all", config=cfg, check=False)
    finally:
        del os.environ["HF_HUB_OFFLINE"]
    log = (tmp_path / "logs/download_weights/facebook/sam2.1-hiera-large/sam2.1_hiera_large.pt.log").read_text()
    assert proc.returncode != 0 and "sam2.1_hiera_large.pt" in log and "machine with internet" in log
    assert not (tmp_path / "logs/teacher_segment").exists()
