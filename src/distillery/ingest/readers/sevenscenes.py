"""Microsoft 7-Scenes (and folders written the same way)::

    kitchen/
        camera-intrinsics.txt         optional 3x3 matrix (here or in each seq-XX/)
        seq-01/
            frame-000000.color.png    (or .color.jpg)
            frame-000000.depth.png    uint16 millimetres; 0 and 65535 = invalid
            frame-000000.pose.txt     camera-to-world 4x4, not needed for indexing

Colour and depth are paired by their "frame-XXXXXX" prefix, which becomes
the frame id; frames may also sit directly in the dataset folder.

Intrinsics come from camera-intrinsics.txt in the sequence folder or the
dataset folder, else from the config, else the published KinectFusion depth
intrinsics (fx = fy = 585, cx = 320, cy = 240) when the images are 640x480,
with a warning: the official release says its colour and depth cameras are
not calibrated against each other, and these are the values it gives.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

from distillery.ingest.readers.base import IndexResult, ReaderOptions, resolve_intrinsics
from distillery.ingest.readers.native import PNG_MM_SCALE, depth_format, first_image_size, group_files, pair_files
from distillery.ingest.frames import FrameRef, Intrinsics

log = logging.getLogger(__name__)

NAME = "7scenes"
EXPECTS = "frame-XXXXXX.color.png|jpg and frame-XXXXXX.depth.png files (in the folder or in seq-XX/ sub-folders)"
INTRINSICS_FILE = "camera-intrinsics.txt"
INVALID = [65535]  # Kinect "no reading" besides 0
PUBLISHED = Intrinsics(fx=585.0, fy=585.0, cx=320.0, cy=240.0, width=640, height=480)

_COLOR = re.compile(r"^(frame-\d+)\.color\.(?:png|jpe?g)$", re.IGNORECASE)
_DEPTH = re.compile(r"^(frame-\d+)\.depth\.png$", re.IGNORECASE)


def _key(pattern: re.Pattern):
    def key(name: str) -> str | None:
        m = pattern.match(name)
        return m.group(1) if m else None

    return key


def matches(folder: Path) -> bool:
    """At least one frame-XXXXXX.color.* file directly in the folder."""
    return any(_COLOR.match(p.name) for p in folder.glob("frame-*.color.*"))


def read_matrix(path: Path, size: tuple[int, int] | None) -> Intrinsics:
    """Intrinsics from a whitespace-separated 3x3 matrix; width/height from the colour images."""
    try:
        k = [float(v) for v in path.read_text().split()]
    except ValueError as exc:
        raise ValueError(f"{path}: not a 3x3 matrix of numbers ({exc})") from None
    if len(k) != 9 or k[0] <= 0 or k[4] <= 0:
        raise ValueError(f"{path}: want a 3x3 camera matrix with positive focal lengths, got {len(k)} numbers")
    if size is None:
        raise ValueError(f"{path}: no readable colour image gives the width/height these intrinsics are for")
    return Intrinsics(fx=k[0], fy=k[4], cx=k[2], cy=k[5], width=size[0], height=size[1])


def _warn(result: IndexResult, msg: str) -> None:
    log.warning(msg)
    result.warnings.append(msg)


def find_intrinsics(folder: Path, root: Path, colour: list[Path], options: ReaderOptions,
                    result: IndexResult) -> Intrinsics | None:
    """camera-intrinsics.txt (sequence, then dataset folder), else config, else the published values."""
    size = first_image_size(colour)
    for candidate in dict.fromkeys((folder / INTRINSICS_FILE, root / INTRINSICS_FILE)):
        if candidate.is_file():
            return read_matrix(candidate, size)
    configured = resolve_intrinsics(None, options, folder, result)
    if configured is not None:
        return configured
    if size == (PUBLISHED.width, PUBLISHED.height):
        _warn(result, f"{folder}: no {INTRINSICS_FILE} and none in config; using the published 7-Scenes "
                      f"intrinsics {PUBLISHED.as_list()} at 640x480")
        return PUBLISHED
    _warn(result, f"{folder}: no {INTRINSICS_FILE}, none in config, and images are {size}, not 640x480")
    return None


def read_sequence(folder: Path, dataset: str, sequence: str, options: ReaderOptions, root: Path) -> IndexResult:
    """Index one folder of frame-XXXXXX.* files."""
    result = IndexResult()
    colour = group_files(folder, _key(_COLOR))
    pairs = pair_files(colour, group_files(folder, _key(_DEPTH)), dataset, sequence, result)
    if not pairs:
        return result
    intrinsics = find_intrinsics(folder, root, [p[1] for p in pairs], options, result)
    for key, rgb, depth in pairs:
        encoding, scale = depth_format(depth, PNG_MM_SCALE, options)
        result.frames.append(FrameRef(
            dataset=dataset, sequence=sequence, frame_id=key, rgb=str(rgb), depth=str(depth),
            depth_encoding=encoding, depth_scale=scale, depth_invalid=list(INVALID),
            intrinsics=intrinsics, layout=NAME))
    return result
