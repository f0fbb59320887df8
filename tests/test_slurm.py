"""The workflow on a real single-node Slurm cluster, through the profile users run.

The cluster (tests/slurm_cluster.py) has accounting, an account `robotics`,
a partition `debug` and two fake L40S GPUs. The profile is profiles/slurm
with only partition and account edited, as a user adapts it to a cluster.
"""

import os
import shutil
import subprocess

import pytest
import yaml
from slurm_cluster import ACCOUNT, PARTITION, available, start, stop
from workflow_util import snakemake, tiny_config

from distillery.manifest import Manifest

pytestmark = [pytest.mark.slow, pytest.mark.skipif(available() is not None, reason=str(available()))]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    folder = tmp_path_factory.mktemp("slurm")
    try:
        info = start(folder)
    except Exception:
        stop(folder)
        raise
    os.environ["SLURM_CONF"] = info["SLURM_CONF"]
    yield info
    stop(folder)
    os.environ.pop("SLURM_CONF", None)


def user_profile(dest):
    """profiles/slurm with partition and account edited: all a user changes for their cluster."""
    from workflow_util import ROOT

    shutil.copytree(ROOT / "profiles" / "slurm", dest)
    cfg = yaml.safe_load((dest / "config.yaml").read_text())
    cfg["default-resources"].update(slurm_partition=PARTITION, slurm_account=ACCOUNT)
    (dest / "config.yaml").write_text(yaml.safe_dump(cfg))
    return dest


def sacct_jobs():
    out = subprocess.run(["sacct", "-X", "-n", "-P", "--format=JobName,State,Account,Partition,AllocTRES"],
                         capture_output=True, text=True, check=True).stdout
    return [line.split("|") for line in out.splitlines() if line]


def test_demo_dag_runs_through_the_slurm_profile(cluster, tmp_path):
    profile = user_profile(tmp_path / "profile")
    work = tmp_path / "work"
    # The plugin waits 40 s before its first status check by default; 5 s keeps the test short.
    snakemake(work, "--profile", str(profile), "--slurm-init-seconds-before-status-checks", "5",
              config=tiny_config(), timeout=900)
    assert len(Manifest(work / "results" / "manifest" / "manifest.h5")) == 15
    jobs = sacct_jobs()
    assert jobs and all(state == "COMPLETED" for _, state, *_ in jobs), jobs
    assert {(acct, part) for _, _, acct, part, _ in jobs} == {(ACCOUNT, PARTITION)}


def test_dry_run_with_the_profile_name_from_the_project_root(cluster, tmp_path):
    proc = snakemake(tmp_path / "dry", "--profile", "slurm", "-n", config=tiny_config())
    assert "synthesize_world" in proc.stdout + proc.stderr
