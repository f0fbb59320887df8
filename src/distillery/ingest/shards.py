"""Split assignment per sequence and the cutting of the frame index into shards.

Neighbouring frames of a sequence are near copies, so splits are assigned to
whole sequences, never to single frames. The assignment is deterministic in
(seed, dataset, sequence names) and balances frame counts towards the
requested fractions. Shards are consecutive runs of frames, so a shard
reads its files from one or few sequence folders.
"""

from __future__ import annotations

import json
import logging
import random
import zlib
from collections import OrderedDict
from pathlib import Path

from distillery.manifest import read_jsonl, write_jsonl_atomic, write_text_atomic

log = logging.getLogger(__name__)

PLAN_FILE = "shards.json"


def assign_splits(seq_sizes: dict[str, int], fractions: dict[str, float], seed: int, salt: str) -> dict[str, str]:
    """Map each sequence to a split.

    Every split with a positive fraction gets at least one sequence when
    there are enough sequences; the rest go greedily to the split furthest
    below its share of frames.
    """
    splits = [s for s, f in fractions.items() if f > 0]
    total_fraction = sum(fractions[s] for s in splits)
    order = sorted(seq_sizes)
    random.Random(zlib.crc32(f"{seed}:{salt}".encode())).shuffle(order)
    total = sum(seq_sizes.values())
    counts = {s: 0 for s in splits}
    out: dict[str, str] = {}
    if len(order) >= len(splits):
        for split in sorted(splits, key=lambda s: fractions[s]):
            if split == max(splits, key=lambda s: fractions[s]):
                continue
            seq = order.pop(0)
            out[seq] = split
            counts[split] += seq_sizes[seq]
    for seq in order:
        split = max(splits, key=lambda s: fractions[s] / total_fraction * total - counts[s])
        out[seq] = split
        counts[split] += seq_sizes[seq]
    return out


def group_by_sequence(frames: list[dict]) -> "OrderedDict[tuple[str, str], list[dict]]":
    groups: OrderedDict[tuple[str, str], list[dict]] = OrderedDict()
    for fr in frames:
        groups.setdefault((fr["dataset"], fr["sequence"]), []).append(fr)
    return groups


def plan_shards(index_files: list[str], out_dir: str, frames_per_shard: int, fractions: dict[str, float],
                seed: int = 0, split_overrides: dict[str, str] | None = None) -> dict:
    """Write `<out_dir>/shards.json` and one `<shard>.jsonl` frame list per shard.

    `split_overrides` maps a dataset name to the split all of its sequences
    go to (e.g. a held-out test dataset).
    """
    if frames_per_shard < 1:
        raise ValueError(f"frames_per_shard must be >= 1, got {frames_per_shard}")
    split_overrides = split_overrides or {}
    frames = [fr for path in index_files for fr in read_jsonl(path)]
    groups = group_by_sequence(frames)
    per_dataset: dict[str, dict[str, int]] = {}
    for (dataset, seq), items in groups.items():
        per_dataset.setdefault(dataset, {})[seq] = len(items)
    seq_split = {}
    for dataset, sizes in per_dataset.items():
        if dataset in split_overrides:
            mapping = {seq: split_overrides[dataset] for seq in sizes}
        else:
            mapping = assign_splits(sizes, fractions, seed, dataset)
        seq_split.update({(dataset, seq): split for seq, split in mapping.items()})
    ordered = [dict(fr, split=seq_split[key]) for key, items in groups.items() for fr in items]
    shards = [ordered[i:i + frames_per_shard] for i in range(0, len(ordered), frames_per_shard)]
    names = [f"shard-{i:05d}" for i in range(len(shards))]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for name, rows in zip(names, shards):
        write_jsonl_atomic(out / f"{name}.jsonl", rows)
    summary = split_summary(ordered)
    for split in fractions:
        if fractions[split] > 0 and not summary.get(split):
            log.warning("split %r has no frames: too few sequences (%d) for the fractions %s; "
                        "set a dataset's 'split' in the config to choose", split, len(groups), fractions)
    plan = {"shards": names, "frames": len(ordered), "frames_per_shard": frames_per_shard,
            "splits": summary, "sequence_splits": {f"{d}/{s}": v for (d, s), v in seq_split.items()}}
    write_text_atomic(out / PLAN_FILE, json.dumps(plan, indent=1, sort_keys=True) + "\n")
    return plan


def split_summary(frames: list[dict]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for fr in frames:
        counts[fr["split"]] = counts.get(fr["split"], 0) + 1
    return counts


def shard_names(plan_dir: str) -> list[str]:
    """Shard names of a written plan (what the Snakemake checkpoint reads)."""
    with open(Path(plan_dir) / PLAN_FILE) as fh:
        return json.load(fh)["shards"]
