"""Teacher throughput at production sizes, and the labeller's quality against synthetic truth.

Throughput (default mode): each real teacher is built at its production
size with untrained weights (they run at the true speed) and labels frames
of the source size (--frame, 480x640 by default: teachers see the frame as
captured, not the 240x320 training frame) through its adapter, pre- and
post-processing included:
DA3METRIC-LARGE at process_res 504, DA2-Large at 518, YOLOv8-L at 640,
SAM 2.1 Hiera-L at 1024 with --boxes boxes per frame, plus the geometric
labeller and the simulated teachers (CPU), and `to_grid`: what a source
frame costs on the CPU around the network (decoding its JPEG from the shard,
resampling depth and a class map onto the 240x320 grid). Timing: warm-up batches first,
then --repeats timed batches, with torch.cuda.synchronize around them on
CUDA; inference runs under torch.inference_mode and bf16 autocast
(--precision), YOLO in channels_last, input batches pinned.

    python benchmarks/bench_teachers.py                                   # CPU, small counts
    python benchmarks/bench_teachers.py --device cuda --batch-sizes 1,4,8,16
    python benchmarks/bench_teachers.py --mode quality                    # labeller IoU vs synthetic truth

Seed figures to beat (per L40S): DA3 12, YOLO 30, SAM2 5 frames/s.
"""

from __future__ import annotations

import argparse
import gc
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import report  # noqa: E402

from distillery.teachers import Runtime, build_teacher  # noqa: E402

TEACHERS = {
    "da3": {"backend": "da3", "weights": "random", "arch": "da3metric-large", "process_res": 504},
    "da2": {"backend": "da2", "weights": "random", "arch": "large", "process_res": 518},
    "yolo": {"backend": "yolo", "weights": "random", "arch": "yolov8l.yaml"},
    "sam2": {"backend": "sam2", "weights": "random", "model_cfg": "configs/sam2.1/sam2.1_hiera_l.yaml"},
    "sim_da3": {"backend": "sim_da3"},
}
SEED_FPS = {"da3": 12.0, "yolo": 30.0, "sam2": 5.0}
CLASSES = ("floor", "wall", "person", "furniture", "glass", "other")


def make_batch(n: int, boxes: int, pin: bool, height: int = 480, width: int = 640) -> dict:
    rng = np.random.default_rng(0)
    k = [520.0 * width / 640, 520.0 * height / 480, (width - 1) / 2, (height - 1) / 2]
    rgb = torch.from_numpy(rng.integers(0, 256, (n, height, width, 3), dtype=np.uint8))
    xy = rng.uniform(0, [width * 0.6, height * 0.6], (n, boxes, 2))
    wh = rng.uniform(20, 100, (n, boxes, 2)) * width / 320
    box = np.concatenate([xy, xy + wh, np.full((n, boxes, 1), 0.9), np.full((n, boxes, 1), 3.0)], -1)
    depth = rng.uniform(0.5, 5.0, (height, width)).astype(np.float32)
    return {"rgb": rgb.pin_memory() if pin else rgb, "intrinsics": torch.tensor([k] * n),
            "key": [f"bench/s/{i}" for i in range(n)], "boxes": [b.astype(np.float32) for b in box],
            "truth_depth": [depth] * n}


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def frames_per_second(teacher, batch: dict, device: str, warmup: int, repeats: int) -> float:
    for _ in range(warmup):
        teacher.predict(batch)
    sync(device)
    start = time.perf_counter()
    for _ in range(repeats):
        teacher.predict(batch)
    sync(device)
    return repeats * len(batch["key"]) / (time.perf_counter() - start)


def labeller_fps(frames: int) -> float:
    from distillery.teachers.labeller import IGNORE, label_frame

    scene = quality_scene()
    painted = np.full(scene["depth"].shape, IGNORE, np.uint8)
    start = time.perf_counter()
    for _ in range(frames):
        label_frame(scene["depth"], scene["intrinsics"], scene["tof"], scene["confidence"], scene["rgb"], painted)
    return frames / (time.perf_counter() - start)


def to_grid_fps(frames: int, height: int, width: int) -> dict:
    """Frames per second of the CPU work around a teacher for one source frame: decoding its JPEG (the
    shard's bytes) and bringing depth (valid-aware) and a class map (mode) onto the 240x320 grid."""
    import io

    from PIL import Image

    from distillery.ingest.frames import decode_rgb
    from distillery.ingest.resize import crop_box
    from distillery.teachers.grid import FrameGrid

    rng = np.random.default_rng(0)
    scene = quality_scene()
    rgb = np.asarray(Image.fromarray(scene["rgb"]).resize((width, height), Image.Resampling.BICUBIC))
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=90)
    data = buf.getvalue()
    box = crop_box(width, height, 320, 240, "crop")
    grid = FrameGrid.of((box.left, box.top, box.width, box.height), (height, width), (240, 320))
    depth = rng.uniform(0.5, 5.0, (height, width)).astype(np.float32)
    labels = rng.integers(0, 6, (height, width)).astype(np.uint8)
    out = {}
    for name, work in (("decode_jpeg", lambda: decode_rgb(data)), ("depth", lambda: grid.depth(depth)),
                       ("labels", lambda: grid.labels(labels))):
        start = time.perf_counter()
        for _ in range(frames):
            work()
        out[name] = round(frames / (time.perf_counter() - start), 1)
    out["jpeg_bytes"] = len(data)
    return out


def quality_scene() -> dict:
    """One 240x320 synthetic corridor frame (the labeller's cost depends on the image size, not content)."""
    from distillery.synth import synthesize_frame

    f = synthesize_frame("corridor", 1, 0, 0, 240, 320)
    return {"depth": f.depth, "intrinsics": f.intrinsics.as_list(), "tof": f.tof_depth,
            "confidence": f.tof_confidence, "rgb": f.rgb}


def throughput(args) -> dict:
    runtime = Runtime(args.device, args.precision)
    height, width = (int(v) for v in args.frame.split("x"))
    figures = {"device": args.device, "precision": args.precision, "boxes_per_frame": args.boxes,
               "frame": [height, width],
               "cuda_device": torch.cuda.get_device_name() if runtime.cuda else None, "fps": {}}
    for name in args.teachers.split(","):
        if name == "labeller":
            figures["fps"]["labeller"] = {"cpu_1": round(labeller_fps(args.repeats * 4), 2)}
            continue
        if name == "to_grid":
            figures["to_grid_cpu_fps"] = to_grid_fps(args.repeats * 10, height, width)
            continue
        teacher = build_teacher(TEACHERS[name], runtime)
        per_size = {}
        for size in (int(s) for s in args.batch_sizes.split(",")):
            batch = make_batch(size, args.boxes, pin=runtime.cuda, height=height, width=width)
            per_size[str(size)] = round(frames_per_second(teacher, batch, args.device, args.warmup, args.repeats), 3)
            print(f"{name} batch {size}: {per_size[str(size)]} frames/s", flush=True)
        figures["fps"][name] = per_size
        del teacher
        gc.collect()
        if runtime.cuda:
            figures.setdefault("peak_memory_gib", {})[name] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
    best = {n: max(v.values()) for n, v in figures["fps"].items() if n in SEED_FPS}
    figures["vs_seed_l40s"] = {n: round(best[n] / SEED_FPS[n], 2) for n in best}
    return figures


def quality(args) -> dict:
    """Per-class IoU of sim teachers + the real labeller against truth, over generated worlds."""
    from distillery.ingest.index import ingest_folder
    from distillery.synth import generate_world
    from distillery.teachers.runner import run_shard
    from distillery.teachers.stages import build_stage

    from distillery.ingest.pack import PackSettings

    worlds = {}
    with tempfile.TemporaryDirectory() as tmp:
        for family, seed in (("corridor", 1), ("corridor", 3), ("room", 2), ("room", 4)):
            world, out = Path(tmp, f"{family}{seed}"), Path(tmp, f"{family}{seed}_m")
            generate_world(world, family, seed, args.sequences, args.frames, progress=False)
            ingest_folder(str(world), str(out), settings=PackSettings(max_depth_m=1000.0), progress=False)
            worlds[f"{family}-s{seed}"] = sum(label_shard(shard, out, run_shard, build_stage)
                                              for shard in sorted(out.glob("shards/shard-*.h5")))
    figures = {name: scores(conf) for name, conf in worlds.items()}
    figures["all"] = scores(sum(worlds.values()))
    return figures


def scores(confusion: np.ndarray) -> dict:
    """Per-class IoU, mIoU over the classes present, and each class's share of the truth."""
    union = confusion.sum(0) + confusion.sum(1) - np.diag(confusion)
    iou = {c: round(float(confusion[i, i] / union[i]), 4) if union[i] else None for i, c in enumerate(CLASSES)}
    present = [iou[c] for i, c in enumerate(CLASSES) if confusion[i].sum()]
    return {"iou": iou, "miou": round(float(np.mean(present)), 4),
            "truth_share": {c: round(float(confusion[i].sum() / confusion.sum()), 4) for i, c in enumerate(CLASSES)}}


def label_shard(shard: Path, out: Path, run_shard, build_stage) -> np.ndarray:
    import h5py

    layers = {}
    for task, cfg in (("depth", {"backend": "sim_da3"}), ("detect", {"backend": "sim_yolo"}),
                      ("segment", {"backend": "sim_sam2"})):
        path = str(out / f"{shard.stem}.{task}.h5")
        run_shard(build_stage(task, cfg, Runtime(), {}), str(shard), path, path + ".jsonl", 8,
                  depth_layer=layers.get("depth"), detect_layer=layers.get("detect"), progress=False)
        layers[task] = path
    with h5py.File(shard) as s, h5py.File(layers["segment"]) as lab:
        truth, pred = s["truth_label"][:].ravel().astype(np.int64), lab["teacher_label"][:].ravel().astype(np.int64)
    keep = (truth < 6) & (pred < 6)
    return np.bincount(truth[keep] * 6 + pred[keep], minlength=36).reshape(6, 6)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--mode", choices=("throughput", "quality"), default="throughput")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--precision", default="bf16", choices=("bf16", "fp16", "fp32"))
    p.add_argument("--batch-sizes", default="1", help="comma-separated, e.g. 1,4,8,16 on a GPU")
    p.add_argument("--teachers", default="da3,da2,yolo,sam2,labeller,sim_da3,to_grid")
    p.add_argument("--frame", default="480x640", help="source frame HxW the teachers see (default 480x640)")
    p.add_argument("--boxes", type=int, default=4, help="SAM 2 box prompts per frame")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--sequences", type=int, default=2, help="quality mode: sequences per world")
    p.add_argument("--frames", type=int, default=8, help="quality mode: frames per sequence")
    args = p.parse_args()
    if args.mode == "quality":
        report("teachers_quality", quality(args))
    else:
        report(f"teachers_{args.device.split(':')[0]}", throughput(args))


if __name__ == "__main__":
    main()
