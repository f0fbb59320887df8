import json
import re

import pytest

from distillery.atomic import read_jsonl, write_jsonl_atomic
from distillery.ingest.shards import SHARD_PATTERN, assign_splits, plan_shards, shard_name


def _index(path, dataset, sequences, frames_each):
    rows = [{"dataset": dataset, "sequence": f"s{s:02d}", "frame_id": f"{i:04d}", "rgb": "x", "depth": "y"}
            for s in range(sequences) for i in range(frames_each)]
    write_jsonl_atomic(path, rows)
    return str(path)


def _rows(plan_dir, plan):
    return [r for name in plan["shards"] for r in read_jsonl(plan_dir / f"{name}.jsonl")]


def test_splits_are_per_sequence_and_follow_the_fractions(tmp_path):
    idx = _index(tmp_path / "a.jsonl", "a", 200, 3)
    plan = plan_shards([idx], str(tmp_path / "plan"), 16, {"train": 0.8, "val": 0.1, "test": 0.1}, seed=3)
    assert plan["frames"] == 600 and len(plan["shards"]) == 200  # one shard per 3-frame sequence
    rows = _rows(tmp_path / "plan", plan)
    per_seq = {}
    for r in rows:
        per_seq.setdefault(r["sequence"], set()).add(r["split"])
    assert all(len(s) == 1 for s in per_seq.values())  # never split inside a sequence
    assert plan["splits"]["train"] / 600 == pytest.approx(0.8, abs=0.08)
    assert plan["splits"]["val"] / 600 == pytest.approx(0.1, abs=0.06)
    assert len({r["frame_id"] + r["sequence"] for r in rows}) == 600  # every frame exactly once


def test_a_sequence_split_depends_on_its_own_name_and_the_seed_only():
    fr = {"train": 0.7, "val": 0.15, "test": 0.15}
    sizes = {f"s{i}": 10 + i for i in range(12)}
    base = assign_splits(sizes, fr, 0, "a")
    assert base == assign_splits(sizes, fr, 0, "a") and base != assign_splits(sizes, fr, 1, "a")
    grown = assign_splits({**{f"x{i}": 5 for i in range(30)}, **sizes, "s0": 999}, fr, 0, "a")
    assert {s: grown[s] for s in sizes} == base  # other sequences and sizes move nothing
    assert set(assign_splits(sizes, {"train": 1.0, "val": 0.0}, 0, "a").values()) == {"train"}


def test_the_order_of_the_split_keys_moves_no_sequence():
    """YAML tools sort keys on a rewrite: {test, train, val} must split as {train, val, test} does."""
    sizes = {f"s{i}": 10 for i in range(40)}
    config_order = assign_splits(sizes, {"train": 0.6, "val": 0.2, "test": 0.2}, 0, "a")
    sorted_order = assign_splits(sizes, {"test": 0.2, "train": 0.6, "val": 0.2}, 0, "a")
    assert config_order == sorted_order and set(config_order.values()) == {"train", "val", "test"}


def test_shards_are_cut_per_sequence_and_named_by_their_frames(tmp_path):
    a = _index(tmp_path / "a.jsonl", "a", 3, 5)
    plan = plan_shards([a], str(tmp_path / "p1"), 4, {"train": 0.5, "val": 0.5})
    assert len(plan["shards"]) == 6 and all(re.fullmatch(SHARD_PATTERN, n) for n in plan["shards"])
    for name in plan["shards"]:
        rows = read_jsonl(tmp_path / "p1" / f"{name}.jsonl")
        assert len({r["sequence"] for r in rows}) == 1 and shard_name(rows) == name
        moved = [dict(r, rgb=f"/elsewhere/{r['sequence']}/{r['rgb']}") for r in rows]
        assert shard_name(moved) == name  # a moved dataset keeps its shard names
    bigger = _index(tmp_path / "b.jsonl", "a", 5, 5)  # two sequences more, and frames appended to s02
    rows = read_jsonl(bigger) + [{"dataset": "a", "sequence": "s02", "frame_id": "0099", "rgb": "x", "depth": "y"}]
    write_jsonl_atomic(bigger, rows)
    grown = plan_shards([bigger], str(tmp_path / "p2"), 4, {"train": 0.5, "val": 0.5})
    kept = set(plan["shards"]) & set(grown["shards"])
    assert len(kept) == 5 and len(grown["shards"]) == 10  # only the last shard of s02 changed
    for name in kept:
        assert (tmp_path / "p1" / f"{name}.jsonl").read_text() == (tmp_path / "p2" / f"{name}.jsonl").read_text()
    assert {k: v for k, v in grown["sequence_splits"].items() if k in plan["sequence_splits"]} == \
        plan["sequence_splits"]


def test_dataset_override_and_shard_count_follows_data(tmp_path):
    a = _index(tmp_path / "a.jsonl", "a", 3, 5)
    b = _index(tmp_path / "b.jsonl", "b", 2, 5)
    plan = plan_shards([a, b], str(tmp_path / "plan"), 4, {"train": 1.0}, split_overrides={"b": "test"})
    assert len(plan["shards"]) == 10  # ceil(5 / 4) per sequence
    assert plan["splits"] == {"train": 15, "test": 10}
    assert json.loads((tmp_path / "plan" / "shards.json").read_text())["shards"] == plan["shards"]


def test_bad_shard_size_is_refused(tmp_path):
    with pytest.raises(ValueError, match="frames_per_shard"):
        plan_shards([_index(tmp_path / "a.jsonl", "a", 1, 1)], str(tmp_path / "p"), 0, {"train": 1.0})


def test_names_cut_from_the_written_text_equal_names_from_the_rows():
    """plan_shards names a shard from the text it writes; that must give the name the rows give."""
    import json

    def text(rows):
        return "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows)

    nested = [{"dataset": "d", "sequence": "s", "frame_id": f"{i}", "rgb": f"/a/b/{i}.png",
               "depth": f"/a/{i}.npy" if i % 2 else f"/a/b/c/{i}.npy", "confidence": None,
               "truth_depth": "", "note": "/a/b/kept.png", "split": "train"} for i in range(6)]
    odd = [dict(nested[0], rgb="/a/b/")] + nested[1:]
    relative = [dict(r, rgb=f"rgb/é {r['frame_id']}\".png", depth=f"{r['frame_id']}.npy") for r in nested]
    for rows in (nested, odd, relative, [dict(nested[0], rgb="/a/b/.")]):
        assert shard_name(rows, text(rows)) == shard_name(rows)
