"""Training versions checked at DAG build, per-version validation sets, fine-tunes state their freeze schedule."""

from __future__ import annotations

import pytest
from test_student_data import write_manifest
from workflow_util import snakemake, tiny_config

from distillery.manifest import Manifest
from distillery.student.config import TrainConfig, config_from_dict
from distillery.student.data import build_val_dataset
from distillery.workflow.versions import check_versions

DATASETS = ["corridors", "rooms"]
V = {"backbone": "mobilenetv3_small", "epochs": 1}


def _training(**versions) -> dict:
    return {"build": list(versions), "versions": versions}


def test_a_valid_lineage_passes():
    check_versions(_training(base=V, child={**V, "parent": "base", "freeze_encoder_epochs": 0},
                             mixed={**V, "dataset_weights": {"rooms": 1.0}}), DATASETS)


@pytest.mark.parametrize("versions, words", [
    ({"v": {**V, "init_from": "results/train/x/best.pt"}}, ["versions.v.init_from", "results/train/x/best.pt"]),
    ({"base": V, "child": {**V, "parent": "base"}}, ["versions.child", "'base'", "freeze_encoder_epochs"]),
    ({"v": {**V, "dataset_weights": {"kitchen": 1.0}}}, ["versions.v.dataset_weights", "'kitchen'"]),
])
def test_a_wrong_version_is_refused_naming_version_and_value(versions, words):
    with pytest.raises(ValueError) as err:
        check_versions(_training(**versions), DATASETS)
    assert all(w in str(err.value) for w in words), str(err.value)


def test_defaults_count_as_stated_but_cannot_hold_init_from():
    training = {**_training(base=V, child={**V, "parent": "base"}), "defaults": {"freeze_encoder_epochs": 2}}
    check_versions(training, DATASETS)
    with pytest.raises(ValueError, match="defaults.init_from"):
        check_versions({**training, "defaults": {"init_from": "x.pt"}}, DATASETS)


def test_a_fine_tune_outside_the_workflow_states_its_freeze_schedule_too():
    with pytest.raises(ValueError, match="freeze_encoder_epochs"):
        config_from_dict({"init_from": "parent.pt"})
    assert config_from_dict({"init_from": "parent.pt", "freeze_encoder_epochs": 0}).freeze_encoder_epochs == 0
    assert config_from_dict({}).freeze_encoder_epochs == 5  # a run from scratch


def test_val_datasets_choose_the_frames_best_pt_is_chosen_on(tmp_path):
    m = Manifest(write_manifest(tmp_path / "m.h5", frames=8, datasets=("x", "y", "z")))
    every = build_val_dataset([m], TrainConfig())
    assert {m.records[r]["dataset"] for _, r in every.frames} == {"x", "y", "z"}
    only = build_val_dataset([m], TrainConfig(val_datasets=["z", "x"]))
    assert {m.records[r]["dataset"] for _, r in only.frames} == {"x", "z"}
    with pytest.raises(ValueError, match="'kitchen'"):
        build_val_dataset([m], TrainConfig(val_datasets=["kitchen"]))


@pytest.mark.parametrize("version, words", [
    ({"init_from": "elsewhere/best.pt"}, ["child", "init_from", "elsewhere/best.pt"]),
    ({}, ["child", "freeze_encoder_epochs"]),
    ({"val_datasets": ["kitchen"], "freeze_encoder_epochs": 0}, ["child", "kitchen"]),
    ({"datasets": {"corridors": 1.0, "attic": 2.0}, "freeze_encoder_epochs": 0}, ["child", "attic"]),
])
def test_dry_run_stops_at_dag_build_naming_version_and_value(tmp_path, version, words):
    cfg = tiny_config()
    cfg["training"] = _training(base=V, child={**V, "parent": "base", **version})
    cfg["training"]["defaults"] = {"freeze_encoder_epochs": None}  # the default config's defaults state one
    proc = snakemake(tmp_path, "-n", config=cfg, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and all(w in out for w in words), out[-3000:]
    assert not (tmp_path / "results").exists()


@pytest.mark.parametrize("name", ["config.yaml", "demo.yaml"])
def test_v2_is_v1_plus_the_kendall_clamp_only(name):
    """The reference's V2: V1's recipe (relative teacher, L1 loss) with the Kendall clamp experiment."""
    import yaml
    from workflow_util import ROOT

    training = yaml.safe_load((ROOT / "config" / name).read_text())["training"]
    from distillery.workflow.versions import version_entry

    v1, v2 = (version_entry(training, v) for v in ("V1", "V2"))
    changed = {k for k in v1.keys() | v2.keys() if v1.get(k) != v2.get(k)}
    assert changed - {"reference"} == {"kendall", "kendall_clamp"}  # the report's quote is not a setting
    assert v1["kendall"] is False and v2["kendall"] is True and v2["kendall_clamp"] < 2.0
    assert v2["depth_loss"] == "l1"
