"""Dataset readers: index RGB-D frame folders into `FrameRef`s without decoding pixels.

`read_dataset` accepts a folder that is one sequence, or a folder whose
sub-folders are sequences (each detected on its own). Every reader module
offers `NAME`, `EXPECTS` (one line for error messages), `matches(folder)`
and `read_sequence(folder, dataset, sequence, options, root)`. See
docs/datasets.md for the layouts.
"""

from __future__ import annotations

import logging
from pathlib import Path

from distillery.ingest.readers import native, open3d, reference, sevenscenes, tum
from distillery.ingest.readers.base import AUTO, IndexResult, ReaderOptions, apply_index_checks
from distillery.ingest.readers.native import natural_key
from distillery.ingest.depthscale import check_depth_scale
from distillery.ingest.frames import FrameRef

log = logging.getLogger(__name__)

LAYOUTS = ("native", "reference", "tum", "7scenes", "open3d")

# Detection order: the first match wins. reference and tum folders also have
# rgb/ and depth/ sub-folders, so both are tried before native.
_READERS = {m.NAME: m for m in (reference, tum, native, sevenscenes, open3d)}

__all__ = ["AUTO", "LAYOUTS", "IndexResult", "ReaderOptions", "detect_layout", "read_dataset"]


def _match(folder: Path, layout: str) -> str | None:
    """The layout `folder` holds (the given one, or the first detected for "auto"), else None."""
    if layout != AUTO:
        return layout if _READERS[layout].matches(folder) else None
    return next((name for name, reader in _READERS.items() if reader.matches(folder)), None)


def _nothing_matches(root: Path, layout: str) -> str:
    wanted = _READERS.items() if layout == AUTO else [(layout, _READERS[layout])]
    lines = "\n".join(f"  {name}: {reader.EXPECTS}" for name, reader in wanted)
    return (f"{root}: no known RGB-D layout in this folder or its sub-folders "
            f"(layout={layout!r}). Expected:\n{lines}")


def _check(root: str | Path, layout: str) -> Path:
    if layout != AUTO and layout not in _READERS:
        raise ValueError(f"unknown layout {layout!r}; choose {AUTO!r} or one of {', '.join(LAYOUTS)}")
    path = Path(root).expanduser().resolve()
    if not path.is_dir():
        raise ValueError(f"{path}: dataset folder not found")
    return path


def find_sequences(root: Path, layout: str = AUTO) -> tuple[list[tuple[Path, str]], list[Path]]:
    """(sequence folder, layout) pairs under `root`, and the sub-folders that matched nothing.

    The root itself is the only sequence when it matches; otherwise each
    sub-folder is tried. Raises ValueError when nothing matches.
    """
    own = _match(root, layout)
    if own is not None:
        return [(root, own)], []
    subs = sorted((d for d in root.iterdir() if d.is_dir() and not d.name.startswith(".")),
                  key=lambda d: natural_key(d.name))
    found = [(d, m) for d in subs if (m := _match(d, layout)) is not None]
    if not found:
        raise ValueError(_nothing_matches(root, layout))
    return found, [d for d in subs if d not in {f for f, _ in found}]


def detect_layout(root: str | Path) -> str:
    """The layout of a dataset folder (or of all its sequence sub-folders)."""
    path = _check(root, AUTO)
    sequences, _ = find_sequences(path)
    layouts = sorted({m for _, m in sequences})
    if len(layouts) > 1:
        detail = ", ".join(f"{d.name}: {m}" for d, m in sequences)
        raise ValueError(f"{path}: sequence folders use different layouts ({detail}); "
                         "read_dataset handles this, but no single layout describes the folder")
    return layouts[0]


def _order(ref: FrameRef) -> tuple:
    """Sequence, then timestamp where known, then frame id in natural order."""
    return (natural_key(ref.sequence), ref.timestamp is None, ref.timestamp or 0.0, natural_key(ref.frame_id))


def read_dataset(root: str | Path, name: str, layout: str = AUTO,
                 options: ReaderOptions | None = None) -> IndexResult:
    """Index every frame of a dataset folder; unusable frames come back as rejects, never dropped.

    Frames are sorted by (sequence, timestamp or frame order), except in
    layouts whose reader keeps the recorder's own order (`KEEPS_ORDER`: a
    list file is the sequence order; stamps that go backwards are reported,
    not re-sorted). They then go through `apply_index_checks` (missing
    intrinsics, duplicate timestamps), and a sample of depth images is read
    to stop on a depth scale that is wrong for the dataset as a whole
    (`distillery.ingest.depthscale`).
    """
    path = _check(root, layout)
    options = options or ReaderOptions()
    sequences, skipped = find_sequences(path, layout)
    result = IndexResult()
    if skipped:
        result.warnings.append(f"{path}: ignored sub-folders with no {layout if layout != AUTO else 'known'} "
                               f"layout: {', '.join(d.name for d in skipped)}")
    for folder, found in sequences:
        log.info("indexing %s as %s", folder, found)
        reader = _READERS[found]
        part = reader.read_sequence(folder, name, folder.name, options, path)
        if not getattr(reader, "KEEPS_ORDER", False):
            part.frames.sort(key=_order)
        result.extend(part)
    result = apply_index_checks(result)
    result.warnings += check_depth_scale(result.frames, name, options.depth_scale is not None)
    return result
