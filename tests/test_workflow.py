"""The Snakemake workflow as users drive it: lint, dry runs, graphs, config errors, a full run."""

import json

import pytest
from workflow_util import ROOT, snakemake, tiny_config

from distillery.atomic import read_jsonl
from distillery.manifest import Manifest


def test_lint_is_clean(tmp_path):
    proc = snakemake(tmp_path, "--lint", config=tiny_config(), check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Lints for" not in proc.stdout + proc.stderr


def test_dry_run_lists_the_jobs_of_the_demo_config(tmp_path):
    proc = snakemake(tmp_path, "-n", "--configfile", str(ROOT / "config" / "demo.yaml"))
    out = proc.stdout + proc.stderr
    for rule in ("synthesize_world", "index_dataset", "plan_shards", "merge_manifest"):
        assert rule in out


@pytest.mark.parametrize("flag", ["--rulegraph", "--dag"])
def test_graphs_render_as_dot(tmp_path, flag):
    proc = snakemake(tmp_path, flag, config=tiny_config())
    assert proc.stdout.lstrip().startswith("digraph") and "merge_manifest" in proc.stdout


def test_wrong_config_key_fails_before_any_job_naming_it(tmp_path):
    cfg = tiny_config()
    cfg["sharding"]["frames_per_shrad"] = 4
    proc = snakemake(tmp_path, "-n", config=cfg, check=False)
    assert proc.returncode != 0 and "frames_per_shrad" in proc.stdout + proc.stderr
    assert not (tmp_path / "results").exists()


def test_wrong_config_type_fails_naming_it(tmp_path):
    cfg = tiny_config()
    cfg["ingest"]["max_bad_share"] = "lots"
    proc = snakemake(tmp_path, "-n", config=cfg, check=False)
    assert proc.returncode != 0 and "max_bad_share" in proc.stdout + proc.stderr


@pytest.mark.slow
def test_full_dag_builds_the_manifest_and_resumes(tmp_path):
    # Up to the manifest: the lineage's train -> evaluate -> report is tests/test_lineage.py's end-to-end run.
    snakemake(tmp_path, "-p", "results/manifest/manifest.h5", config=tiny_config())
    manifest = tmp_path / "results" / "manifest"
    m = Manifest(manifest / "manifest.h5")
    assert len(m) == 15 and m.size == (48, 64)
    assert {r["dataset"] for r in m.records} == {"corridors", "rooms"}
    assert len({r["key"] for r in m.records}) == 15
    per_seq = {}
    for r in m.records:
        per_seq.setdefault((r["dataset"], r["sequence"]), set()).add(r["split"])
    assert all(len(s) == 1 for s in per_seq.values())
    assert all(m.read(i, ("truth_depth",))["truth_depth"] is not None for i in range(len(m)))
    assert read_jsonl(manifest / "quarantine.jsonl") == []
    summary = json.loads((manifest / "summary.json").read_text())
    assert summary["frames"] == 15
    for rule in ("synthesize_world", "index_dataset", "pack_shard", "merge_manifest"):
        assert list((tmp_path / "logs" / rule).iterdir()), rule
    again = snakemake(tmp_path, "-n", "results/manifest/manifest.h5", config=tiny_config())
    assert "Nothing to be done" in again.stdout + again.stderr
