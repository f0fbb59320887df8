"""The frame folder of the reference implementation (github.com/Nishant-ZFYII/ml_inference)::

    rgb/00000.png
    depth/00000.npy     float32 metres, aligned to the colour camera; 0 = invalid
    intrinsics.json     {"fx", "fy", "cx", "cy", "width", "height", "distortion_model"}
    manifest.jsonl      {"rgb": "rgb/00000.png", "sensor_depth": "depth/00000.npy"}

What the reference's scripts write, and so what is read here:
- teacher_infer/extract_corridor_bag.py: lines {"rgb", "sensor_depth"} and the
  colour camera's intrinsics.json (fx, fy, cx, cy, width, height, distortion_model).
- teacher_infer/build_manifest.py: lines {"stem", "rgb", "depth"} plus optional
  "confidence" (.npy) and teacher outputs.
- extract_lilocbench.py: lines {"stem", "rgb", "sensor_depth", "camera",
  "timestamp", "intrinsics": {fx, fy, cx, cy}} and no intrinsics.json.
Teacher outputs listed in a manifest (da2_depth, da3_depth, sam2_seg, seg) are
ignored: the pipeline computes its own labels. Manifest paths are relative to
the folder; frames are paired by manifest line, never by file name.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from distillery.ingest.readers.base import IndexResult, ReaderOptions, frame_key, resolve_intrinsics, unpaired
from distillery.ingest.readers.native import (DEPTH_SUFFIXES, PNG_MM_SCALE, RGB_SUFFIXES, depth_format, first_image_size,
                                        group_files, image_size, parse_intrinsics, read_intrinsics_json, suffix_key)
from distillery.ingest.frames import FrameRef, Intrinsics, Reject

NAME = "reference"
EXPECTS = "rgb/ and depth/ folders with manifest.jsonl (lines with rgb and sensor_depth or depth), intrinsics.json"
MANIFEST = "manifest.jsonl"
DEPTH_KEYS = ("sensor_depth", "depth")


def matches(folder: Path) -> bool:
    """An rgb/ folder next to a manifest.jsonl."""
    return (folder / MANIFEST).is_file() and (folder / "rgb").is_dir()


def read_manifest(path: Path, dataset: str, sequence: str, result: IndexResult) -> list[tuple[int, dict]]:
    """(line number, entry) of every usable line; a broken line becomes a Reject, not a crash."""
    entries = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
            problem = None if isinstance(entry, dict) and isinstance(entry.get("rgb"), str) else "no rgb path"
        except ValueError as exc:
            problem = f"not valid JSON ({exc})"
        if problem:
            result.rejects.append(Reject(frame_key(dataset, sequence, f"line{n}"), str(path), "manifest",
                                         f"{MANIFEST} line {n}: {problem}"))
        else:
            entries.append((n, entry))
    return entries


class _Intrinsics:
    """Intrinsics of a manifest line: its own "intrinsics" object, else the folder's (resolved once)."""

    def __init__(self, folder: Path, rgb_files: list[Path], options: ReaderOptions, result: IndexResult):
        self.folder, self.rgb_files, self.options, self.result = folder, rgb_files, options, result
        self.cache: dict[str, Intrinsics] = {}
        self.folder_value: Intrinsics | None = None
        self.folder_done = False

    def for_entry(self, entry: dict, rgb: Path, where: str) -> Intrinsics | None:
        own = entry.get("intrinsics")
        if own is None:
            return self.of_folder()
        if not isinstance(own, dict):
            raise ValueError(f"{where}: intrinsics must be an object")
        key = json.dumps(own, sort_keys=True)
        if key not in self.cache:
            self.cache[key] = parse_intrinsics(own, lambda: image_size(rgb), where)
        return self.cache[key]

    def of_folder(self) -> Intrinsics | None:
        if not self.folder_done:
            found = read_intrinsics_json(self.folder / "intrinsics.json", lambda: first_image_size(self.rgb_files))
            self.folder_value = resolve_intrinsics(found, self.options, self.folder, self.result)
            self.folder_done = True
        return self.folder_value


def _missing(key: str, path: Path, field_name: str, n: int) -> Reject:
    return Reject(key, str(path), field_name, f"{MANIFEST} line {n} points at a missing file")


def _frame(folder: Path, n: int, entry: dict, dataset: str, sequence: str, options: ReaderOptions,
           intrinsics: _Intrinsics) -> FrameRef | Reject:
    """One manifest line as a FrameRef, or the Reject that says why it cannot be one."""
    rgb_rel = entry["rgb"]
    frame_id = str(entry.get("stem") or entry.get("frame") or Path(rgb_rel).stem)
    if entry.get("camera"):
        sequence = f"{sequence}_{entry['camera']}"
    key, rgb = frame_key(dataset, sequence, frame_id), folder / rgb_rel
    depth_rel = next((entry[k] for k in DEPTH_KEYS if isinstance(entry.get(k), str)), None)
    if not rgb.is_file():
        return _missing(key, rgb, "rgb", n)
    if depth_rel is None:
        return unpaired(dataset, sequence, frame_id, rgb, "depth")
    depth = folder / depth_rel
    if not depth.is_file():
        return _missing(key, depth, "depth", n)
    confidence = folder / entry["confidence"] if isinstance(entry.get("confidence"), str) else None
    if confidence is not None and not confidence.is_file():
        return _missing(key, confidence, "confidence", n)
    try:
        k = intrinsics.for_entry(entry, rgb, f"{folder / MANIFEST} line {n}")
    except ValueError as exc:
        return Reject(key, str(rgb), "intrinsics", str(exc))
    stamp = entry.get("timestamp")
    encoding, scale = depth_format(depth, PNG_MM_SCALE, options)
    return FrameRef(dataset=dataset, sequence=sequence, frame_id=frame_id, rgb=str(rgb), depth=str(depth),
                    depth_encoding=encoding, depth_scale=scale,
                    confidence=str(confidence) if confidence else None, intrinsics=k,
                    timestamp=float(stamp) if isinstance(stamp, (int, float)) else None, layout=NAME)


def _unlisted(folder: Path, listed: set[str], dataset: str, sequence: str) -> list[Reject]:
    """Files in rgb/ or depth/ that no manifest line mentions: reported, never dropped silently."""
    rejects = []
    for sub, suffixes in (("rgb", RGB_SUFFIXES), ("depth", DEPTH_SUFFIXES)):
        for stem, paths in group_files(folder / sub, suffix_key(suffixes)).items():
            rejects += [Reject(frame_key(dataset, sequence, stem), str(p), "manifest",
                               f"{sub}/{p.name} is not listed in {MANIFEST}") for p in paths if str(p.resolve()) not in listed]
    return rejects


def _drop_duplicate_ids(result: IndexResult) -> None:
    """Frames whose id appears on several lines are all rejected: which line is right cannot be told."""
    counts = Counter(ref.key for ref in result.frames)
    for ref in [r for r in result.frames if counts[r.key] > 1]:
        result.rejects.append(Reject(ref.key, ref.rgb, "manifest",
                                     f"frame id {ref.frame_id!r} appears on {counts[ref.key]} lines of {MANIFEST}"))
    result.frames = [r for r in result.frames if counts[r.key] == 1]


def read_sequence(folder: Path, dataset: str, sequence: str, options: ReaderOptions, root: Path) -> IndexResult:
    """Index one reference folder from its manifest.jsonl."""
    result = IndexResult()
    entries = read_manifest(folder / MANIFEST, dataset, sequence, result)
    rgb_files = [folder / e["rgb"] for _, e in entries]
    intrinsics = _Intrinsics(folder, rgb_files, options, result)
    listed: set[str] = set()
    for n, entry in entries:
        item = _frame(folder, n, entry, dataset, sequence, options, intrinsics)
        (result.frames if isinstance(item, FrameRef) else result.rejects).append(item)
        listed.update(str((folder / entry[k]).resolve()) for k in ("rgb", *DEPTH_KEYS)
                      if isinstance(entry.get(k), str))
    result.rejects += _unlisted(folder, listed, dataset, sequence)
    _drop_duplicate_ids(result)
    return result
