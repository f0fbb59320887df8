"""Throughput of `distillery extract-bag` on generated ROS 2 bags (MCAP and sqlite3).

The bags are written with `rosbags` by the tests' generator (tests/bag_util.py):
640x480 rgb8 colour, 512x384 16UC1 depth re-projected through a /tf_static
chain, a mono8 IR topic, CameraInfo per frame. Reported per storage format:
frames/s extracted, and extraction speed as a ratio to a plain read of the
same bag's bytes measured in the same run (bytes/s extracting over bytes/s
reading; the work beyond I/O is decoding, re-projection and PNG/npy writing).

    python benchmarks/bench_extract_bag.py [--frames 30] [--scale 4] [--workdir /tmp/bench_bag]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

from common import report, timer

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from bag_util import BagSpec, storage_file, write_bag  # noqa: E402

from distillery.ingest.bags import BagSettings, extract_bag  # noqa: E402


def _plain_read(path: Path) -> float:
    """Seconds to read every byte of `path` in 8 MiB blocks."""
    start = time.perf_counter()
    with path.open("rb") as f:
        while f.read(8 << 20):
            pass
    return time.perf_counter() - start


def bench(storage: str, frames: int, scale: int, work: Path) -> dict:
    bag = write_bag(work / f"bag_{storage}", BagSpec(storage=storage, frames=frames, scale=scale, drop_depth=()))
    data = storage_file(bag)
    size = data.stat().st_size
    _plain_read(data)  # the extraction reads a warm page cache too
    read_s = min(_plain_read(data) for _ in range(3))
    settings = BagSettings("/cam/color/image_raw", "/cam/depth/image_raw", confidence_topic="/cam/depth/ir")
    times: dict = {}
    with timer(times, "extract"):
        result = extract_bag(str(bag), str(work / f"out_{storage}"), settings, progress=False)
    return {"frames": result["frames"], "bag_mib": round(size / 2**20, 1),
            "extract_s": round(times["extract"], 3), "frames_per_s": round(result["frames"] / times["extract"], 2),
            "plain_read_mib_per_s": round(size / 2**20 / read_s, 1),
            "extract_mib_per_s": round(size / 2**20 / times["extract"], 2),
            "ratio_to_plain_read": round(read_s / times["extract"], 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=30, help="colour frames per bag (default 30)")
    parser.add_argument("--scale", type=int, default=4, help="image size x 160x120 (default 4: 640x480)")
    parser.add_argument("--workdir", default=None, help="scratch folder (default: a temporary one)")
    args = parser.parse_args()
    work = Path(args.workdir or tempfile.mkdtemp(prefix="bench_bag_"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        figures = {f"extract_{s}": bench(s, args.frames, args.scale, work) for s in ("mcap", "sqlite3")}
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
    report("extract_bag", {"frames": args.frames, "colour_size": [120 * args.scale, 160 * args.scale], **figures})


if __name__ == "__main__":
    main()
