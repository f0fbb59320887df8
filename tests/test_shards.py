import json

import pytest

from distillery.manifest import read_jsonl, write_jsonl_atomic
from distillery.ingest.shards import assign_splits, plan_shards


def _index(path, dataset, sequences, frames_each):
    rows = [{"dataset": dataset, "sequence": f"s{s:02d}", "frame_id": f"{i:04d}", "rgb": "x", "depth": "y"}
            for s in range(sequences) for i in range(frames_each)]
    write_jsonl_atomic(path, rows)
    return str(path)


def test_splits_are_per_sequence_and_every_split_gets_one(tmp_path):
    idx = _index(tmp_path / "a.jsonl", "a", 10, 7)
    plan = plan_shards([idx], str(tmp_path / "plan"), 16, {"train": 0.8, "val": 0.1, "test": 0.1}, seed=3)
    assert plan["frames"] == 70 and len(plan["shards"]) == 5
    rows = [r for name in plan["shards"] for r in read_jsonl(tmp_path / "plan" / f"{name}.jsonl")]
    per_seq = {}
    for r in rows:
        per_seq.setdefault(r["sequence"], set()).add(r["split"])
    assert all(len(s) == 1 for s in per_seq.values())  # never split inside a sequence
    assert set(plan["splits"]) == {"train", "val", "test"} and plan["splits"]["train"] >= 49
    assert len({r["frame_id"] + r["sequence"] for r in rows}) == 70  # every frame exactly once


def test_assignment_is_deterministic_and_seeded():
    sizes = {f"s{i}": 10 + i for i in range(12)}
    fr = {"train": 0.7, "val": 0.15, "test": 0.15}
    assert assign_splits(sizes, fr, 0, "a") == assign_splits(sizes, fr, 0, "a")
    assert assign_splits(sizes, fr, 0, "a") != assign_splits(sizes, fr, 1, "a")


def test_dataset_override_and_shard_count_follows_data(tmp_path):
    a = _index(tmp_path / "a.jsonl", "a", 3, 5)
    b = _index(tmp_path / "b.jsonl", "b", 2, 5)
    plan = plan_shards([a, b], str(tmp_path / "plan"), 4, {"train": 1.0}, split_overrides={"b": "test"})
    assert len(plan["shards"]) == 7  # ceil(25 / 4)
    assert plan["splits"] == {"train": 15, "test": 10}
    assert json.loads((tmp_path / "plan" / "shards.json").read_text())["shards"] == plan["shards"]


def test_bad_shard_size_is_refused(tmp_path):
    with pytest.raises(ValueError, match="frames_per_shard"):
        plan_shards([_index(tmp_path / "a.jsonl", "a", 1, 1)], str(tmp_path / "p"), 0, {"train": 1.0})
