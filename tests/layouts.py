"""Small generated RGB-D datasets in every layout the readers support.

Each `make_*` writes `n_frames` frames of `size` = (height, width) under
`root` and returns the dataset folder. Depth is `depth_m` metres everywhere
except the top `invalid_rows(height)` rows, which hold no measurement (raw 0;
in 7-Scenes the first of those rows is 65535, the Kinect's other "no
reading" value). Colour is a seeded random pattern, intrinsics are
`intrinsics_for(size)` (fx != fy and cx != cy, so a transposed matrix shows).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

Size = tuple[int, int]


def invalid_rows(height: int) -> int:
    """Rows at the top of every depth image that carry no measurement."""
    return max(1, height // 4)


def intrinsics_for(size: Size) -> dict:
    """The {fx, fy, cx, cy, width, height} every generator writes for images of `size` (H, W)."""
    h, w = size
    return {"fx": 0.9 * w, "fy": 0.8 * w, "cx": w / 2 - 0.5, "cy": h / 2 + 0.25, "width": w, "height": h}


def depth_metres(size: Size, depth_m: float) -> np.ndarray:
    """float32 depth of `size`: `depth_m` everywhere but the invalid top rows (0)."""
    depth = np.full(size, depth_m, np.float32)
    depth[: invalid_rows(size[0])] = 0.0
    return depth


def write_rgb(path: Path, size: Size, seed: int) -> None:
    """A random colour image (PNG or JPEG by suffix)."""
    pixels = np.random.default_rng(seed).integers(0, 256, (*size, 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path, **({"quality": 95} if path.suffix.lower() in (".jpg", ".jpeg") else {}))


def write_png16(path: Path, raw: np.ndarray) -> None:
    """A single-channel uint16 PNG (raw sensor units)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(raw.astype(np.uint16)).save(path)


def depth_units(size: Size, depth_m: float, units_per_metre: float) -> np.ndarray:
    """uint16 raw depth of `depth_metres` in `units_per_metre`."""
    return np.round(depth_metres(size, depth_m) * units_per_metre).astype(np.uint16)


def _native_sequence(folder: Path, n_frames: int, size: Size, depth_format: str, depth_m: float,
                     confidence: bool, intrinsics: bool, timestamps: bool, truth: bool) -> None:
    for i in range(n_frames):
        stem = f"{i:06d}"
        write_rgb(folder / "rgb" / f"{stem}.png", size, seed=i)
        if depth_format == "npy":
            (folder / "depth").mkdir(parents=True, exist_ok=True)
            np.save(folder / "depth" / f"{stem}.npy", depth_metres(size, depth_m))
        else:
            write_png16(folder / "depth" / f"{stem}.png", depth_units(size, depth_m, 1000))
        if confidence:
            (folder / "confidence").mkdir(exist_ok=True)
            np.save(folder / "confidence" / f"{stem}.npy", (depth_metres(size, depth_m) > 0).astype(np.float32) * 0.5)
        if truth:
            (folder / "truth" / "depth").mkdir(parents=True, exist_ok=True)
            np.save(folder / "truth" / "depth" / f"{stem}.npy", np.full(size, depth_m, np.float32))
            Image.fromarray(np.full(size, 1, np.uint8)).save(_mkdir(folder / "truth" / "semantics") / f"{stem}.png")
    if intrinsics:
        (folder / "intrinsics.json").write_text(json.dumps(intrinsics_for(size)))
    if timestamps:
        (folder / "timestamps.txt").write_text("".join(f"{i:06d} {i * 0.1:.6f}\n" for i in range(n_frames)))
    (folder / "poses.txt").write_text("".join(f"{i:06d} 0 0 0 0 0 0 1\n" for i in range(n_frames)))


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def make_native(root: Path, n_frames: int = 4, size: Size = (48, 64), *, sequences: list[str] | None = None,
                depth_format: str = "npy", depth_m: float = 1.0, confidence: bool = True, intrinsics: bool = True,
                timestamps: bool = True, truth: bool = False) -> Path:
    """Our native layout; with `sequences`, `root` is a world folder (world.json + one folder each)."""
    root = Path(root)
    if sequences is None:
        _native_sequence(_mkdir(root), n_frames, size, depth_format, depth_m, confidence, intrinsics, timestamps, truth)
        return root
    for name in sequences:
        _native_sequence(_mkdir(root / name), n_frames, size, depth_format, depth_m, confidence, intrinsics,
                         timestamps, truth)
    (root / "world.json").write_text(json.dumps({"sequences": list(sequences)}))
    return root


def make_reference(root: Path, n_frames: int = 4, size: Size = (48, 64), *, depth_m: float = 1.0,
                   depth_key: str = "sensor_depth", intrinsics: bool = True) -> Path:
    """The reference's folder, as its extract_corridor_bag.py writes it (5-digit stems, metres in .npy)."""
    root = _mkdir(Path(root))
    lines = []
    for i in range(n_frames):
        stem = f"{i:05d}"
        write_rgb(root / "rgb" / f"{stem}.png", size, seed=i)
        _mkdir(root / "depth")
        np.save(root / "depth" / f"{stem}.npy", depth_metres(size, depth_m))
        lines.append(json.dumps({"rgb": f"rgb/{stem}.png", depth_key: f"depth/{stem}.npy"}))
    (root / "manifest.jsonl").write_text("\n".join(lines) + "\n")
    if intrinsics:
        (root / "intrinsics.json").write_text(json.dumps({**intrinsics_for(size), "distortion_model": "plumb_bob"}))
    return root


def tum_stamp(i: int, start: float = 1305031102.175304, period: float = 1 / 30) -> float:
    """Timestamp of the i-th colour frame of a generated TUM sequence."""
    return start + i * period


def make_tum(root: Path, n_frames: int = 4, size: Size = (48, 64), *, depth_m: float = 1.0, dt: float = 0.01,
             period: float = 1 / 30, lists: bool = True, associations: bool = False) -> Path:
    """A TUM RGB-D sequence: colour every `period` s, depth `dt` s later (5000 units per metre)."""
    root = _mkdir(Path(root))
    rgb_lines, depth_lines, assoc = ["# color images", "# timestamp filename"], ["# depth maps"], []
    for i in range(n_frames):
        t_rgb, t_depth = f"{tum_stamp(i, period=period):.6f}", f"{tum_stamp(i, period=period) + dt:.6f}"
        write_rgb(root / "rgb" / f"{t_rgb}.png", size, seed=i)
        write_png16(root / "depth" / f"{t_depth}.png", depth_units(size, depth_m, 5000))
        rgb_lines.append(f"{t_rgb} rgb/{t_rgb}.png")
        depth_lines.append(f"{t_depth} depth/{t_depth}.png")
        assoc.append(f"{t_rgb} rgb/{t_rgb}.png {t_depth} depth/{t_depth}.png")
    if lists:
        (root / "rgb.txt").write_text("\n".join(rgb_lines) + "\n")
        (root / "depth.txt").write_text("\n".join(depth_lines) + "\n")
    if associations:
        (root / "associations.txt").write_text("\n".join(assoc) + "\n")
    return root


def write_matrix(path: Path, size: Size) -> None:
    """camera-intrinsics.txt of `intrinsics_for(size)` as a 3x3 matrix."""
    k = intrinsics_for(size)
    path.write_text(f"{k['fx']} 0 {k['cx']}\n0 {k['fy']} {k['cy']}\n0 0 1\n")


def _sevenscenes_frames(folder: Path, n_frames: int, size: Size, depth_mm: int, color_ext: str) -> None:
    _mkdir(folder)
    for i in range(n_frames):
        write_rgb(folder / f"frame-{i:06d}.color.{color_ext}", size, seed=i)
        raw = depth_units(size, depth_mm / 1000, 1000)
        raw[0] = 65535
        write_png16(folder / f"frame-{i:06d}.depth.png", raw)
        (folder / f"frame-{i:06d}.pose.txt").write_text("1 0 0 0\n0 1 0 0\n0 0 1 0\n0 0 0 1\n")


def make_7scenes(root: Path, n_frames: int = 4, size: Size = (48, 64), *, sequences: list[str] | None = None,
                 depth_mm: int = 1000, color_ext: str = "png", intrinsics: str | None = "root") -> Path:
    """7-Scenes frames, in `sequences` sub-folders or directly in `root`.

    `intrinsics` places camera-intrinsics.txt in the "root", in each
    "sequence" folder, or nowhere (None).
    """
    root = _mkdir(Path(root))
    folders = [root / s for s in sequences] if sequences else [root]
    for folder in folders:
        _sevenscenes_frames(folder, n_frames, size, depth_mm, color_ext)
        if intrinsics == "sequence":
            write_matrix(folder / "camera-intrinsics.txt", size)
    if intrinsics == "root":
        write_matrix(root / "camera-intrinsics.txt", size)
    return root


def make_open3d(root: Path, n_frames: int = 4, size: Size = (48, 64), *, depth_mm: int = 1000,
                color_ext: str = "jpg", intrinsics: bool = True) -> Path:
    """An Open3D recorder folder (camera_intrinsic.json with a column-major matrix)."""
    root = _mkdir(Path(root))
    for i in range(n_frames):
        write_rgb(root / "color" / f"{i:06d}.{color_ext}", size, seed=i)
        write_png16(root / "depth" / f"{i:06d}.png", depth_units(size, depth_mm / 1000, 1000))
    if intrinsics:
        k = intrinsics_for(size)
        matrix = [k["fx"], 0, 0, 0, k["fy"], 0, k["cx"], k["cy"], 1]
        (root / "camera_intrinsic.json").write_text(json.dumps(
            {"width": k["width"], "height": k["height"], "intrinsic_matrix": matrix}))
    return root
