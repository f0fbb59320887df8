"""The workflow on a real single-node Slurm cluster, through the profile users run.

The cluster (tests/slurm_cluster.py) is shaped like a small real one: a node
of 2 CPUs and 21 GB with two fake L40S GPUs, memory consumable, accounting
enforced with the account `percept-lab`, a CPU and a GPU partition. The
profile is profiles/slurm with only the partition names and the account
edited, as a user adapts it to a cluster.
"""

import json
import os
import re
import shutil
import subprocess
import time

import pytest
import yaml
from slurm_cluster import ACCOUNT, CPU_PARTITION, GPU_PARTITION, available, start, stop
from workflow_util import BIN, ROOT, on_demo, snakemake, tiny_config

from distillery.manifest import Manifest

# A Slurm wave takes tens of seconds on a small machine: the demo DAG alone runs for 10-20 minutes.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(2400),
              pytest.mark.skipif(available() is not None, reason=str(available()))]


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
    """profiles/slurm with partitions and account edited: all a user changes for their cluster."""
    shutil.copytree(ROOT / "profiles" / "slurm", dest)
    cfg = yaml.safe_load((dest / "config.yaml").read_text())
    cfg["default-resources"].update(slurm_partition=CPU_PARTITION, gpu_partition=GPU_PARTITION,
                                    slurm_account=ACCOUNT)
    (dest / "config.yaml").write_text(yaml.safe_dump(cfg))
    return dest


def demo_config(**training) -> dict:
    """The tiny DAG on one world (2 sequences, 2 shards): the four simulated teachers and one short CPU
    training run (trainer + one loader worker). Every Slurm wave costs seconds: few shards, few waves."""
    cfg = tiny_config()
    cfg["datasets"] = [d for d in cfg["datasets"] if d["name"] == "rooms"]
    cfg["lineage"] = {"roles": {role: "rooms" for role in ("nyu", "sun", "diode", "corridor")}}
    cfg["training"]["versions"]["demo"].update(num_workers=1, **training)
    return cfg


def run_profile(work, profile, config, env=None, timeout=1800, targets=()):
    """`snakemake --profile <user profile>` as a user runs it; the status checks start after 5 s."""
    work.mkdir(parents=True, exist_ok=True)
    (work / "config.yaml").write_text(yaml.safe_dump(on_demo(config)))
    env = dict(env or os.environ, PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}")
    cmd = [str(BIN / "snakemake"), "-s", str(ROOT / "Snakefile"), "-d", str(work), "--profile", str(profile),
           "--slurm-init-seconds-before-status-checks", "5", *targets, "--configfile", str(work / "config.yaml")]
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


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
    # The manifest (training through the profile is the requeue test's, on a GPU partition).
    proc = run_profile(root / "work", profile, demo_config(), targets=("results/manifest/manifest.h5",))
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    return root / "work", profile


def test_demo_dag_runs_through_the_slurm_profile(demo_run):
    work, _ = demo_run
    assert len(Manifest(work / "results" / "manifest" / "manifest.h5")) == 6
    jobs = sacct_jobs()
    assert jobs and all(state == "COMPLETED" for _, state, *_ in jobs), jobs
    assert {(acct, part) for _, _, acct, part, _ in jobs} == {(ACCOUNT, CPU_PARTITION)}  # no job asked a GPU
    assert not any("gres/gpu" in tres for *_, tres in jobs), jobs


def test_a_job_no_node_can_hold_stops_the_run_at_once_naming_it(cluster, tmp_path):
    # A real teacher (untrained weights: no download) on CUDA asks for a GPU node's memory: 32 GB > 21 GB.
    cfg = demo_config()
    cfg["teachers"] = {"device": "cuda", "models": [
        {"id": "da3", "backend": "da3", "weights": "random", "arch": "da3metric-large"},
        {"id": "yolo_sim", "backend": "sim_yolo"}, {"id": "sam2_sim", "backend": "sim_sam2"}]}
    proc = run_profile(tmp_path / "big", user_profile(tmp_path / "profile"), cfg, timeout=900)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert re.search(r"rule teacher_sanity asks for \d CPUs, 32000 MB, 1 GPU \(l40s\)", out), out[-4000:]
    assert f"partition '{GPU_PARTITION}'" in out and "largest node is localhost: 2 CPUs, 21000 MB, 2 l40s" in out
    assert "teacher_sanity" not in subprocess.run(["squeue", "-h", "-o", "%k"], capture_output=True,
                                                  text=True).stdout  # never submitted


def copy_of(demo_run, dest):
    """The demo run's working directory copied (mtimes and Snakemake's records kept): nothing is out of date."""
    work, profile = demo_run
    shutil.copytree(work, dest, symlinks=True)
    return dest, profile


def test_a_fatal_teacher_error_fails_the_slurm_job_and_it_is_retried(demo_run, tmp_path):
    work, profile = copy_of(demo_run, tmp_path / "fatal")
    shard = json.loads((work / "results" / "shards" / "plan" / "shards.json").read_text())["shards"][0]
    layer = work / "results" / "teachers" / "da3_sim" / f"{shard}.h5"
    layer.unlink()  # one teacher job to run again, and it meets a fatal (CUDA) error every time
    env = dict(os.environ, DISTILLERY_TEACHER_FAULT="fatal")
    proc = run_profile(work, profile, yaml.safe_load((work / "config.yaml").read_text()), env=env,
                       targets=(str(layer.relative_to(work)),))
    assert proc.returncode != 0
    # One Slurm log per attempt of a job: .snakemake/slurm_logs/rule_<rule>/<wildcards>/<jobid>.log
    attempts = {}
    for log in (work / ".snakemake" / "slurm_logs").glob("rule_teacher_*/*/*.log"):
        attempts[log.parent] = attempts.get(log.parent, 0) + 1
    assert attempts and max(attempts.values()) == 3, attempts  # the first try and the profile's 2 retries
    teacher_log = (work / "logs" / "teacher_depth" / "da3_sim" / f"{shard}.log").read_text()
    assert "fatal teacher error" in teacher_log and "CUDA error" in teacher_log, teacher_log[-2000:]


def test_dry_run_with_the_profile_name_from_the_project_root(cluster, tmp_path):
    proc = snakemake(tmp_path / "dry", "--profile", "slurm", "-n", config=tiny_config())
    assert "synthesize_world" in proc.stdout + proc.stderr


def _train_config(epochs: int) -> dict:
    cfg = demo_config()
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


def _start_now_once_pending(jobid: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = subprocess.run(["squeue", "-h", "-j", jobid, "-o", "%T"], capture_output=True, text=True).stdout
        if state.strip() == "PENDING":
            subprocess.run(["scontrol", "update", f"JobId={jobid}", "StartTime=now"], check=True)
            return
        time.sleep(0.5)
    raise AssertionError(f"requeued job {jobid} never became pending again")


def test_requeued_training_job_resumes_from_its_checkpoint(demo_run):
    work, profile = demo_run
    cfg_path = work / "config.yaml"
    cfg_path.write_text(yaml.safe_dump(on_demo(_train_config(epochs=40))))
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}")
    run = subprocess.Popen([str(BIN / "snakemake"), "-s", str(ROOT / "Snakefile"), "-d", str(work), "--configfile",
                            str(cfg_path), "--profile", str(profile), "--slurm-init-seconds-before-status-checks", "5",
                            "results/train/long/best.pt"],
                           cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        jobid = _running_train_job()
        last = work / "results" / "train" / "long" / "last.pt"
        deadline = time.monotonic() + 300
        while not last.exists() and time.monotonic() < deadline:
            time.sleep(1)
        assert last.exists(), "training wrote no checkpoint"
        subprocess.run(["scontrol", "requeue", jobid], check=True)
        # Slurm holds a requeued batch job back for two minutes; let it start again now. The hold can
        # only be lifted once the job is pending again (its old step takes a moment to end).
        _start_now_once_pending(jobid)
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


def test_a_config_left_by_a_killed_test_cluster_is_stale_but_a_running_one_is_not(tmp_path):
    """A run killed before `stop` leaves /etc/slurm/slurm.conf pointing at its folder: the next run
    may replace that link, but never one whose daemons still run, nor a config that is not a test's."""
    import slurm_cluster

    conf = slurm_cluster._write_configs(tmp_path)
    (tmp_path / "pids.json").write_text(json.dumps({"slurmd": 2 ** 22 + 7}))  # above pid_max: never alive
    assert slurm_cluster._stale_test_conf(conf)
    # A live daemon: this very process (a child just started may not have exec'd its program yet).
    (tmp_path / "pids.json").write_text(json.dumps({"python": os.getpid()}))
    assert not slurm_cluster._stale_test_conf(conf)
    other = tmp_path / "other.conf"
    other.write_text("ClusterName=site\nStateSaveLocation=/var/spool/slurmctld\n")
    assert not slurm_cluster._stale_test_conf(other)
