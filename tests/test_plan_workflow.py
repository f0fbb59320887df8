"""`distillery plan` against the real workflow: its job counts are the dry run's, and after a run
its estimate from that run's benchmark records is the run's measured CPU time."""

from __future__ import annotations

import json
import os
import re
import subprocess

import pytest
import yaml
from workflow_util import BIN, ROOT, on_demo, snakemake, tiny_config

from distillery.plan import make_plan
from distillery.plan.records import read_record

TARGET = "results/manifest/manifest.h5"
# The plan prices each job at its rule's measured seconds per frame (or per job); planning the run
# that wrote the records must give back that run's CPU time, up to this share.
CPU_TOLERANCE = 0.05


def dry_run_counts(workdir, *args) -> dict[str, int]:
    """Jobs per rule, from the "Job stats" table of `snakemake -n`."""
    proc = snakemake(workdir, "-n", *args, "-j", "2", TARGET, config=tiny_config())
    table = proc.stdout.split("Job stats:")[1].split("total")[0]
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)\s*$", table, re.M) if m.group(1) != "job"}


def plan_counts(plan) -> dict[str, int]:
    counts: dict[str, int] = {}
    for row in plan["rules"]:
        counts[row["rule"]] = counts.get(row["rule"], 0) + row["jobs"]
    return counts


def run_plan(workdir, *args) -> dict:
    """`distillery plan TARGET --configfile ... -d workdir --json -` as a user runs it."""
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}")
    proc = subprocess.run([str(BIN / "distillery"), "plan", TARGET, "--configfile", str(workdir / "config.yaml"),
                           "-d", str(workdir), "--json", "-", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@pytest.fixture(scope="module")
def ran(tmp_path_factory):
    """A finished run of the tiny config up to the manifest (teachers included)."""
    workdir = tmp_path_factory.mktemp("planned_run")
    snakemake(workdir, "-j", "2", TARGET, config=tiny_config())
    return workdir


def test_plan_before_a_run_has_the_dry_runs_jobs_plus_the_shards_to_come(tmp_path):
    dry = dry_run_counts(tmp_path)
    plan = run_plan(tmp_path)
    counts = plan_counts(plan)
    assert {rule: counts[rule] for rule in dry} == dry
    added = {r["rule"] for r in plan["rules"] if r["estimated_jobs"]}
    assert {"pack_shard", "teacher_depth", "teacher_segment"} <= added and not added & set(dry)
    assert any("estimated before plan_shards runs" in n for n in plan["notes"])
    assert plan["totals"]["gpu_jobs"] == 0  # the simulated teachers run on the CPU


@pytest.mark.slow
def test_estimated_shards_are_the_shards_the_run_made(ran, tmp_path):
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    (fresh / "config.yaml").write_text(yaml.safe_dump(on_demo(tiny_config())))
    plan = run_plan(fresh)
    made = json.loads((ran / "results" / "shards" / "plan" / "shards.json").read_text())["shards"]
    assert plan_counts(plan)["pack_shard"] == len(made)


@pytest.mark.slow
def test_plan_of_a_run_from_its_records_matches_its_measured_cpu_time(ran):
    plan = run_plan(ran, "--forceall")
    counts = plan_counts(plan)
    dry = dry_run_counts(ran, "--forceall")  # a forced checkpoint hides the shard jobs from the dry run
    assert {rule: counts[rule] for rule in dry} == dry
    benchmarks = ran / "results" / "benchmarks"
    jobs_run = {d.name: len(list(d.rglob("*.tsv"))) for d in benchmarks.iterdir()}
    assert {rule: n for rule, n in counts.items() if rule != "all"} == jobs_run  # the plan's jobs are the run's
    records = [read_record(p) for p in benchmarks.rglob("*.tsv")]
    measured = sum(r.cpu_s for r in records)
    predicted = plan["totals"]["cpu_hours"] * 3600
    assert measured > 0 and abs(predicted - measured) <= CPU_TOLERANCE * measured, (predicted, measured)
    timed = [r for r in plan["rules"] if r["rule"] != "all"]
    assert all(r["cost_source"].startswith("records:") for r in timed), [r["cost_source"] for r in timed]
    manifest = sum(p.stat().st_size for p in (ran / "results" / "manifest").iterdir())
    assert plan["totals"]["manifest_bytes"] == pytest.approx(manifest, rel=0.01)


def test_plan_on_slurm_names_partitions_and_says_when_slurm_cannot_be_asked(tmp_path):
    cfg = tmp_path / "config.yaml"
    cfg.write_text(yaml.safe_dump(on_demo(tiny_config())))
    plan = make_plan([TARGET], [str(cfg)], [str(ROOT / "profiles" / "slurm")], tmp_path,
                     extra_args=["--forceall"], check_fit=True)
    data = plan.to_dict()
    assert data["executor"] == "slurm" and data["slots"] == yaml.safe_load(
        (ROOT / "profiles" / "slurm" / "config.yaml").read_text())["jobs"]
    partitions = {r["partition"] for r in data["rules"] if r["rule"] != "all"}
    assert partitions and None not in partitions
    if not data["fit_checked"]:  # no Slurm here: the plan says so instead of claiming a fit
        assert any("not checked" in n for n in data["notes"]) and not data["misfits"]


def test_plan_before_a_bag_is_extracted_counts_its_frames_from_the_bag(tmp_path):
    """A bag dataset has no folder to index until extract_bag runs: the plan counts its frame pairs from
    the bag's own topic table (a RealSense Viewer recording, found by its layout)."""
    from bag_util import RealsenseSpec, write_realsense_bag

    bag = write_realsense_bag(tmp_path / "robot run.bag", RealsenseSpec(frames=3))
    cfg = tiny_config()
    cfg["datasets"].append({"name": "robot", "bag": {"path": str(bag)}})
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg))
    with_bag = plan_counts(run_plan(tmp_path))
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(tiny_config()))
    without = plan_counts(run_plan(tmp_path))
    assert with_bag["extract_bag"] == 1 and "extract_bag" not in without
    assert with_bag["pack_shard"] == without["pack_shard"] + 1  # its three frames: one sequence, one shard
