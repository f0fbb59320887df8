"""The workflow on a real single-node Slurm cluster, through the profile users run.

The cluster (tests/slurm_cluster.py) has accounting, an account `robotics`,
a partition `debug` and two fake L40S GPUs. The profile is profiles/slurm
with only partition and account edited, as a user adapts it to a cluster.
"""

import os
import shutil
import subprocess
import time

import pytest
import yaml
from slurm_cluster import ACCOUNT, PARTITION, available, start, stop
from workflow_util import BIN, ROOT, snakemake, tiny_config

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
    shutil.copytree(ROOT / "profiles" / "slurm", dest)
    cfg = yaml.safe_load((dest / "config.yaml").read_text())
    cfg["default-resources"].update(slurm_partition=PARTITION, slurm_account=ACCOUNT)
    (dest / "config.yaml").write_text(yaml.safe_dump(cfg))
    return dest


def sacct_jobs():
    out = subprocess.run(["sacct", "-X", "-n", "-P", "--format=JobName,State,Account,Partition,AllocTRES"],
                         capture_output=True, text=True, check=True).stdout
    return [line.split("|") for line in out.splitlines() if line]


@pytest.fixture(scope="module")
def demo_run(cluster, tmp_path_factory):
    """The demo DAG (tiny config) run once through the user's profile; later tests reuse its manifest."""
    root = tmp_path_factory.mktemp("demo")
    profile = user_profile(root / "profile")
    # The plugin waits 40 s before its first status check by default; 5 s keeps the test short.
    snakemake(root / "work", "--profile", str(profile), "--slurm-init-seconds-before-status-checks", "5",
              config=tiny_config(), timeout=900)
    return root / "work", profile


def test_demo_dag_runs_through_the_slurm_profile(demo_run):
    work, _ = demo_run
    assert len(Manifest(work / "results" / "manifest" / "manifest.h5")) == 15
    assert (work / "results" / "train" / "demo" / "best.pt").exists()
    jobs = sacct_jobs()
    assert jobs and all(state == "COMPLETED" for _, state, *_ in jobs), jobs
    assert {(acct, part) for _, _, acct, part, _ in jobs} == {(ACCOUNT, PARTITION)}


def test_dry_run_with_the_profile_name_from_the_project_root(cluster, tmp_path):
    proc = snakemake(tmp_path / "dry", "--profile", "slurm", "-n", config=tiny_config())
    assert "synthesize_world" in proc.stdout + proc.stderr


def _train_config(epochs: int) -> dict:
    cfg = tiny_config()
    cfg["training"] = {"build": ["long"], "versions": {"long": {
        "backbone": "mobilenetv3_small", "epochs": epochs, "samples_per_epoch": 8, "batch_size": 4,
        "max_val_frames": 4, "num_workers": 0, "augment": False, "save_every_steps": 1,
        "gpus": 1}}}  # a fake L40S: the job is given CUDA_VISIBLE_DEVICES, torch finds no CUDA and uses the CPU
    return cfg


def _running_train_job(timeout: float = 300) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = subprocess.run(["squeue", "-h", "-t", "RUNNING", "-o", "%i %k"], capture_output=True, text=True).stdout
        for line in out.splitlines():
            jobid, _, comment = line.partition(" ")
            if "train_student" in comment:
                return jobid
        time.sleep(1)
    raise AssertionError("no running train_student job")


def test_requeued_training_job_resumes_from_its_checkpoint(demo_run):
    work, profile = demo_run
    cfg_path = work / "config.yaml"
    cfg_path.write_text(yaml.safe_dump(_train_config(epochs=120)))
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}")
    run = subprocess.Popen([str(BIN / "snakemake"), "-s", str(ROOT / "Snakefile"), "-d", str(work), "--configfile",
                            str(cfg_path), "--profile", str(profile), "--slurm-init-seconds-before-status-checks", "5"],
                           cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        jobid = _running_train_job()
        last = work / "results" / "train" / "long" / "last.pt"
        deadline = time.monotonic() + 300
        while not last.exists() and time.monotonic() < deadline:
            time.sleep(1)
        assert last.exists(), "training wrote no checkpoint"
        subprocess.run(["scontrol", "requeue", jobid], check=True)
        # Slurm holds a requeued batch job back for two minutes; let it start again now.
        subprocess.run(["scontrol", "update", f"JobId={jobid}", "StartTime=now"], check=True)
        out, _ = run.communicate(timeout=900)
    finally:
        run.kill()
    assert run.returncode == 0, out
    assert (work / "results" / "train" / "long" / "best.pt").exists()
    rows = subprocess.run(["sacct", "-D", "-X", "-n", "-P", "-j", jobid, "--format=State,AllocTRES"],
                          capture_output=True, text=True).stdout.split()
    states = [row.split("|")[0] for row in rows]
    assert "REQUEUED" in states and states[-1] == "COMPLETED", rows
    assert "gres/gpu=1" in rows[-1], rows  # the profile's gpu_model turned gpu=1 into --gpus=l40s:1
    log = (work / "logs" / "train_student" / "long.log").read_text()
    assert "resuming from" in log, log[-2000:]
