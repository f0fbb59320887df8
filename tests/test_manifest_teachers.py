"""Teachers as data in the manifest: a metric and a relative depth slot, every teacher's provenance,
layers that disagree refused, older manifests refused with the fix, and `distillery info`."""

import json

import h5py
import numpy as np
import pytest
from teacher_scenes import Corridor, write_shard

from distillery.cli import main
from distillery.manifest import Manifest
from distillery.manifest.merge import merge_shards, write_manifest_jsonl
from distillery.teachers import Runtime
from distillery.teachers.runner import run_shard
from distillery.teachers.stages import build_stage

METRIC = {"id": "da3_sim", "backend": "sim_da3"}
RELATIVE = {"id": "da2_sim", "backend": "sim_da2"}


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    """Two shards of three rendered corridor frames each."""
    folder = tmp_path_factory.mktemp("shards")
    paths = []
    for s in range(2):
        frames = [Corridor(box=(2.0 + 0.3 * i, 2.6 + 0.3 * i, -1.2, -0.6, 0.8), pitch_deg=s - i).render()
                  for i in range(3)]
        path = folder / f"shard-0000{s}.h5"
        write_shard(path, frames, Corridor().intrinsics, dataset=f"d{s}")
        paths.append(str(path))
    return paths


def label(shard: str, cfg: dict, folder) -> str:
    """Run one teacher on one shard into <folder>/<teacher id>/<shard>.h5, as the workflow does."""
    out = folder / cfg["id"] / (shard.rsplit("/", 1)[1])
    out.parent.mkdir(parents=True, exist_ok=True)
    run_shard(build_stage("depth", cfg, Runtime()), shard, str(out), str(out.with_suffix(".failures.jsonl")), 4,
              progress=False)
    return str(out)


def test_metric_and_relative_teachers_fill_their_own_slots_and_the_manifest_names_them(shards, tmp_path, capsys):
    layers = [label(s, cfg, tmp_path) for s in shards for cfg in (METRIC, RELATIVE)]
    with h5py.File(layers[1]) as f:
        assert "teacher_depth_relative" in f and "teacher_depth" not in f  # never the metric slot
    out = tmp_path / "manifest.h5"
    merge_shards(shards, str(out), progress=False, layer_paths=layers)
    write_manifest_jsonl(str(out), str(tmp_path / "manifest.jsonl"))
    m = Manifest(out)
    assert [(t["id"], t["backend"], t["kind"], t["task"]) for t in m.teachers] == [
        ("da2_sim", "sim_da2", "relative", "depth"), ("da3_sim", "sim_da3", "metric", "depth")]
    assert all(t["weights_sha256"] == "simulated teacher: no weights" for t in m.teachers)
    assert m.teacher("relative_depth")["settings"]["scale_range"] == [60.0, 240.0]
    assert m.teacher("detect") is None
    for row in range(len(m)):
        frame = m.read(row)
        truth, rel = frame["truth_depth"], frame["teacher_depth_relative"].astype(np.float32)
        # metres; the median, since the simulated DA3 sees through glass panes in some frames (by design)
        assert np.median(np.abs(frame["teacher_depth"] / truth - 1)) < 0.15
        assert np.corrcoef(rel.ravel(), 1 / truth.ravel())[0, 1] > 0.9  # inverse depth, unknown scale
    assert all(r["has_teacher_depth"] and r["has_teacher_depth_relative"] for r in m.records)

    assert main(["info", str(out)]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["teacher_depth"] == 6 and info["teacher_depth_relative"] == 6 and info["frames"] == 6
    assert [(t["id"], t["backend"], t["weights_sha256"]) for t in info["teachers"]] == [
        ("da2_sim", "sim_da2", "simulated teacher: no weights"), ("da3_sim", "sim_da3", "simulated teacher: no weights")]


def test_a_manifest_without_teachers_says_so(shards, tmp_path, capsys):
    out = tmp_path / "manifest.h5"
    merge_shards(shards, str(out), progress=False)
    assert Manifest(out).teachers == []
    assert main(["info", str(out)]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["teachers"] == [] and info["teacher_depth"] == 0 and info["teacher_depth_relative"] == 0


def test_layers_of_one_teacher_with_other_settings_are_refused(shards, tmp_path):
    first = label(shards[0], RELATIVE, tmp_path / "a")
    second = label(shards[1], dict(RELATIVE, seed=5), tmp_path / "b")  # one shard relabelled with another seed
    with pytest.raises(ValueError, match=r"teacher 'da2_sim': layer .* disagrees .*settings"):
        merge_shards(shards, str(tmp_path / "m.h5"), progress=False, layer_paths=[first, second])
    assert not (tmp_path / "m.h5").exists()


def test_two_teachers_for_one_slot_are_refused(shards, tmp_path):
    layers = [label(shards[0], METRIC, tmp_path), label(shards[1], dict(METRIC, id="other"), tmp_path)]
    with pytest.raises(ValueError, match="slot teacher_depth is filled by two teachers, 'da3_sim' and 'other'"):
        merge_shards(shards, str(tmp_path / "m.h5"), progress=False, layer_paths=layers)


def test_an_older_manifest_is_refused_naming_the_fix(shards, tmp_path):
    out = tmp_path / "manifest.h5"
    merge_shards(shards, str(out), progress=False)
    with h5py.File(out, "r+") as f:
        f.attrs["schema_version"] = 1
    with pytest.raises(ValueError, match=r"schema version 1, this Distillery reads version 3 \(which adds a relative "
                                         r"teacher-depth slot.*the source frame in each shard.*"
                                         r"snakemake --forcerun pack_shard"):
        Manifest(out)
    with h5py.File(out, "r+") as f:
        f.attrs["schema_version"] = 2
    with pytest.raises(ValueError, match=r"schema version 2, this Distillery reads version 3 \(which adds the source "
                                         r"frame in each shard \(rgb_encoded.*input size of every teacher slot"):
        Manifest(out)
