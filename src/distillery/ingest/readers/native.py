"""Our native RGB-D layout, plus the file helpers the other layouts share.

A native sequence folder (what the synthetic generator writes, and what we
recommend converting recordings to)::

    rgb/000000.png             colour, png or jpg
    depth/000000.npy           float32 metres (or uint16 PNG millimetres); 0 = invalid
    confidence/000000.npy      optional: float32 in [0, 1], or uint8/uint16 PNG
    intrinsics.json            {"fx", "fy", "cx", "cy", "width", "height"}
    timestamps.txt             optional: "frame_id seconds" lines
    poses.txt                  optional, not needed for indexing
    truth/depth/000000.npy     optional synthetic ground truth, metres
    truth/semantics/000000.png optional synthetic class ids

Colour and depth are paired by file stem, which becomes the frame id.
"""

from __future__ import annotations

import json
import math
import re
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

from PIL import Image

from distillery.ingest.readers.base import IndexResult, ReaderOptions, frame_key, resolve_intrinsics, unpaired
from distillery.ingest.frames import FrameRef, Intrinsics, Reject

NAME = "native"
EXPECTS = "rgb/ and depth/ folders paired by file stem, intrinsics.json, and no manifest.jsonl"
RGB_SUFFIXES = (".png", ".jpg", ".jpeg")
DEPTH_SUFFIXES = (".npy", ".png")
PNG_MM_SCALE = 1000.0  # uint16 millimetres -> metres

Size = Callable[[], "tuple[int, int] | None"]


def matches(folder: Path) -> bool:
    """A folder pair rgb/ + depth/; a manifest.jsonl would make it the reference layout."""
    return (folder / "rgb").is_dir() and (folder / "depth").is_dir() and not (folder / "manifest.jsonl").exists()


# ---------------------------------------------------------------- helpers


def natural_key(text: str) -> tuple:
    """Sort key that puts "frame2" before "frame10" (digit runs compare as numbers)."""
    parts = re.split(r"(\d+)", text)
    return tuple(int(p) if i % 2 else p for i, p in enumerate(parts))


def suffix_key(suffixes: tuple[str, ...]) -> Callable[[str], str | None]:
    """A frame key function: the file stem for names ending in one of `suffixes`."""

    def key(name: str) -> str | None:
        path = Path(name)
        return path.stem if path.suffix.lower() in suffixes else None

    return key


def group_files(folder: Path, key: Callable[[str], str | None]) -> dict[str, list[Path]]:
    """Files of `folder` grouped by frame key; hidden files and non-frame names are skipped."""
    groups: dict[str, list[Path]] = defaultdict(list)
    if not folder.is_dir():
        return {}
    for path in sorted(folder.iterdir()):
        if not path.name.startswith(".") and path.is_file():
            k = key(path.name)
            if k is not None:
                groups[k].append(path)
    return dict(groups)


def _ambiguous(dataset: str, sequence: str, key: str, field_name: str, paths: list[Path]) -> Reject:
    names = ", ".join(p.name for p in paths)
    return Reject(frame_key(dataset, sequence, key), str(paths[0]), field_name,
                  f"ambiguous: {len(paths)} {field_name} files for one frame ({names})")


def pair_files(rgb: dict[str, list[Path]], depth: dict[str, list[Path]], dataset: str, sequence: str,
               result: IndexResult) -> list[tuple[str, Path, Path]]:
    """(key, rgb, depth) for keys with exactly one file of each; every other file becomes a Reject."""
    pairs = []
    for key in sorted(set(rgb) | set(depth), key=natural_key):
        colour, dep = rgb.get(key, []), depth.get(key, [])
        if len(colour) > 1 or len(dep) > 1:
            field_name, paths = ("rgb", colour) if len(colour) > 1 else ("depth", dep)
            result.rejects.append(_ambiguous(dataset, sequence, key, field_name, paths))
        elif not dep:
            result.rejects.append(unpaired(dataset, sequence, key, colour[0], "depth"))
        elif not colour:
            result.rejects.append(unpaired(dataset, sequence, key, dep[0], "rgb"))
        else:
            pairs.append((key, colour[0], dep[0]))
    return pairs


def image_size(path: Path) -> tuple[int, int] | None:
    """(width, height) from an image header without decoding its pixels; None if unreadable."""
    try:
        with Image.open(path) as im:
            return im.size
    except Exception:  # PIL raises many types for broken files; the frame is rejected later
        return None


def first_image_size(paths: list[Path]) -> tuple[int, int] | None:
    """Size of the first readable image of `paths`."""
    return next((s for s in map(image_size, paths) if s is not None), None)


def depth_format(path: Path, png_scale: float, options: ReaderOptions) -> tuple[str, float]:
    """(encoding, scale) of a depth file by suffix; `options.depth_scale` overrides the default."""
    encoding, scale = ("npy", 1.0) if path.suffix.lower() == ".npy" else ("png", png_scale)
    return encoding, options.depth_scale if options.depth_scale is not None else scale


def _number(value, where: str, name: str) -> float:
    """A finite float; focal lengths and sizes must also be positive."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: intrinsics {name}={value!r} is not a number") from None
    if not math.isfinite(number) or (name in ("fx", "fy", "width", "height") and number <= 0):
        raise ValueError(f"{where}: intrinsics {name}={value!r} is not a positive finite number")
    return number


def parse_intrinsics(d: dict, size: Size, where: str) -> Intrinsics:
    """Intrinsics from {fx, fy, cx, cy[, width, height]} or a 3x3 "K" (nested or 9 numbers, row-major).

    A missing width/height is taken from `size()` (an image header), because
    intrinsics without the resolution they belong to cannot be checked.
    """
    if all(k in d for k in ("fx", "fy", "cx", "cy")):
        fx, fy, cx, cy = (d[k] for k in ("fx", "fy", "cx", "cy"))
    elif "K" in d:
        k = [v for row in d["K"] for v in (row if isinstance(row, list) else [row])]
        if len(k) != 9:
            raise ValueError(f"{where}: intrinsics K must be 3x3, got {len(k)} numbers")
        fx, fy, cx, cy = k[0], k[4], k[2], k[5]
    else:
        raise ValueError(f"{where}: intrinsics need fx, fy, cx, cy (or a 3x3 K); found keys {sorted(d)}")
    if "width" in d and "height" in d:
        width, height = d["width"], d["height"]
    else:
        dims = size()
        if dims is None:
            raise ValueError(f"{where}: intrinsics lack width/height and no readable rgb image gives them")
        width, height = dims
    return Intrinsics(_number(fx, where, "fx"), _number(fy, where, "fy"), _number(cx, where, "cx"),
                      _number(cy, where, "cy"), int(_number(width, where, "width")),
                      int(_number(height, where, "height")))


def read_intrinsics_json(path: Path, size: Size) -> Intrinsics | None:
    """Intrinsics from a JSON file, None if the file is absent; a broken file raises ValueError."""
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: unreadable intrinsics ({exc})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: intrinsics must be a JSON object")
    return parse_intrinsics(data, size, str(path))


# ---------------------------------------------------------------- native reader


def read_timestamps(path: Path, result: IndexResult) -> dict[str, float]:
    """frame_id -> seconds from "frame_id seconds" lines ('#' comments); bad lines are warned about."""
    stamps: dict[str, float] = {}
    if not path.is_file():
        return stamps
    for n, line in enumerate(path.read_text().splitlines(), 1):
        fields = line.split()
        if not fields or fields[0].startswith("#"):
            continue
        try:
            stamps[fields[0]] = float(fields[1])
        except (IndexError, ValueError):
            result.warnings.append(f"{path}:{n}: ignored malformed line {line!r} (want 'frame_id seconds')")
    return stamps


def _preferred(folder: Path, suffixes: tuple[str, ...]) -> dict[str, list[Path]]:
    """Files of an optional folder by stem, each list ordered by the preference of `suffixes`."""
    groups = group_files(folder, suffix_key(suffixes))
    return {k: sorted(v, key=lambda p: suffixes.index(p.suffix.lower())) for k, v in groups.items()}


def _optional(groups: dict[str, list[Path]], key: str) -> str | None:
    """The partner file of a frame in an optional folder, or None."""
    paths = groups.get(key)
    return str(paths[0]) if paths else None


def read_sequence(folder: Path, dataset: str, sequence: str, options: ReaderOptions, root: Path) -> IndexResult:
    """Index one native sequence folder."""
    result = IndexResult()
    rgb = group_files(folder / "rgb", suffix_key(RGB_SUFFIXES))
    pairs = pair_files(rgb, group_files(folder / "depth", suffix_key(DEPTH_SUFFIXES)), dataset, sequence, result)
    if not pairs:
        return result
    found = read_intrinsics_json(folder / "intrinsics.json", lambda: first_image_size([p[1] for p in pairs]))
    intrinsics = resolve_intrinsics(found, options, folder, result)
    stamps = read_timestamps(folder / "timestamps.txt", result)
    confidence = _preferred(folder / "confidence", (".npy", ".png"))
    truth_depth = _preferred(folder / "truth" / "depth", (".npy",))
    truth_sem = _preferred(folder / "truth" / "semantics", (".png",))
    for key, colour, dep in pairs:
        encoding, scale = depth_format(dep, PNG_MM_SCALE, options)
        result.frames.append(FrameRef(
            dataset=dataset, sequence=sequence, frame_id=key, rgb=str(colour), depth=str(dep),
            depth_encoding=encoding, depth_scale=scale, confidence=_optional(confidence, key),
            intrinsics=intrinsics, timestamp=stamps.get(key), layout=NAME,
            truth_depth=_optional(truth_depth, key), truth_semantics=_optional(truth_sem, key)))
    return result
