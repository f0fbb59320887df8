"""The configuration of a real run (config/config.yaml) and the demo (config/demo.yaml), as a user meets them.

The template is what a team edits before its first cluster run: reference sizes on GPUs, real teachers,
ImageNet encoders. The demo is a whole configuration of its own. Under Slurm, a CPU training or a
demo-sized one on real data stops the DAG build naming the version and the setting.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml
from workflow_util import BIN, DEMO, ROOT

from distillery import workflow as checks

TEMPLATE = ROOT / "config" / "config.yaml"
KITCHEN = Path("/work/shared/datasets/7scenes-kitchen")
SLURM_PROFILE = ROOT / "profiles" / "slurm"


def template_with_kitchen(kitchen: Path) -> dict:
    """The template with one real dataset folder added and every lineage role mapped to it: a user's edit."""
    cfg = yaml.safe_load(TEMPLATE.read_text())
    cfg["datasets"] = [{"name": "kitchen", "path": str(kitchen), "layout": "7scenes"}]
    cfg["lineage"]["roles"] = {role: "kitchen" for role in ("nyu", "sun", "diode", "corridor")}
    return cfg


def run_snakemake(workdir: Path, *args: str, config: dict | None = None) -> subprocess.CompletedProcess:
    """`snakemake -s <project>/Snakefile -d workdir ...`; `config` (a whole configuration) as --configfile."""
    workdir.mkdir(parents=True, exist_ok=True)
    cmd = [str(BIN / "snakemake"), "-s", str(ROOT / "Snakefile"), "-d", str(workdir), "--cores", "2"]
    if config is not None:
        (workdir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
        cmd += ["--configfile", str(workdir / "config.yaml")]
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    return subprocess.run([*cmd, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def kitchen(tmp_path_factory) -> Path:
    """The shared 7-Scenes kitchen when present, else a 7-Scenes folder written the way the dataset ships."""
    if (KITCHEN / "camera-intrinsics.txt").exists():
        return KITCHEN
    import cv2
    import numpy as np

    folder = tmp_path_factory.mktemp("kitchen")
    (folder / "camera-intrinsics.txt").write_text("585 0 320\n0 585 240\n0 0 1\n")
    rng = np.random.default_rng(0)
    for i in range(0, 40, 5):
        cv2.imwrite(str(folder / f"frame-{i:06d}.color.jpg"), rng.integers(0, 255, (480, 640, 3), np.uint8))
        cv2.imwrite(str(folder / f"frame-{i:06d}.depth.png"), rng.integers(500, 4000, (480, 640), np.uint16))
        (folder / f"frame-{i:06d}.pose.txt").write_text("1 0 0 0\n0 1 0 0\n0 0 1 0\n0 0 0 1\n")
    return folder


# --- the decisions, as functions of the config ---------------------------------------------------------------


def test_template_is_used_only_without_configfiles():
    assert checks.template_configfile("/p", []) == Path("/p/config/config.yaml")
    assert checks.template_configfile("/p", ["config/demo.yaml"]) is None


def test_no_datasets_is_one_line_naming_the_fix():
    message = checks.no_datasets_message({"datasets": []})
    assert "\n" not in message and "datasets:" in message and "make demo" in message
    assert checks.no_datasets_message({"datasets": [{"name": "a", "path": "/a"}]}) is None


def test_cpu_and_demo_sized_versions_are_named_under_slurm():
    datasets = {"kitchen": {"name": "kitchen", "path": "/k"}, "world": {"name": "world", "synth": {}}}
    training = {"defaults": {"gpus": 1, "epochs": 30},
                "versions": {"A": {}, "B": {"parent": "A", "gpus": 0}, "C": {"device": "cpu"},
                             "D": {"epochs": 3, "samples_per_epoch": 32, "datasets": ["k"]},
                             "E": {"epochs": 3, "samples_per_epoch": 32, "datasets": ["world"]}}}
    roles = {"k": "kitchen"}
    problems = checks.slurm_training_problems(training, roles, datasets, ["B", "C", "D", "E"])
    assert len(problems) == 3
    assert "versions.B" in problems[0] and "gpus: 0" in problems[0]
    assert "versions.C" in problems[1] and "device: cpu" in problems[1]
    assert "versions.D" in problems[2] and "samples_per_epoch: 32" in problems[2] and "kitchen" in problems[2]
    # A version's parent is trained too, so it is checked with it.
    assert checks.slurm_training_problems({**training, "defaults": {}}, roles, datasets, ["B"])[0].startswith(
        "training.versions.A")
    opted_in = {**training, "allow_cpu_on_slurm": True, "allow_demo_size_on_slurm": True}
    assert checks.slurm_training_problems(opted_in, roles, datasets, list(training["versions"])) == []


# --- the two configuration files ------------------------------------------------------------------------------


def test_template_holds_the_reference_run_and_demo_its_own_file():
    tmpl, demo = yaml.safe_load(TEMPLATE.read_text()), yaml.safe_load(DEMO.read_text())
    assert tmpl["datasets"] == [] and demo["datasets"]
    assert {m["backend"] for m in tmpl["teachers"]["models"]} == {"da3", "da2", "yolo", "sam2"}
    assert all(m["backend"].startswith("sim_") for m in demo["teachers"]["models"])
    d = tmpl["training"]["defaults"]
    assert (d["gpus"], d["device"], d["epochs"], d["batch_size"], d["freeze_encoder_epochs"]) == (1, "cuda", 30, 16, 5)
    assert d["encoder_weights"] == "imagenet" and d["num_workers"] > 0 and d["samples_per_epoch"] is None
    assert demo["training"]["defaults"]["encoder_weights"] == "random"  # said on purpose
    lrs = {v: e["lr"] for v, e in tmpl["training"]["versions"].items()}
    assert lrs["V4"] == 1e-3 and lrs["V3"] == 3e-4 and lrs["V9"] == 3e-4  # the reference's learning rates
    assert tmpl["evaluation"]["device"] == "cuda"
    assert not tmpl["training"]["allow_cpu_on_slurm"] and not tmpl["training"]["allow_demo_size_on_slurm"]
    # The demo's lineage is the template's: the recipes differ only in sizes.
    assert tmpl["training"]["versions"].keys() == demo["training"]["versions"].keys()


def test_plain_snakemake_on_the_template_stops_with_one_line(tmp_path):
    proc = run_snakemake(tmp_path, "-n")
    assert proc.returncode != 0
    lines = [line for line in proc.stderr.splitlines() if line.startswith("config:")]
    assert len(lines) == 1 and "datasets:" in lines[0] and "make demo" in lines[0]
    assert "Traceback" not in proc.stderr


def test_demo_configfile_replaces_the_template(tmp_path):
    """The demo's dry run has the demo's datasets and no template teacher (no merge of the two files)."""
    proc = run_snakemake(tmp_path, "-n", "--configfile", str(DEMO))
    assert proc.returncode == 0, proc.stderr
    assert "results/synth/corridors" in proc.stdout and "download_weights" not in proc.stdout
    assert "--gpus" not in proc.stdout and "gpu=1" not in proc.stdout


def test_template_with_one_dataset_trains_on_the_gpu_partition_under_slurm(tmp_path, kitchen):
    proc = run_snakemake(tmp_path, "-n", "-p", "--profile", str(SLURM_PROFILE), config=template_with_kitchen(kitchen))
    assert proc.returncode == 0, proc.stderr
    jobs = proc.stdout.split("rule train_student:")[1:]
    assert len(jobs) == 10
    for job in jobs:
        resources = next(line for line in job.splitlines() if "resources:" in line)
        assert "slurm_partition=gpu," in resources and "gpu=1" in resources and "gpu_model=l40s" in resources
        # 7 loader workers + the trainer, whatever the cores of the machine Snakemake runs on (2 here)
        assert "cpus_per_task=8" in resources
        assert '"epochs": 30' in job and '"batch_size": 16' in job and '"encoder_weights": "imagenet"' in job
        assert '"freeze_encoder_epochs": 5' in job


def test_a_cpu_version_under_slurm_stops_the_dag_naming_it(tmp_path, kitchen):
    cfg = template_with_kitchen(kitchen)
    cfg["training"]["versions"]["V4"]["gpus"] = 0
    proc = run_snakemake(tmp_path, "-n", "--profile", str(SLURM_PROFILE), config=cfg)
    assert proc.returncode != 0
    assert "training.versions.V4 trains on the CPU (gpus: 0)" in proc.stderr
    assert "rule train_student" not in proc.stdout
    # Meaning it is one key; and off Slurm the same config plans.
    cfg["training"]["allow_cpu_on_slurm"] = True
    assert run_snakemake(tmp_path, "-n", "--profile", str(SLURM_PROFILE), config=cfg).returncode == 0
    del cfg["training"]["allow_cpu_on_slurm"]
    assert run_snakemake(tmp_path, "-n", config=cfg).returncode == 0


def test_demo_sized_training_on_real_data_under_slurm_stops_naming_the_setting(tmp_path, kitchen):
    cfg = template_with_kitchen(kitchen)
    cfg["training"]["defaults"].update(copy.deepcopy(
        {k: v for k, v in yaml.safe_load(DEMO.read_text())["training"]["defaults"].items()
         if k in ("epochs", "samples_per_epoch")}))
    proc = run_snakemake(tmp_path, "-n", "--profile", str(SLURM_PROFILE), config=cfg)
    assert proc.returncode != 0
    demo = yaml.safe_load(DEMO.read_text())["training"]["defaults"]
    assert (f"training.versions.V1 is demo-sized (epochs: {demo['epochs']} x samples_per_epoch: "
            f"{demo['samples_per_epoch']}") in proc.stderr
    assert "kitchen" in proc.stderr


def test_plan_of_the_template_budgets_gpu_hours_without_upper_bounds(tmp_path, kitchen):
    """`distillery plan --profile slurm` on the template with one dataset: every GPU rule priced per unit of
    work (teachers per frame, the sanity sample per frame, training per sample, evaluation per test frame),
    for the profile's L40S by a stated ratio, and no runtime request in the headline GPU-hours."""
    work = tmp_path / "work"
    work.mkdir()
    (work / "config.yaml").write_text(yaml.safe_dump(template_with_kitchen(kitchen), sort_keys=False))
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    proc = subprocess.run([str(BIN / "distillery"), "plan", "--configfile", str(work / "config.yaml"), "--profile",
                           str(SLURM_PROFILE), "--no-check-fit", "-s", str(ROOT / "Snakefile"), "-d", str(work),
                           "--json", "-"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr
    plan = json.loads(proc.stdout)
    gpu_rows = [r for r in plan["rules"] if r["gpus_per_job"] > 0]
    assert {r["rule"] for r in gpu_rows} >= {"teacher_depth", "teacher_sanity", "teacher_detect", "teacher_segment",
                                             "train_student", "evaluate_version"}
    assert all(r["partition"] == "gpu" for r in gpu_rows)
    for row in gpu_rows:
        assert row["cost_source"].startswith("default:"), row
        assert row["unit"] != "job", row  # per frame or per sample, never per job
    assert plan["totals"]["upper_bound_gpu_hours"] == 0
    assert plan["totals"]["gpu_hours"] == pytest.approx(sum(r["gpu_hours"] for r in gpu_rows))
    sanity = next(r for r in gpu_rows if r["rule"] == "teacher_sanity")
    assert sanity["units"] == 8 and sanity["unit"] == "frames"  # teachers.sanity.frames
    trained = next(r for r in gpu_rows if r["rule"] == "train_student")
    assert "555 samples/s" in trained["cost_source"] and "x2.73 for l40s" in trained["cost_source"]
    da2 = next(r for r in gpu_rows if r["rule"] == "teacher_depth" and r["variant"] == "da2")
    assert "estimate, not measured" in da2["cost_source"]
