"""What every dataset reader shares: options, results and index-level checks.

A reader maps a folder (one sequence, or a folder of sequences) to
`FrameRef`s without decoding pixels. Problems that can be seen without
decoding (unpaired frames, missing intrinsics, duplicate timestamps) become
`Reject`s here; pixel-level problems are found when shards are packed.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from distillery.ingest.frames import MISSING_INTRINSICS, FrameRef, Intrinsics, Reject
from distillery.ingest.settings import DEFAULTS

log = logging.getLogger(__name__)

AUTO = "auto"  # the layout setting that detects each folder's layout (datasets.*.layout's default)


@dataclass
class ReaderOptions:
    """Per-dataset settings from the config entry; None means "the layout's default"."""

    depth_scale: float | None = None  # raw depth units per metre (PNG) or divisor (npy)
    intrinsics: Intrinsics | None = None  # used when the dataset carries none
    max_pair_dt: float = DEFAULTS.max_pair_dt  # seconds between paired RGB and depth (TUM)


@dataclass
class IndexResult:
    frames: list[FrameRef] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def extend(self, other: "IndexResult") -> None:
        self.frames.extend(other.frames)
        self.rejects.extend(other.rejects)
        self.warnings.extend(other.warnings)


def frame_key(dataset: str, sequence: str, frame_id: str) -> str:
    return f"{dataset}/{sequence}/{frame_id}"


def unpaired(dataset: str, sequence: str, frame_id: str, file: Path, missing: str) -> Reject:
    """A reject for a frame whose partner file (`missing`: "rgb" or "depth") is absent."""
    return Reject(frame_key(dataset, sequence, frame_id), str(file), missing, f"unpaired frame: no {missing} for this file")


def resolve_intrinsics(found: Intrinsics | None, options: ReaderOptions, where: Path, result: IndexResult) -> Intrinsics | None:
    """Intrinsics from the dataset, else from config (with a warning), else None."""
    if found is not None:
        return found
    if options.intrinsics is not None:
        msg = f"{where}: dataset has no intrinsics; using the ones from config {options.intrinsics.as_list()}"
        log.warning(msg)
        result.warnings.append(msg)
        return options.intrinsics
    return None


def apply_index_checks(result: IndexResult) -> IndexResult:
    """Move frames without intrinsics or with a repeated timestamp into rejects.

    Of frames sharing a timestamp in a sequence, all are rejected: which one
    is right cannot be told, and keeping one would be a silent choice.
    """
    by_stamp: dict[tuple[str, str, float], list[FrameRef]] = defaultdict(list)
    for ref in result.frames:
        if ref.timestamp is not None:
            by_stamp[(ref.dataset, ref.sequence, ref.timestamp)].append(ref)
    duplicated = {id(r) for refs in by_stamp.values() if len(refs) > 1 for r in refs}
    kept = []
    for ref in result.frames:
        if ref.intrinsics is None:
            result.rejects.append(Reject(ref.key, ref.rgb, "intrinsics", MISSING_INTRINSICS))
        elif id(ref) in duplicated:
            result.rejects.append(Reject(ref.key, ref.rgb, "timestamp", f"duplicate timestamp {ref.timestamp!r} in sequence {ref.sequence}"))
        else:
            kept.append(ref)
    result.frames = kept
    return result
