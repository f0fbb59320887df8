"""Files we trust and files we do not: safe checkpoint loads, pickles only from the weights cache,
config paths that reach a shell quoted, names validated before they become paths, durable renames."""

import os
import subprocess
import sys

import h5py
import numpy as np
import pytest
import torch
from workflow_util import snakemake, tiny_config

from distillery import atomic
from distillery.manifest import IMAGE_FIELDS, create_layout
from distillery.student.checkpoint import atomic_save, load_checkpoint, rng_state, set_rng_state
from distillery.teachers.weights import UntrustedWeights, check_present


class Payload:
    """An object whose unpickling would run code (here: only leave a mark)."""

    def __reduce__(self):
        return (os.makedirs, ("/tmp/distillery-unpickled-payload",))


def test_checkpoints_round_trip_with_weights_only_and_refuse_pickled_objects(tmp_path):
    np.random.seed(3)
    state = rng_state()
    expected = np.random.rand(3)
    ckpt = {"format": "distillery-student", "format_version": 1, "model": {"w": torch.ones(2)}, "rng": state,
            "metrics": {"val_rmse": 0.5}, "config": {"lr": 1e-3, "scale_range": (0.8, 1.2)}}
    atomic_save(ckpt, tmp_path / "last.pt")
    loaded = load_checkpoint(tmp_path / "last.pt")
    set_rng_state(loaded["rng"])
    assert np.array_equal(np.random.rand(3), expected)
    torch.save({"format": "distillery-student", "format_version": 1, "evil": Payload()}, tmp_path / "evil.pt")
    with pytest.raises(ValueError, match="never unpickled"):
        load_checkpoint(tmp_path / "evil.pt")
    assert not os.path.exists("/tmp/distillery-unpickled-payload")


def test_no_checkpoint_of_ours_is_loaded_without_weights_only():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = subprocess.run(["git", "grep", "-n", "weights_only=False", "--", "src", "benchmarks"], cwd=root,
                         capture_output=True, text=True)
    assert out.stdout == "", out.stdout


def test_yolo_pickles_load_only_from_the_weights_cache(tmp_path):
    cache = tmp_path / "weights"
    (cache / "mine").mkdir(parents=True)
    (cache / "mine" / "yolov8l.pt").write_bytes(b"x")
    outside = tmp_path / "downloads" / "yolov8l.pt"
    outside.parent.mkdir()
    outside.write_bytes(b"x")
    check_present("yolo", str(cache / "mine" / "yolov8l.pt"), cache)
    check_present("yolo", "hf://Ultralytics/YOLOv8/yolov8l.pt", cache, include_hub=False)
    with pytest.raises(UntrustedWeights, match="pickles, loaded only from the weights cache"):
        check_present("yolo", str(outside), cache)
    with pytest.raises(UntrustedWeights):
        check_present("yolo", str(cache / ".." / "downloads" / "yolov8l.pt"), cache)


def test_a_dataset_path_with_spaces_and_shell_characters_reaches_the_reader_intact(tmp_path):
    folder = tmp_path / "my data; $(touch pwned) 'x'"
    subprocess.run([sys.executable, "-m", "distillery.cli", "synth", "--out", str(folder), "--family", "room",
                    "--seed", "1", "--sequences", "1", "--frames", "2", "--height", "48", "--width", "64"],
                   check=True, capture_output=True)
    cfg = tiny_config(datasets=[{"name": "odd", "path": str(folder)}],
                      lineage={"roles": {role: "odd" for role in ("nyu", "sun", "diode", "corridor")}})
    snakemake(tmp_path / "work", "-p", "results/index/odd.jsonl", config=cfg)
    assert len((tmp_path / "work/results/index/odd.jsonl").read_text().splitlines()) == 2
    assert not (tmp_path / "work" / "pwned").exists()


@pytest.mark.parametrize("change", [
    {"training": {"build": ["../escape"], "versions": {}}},
    {"training": {"build": [], "versions": {"a/b": {"epochs": 1}}}},
    {"training": {"build": [], "versions": {"v": {"parent": "../../etc"}}}},
    {"datasets": [{"name": "x", "path": "bad\nname"}]},
])
def test_names_and_paths_are_validated_before_they_become_paths(tmp_path, change):
    proc = snakemake(tmp_path, "-n", config=tiny_config(**change), check=False)
    assert proc.returncode != 0
    assert "does not match" in proc.stdout + proc.stderr, proc.stderr[-2000:]


def test_atomic_writes_fsync_the_file_before_the_rename_and_the_folder_after(tmp_path, monkeypatch):
    calls = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(atomic.os, "fsync", lambda fd: (calls.append(("fsync", os.readlink(f"/proc/self/fd/{fd}"))),
                                                    real_fsync(fd)))
    monkeypatch.setattr(atomic.os, "replace", lambda a, b: (calls.append(("replace", str(b))), real_replace(a, b)))
    target = tmp_path / "out.jsonl"
    atomic.write_jsonl_atomic(target, [{"a": 1}])
    kinds = [c[0] for c in calls]
    assert kinds == ["fsync", "replace", "fsync"], calls
    assert calls[0][1].endswith(".tmp") and calls[2][1] == str(tmp_path)
    assert target.read_text() == '{"a": 1}\n'


def test_float_fields_are_shuffled_before_zstd_and_the_sensor_fields_take_fast_codecs(tmp_path):
    zstd, lz4, blosc = 32015, 32004, 32001  # HDF5's registered filter ids
    with h5py.File(tmp_path / "s.h5", "w") as f:
        create_layout(f, 2, 8, 8)
        for name, spec in IMAGE_FIELDS.items():
            plist = f[name].id.get_create_plist()
            filters = [plist.get_filter(i)[0] for i in range(plist.get_nfilters())]
            if name == "rgb":
                expected = [lz4]
            elif name == "tof_depth":
                expected = [blosc]  # LZ4HC without shuffle: quantised sensor depth repeats whole values
            else:
                expected = [h5py.h5z.FILTER_SHUFFLE, zstd] if np.dtype(spec.dtype).itemsize > 1 else [zstd]
            assert filters == expected, (name, filters)

