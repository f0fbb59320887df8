"""`distillery train` as users call it, and the train_student rule in the workflow."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
import yaml
from layouts import make_native
from test_student_data import write_manifest
from workflow_util import ROOT, snakemake, tiny_config

from distillery.cli import build_parser
from distillery.cli import main as distillery_main
from distillery.student.checkpoint import load_checkpoint
from distillery.student.cli import training_config
from distillery.student.config import TrainConfig

TINY_VERSION = {"backbone": "mobilenetv3_small", "encoder_weights": "random", "epochs": 1, "batch_size": 2,
                "num_workers": 0, "freeze_encoder_epochs": 0, "augment": True}


def _args(*argv: str):
    return build_parser().parse_args(["train", "--manifest", "m.h5", "--out", "out", *argv])


def test_settings_come_from_yaml_then_json_then_set(tmp_path):
    (tmp_path / "train.yaml").write_text(yaml.safe_dump({"epochs": 3, "lr": 3e-4, "batch_size": 8, "freeze_encoder_epochs": 1}))
    cfg = training_config(_args("--config", str(tmp_path / "train.yaml"), "--config-json", '{"epochs": 4}',
                                "--set", "batch_size=2", "--set", "augmentation.flip_p=0.0",
                                "--weight", "1", "--init-from", "parent.pt", "--quiet"))
    assert (cfg.epochs, cfg.lr, cfg.batch_size, cfg.augmentation.flip_p) == (4, 3e-4, 2, 0.0)
    assert cfg.manifest_weights == [1.0] and cfg.init_from == "parent.pt" and cfg.progress is False
    assert cfg.augmentation.rotate_deg == TrainConfig().augmentation.rotate_deg


def test_settings_from_a_workflow_config_version(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({"training": {"versions": {"v3": {"backbone": "mobilenetv3_small"}}}}))
    assert training_config(_args("--config", str(path), "--version", "v3")).backbone == "mobilenetv3_small"
    with pytest.raises(ValueError, match="no 'v9'"):
        training_config(_args("--config", str(path), "--version", "v9"))


def test_cli_trains_then_resumes_a_finished_run_and_reports_bad_settings(tmp_path, capsys):
    manifest = write_manifest(tmp_path / "m.h5")
    argv = ["train", "--manifest", manifest, "--out", str(tmp_path / "run"), "--config-json",
            json.dumps(TINY_VERSION), "--quiet"]
    assert distillery_main(argv) == 0
    first = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert first["status"] == "done" and first["global_step"] == 3
    assert distillery_main([*argv, "--resume"]) == 0  # finished: nothing left to do
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["global_step"] == 3
    assert distillery_main([*argv, "--set", "epochz=2"]) == 1
    assert "epochz" in capsys.readouterr().err


def test_schema_knows_every_training_setting():
    schema = yaml.safe_load((ROOT / "workflow" / "schemas" / "config.schema.yaml").read_text())
    version = schema["$defs"]["train_version"]["properties"]
    workflow_only = {"parent", "gpus", "datasets", "reference"}  # lineage.WORKFLOW_KEYS not in TrainConfig
    assert set(version) == {f.name for f in dataclasses.fields(TrainConfig)} | workflow_only
    augmentation = version["augmentation"]["properties"]
    assert set(augmentation) == {f.name for f in dataclasses.fields(TrainConfig().augmentation)}


def _training_config(dataset_root, **version) -> dict:
    cfg = tiny_config(datasets=[{"name": "native", "path": str(dataset_root)}],
                      lineage={"roles": {role: "native" for role in ("nyu", "sun", "diode", "corridor")}})
    cfg["training"] = {"build": ["tiny"], "versions": {"tiny": {**TINY_VERSION, **version}}}
    return cfg


def test_dry_run_plans_train_student_and_a_fine_tune_after_its_parent(tmp_path):
    root = make_native(tmp_path / "native", 3, sequences=["a", "b", "c", "d", "e"], truth=True)
    cfg = _training_config(root)
    cfg["training"]["versions"]["child"] = {**TINY_VERSION, "parent": "tiny", "lr": 3e-4, "gpus": 2}
    cfg["training"]["build"] = ["child"]
    proc = snakemake(tmp_path / "wd", "-n", "-p", config=cfg)
    out = proc.stdout + proc.stderr
    assert out.count("rule train_student") == 2
    assert "--init-from 'results/train/tiny/best.pt'" in out
    assert "torchrun --standalone --nproc_per_node 2 -m distillery.cli train" in out  # the child's two GPUs
    lint = snakemake(tmp_path / "wd", "--lint", config=cfg, check=False)
    assert lint.returncode == 0 and "Lints for" not in lint.stdout + lint.stderr


def test_wrong_training_setting_fails_before_any_job(tmp_path):
    cfg = _training_config(tmp_path, epochz=3)
    proc = snakemake(tmp_path / "wd", "-n", config=cfg, check=False)
    assert proc.returncode != 0 and "epochz" in proc.stdout + proc.stderr
    cfg = _training_config(tmp_path, best_metric="depth/truth/rmse")
    assert snakemake(tmp_path / "wd", "-n", config=cfg, check=False).returncode != 0


@pytest.mark.slow
def test_workflow_trains_the_student_on_cpu_and_is_then_up_to_date(tmp_path):
    root = make_native(tmp_path / "native", 3, sequences=["a", "b", "c", "d", "e"], truth=True)
    workdir = tmp_path / "wd"
    snakemake(workdir, "-p", "results/train/tiny/best.pt", config=_training_config(root))
    best = load_checkpoint(workdir / "results" / "train" / "tiny" / "best.pt")
    assert best["config"]["backbone"] == "mobilenetv3_small" and torch.isfinite(
        best["model"]["depth_decoder.head.weight"]).all()
    assert (workdir / "logs" / "train_student" / "tiny.log").exists()
    assert (workdir / "results" / "benchmarks" / "train_student" / "tiny.tsv").exists()
    again = snakemake(workdir, "-n", "results/train/tiny/best.pt", config=_training_config(root))
    assert "train_student" not in again.stdout + again.stderr
