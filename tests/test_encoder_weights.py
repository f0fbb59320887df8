"""Student encoder weights are fetched like teacher weights, and a run without them fails before it starts.

timm's ImageNet weights cannot be downloaded here, so the caches are laid out the way huggingface_hub
lays them out (a `local_dir` download, as the download_weights rule makes, and the hub cache timm itself
downloads into), holding random weights saved with safetensors.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import timm
import torch
import yaml
from safetensors.torch import save_file
from test_realrun_config import run_snakemake, template_with_kitchen
from test_student_data import write_manifest
from workflow_util import BIN, DEMO, ROOT

from distillery.student import encoder_weights
from distillery.student.config import TrainConfig
from distillery.student.model import build_student

TIMM = "mobilenetv3_small_100"
REPO = "timm/mobilenetv3_small_100.lamb_in1k"
# The reference's real-run settings, shrunk to a 16-frame manifest on a CPU.
REAL_RUN = {"backbone": "mobilenetv3_small", "encoder_weights": "imagenet", "epochs": 1, "batch_size": 2,
            "num_workers": 0, "freeze_encoder_epochs": 0, "device": "cpu"}


def saved_classifier(path: Path) -> dict:
    """A timm classifier with random weights saved as safetensors at `path` (what the hub serves)."""
    state = {k: v.contiguous() for k, v in timm.create_model(TIMM, pretrained=False).state_dict().items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(path))
    return state


def local_dir_cache(cache: Path) -> Path:
    """<cache>/timm/<model>/model.safetensors plus huggingface_hub's .cache metadata, as hf_hub_download(local_dir=)
    leaves it."""
    file = cache / REPO / "model.safetensors"
    saved_classifier(file)
    meta = cache / REPO / ".cache" / "huggingface" / "download"
    meta.mkdir(parents=True, exist_ok=True)
    (meta / "model.safetensors.metadata").write_text("0" * 40 + "\n" + "1" * 64 + "\n1700000000.0\n")
    return file


def hub_cache(root: Path) -> Path:
    """models--timm--<model>/{refs/main, snapshots/<rev>/model.safetensors}: where timm itself downloads to."""
    revision = "a" * 40
    repo = root / f"models--{REPO.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(revision)
    file = repo / "snapshots" / revision / "model.safetensors"
    saved_classifier(file)
    return file


def test_weights_cache_file_is_loaded_and_named(tmp_path):
    file = local_dir_cache(tmp_path / "weights")
    assert encoder_weights.cache_file(TIMM, tmp_path / "weights") == file
    model = build_student(TrainConfig(backbone="mobilenetv3_small", weights_cache=str(tmp_path / "weights")))
    expected = timm.create_model(TIMM, pretrained=False)
    expected.load_state_dict(dict(__import__("safetensors.torch").torch.load_file(str(file))))
    assert torch.equal(model.encoder.state_dict()["conv_stem.weight"], expected.state_dict()["conv_stem.weight"])
    assert model.encoder_weights.startswith(f"imagenet hf://{REPO} (sha256 ")


def test_hugging_face_cache_is_the_fallback(tmp_path, monkeypatch):
    import huggingface_hub.constants

    file = hub_cache(tmp_path / "hub")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    assert encoder_weights.find_imagenet(TIMM, tmp_path / "empty") == file


def test_missing_imagenet_weights_name_the_rule_random_is_on_purpose(tmp_path, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    with pytest.raises(encoder_weights.MissingEncoderWeights, match="download_weights") as err:
        build_student(TrainConfig(backbone="mobilenetv3_small", weights_cache=str(tmp_path / "weights")))
    assert "encoder_weights: random" in str(err.value) and REPO in str(err.value)
    assert TrainConfig().encoder_weights == "imagenet"  # nothing starts from random init unless it says so
    assert build_student(TrainConfig(backbone="mobilenetv3_small", encoder_weights="random")).encoder_weights == "random"


def _train(tmp_path: Path, cache: Path, hub: Path) -> subprocess.CompletedProcess:
    """The train_student job's command line, as the workflow writes it, on an offline node."""
    manifest = tmp_path / "m.h5"
    if not manifest.exists():
        write_manifest(manifest)
    settings = json.dumps({**REAL_RUN, "weights_cache": str(cache)})
    env = dict(os.environ, HF_HUB_CACHE=str(hub), HF_HUB_OFFLINE="1", PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}")
    return subprocess.run([str(BIN / "distillery"), "train", "--manifest", str(manifest), "--out",
                           str(tmp_path / "run"), "--config-json", settings, "--threads", "1", "--quiet"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)


def test_training_job_without_cached_weights_fails_before_its_first_step(tmp_path):
    cache, hub = tmp_path / "weights", tmp_path / "hub"
    proc = _train(tmp_path, cache, hub)
    assert proc.returncode != 0
    assert "download_weights" in proc.stderr and REPO in proc.stderr
    assert not (tmp_path / "run" / "metrics.jsonl").exists() and not (tmp_path / "run" / "last.pt").exists()
    # The same job once the cache holds them: it trains, and metrics.jsonl says what the encoder started from.
    local_dir_cache(cache)
    proc = _train(tmp_path, cache, hub)
    assert proc.returncode == 0, proc.stderr
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    start = next(r for r in records if r["kind"] == "start")
    assert start["encoder_weights"].startswith(f"imagenet hf://{REPO} (sha256 ") and start["resumed"] is False
    assert torch.load(tmp_path / "run" / "best.pt", weights_only=True)["encoder_weights"] == start["encoder_weights"]


def test_workflow_fetches_the_encoders_on_the_login_node_and_hands_jobs_the_cache(tmp_path):
    kitchen = Path("/work/shared/datasets/7scenes-kitchen")
    if not kitchen.exists():
        pytest.skip("the shared 7-Scenes kitchen is not here (test_realrun_config writes one of its own)")
    cfg = template_with_kitchen(kitchen)
    proc = run_snakemake(tmp_path / "real", "-n", "-p", config=cfg)
    assert proc.returncode == 0, proc.stderr
    jobs = [block for block in proc.stdout.split("\n\n") if "\nrule " in f"\n{block}"]
    fetched = {line.split("output: ")[1] for b in jobs if "rule download_weights:" in b
               for line in b.splitlines() if "output: " in line}
    assert {"weights/timm/efficientvit_b1.r224_in1k/model.safetensors", f"weights/{REPO}/model.safetensors"} <= fetched
    trains = {b.split("wildcards: version=")[1].split()[0]: b for b in jobs if "rule train_student:" in b}
    for version in ("V1", "V4"):  # from scratch: the encoder's ImageNet file is an input, the cache a setting
        assert "model.safetensors" in trains[version].split("input: ")[1].splitlines()[0]
        assert '"weights_cache": "weights"' in trains[version]
    assert "weights_cache" not in trains["V7"] and "model.safetensors" not in trains["V7"]  # starts from V5
    demo = run_snakemake(tmp_path / "demo", "-n", "--configfile", str(DEMO))
    assert demo.returncode == 0 and "download_weights" not in demo.stdout
    assert yaml.safe_load(DEMO.read_text())["training"]["defaults"]["encoder_weights"] == "random"
    assert (ROOT / "workflow" / "rules" / "teachers.smk").read_text().count("rule download_weights:") == 1


def test_hub_repositories_of_the_backbones_are_timms_own():
    """The workflow names the files to fetch from a table (no timm import at DAG build): it must be timm's."""
    from distillery.student.backbones import BACKBONES, HUB_REPOS

    for timm_name, _ in BACKBONES.values():
        assert HUB_REPOS[timm_name] == timm.models.get_pretrained_cfg(timm_name).hf_hub_id
