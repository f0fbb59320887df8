"""Throughput of synth, ingest (index + plan + pack) and merge on generated frames.

Merge speed is also given as a ratio to a plain copy of the same shard bytes
measured in the same run (goal >= 0.5): merging copies compressed chunks, so
it should run near copy speed.

    python benchmarks/bench_ingest.py --frames 2000 [--workdir /tmp/bench]
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

from common import report, timer

from distillery.ingest.index import index_dataset
from distillery.manifest.merge import merge_manifest
from distillery.ingest.pack import PackSettings, pack_shard
from distillery.ingest.shards import plan_shards
from distillery.synth import generate_world


def _bytes(paths) -> int:
    return sum(Path(p).stat().st_size for p in paths)


def copy_shards(shards: list[str], folder: Path) -> float:
    """Seconds to copy the shard files into `folder`: the plain-copy baseline of the merge."""
    folder.mkdir()
    os.sync()
    start = time.perf_counter()
    for path in shards:
        shutil.copyfile(path, folder / Path(path).name)
    return time.perf_counter() - start


def run(frames: int, workdir: Path, frames_per_shard: int) -> dict:
    t: dict = {}
    sequences = max(1, frames // 100)
    world = workdir / "world"
    with timer(t, "synth_s"):
        generate_world(str(world), "corridor", seed=7, sequences=sequences,
                       frames_per_sequence=frames // sequences, progress=False)
    n = sequences * (frames // sequences)
    with timer(t, "index_s"):
        index_dataset(str(world), "bench", str(workdir / "index.jsonl"), str(workdir / "index.q.jsonl"))
    with timer(t, "plan_s"):
        plan = plan_shards([str(workdir / "index.jsonl")], str(workdir / "plan"), frames_per_shard,
                           {"train": 0.8, "val": 0.1, "test": 0.1})
    shards, quarantines = [], [str(workdir / "index.q.jsonl")]
    with timer(t, "pack_s"):
        for name in plan["shards"]:
            h5, q = workdir / f"{name}.h5", workdir / f"{name}.q.jsonl"
            pack_shard(str(workdir / "plan" / f"{name}.jsonl"), str(h5), str(q), PackSettings(), progress=False)
            shards.append(str(h5))
            quarantines.append(str(q))
    out = workdir / "manifest"
    # The plain copy runs both before and after the merge, each phase after a sync, and the
    # faster copy is the baseline, so that write-back of one phase does not flatter another.
    t["copy_before_s"] = copy_shards(shards, workdir / "copy_before")
    os.sync()
    with timer(t, "merge_s"):
        merge_manifest(shards, quarantines, str(out / "manifest.h5"), str(out / "manifest.jsonl"),
                       str(out / "q.jsonl"), str(out / "summary.json"), 0.05, progress=False)
    t["copy_after_s"] = copy_shards(shards, workdir / "copy_after")
    t["copy_s"] = min(t["copy_before_s"], t["copy_after_s"])
    raw = n * 240 * 320 * (3 + 4 + 2)
    stored = _bytes(shards)
    return {
        "frames": n,
        "shards": len(shards),
        "synth_frames_per_s": round(n / t["synth_s"], 1),
        "ingest_frames_per_s": round(n / (t["index_s"] + t["plan_s"] + t["pack_s"]), 1),
        "pack_frames_per_s": round(n / t["pack_s"], 1),
        "merge_frames_per_s": round(n / t["merge_s"], 1),
        "merge_MB_per_s": round(stored / t["merge_s"] / 1e6, 1),
        "copy_MB_per_s": round(stored / t["copy_s"] / 1e6, 1),
        "merge_vs_copy": round(t["copy_s"] / t["merge_s"], 3),
        "merge_vs_copy_goal": 0.5,
        "stored_bytes_per_frame": round(stored / n),
        "compression_ratio": round(stored / raw, 3),
        "seconds": {k: round(v, 3) for k, v in t.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=2000, help="frames to generate (default 2000)")
    parser.add_argument("--frames-per-shard", type=int, default=256, help="frames per shard (default 256)")
    parser.add_argument("--workdir", default=None, help="scratch folder (default: a temporary one, removed)")
    args = parser.parse_args()
    if args.workdir:
        workdir = Path(args.workdir)
        shutil.rmtree(workdir, ignore_errors=True)
        workdir.mkdir(parents=True)
        report("ingest", run(args.frames, workdir, args.frames_per_shard))
    else:
        with tempfile.TemporaryDirectory() as tmp:
            report("ingest", run(args.frames, Path(tmp), args.frames_per_shard))


if __name__ == "__main__":
    main()
