from pathlib import Path

import h5py
import numpy as np
import pytest
from frames_util import truncate, write_frames, write_shard_list

from distillery.atomic import read_jsonl
from distillery.manifest import Manifest
from distillery.manifest.merge import TooManyBadFrames, merge_manifest
from distillery.ingest.pack import PackSettings, pack_shard

SMALL = PackSettings(height=24, width=32)


def _pack(tmp_path, shards):
    paths, quarantines = [], []
    for i, rows in enumerate(shards):
        frames = write_shard_list(tmp_path / f"s{i}.jsonl", rows)
        h5, q = str(tmp_path / f"s{i}.h5"), str(tmp_path / f"s{i}.q.jsonl")
        pack_shard(frames, h5, q, SMALL, progress=False)
        paths.append(h5)
        quarantines.append(q)
    return paths, quarantines


def _merge(tmp_path, paths, quarantines, max_bad_share=0.5):
    out = tmp_path / "manifest"
    return merge_manifest(paths, quarantines, str(out / "manifest.h5"), str(out / "manifest.jsonl"),
                          str(out / "quarantine.jsonl"), str(out / "summary.json"), max_bad_share, progress=False)


def test_merge_round_trip_every_frame_once_and_arrays_equal(tmp_path):
    rows = write_frames(tmp_path / "raw", 10)
    paths, qs = _pack(tmp_path, [rows[:4], rows[4:7], rows[7:]])
    _merge(tmp_path, paths, qs)
    keys = []
    with h5py.File(tmp_path / "manifest" / "manifest.h5") as m:
        for path in paths:
            with h5py.File(path) as s:
                for i in range(s.attrs["frame_count"]):
                    row = len(keys)
                    keys.append(m["key"][row].decode())
                    assert s["key"][i] == m["key"][row]
                    for name in ("rgb", "tof_depth", "tof_confidence", "intrinsics"):
                        np.testing.assert_array_equal(s[name][i], m[name][row])
    assert keys == [r["dataset"] + "/" + r["sequence"] + "/" + r["frame_id"] for r in rows]
    lines = read_jsonl(tmp_path / "manifest" / "manifest.jsonl")
    assert [line["row"] for line in lines] == list(range(10))
    assert not any(line["has_teacher_depth"] or line["has_seg"] for line in lines)  # ToF-only manifest is valid
    assert all(0.7 < line["tof_valid_share"] < 0.8 for line in lines)


def test_bad_frames_are_quarantined_and_the_rest_of_the_shard_kept(tmp_path):
    rows = write_frames(tmp_path / "raw", 6)
    truncate(rows[1]["rgb"])
    np.save(rows[3]["depth"], np.ones((10, 10), np.float32))  # size mismatch
    paths, qs = _pack(tmp_path, [rows])
    summary = _merge(tmp_path, paths, qs)
    report = read_jsonl(tmp_path / "manifest" / "quarantine.jsonl")
    reasons = {r["frame"]: (r["field"], r["reason"], r["file"]) for r in report}
    assert reasons["ds/seq/0001"][0] == "rgb" and "truncated" in reasons["ds/seq/0001"][1]
    assert reasons["ds/seq/0001"][2] == rows[1]["rgb"]
    assert reasons["ds/seq/0003"][0] == "depth" and "size mismatch" in reasons["ds/seq/0003"][1]
    assert summary["frames"] == 4 and summary["quarantined"] == 2
    with Manifest(tmp_path / "manifest" / "manifest.h5") as m:
        assert [r["key"] for r in m.records] == ["ds/seq/0000", "ds/seq/0002", "ds/seq/0004", "ds/seq/0005"]


@pytest.mark.parametrize("bad_value, reason, pixels", [(np.nan, "non-finite", (5, 5)), (-1.0, "negative", (5, 5)),
                                                      (500.0, "absurd", np.s_[:])])
def test_depth_value_checks(tmp_path, bad_value, reason, pixels):
    rows = write_frames(tmp_path / "raw", 2)
    d = np.load(rows[0]["depth"])
    d[pixels] = bad_value
    np.save(rows[0]["depth"], d)
    _, qs = _pack(tmp_path, [rows])
    (line,) = read_jsonl(qs[0])
    assert line["frame"] == "ds/seq/0000" and reason in line["reason"] and line["field"] == "depth"


def test_run_fails_past_the_bad_share_and_says_why(tmp_path):
    rows = write_frames(tmp_path / "raw", 4)
    truncate(rows[0]["rgb"])
    paths, qs = _pack(tmp_path, [rows])
    with pytest.raises(TooManyBadFrames, match=r"ds: 1 of 4 frames quarantined \(25.0%\)"):
        _merge(tmp_path, paths, qs, max_bad_share=0.1)
    assert not (tmp_path / "manifest" / "manifest.h5").exists()
    assert (tmp_path / "manifest" / "summary.json").exists()


def test_reader_api_splits_slots_and_pickling(tmp_path):
    import pickle

    rows = write_frames(tmp_path / "raw", 3, split="train") + write_frames(tmp_path / "raw2", 2, sequence="b", split="val")
    paths, qs = _pack(tmp_path, [rows])
    _merge(tmp_path, paths, qs)
    m = Manifest(tmp_path / "manifest" / "manifest.h5")
    assert len(m) == 5 and m.size == (24, 32)
    assert m.indices(split="val").tolist() == [3, 4]
    assert m.indices(require=("has_teacher_depth",)).size == 0
    sample = m.read(0)
    assert sample["rgb"].dtype == np.uint8 and sample["rgb"].shape == (24, 32, 3)
    assert sample["tof_depth"].dtype == np.float32 and sample["teacher_depth"] is None
    assert m.boxes(0).shape == (0, 6)
    clone = pickle.loads(pickle.dumps(m))
    np.testing.assert_array_equal(clone.read(4)["rgb"], m.read(4)["rgb"])


def test_rerun_overwrites_atomically_without_duplicates(tmp_path):
    rows = write_frames(tmp_path / "raw", 3)
    paths, qs = _pack(tmp_path, [rows])
    _merge(tmp_path, paths, qs)
    _merge(tmp_path, paths, qs)
    assert len(Manifest(tmp_path / "manifest" / "manifest.h5")) == 3
    assert not list((tmp_path / "manifest").glob(".*tmp"))


def test_same_frame_in_two_shards_is_refused(tmp_path):
    rows = write_frames(tmp_path / "raw", 2)
    paths, qs = _pack(tmp_path, [rows, rows])
    with pytest.raises(ValueError, match="more than one shard"):
        _merge(tmp_path, paths, qs)


TEACHER = {"id": "t", "task": "depth", "backend": "sim_da3", "kind": "metric", "settings": {}}


def test_layers_fill_teacher_slots_of_their_shard_rows(tmp_path):
    from distillery.manifest import create_layer

    rows = write_frames(tmp_path / "raw", 5)
    paths, qs = _pack(tmp_path, [rows[:2], rows[2:]])
    with h5py.File(paths[1]) as s:
        keys = [k.decode() for k in s["key"][:]]
    layer_path = tmp_path / "s1.teachers.h5"
    with h5py.File(layer_path, "w") as f:
        create_layer(f, "s1", keys, 24, 32, ("teacher_depth", "teacher_label"), boxes=True, teacher=TEACHER)
        f["teacher_depth"][1] = np.full((24, 32), 2.5, np.float16)
        f["has_teacher_depth"][1] = True
        f["teacher_label"][:] = 3
        f["has_teacher_label"][:] = True
        f["boxes"].resize(2, axis=0)
        f["boxes"][:] = [[1, 2, 3, 4, 0.9, 0], [5, 6, 7, 8, 0.5, 56]]
        f["box_offsets"][:] = [0, 0, 2, 2]
        f["has_boxes"][:] = True
    out = tmp_path / "manifest"
    merge_manifest(paths, qs, str(out / "m.h5"), str(out / "m.jsonl"), str(out / "q.jsonl"), str(out / "s.json"),
                   0.5, progress=False, layer_paths=[str(layer_path)])
    m = Manifest(out / "m.h5")
    assert [r["has_teacher_depth"] for r in m.records] == [False, False, False, True, False]
    assert [r["has_seg"] for r in m.records] == [False, False, True, True, True]
    assert m.read(3)["teacher_depth"].mean() == pytest.approx(2.5)
    assert m.read(0)["teacher_label"] is None and (m.read(2)["teacher_label"] == 3).all()
    assert m.boxes(3)[:, 5].tolist() == [0, 56] and m.boxes(2).shape == (0, 6) and m.boxes(4).shape == (0, 6)


def test_layer_of_a_repacked_shard_is_refused(tmp_path):
    from distillery.manifest import create_layer

    rows = write_frames(tmp_path / "raw", 3)
    paths, qs = _pack(tmp_path, [rows])
    with h5py.File(tmp_path / "l.h5", "w") as f:
        create_layer(f, "s0", ["ds/seq/x", "ds/seq/y", "ds/seq/z"], 24, 32, ("teacher_depth",), teacher=TEACHER)
    out = tmp_path / "manifest"
    with pytest.raises(ValueError, match="differ"):
        merge_manifest(paths, qs, str(out / "m.h5"), str(out / "m.jsonl"), str(out / "q.jsonl"),
                       str(out / "s.json"), 0.5, progress=False, layer_paths=[str(tmp_path / "l.h5")])


def test_image_fields_point_into_the_shards_and_follow_a_moved_folder(tmp_path, monkeypatch):
    """The manifest's image fields are virtual datasets over the shards, by relative paths: it holds no
    copy of the pixels, and reads the same after the whole results folder moves, from any directory."""
    import shutil

    root = tmp_path / "results"
    rows = write_frames(tmp_path / "raw", 6)
    paths, qs = _pack(root, [rows[:3], rows[3:]])
    _merge(root, paths, qs)
    manifest = root / "manifest" / "manifest.h5"
    with h5py.File(manifest) as m:
        assert m["rgb"].is_virtual and m["tof_depth"].is_virtual
        expected = {name: m[name][:] for name in ("rgb", "tof_depth", "tof_confidence")}
    shard_bytes = sum(Path(p).stat().st_size for p in paths)
    assert manifest.stat().st_size < shard_bytes / 2
    moved = tmp_path / "elsewhere" / "results"
    shutil.move(str(root), str(moved))
    monkeypatch.chdir(tmp_path)
    with Manifest(str(moved / "manifest" / "manifest.h5")) as m:
        for name, values in expected.items():
            np.testing.assert_array_equal(m.file[name][:], values)


def test_a_manifest_copied_away_from_its_shards_fails_naming_the_missing_file(tmp_path):
    """HDF5 reads a missing virtual source as zeros without an error; the reader refuses instead."""
    import shutil

    root = tmp_path / "results"
    rows = write_frames(tmp_path / "raw", 4)
    paths, qs = _pack(root, [rows])
    _merge(root, paths, qs)
    copy = tmp_path / "copy" / "manifest.h5"
    copy.parent.mkdir()
    shutil.copyfile(root / "manifest" / "manifest.h5", copy)
    with pytest.raises(FileNotFoundError, match=r"missing, e\.g\. .*shard.*whole results/ folder"):
        Manifest(str(copy))
    beside = root / "manifest" / "variant.h5"  # a copy beside the original maps onto the same shards
    shutil.copyfile(root / "manifest" / "manifest.h5", beside)
    with Manifest(str(beside)) as m:
        assert len(m) == 4 and m.read(0, ("rgb",))["rgb"].any()
