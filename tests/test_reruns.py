"""Reruns as users drive them (docs/training.md, "Rerunning versions"), checked on a tiny trained lineage.

One workflow run trains base -> child and an unrelated version `other` on a
tiny generated world; each test then asks Snakemake (mostly `-n`) which
jobs a command would run, on a copy of that folder when it runs jobs.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import time

import pytest
from workflow_util import BIN, tiny_config
from workflow_util import snakemake as _snakemake

from distillery.manifest import Manifest

pytestmark = pytest.mark.slow

VERSION = {"backbone": "mobilenetv3_small", "encoder_weights": "random", "epochs": 1, "samples_per_epoch": 4,
           "batch_size": 2, "max_val_frames": 2, "num_workers": 0, "freeze_encoder_epochs": 0, "augment": False, "log_every_steps": 1}
VERSIONS = ("base", "child", "other")
TARGETS = [f"results/train/{v}/best.pt" for v in VERSIONS]


def lineage_config(**changes) -> dict:
    """tiny_config on three sequences (three shards), one simulated metric depth teacher, and three
    versions: child fine-tunes base, other stands alone."""
    cfg = tiny_config()
    cfg["datasets"][0]["synth"]["sequences"], cfg["datasets"][1]["synth"]["sequences"] = 2, 1
    cfg["teachers"] = {"models": [{"id": "depth_sim", "backend": "sim_da3"}]}
    versions = {"base": dict(VERSION), "child": {**VERSION, "parent": "base", "lr": 3e-4},
                "other": {**VERSION, "seed": 1}}
    for name, settings in changes.items():
        versions[name].update(settings)
    cfg["training"] = {"build": list(VERSIONS), "versions": versions}
    return cfg


def snakemake(workdir, *args, config):
    """workflow_util.snakemake with the targets kept apart from --configfile (which takes several files)."""
    return _snakemake(workdir, "--cores", "2", *args, config=config, timeout=1800)


def planned(proc) -> list[tuple[str, str]]:
    """(rule, wildcards) of every job a dry run lists."""
    jobs = []
    for block in re.split(r"\n(?=(?:local)?(?:rule|checkpoint) )", "\n" + proc.stdout + proc.stderr):
        head = re.match(r"(?:local)?(?:rule|checkpoint) (\w+):", block)
        if head:
            wildcards = re.search(r"^\s+wildcards: (.*)$", block, re.M)
            jobs.append((head.group(1), wildcards.group(1) if wildcards else ""))
    return jobs


def retrained(proc) -> set[str]:
    return {w.removeprefix("version=") for rule, w in planned(proc) if rule == "train_student"}


def digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    work = tmp_path_factory.mktemp("lineage")
    snakemake(work, *TARGETS, config=lineage_config())
    return work


def copy_of(trained, tmp_path):
    work = tmp_path / "work"
    shutil.copytree(trained, work, symlinks=True)
    return work


def test_an_up_to_date_lineage_runs_nothing(trained):
    assert retrained(snakemake(trained, "-n", *TARGETS, config=lineage_config())) == set()


def test_changing_a_parent_setting_retrains_it_and_its_descendants_only(trained):
    proc = snakemake(trained, "-n", *TARGETS, config=lineage_config(base={"lr": 5e-4}))
    assert retrained(proc) == {"base", "child"}
    assert {rule for rule, _ in planned(proc)} == {"train_student"}


def test_rerun_one_version_alone(trained):
    proc = snakemake(trained, "-n", "--force", "results/train/base/best.pt", config=lineage_config())
    assert retrained(proc) == {"base"}


def test_rerun_one_version_and_its_descendants(trained):
    proc = snakemake(trained, "-n", "--forcerun", "results/train/base/best.pt", config=lineage_config())
    assert retrained(proc) == {"base", "child"}


def test_start_one_version_from_scratch(trained, tmp_path):
    work = copy_of(trained, tmp_path)
    out = work / "results/train/child"
    subprocess.run([str(BIN / "distillery"), "archive-run", str(out)], check=True, capture_output=True)
    assert {p.name for p in out.iterdir()} == {"previous"}
    proc = snakemake(work, "-n", "--force", "results/train/child/best.pt", config=lineage_config())
    assert retrained(proc) == {"child"}


def test_forced_rerun_really_retrains_and_keeps_the_old_run(trained, tmp_path):
    work = copy_of(trained, tmp_path)
    out = work / "results/train/base"
    old_best, old_lines = digest(out / "best.pt"), (out / "metrics.jsonl").read_text().splitlines()
    child_best = digest(work / "results/train/child/best.pt")
    proc = snakemake(work, "--force", "results/train/base/best.pt", config=lineage_config())
    log = (work / "logs/train_student/base.log").read_text()
    assert "resuming" not in log and "previous run had finished" in log, log[-2000:]
    lines = (out / "metrics.jsonl").read_text().splitlines()
    assert any(json.loads(line)["kind"] == "train" for line in lines) and set(lines).isdisjoint(old_lines)
    assert digest(out / "best.pt") != old_best
    [archived] = list((out / "previous").iterdir())
    assert digest(archived / "last.pt") and (archived / "metrics.jsonl").read_text().splitlines() == old_lines
    assert digest(work / "results/train/child/best.pt") == child_best  # the child was not asked for
    assert "train_student" in proc.stdout + proc.stderr
    assert retrained(snakemake(work, "-n", *TARGETS, config=lineage_config())) == {"child"}


def test_a_re_merged_manifest_with_other_labels_retrains_every_version(trained, tmp_path):
    work = copy_of(trained, tmp_path)
    manifest = work / "results/manifest/manifest.h5"
    before = Manifest(manifest).content_id
    cfg = lineage_config()
    cfg["teachers"]["models"][0]["seed"] = 7  # one teacher setting changed: every shard relabelled
    proc = snakemake(work, "results/manifest/manifest.h5", config=cfg)
    assert "pack_shard" not in proc.stdout + proc.stderr  # labels changed, not the packed shards
    assert Manifest(manifest).content_id != before
    assert retrained(snakemake(work, "-n", *TARGETS, config=cfg)) == set(VERSIONS)


def test_adding_a_sequence_keeps_every_split_and_shard_file(trained, tmp_path):
    work = copy_of(trained, tmp_path)
    plan = json.loads((work / "results/shards/plan/shards.json").read_text())
    files = sorted(p for p in (work / "results").glob("shards/shard-*.h5")) + sorted(
        (work / "results/teachers").rglob("shard-*.h5"))
    stamps = {p: (p.stat().st_mtime_ns, digest(p)) for p in files}
    cfg = lineage_config()
    cfg["datasets"][0]["synth"]["sequences"] += 1
    started = time.time_ns()
    snakemake(work, "results/manifest/manifest.h5", config=cfg)
    grown = json.loads((work / "results/shards/plan/shards.json").read_text())
    assert {k: grown["sequence_splits"][k] for k in plan["sequence_splits"]} == plan["sequence_splits"]
    assert set(plan["shards"]) < set(grown["shards"])
    assert {p: (p.stat().st_mtime_ns, digest(p)) for p in files} == stamps
    packed = [p for p in (work / "logs/pack_shard").glob("*.log") if p.stat().st_mtime_ns > started]
    assert len(packed) == len(grown["shards"]) - len(plan["shards"])  # only the new shards were packed
    assert len(Manifest(work / "results/manifest/manifest.h5")) == plan["frames"] + 3
