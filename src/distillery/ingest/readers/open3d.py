"""Open3D / RealSense recorder folders (Open3D's reconstruction-system input)::

    recording/
        color/000000.jpg          (or .png)
        depth/000000.png          uint16, 1000 units per metre by default; 0 = invalid
        camera_intrinsic.json     {"width", "height", "intrinsic_matrix": [9 numbers, column-major]}

Colour and depth are paired by file stem. Recorders configured with another
depth unit (Open3D's "depth_scale") need `depth_scale` in the config entry.
"""

from __future__ import annotations

import json
from pathlib import Path

from distillery.ingest.readers.base import IndexResult, ReaderOptions, resolve_intrinsics
from distillery.ingest.readers.native import (PNG_MM_SCALE, RGB_SUFFIXES, Size, depth_format, first_image_size,
                                        group_files, pair_files, parse_intrinsics, suffix_key)
from distillery.ingest.frames import FrameRef, Intrinsics

NAME = "open3d"
EXPECTS = "color/ and depth/ folders paired by file stem, camera_intrinsic.json"
INTRINSICS_FILE = "camera_intrinsic.json"


def matches(folder: Path) -> bool:
    """A folder pair color/ + depth/ (Open3D spells it "color", ours "rgb")."""
    return (folder / "color").is_dir() and (folder / "depth").is_dir()


def read_camera_intrinsic(path: Path, size: Size) -> Intrinsics | None:
    """An Open3D PinholeCameraIntrinsic JSON (its 3x3 matrix is column-major); `size` fills a missing resolution."""
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
        m = [float(v) for v in data["intrinsic_matrix"]]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{path}: not an Open3D camera intrinsic ({exc!r})") from None
    if len(m) != 9:
        raise ValueError(f"{path}: intrinsic_matrix must hold 9 numbers, got {len(m)}")
    fields = {"fx": m[0], "fy": m[4], "cx": m[6], "cy": m[7]}
    fields.update({k: data[k] for k in ("width", "height") if k in data})
    return parse_intrinsics(fields, size, str(path))


def read_sequence(folder: Path, dataset: str, sequence: str, options: ReaderOptions, root: Path) -> IndexResult:
    """Index one Open3D recording folder."""
    result = IndexResult()
    colour = group_files(folder / "color", suffix_key(RGB_SUFFIXES))
    pairs = pair_files(colour, group_files(folder / "depth", suffix_key((".png",))), dataset, sequence, result)
    if not pairs:
        return result
    found = read_camera_intrinsic(folder / INTRINSICS_FILE, lambda: first_image_size([p[1] for p in pairs]))
    intrinsics = resolve_intrinsics(found, options, folder, result)
    for key, rgb, depth in pairs:
        encoding, scale = depth_format(depth, PNG_MM_SCALE, options)
        result.frames.append(FrameRef(
            dataset=dataset, sequence=sequence, frame_id=key, rgb=str(rgb), depth=str(depth),
            depth_encoding=encoding, depth_scale=scale, intrinsics=intrinsics, layout=NAME))
    return result
