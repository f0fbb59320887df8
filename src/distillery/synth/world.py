"""Synthetic RGB-D sequences: one frame in memory, or whole worlds written to disk.

A world is (family, seed): its sequences share a camera, a ToF sensor and a
style, so one world behaves like one recorded dataset and another seed like
another domain. Each frame is a pure function of (family, seed, sequence,
frame, size): the same arguments give bit-identical files.

On disk a sequence uses the project's native frame layout (rgb/, depth/,
confidence/, intrinsics.json, timestamps.txt, poses.txt) plus truth/ with the
true z-depth, 6-class semantics and instance ids. Every file is written to a
temporary name and moved into place, so an interrupted run never leaves a
half-written file; world.json is written last and marks a complete world.
A re-run writes only the missing files, so it resumes or does nothing.
Conventions: camera frame OpenCV (x right, y down, z forward); poses are
camera-to-world with the world's z axis up and the floor at z = 0.
"""

from __future__ import annotations

import functools
import json
import math
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from distillery.framesize import HEIGHT, WIDTH
from distillery.ingest import native_writer
from distillery.ingest.frames import Intrinsics
from distillery.ingest.native_writer import NATIVE_FILES, frame_id
from distillery.synth import tof
from distillery.synth.camera import Camera
from distillery.synth.render import Rendering, render
from distillery.synth.scene import FAMILIES, Scene, build_scene, family_rng, make_style

FORMAT, VERSION = "distillery-synth", 1
FRAME_RATE_HZ = 30.0
CONVENTIONS = "camera OpenCV (x right, y down, z forward); poses camera-to-world; world z up, floor z = 0; depth metres, 0 = invalid"
# Files of one frame: key -> (folder inside the sequence, extension).
FRAME_FILES = {
    **NATIVE_FILES,
    "truth_depth": ("truth/depth", ".npy"),
    "truth_semantics": ("truth/semantics", ".png"),
    "truth_instances": ("truth/instances", ".png"),
}


@dataclass
class SynthFrame:
    """One synthetic frame with its simulated ToF and its ground truth."""

    rgb: np.ndarray  # uint8 [H, W, 3]
    tof_depth: np.ndarray  # float32 metres, 0 = invalid
    tof_confidence: np.ndarray  # float32 in [0, 1], 0 where tof_depth is 0
    depth: np.ndarray  # float32 true z-depth (the glass surface where there is glass)
    semantics: np.ndarray  # uint8 class ids 0..5
    instances: np.ndarray  # uint16, 0 = stuff
    intrinsics: Intrinsics
    camera_to_world: np.ndarray  # float64 [4, 4]
    timestamp: float  # seconds
    rendering: Rendering  # everything the renderer knew (e.g. depth behind glass)


def sequence_name(family: str, seed: int, index: int) -> str:
    return f"{family}-s{seed}-{index:02d}"


def intrinsics_for(family: str, seed: int, height: int, width: int) -> Intrinsics:
    """The world's pinhole camera: square pixels, principal point at the centre, seed-varied FOV."""
    fx = (width / 2) / math.tan(math.radians(make_style(family, seed).hfov_deg) / 2)
    return Intrinsics(fx=round(fx, 6), fy=round(fx, 6), cx=(width - 1) / 2, cy=(height - 1) / 2, width=width, height=height)


@functools.lru_cache(maxsize=4)
def _scene(family: str, seed: int, sequence: int) -> Scene:
    return build_scene(family, seed, sequence)


@functools.lru_cache(maxsize=4)
def sensor_for(family: str, seed: int) -> tof.TofSensor:
    """The world's ToF sensor (same for all its sequences)."""
    return tof.draw_sensor(family_rng(family, seed, 3))


def camera_pose(family: str, seed: int, sequence: int, frame: int) -> np.ndarray:
    """Camera-to-world 4 x 4 transform of a frame."""
    rotation, position = CameraPath(**_scene(family, seed, sequence).path).pose(frame / FRAME_RATE_HZ)
    pose = np.eye(4)
    pose[:3, :3], pose[:3, 3] = rotation, position
    return pose


def synthesize_frame(family: str, seed: int, sequence: int, frame: int, height: int = HEIGHT, width: int = WIDTH) -> SynthFrame:
    """Render frame `frame` of sequence `sequence` of the (family, seed) world."""
    scene = _scene(family, seed, sequence)
    time_s = frame / FRAME_RATE_HZ
    k = intrinsics_for(family, seed, height, width)
    pose = camera_pose(family, seed, sequence, frame)
    rng = family_rng(family, seed, 4, sequence, frame)
    rendering = render(scene.at(time_s), Camera.of(k), pose[:3, :3], pose[:3, 3], rng)
    depth, confidence = tof.simulate(rendering, sensor_for(family, seed), rng)
    return SynthFrame(rendering.rgb, depth, confidence, rendering.depth, rendering.semantics, rendering.instances,
                      k, pose, time_s, rendering)


@dataclass(frozen=True)
class CameraPath:
    """Smooth robot motion: up and down a corridor lane ("lane") or round an ellipse ("loop").

    Lane: centre = (x where the run starts, lane y), radii = (run length,
    sideways sway); the robot slows down at each end of the run and turns
    round on the spot. Loop: centre and radii of the ellipse, `turn` its
    direction, `bias` the yaw towards the room's centre. In both, the yaw also
    sweeps by two slow sines (`look`), so the camera looks around.
    """

    kind: str
    centre: tuple[float, float]
    radii: tuple[float, float]
    speed: float  # top speed, m/s
    turn: int
    phase: float
    bias: float
    height: float
    pitch: float
    look: tuple[float, ...]  # amplitude, period, phase (radians, seconds, radians) twice

    def _lane(self, t: float):
        run, sway = self.radii
        half_cycle = math.pi * run / (2 * self.speed)  # seconds for one run at this top speed
        progress = t / half_cycle + 0.2  # 0..1 out, 1..2 back; start already rolling
        x = self.centre[0] + run * (1 - math.cos(math.pi * progress)) / 2
        y = self.centre[1] + sway * math.sin(2 * math.pi * t / 9.0 + self.phase)
        heading = math.pi / 2 * (1 - math.tanh(8 * math.sin(math.pi * progress)) / math.tanh(8))  # turn round at the ends
        return x, y, heading

    def _loop(self, t: float):
        mean_radius = 0.5 * (self.radii[0] + self.radii[1])
        a = self.phase + self.turn * self.speed * t / mean_radius
        x, y = self.centre[0] + self.radii[0] * math.cos(a), self.centre[1] + self.radii[1] * math.sin(a)
        tx, ty = -self.turn * self.radii[0] * math.sin(a), self.turn * self.radii[1] * math.cos(a)
        return x, y, math.atan2(ty, tx) + self.turn * self.bias

    def pose(self, t: float) -> tuple[np.ndarray, np.ndarray]:
        """Camera-to-world rotation (OpenCV camera axes) and position at time t seconds."""
        x, y, heading = self._lane(t) if self.kind == "lane" else self._loop(t)
        a1, p1, f1, a2, p2, f2 = self.look
        yaw = heading + a1 * math.sin(2 * math.pi * t / p1 + f1) + a2 * math.sin(2 * math.pi * t / p2 + f2)
        pitch = self.pitch + math.radians(1.5) * math.sin(2 * math.pi * t / 5.3 + f1)
        roll = math.radians(0.6) * math.sin(2 * math.pi * t / 2.1 + f2)
        z = self.height + 0.004 * math.sin(2 * math.pi * 1.7 * t)
        return _camera_rotation(yaw, pitch, roll), np.array([x, y, z])


def _camera_rotation(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """Camera-to-world rotation of a camera looking along yaw (from +x, about +z), pitched up, rolled."""
    base = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])  # columns: camera x, y, z in world
    cz, sz = math.cos(yaw), math.sin(yaw)
    cp, sp = math.cos(pitch), math.sin(pitch)
    cr, sr = math.cos(roll), math.sin(roll)
    turn = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    tilt = np.array([[1, 0, 0], [0, cp, -sp], [0, sp, cp]])  # about camera x: +pitch looks up
    spin = np.array([[cr, -sr, 0], [sr, cr, 0], [0, 0, 1]])
    return turn @ base @ tilt @ spin


def quaternion_xyzw(rotation: np.ndarray) -> np.ndarray:
    """Unit quaternion (x, y, z, w) with w >= 0 of a rotation matrix (Shepperd's method: stable at 180 degrees)."""
    m = np.asarray(rotation, np.float64)
    trace = m[0, 0] + m[1, 1] + m[2, 2]
    largest = int(np.argmax([trace, m[0, 0], m[1, 1], m[2, 2]]))
    if largest == 0:
        s = 2 * math.sqrt(1 + trace)
        q = [(m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s, s / 4]
    elif largest == 1:
        s = 2 * math.sqrt(1 + m[0, 0] - m[1, 1] - m[2, 2])
        q = [s / 4, (m[0, 1] + m[1, 0]) / s, (m[0, 2] + m[2, 0]) / s, (m[2, 1] - m[1, 2]) / s]
    elif largest == 2:
        s = 2 * math.sqrt(1 + m[1, 1] - m[0, 0] - m[2, 2])
        q = [(m[0, 1] + m[1, 0]) / s, s / 4, (m[1, 2] + m[2, 1]) / s, (m[0, 2] - m[2, 0]) / s]
    else:
        s = 2 * math.sqrt(1 + m[2, 2] - m[0, 0] - m[1, 1])
        q = [(m[0, 2] + m[2, 0]) / s, (m[1, 2] + m[2, 1]) / s, s / 4, (m[1, 0] - m[0, 1]) / s]
    q = np.array(q) * (1 if q[3] >= 0 else -1)
    return q / np.linalg.norm(q)


def frame_paths(folder: Path, frame: int) -> dict[str, Path]:
    return native_writer.frame_paths(folder, frame_id(frame), FRAME_FILES)


def write_frame(folder: Path, frame: int, synth: SynthFrame, keys=tuple(FRAME_FILES)) -> None:
    """Write the files `keys` (default: all six) of one frame, each atomically."""
    arrays = {"rgb": synth.rgb, "depth": synth.tof_depth, "confidence": synth.tof_confidence,
              "truth_depth": synth.depth, "truth_semantics": synth.semantics, "truth_instances": synth.instances}
    native_writer.write_frame(folder, frame_id(frame), {key: arrays[key] for key in keys}, FRAME_FILES)


def _render_task(task: tuple) -> tuple[int, int, float]:
    """Worker body: synthesise one frame, write its missing files, return its ToF invalid share."""
    out, name, family, seed, sequence, frame, height, width, missing = task
    synth = synthesize_frame(family, seed, sequence, frame, height, width)
    write_frame(Path(out) / name, frame, synth, missing)
    return sequence, frame, tof.tof_invalid_share(synth.tof_depth)


def _sequence_texts(family: str, seed: int, sequence: int, frames: int, height: int, width: int) -> dict[str, str]:
    """intrinsics.json, timestamps.txt and poses.txt of a sequence."""
    stamps, poses = [], []
    for f in range(frames):
        pose = camera_pose(family, seed, sequence, f)
        q, t = quaternion_xyzw(pose[:3, :3]), pose[:3, 3]
        stamps.append(f"{frame_id(f)} {f / FRAME_RATE_HZ:.6f}")
        poses.append(f"{frame_id(f)} " + " ".join(f"{v:.6f}" for v in t) + " " + " ".join(f"{v:.9f}" for v in q))
    return native_writer.sequence_texts(intrinsics_for(family, seed, height, width), stamps, poses)


def _prepare_sequence(folder: Path, texts: dict[str, str]) -> None:
    """Create the folders, refuse a folder made with another camera, drop stale temp files, write texts."""
    old = folder / "intrinsics.json"
    if old.is_file() and old.read_text() != texts["intrinsics.json"]:
        raise FileExistsError(f"{folder} holds frames of another size or camera ({old}); use another --out or delete it")
    native_writer.make_folders(folder, FRAME_FILES)
    native_writer.write_texts(folder, texts)


def _header(family: str, seed: int, names: list[str], frames: int, height: int, width: int) -> dict:
    return {"format": FORMAT, "version": VERSION, "family": family, "seed": seed, "sequences": names,
            "frames_per_sequence": frames, "height": height, "width": width}


def _read_world(out: Path, header: dict) -> dict | None:
    """The existing world.json, if any; raise if it describes a different world."""
    path = out / "world.json"
    if not path.is_file():
        return None
    existing = json.loads(path.read_text())
    if {k: existing.get(k) for k in header} != header:
        raise FileExistsError(f"{path} describes another world ({existing.get('family')} seed {existing.get('seed')}, "
                              f"{len(existing.get('sequences', []))} x {existing.get('frames_per_sequence')} frames, "
                              f"{existing.get('width')}x{existing.get('height')}); use another --out or delete it")
    return existing


def _validate(family: str, seed: int, sequences: int, frames: int, height: int, width: int) -> None:
    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; choose one of {', '.join(FAMILIES)}")
    for name, value, low in (("seed", seed, 0), ("sequences", sequences, 1), ("frames", frames, 1),
                             ("height", height, 16), ("width", width, 16)):
        if not isinstance(value, (int, np.integer)) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")


def generate_world(out_dir: str | os.PathLike, family: str, seed: int, sequences: int, frames_per_sequence: int,
                   height: int = HEIGHT, width: int = WIDTH, progress: bool = True, workers: int = 1) -> dict:
    """Write (or complete) a synthetic world and return a summary of what was done.

    Existing frame files are kept and only missing ones are rendered and
    written, so an interrupted run resumes and a complete one is left
    untouched. `workers` > 1 renders frames in
    that many processes (the output is the same).
    """
    _validate(family, seed, sequences, frames_per_sequence, height, width)
    seed, started = int(seed), time.perf_counter()
    out = Path(out_dir)
    names = [sequence_name(family, seed, i) for i in range(sequences)]
    header = _header(family, seed, names, frames_per_sequence, height, width)
    existing = _read_world(out, header)
    todo, shares = [], {}
    for s, name in enumerate(names):
        _prepare_sequence(out / name, _sequence_texts(family, seed, s, frames_per_sequence, height, width))
        for f in range(frames_per_sequence):
            missing = tuple(key for key, path in frame_paths(out / name, f).items() if not path.is_file())
            if missing:
                todo.append((str(out), name, family, seed, s, f, height, width, missing))
    if existing is not None and not todo:
        return _summary(out, existing, 0, time.perf_counter() - started)
    (out / "world.json").unlink(missing_ok=True)  # incomplete until written again
    bar = tqdm(total=len(todo), desc=f"synth {family} s{seed}", unit="frame", disable=not progress, file=sys.stderr)
    with bar:
        if workers > 1 and len(todo) > 1:
            with ProcessPoolExecutor(workers) as pool:
                for s, f, share in pool.map(_render_task, todo, chunksize=8):
                    shares[(s, f)] = share
                    bar.update(1)
        else:
            for task in todo:
                s, f, share = _render_task(task)
                shares[(s, f)] = share
                bar.update(1)
    world = _finish(out, header, shares)
    return _summary(out, world, len(todo), time.perf_counter() - started)


def _finish(out: Path, header: dict, shares: dict) -> dict:
    """Fill in the invalid share of kept frames from disk and write world.json (last)."""
    per_sequence = {}
    for s, name in enumerate(header["sequences"]):
        values = []
        for f in range(header["frames_per_sequence"]):
            if (s, f) not in shares:
                shares[(s, f)] = tof.tof_invalid_share(np.load(frame_paths(out / name, f)["depth"]))
            values.append(shares[(s, f)])
        per_sequence[name] = round(float(np.mean(values)), 6)
    world = {**header, "frame_rate_hz": FRAME_RATE_HZ, "conventions": CONVENTIONS,
             "tof_invalid_share": round(float(np.mean(list(shares.values()))), 6),
             "tof_invalid_share_per_sequence": per_sequence}
    native_writer.write_atomic(out / "world.json", (json.dumps(world, indent=2) + "\n").encode())
    return world


def _summary(out: Path, world: dict, written: int, seconds: float) -> dict:
    total = len(world["sequences"]) * world["frames_per_sequence"]
    return {"out_dir": str(out), "family": world["family"], "seed": world["seed"], "sequences": world["sequences"],
            "frames_total": total, "frames_written": written, "frames_skipped": total - written,
            "tof_invalid_share": world["tof_invalid_share"], "seconds": round(seconds, 3),
            "ms_per_frame": round(1000 * seconds / written, 2) if written else None}
