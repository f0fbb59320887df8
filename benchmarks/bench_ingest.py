"""Throughput of synth, ingest (index + plan + pack) and merge on generated frames.

Merge speed is also given as a ratio to a plain copy of the same shard files
measured in the same run (copy time over merge time, goal >= 0.5): the merge
maps the image fields onto the shards (HDF5 virtual datasets) and writes only
the row fields, so it should take less time than copying the shards.

Storage and random read are measured on real frames too (the 7-Scenes kitchen
sample by default, `--real FOLDER` for another): the compression ratio of a
stored frame (raw bytes of rgb + ToF depth + confidence over stored bytes, goal
>= 2), the same with the float fields written without byte-shuffle (what the
shuffle filter gains), and random single-frame reads per second in one process
through `Manifest.read` (goal >= 1500). Shards also keep each frame's source
image (the camera file's bytes, what the teachers label): the shard's bytes
per frame are given beside the training fields' and as a ratio to them, and
the teacher-side read (a shard frame as a teacher gets it: the source JPEG
decoded, or the stored frame for a simulated teacher) in frames per second,
with their ratio. The manifest holds no source bytes.

    python benchmarks/bench_ingest.py --frames 2000 [--workdir /tmp/bench] [--real FOLDER]
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np
from common import report, timer

from distillery.manifest import IMAGE_FIELDS, Manifest

from distillery.ingest.index import index_dataset
from distillery.manifest.merge import merge_manifest
from distillery.ingest.pack import PackSettings, pack_shard
from distillery.ingest.shards import plan_shards
from distillery.synth import generate_world


def _bytes(paths) -> int:
    return sum(Path(p).stat().st_size for p in paths)


# The real sequence beside the repository (../shared, as the tests find it), or where DISTILLERY_7SCENES says.
SAMPLE = Path(os.environ.get("DISTILLERY_7SCENES",
                            Path(__file__).resolve().parents[2] / "shared" / "datasets" / "7scenes-kitchen"))
STORED_RAW_BYTES = 3 + 4 + 2  # rgb uint8 x3, tof_depth float32, tof_confidence float16 per pixel


def _stored_bytes(path: Path) -> tuple[int, int]:
    """(stored bytes of the per-frame image fields, raw bytes of rgb + ToF) of a shard file."""
    with h5py.File(path, "r") as f:
        n, h, w = int(f.attrs["frame_count"]), int(f.attrs["height"]), int(f.attrs["width"])
        stored = sum(f[name].id.get_storage_size() for name in IMAGE_FIELDS)
    return stored, n * h * w * STORED_RAW_BYTES


def _without_shuffle(src: Path, dst: Path) -> None:
    """A copy of a shard whose image fields are all Zstd-3 without byte-shuffle (the first layout)."""
    import hdf5plugin

    with h5py.File(src, "r") as f, h5py.File(dst, "w") as g:
        for name in IMAGE_FIELDS:
            ds = f[name]
            g.create_dataset(name, data=ds[:], chunks=ds.chunks, **hdf5plugin.Zstd(clevel=3))
        g.attrs.update(f.attrs)


TRAIN_FIELDS = ("rgb", "tof_depth", "tof_confidence", "teacher_depth", "teacher_label")


def random_reads(manifest: Path, seconds: float = 1.0, rounds: int = 5, seed: int = 0) -> float:
    """Random single frames read per second by one process (the fields a training sample uses): the
    median of `rounds` rounds, as other work on a shared machine slows single rounds down."""
    rng = np.random.default_rng(seed)
    rates = []
    with Manifest(manifest) as m:
        rows = rng.integers(0, len(m), 1_000_000)
        m.read(int(rows[0]), TRAIN_FIELDS)  # open the file and warm its metadata cache
        count = 0
        for _ in range(rounds):
            start, first = time.perf_counter(), count
            while time.perf_counter() - start < seconds:
                m.read(int(rows[count]), TRAIN_FIELDS)
                count += 1
            rates.append((count - first) / (time.perf_counter() - start))
    return float(np.median(rates))


def source_bytes(path: Path) -> int:
    """Bytes of the source images (rgb_encoded) in a shard file."""
    with h5py.File(path, "r") as f:
        return int(sum(len(b) for b in f["rgb_encoded"][:])) if "rgb_encoded" in f else 0


def teacher_reads(shard: Path, source: bool, seconds: float = 1.0, rounds: int = 3) -> float:
    """Frames per second a teacher's loader gets out of a shard (one process, random rows): the source
    frame decoded from its bytes, or the stored frame."""
    from distillery.teachers.runner import ShardFrames

    frames = ShardFrames(str(shard), ("rgb",), source=source)
    rows = np.random.default_rng(0).integers(0, len(frames), 1_000_000)
    frames[0]
    rates, count = [], 0
    for _ in range(rounds):
        start, first = time.perf_counter(), count
        while time.perf_counter() - start < seconds:
            frames[int(rows[count])]
            count += 1
        rates.append((count - first) / (time.perf_counter() - start))
    return float(np.median(rates))


def real_storage(folder: Path, workdir: Path) -> dict:
    """Compression (with and without byte-shuffle) and random reads of real frames packed as the workflow does."""
    workdir.mkdir()
    index, q = workdir / "index.jsonl", workdir / "index.q.jsonl"
    index_dataset(str(folder), "real", str(index), str(q))
    plan = plan_shards([str(index)], str(workdir / "plan"), 10_000, {"train": 1.0})
    name = plan["shards"][0]
    shard, shard_q = workdir / f"{name}.h5", workdir / f"{name}.q.jsonl"
    pack_shard(str(workdir / "plan" / f"{name}.jsonl"), str(shard), str(shard_q), PackSettings(), progress=False)
    stored, raw = _stored_bytes(shard)
    _without_shuffle(shard, workdir / "noshuffle.h5")
    plain, _ = _stored_bytes(workdir / "noshuffle.h5")
    out = workdir / "manifest"
    merge_manifest([str(shard)], [str(q), str(shard_q)], str(out / "manifest.h5"), str(out / "manifest.jsonl"),
                   str(out / "q.jsonl"), str(out / "summary.json"), 1.0, progress=False)
    with h5py.File(shard, "r") as f:
        frames = int(f.attrs["frame_count"])
    shard_bytes, sources = shard.stat().st_size, source_bytes(shard)
    read_source, read_stored = teacher_reads(shard, True), teacher_reads(shard, False)
    return {"source": str(folder), "frames": frames, "stored_bytes_per_frame": round(stored / frames),
            "compression_ratio": round(raw / stored, 2), "compression_ratio_all_zstd_no_shuffle": round(raw / plain, 2),
            "compression_goal": 2.0, "random_read_frames_per_s": round(random_reads(out / "manifest.h5"), 1),
            "random_read_goal": 1500,
            "source_image_bytes_per_frame": round(sources / frames),
            "shard_bytes_per_frame": round(shard_bytes / frames),
            "shard_vs_training_fields": round(shard_bytes / stored, 2),
            "manifest_bytes_per_frame": round((out / "manifest.h5").stat().st_size / frames),
            "teacher_read_source_frames_per_s": round(read_source, 1),
            "teacher_read_stored_frames_per_s": round(read_stored, 1),
            "teacher_read_source_vs_stored": round(read_source / read_stored, 3)}


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
    sources = sum(source_bytes(Path(p)) for p in shards)
    merged = (out / "manifest.h5").stat().st_size
    return {
        "frames": n,
        "shards": len(shards),
        "synth_frames_per_s": round(n / t["synth_s"], 1),
        "ingest_frames_per_s": round(n / (t["index_s"] + t["plan_s"] + t["pack_s"]), 1),
        "pack_frames_per_s": round(n / t["pack_s"], 1),
        "merge_frames_per_s": round(n / t["merge_s"], 1),
        # the same frames: a plain copy of the shard files against the merge (which maps the image fields
        # onto the shards and writes the row fields only); above 1 the merge is the faster
        "copy_MB_per_s": round(stored / t["copy_s"] / 1e6, 1),
        "merge_vs_copy": round(t["copy_s"] / t["merge_s"], 3),
        "merge_vs_copy_goal": 0.5,
        "stored_bytes_per_frame": round(stored / n),
        "source_image_bytes_per_frame": round(sources / n),
        "manifest_bytes_per_frame": round(merged / n),
        "compression_ratio": round(raw / (stored - sources), 2),
        "random_read_frames_per_s": round(random_reads(out / "manifest.h5"), 1),
        "seconds": {k: round(v, 3) for k, v in t.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=2000, help="frames to generate (default 2000)")
    parser.add_argument("--frames-per-shard", type=int, default=256, help="frames per shard (default 256)")
    parser.add_argument("--workdir", default=None, help="scratch folder (default: a temporary one, removed)")
    parser.add_argument("--real", default=str(SAMPLE), help=f"folder of real frames for storage/read (default {SAMPLE})")
    args = parser.parse_args()

    def both(workdir: Path) -> dict:
        figures = run(args.frames, workdir, args.frames_per_shard)
        if Path(args.real).is_dir():
            figures["real"] = real_storage(Path(args.real), workdir / "real")
        return figures

    if args.workdir:
        workdir = Path(args.workdir)
        shutil.rmtree(workdir, ignore_errors=True)
        workdir.mkdir(parents=True)
        report("ingest", both(workdir))
    else:
        with tempfile.TemporaryDirectory() as tmp:
            report("ingest", both(Path(tmp)))


if __name__ == "__main__":
    main()
