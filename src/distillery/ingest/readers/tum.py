"""TUM RGB-D benchmark sequences (https://cvg.cit.tum.de/data/datasets/rgbd-dataset)::

    rgbd_dataset_freiburg1_xyz/
        rgb.txt, depth.txt     "timestamp filename" lines, '#' comments
        rgb/1305031102.175304.png
        depth/1305031102.160407.png   uint16, 5000 units per metre; 0 = invalid
        associations.txt       optional: "t_rgb rgb_file t_depth depth_file" lines

When associations.txt is present it is the recorder's own pairing and is
used as written (each pair still held to `options.max_pair_dt`). Otherwise
colour and depth, which run on separate clocks, are associated like TUM's
associate.py: one-to-one, closest timestamps first, at most
`options.max_pair_dt` seconds apart.

The list file (associations.txt or rgb.txt) gives the sequence order.
Stamps that go backwards are reported as warnings and the file's order is
kept: re-sorting would scramble a recording whose clock jumped. Every image
under rgb/ and depth/ that does not become a frame is reported with its
reason, including files no list mentions.

The layout carries neither intrinsics nor a depth unit. 5000 units per
metre is the Freiburg Kinect's scale, the default for the TUM benchmark
itself; recordings from other cameras saved in this layout are usually
millimetres (`--depth-scale 1000`) and always need their own intrinsics.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from distillery.ingest.readers.base import IndexResult, ReaderOptions, frame_key, resolve_intrinsics, unpaired
from distillery.ingest.readers.native import depth_format
from distillery.ingest.frames import FrameRef, Reject

NAME = "tum"
KEEPS_ORDER = True  # the list file is the sequence order
EXPECTS = "rgb.txt and depth.txt (or associations.txt) of 'timestamp filename' lines"
PNG_SCALE = 5000.0  # TUM depth PNGs: 5000 units per metre


@dataclass
class Entry:
    """One listed file: its timestamp (as number and as written) and absolute path."""

    stamp: float
    text: str
    path: Path
    line: int = 0


def matches(folder: Path) -> bool:
    """rgb.txt + depth.txt, or associations.txt."""
    lists = (folder / "rgb.txt").is_file() and (folder / "depth.txt").is_file()
    return lists or (folder / "associations.txt").is_file()


def _lines(path: Path):
    """(line number, fields) of the non-comment lines of a TUM text file."""
    for n, line in enumerate(path.read_text().splitlines(), 1):
        fields = line.split()
        if fields and not fields[0].startswith("#"):
            yield n, fields


def _entry(path: Path, n: int, stamp: str, file: str, field_name: str, dataset: str, sequence: str,
           result: IndexResult) -> Entry | None:
    """The entry of one (timestamp, file) item, or None after recording why it is unusable."""
    try:
        value = float(stamp)
    except ValueError:
        result.rejects.append(Reject(frame_key(dataset, sequence, f"{path.name}:{n}"), str(path), field_name,
                                     f"{path.name} line {n}: malformed timestamp {stamp!r}"))
        return None
    target = path.parent / file
    if not target.is_file():
        result.rejects.append(Reject(frame_key(dataset, sequence, stamp), str(target), field_name,
                                     f"listed in {path.name} line {n} but not found"))
        return None
    return Entry(value, stamp, target, n)


def read_list(path: Path, field_name: str, dataset: str, sequence: str, result: IndexResult) -> list[Entry]:
    """Entries of rgb.txt or depth.txt; malformed lines and missing files become Rejects."""
    entries = []
    for n, fields in _lines(path):
        if len(fields) < 2:
            result.rejects.append(Reject(frame_key(dataset, sequence, f"{path.name}:{n}"), str(path), field_name,
                                         f"{path.name} line {n}: want 'timestamp filename'"))
            continue
        entry = _entry(path, n, fields[0], fields[1], field_name, dataset, sequence, result)
        if entry is not None:
            entries.append(entry)
    return entries


def associate(rgb: list[float], depth: list[float], max_dt: float) -> dict[int, int]:
    """rgb index -> depth index, one-to-one, closest pairs first, none further apart than `max_dt`."""
    order = sorted(range(len(depth)), key=depth.__getitem__)
    stamps = [depth[j] for j in order]
    candidates = []
    for i, t in enumerate(rgb):
        lo, hi = bisect_left(stamps, t - max_dt), bisect_right(stamps, t + max_dt)
        candidates += [(abs(stamps[k] - t), i, order[k]) for k in range(lo, hi) if abs(stamps[k] - t) <= max_dt]
    pairs: dict[int, int] = {}
    used: set[int] = set()
    for _, i, j in sorted(candidates):
        if i not in pairs and j not in used:
            pairs[i] = j
            used.add(j)
    return pairs


def _nearest(stamps: list[float], t: float) -> float | None:
    """Distance from `t` to the closest of the sorted `stamps`."""
    k = bisect_left(stamps, t)
    near = [abs(stamps[j] - t) for j in (k - 1, k) if 0 <= j < len(stamps)]
    return min(near) if near else None


def _no_depth(dataset: str, sequence: str, frame_id: str, entry: Entry, gap: float | None, max_dt: float) -> Reject:
    reject = unpaired(dataset, sequence, frame_id, entry.path, "depth")
    nearest = "no depth at all" if gap is None else f"nearest depth {gap:.3f} s away"
    reject.reason += f" within {max_dt} s ({nearest})"
    return reject


def _frame_ids(rgb: list[Entry]) -> list[str]:
    """The timestamp text of each rgb entry; repeats get a suffix so keys stay unique."""
    seen: Counter[str] = Counter()
    ids = []
    for e in rgb:
        ids.append(e.text if not seen[e.text] else f"{e.text}_{seen[e.text]}")
        seen[e.text] += 1
    return ids


def _pair_lists(rgb: list[Entry], depth: list[Entry], dataset: str, sequence: str, options: ReaderOptions,
                result: IndexResult) -> list[tuple[str, Entry, Entry]]:
    """Associate rgb.txt and depth.txt entries; leftovers on either side become unpaired Rejects.

    Association runs on distinct rgb timestamps, and every rgb line of a
    repeated timestamp gets the same depth, so that all of them reach
    `apply_index_checks` and are rejected there as duplicates.
    """
    distinct = sorted({e.stamp for e in rgb})
    pairs = associate(distinct, [d.stamp for d in depth], options.max_pair_dt)
    match = {distinct[i]: depth[j] for i, j in pairs.items()}
    depth_sorted = sorted(d.stamp for d in depth)
    out = []
    for frame_id, e in zip(_frame_ids(rgb), rgb):
        if e.stamp in match:
            out.append((frame_id, e, match[e.stamp]))
        else:
            result.rejects.append(_no_depth(dataset, sequence, frame_id, e, _nearest(depth_sorted, e.stamp),
                                            options.max_pair_dt))
    used = {id(d) for d in match.values()}
    result.rejects += [unpaired(dataset, sequence, d.text, d.path, "rgb") for d in depth if id(d) not in used]
    return out


def _read_associations(path: Path, dataset: str, sequence: str, options: ReaderOptions,
                       result: IndexResult, mentioned: list[Entry]) -> list[tuple[str, Entry, Entry]]:
    """Pairs given by associations.txt, still held to `options.max_pair_dt`; `mentioned` gets every entry."""
    out, seen = [], Counter()
    for n, fields in _lines(path):
        if len(fields) < 4:
            result.rejects.append(Reject(frame_key(dataset, sequence, f"{path.name}:{n}"), str(path), "rgb",
                                         f"{path.name} line {n}: want 't_rgb rgb_file t_depth depth_file'"))
            continue
        rgb = _entry(path, n, fields[0], fields[1], "rgb", dataset, sequence, result)
        depth = _entry(path, n, fields[2], fields[3], "depth", dataset, sequence, result)
        mentioned += [e for e in (rgb, depth) if e is not None]
        if rgb is None or depth is None:
            continue
        frame_id = rgb.text if not seen[rgb.text] else f"{rgb.text}_{seen[rgb.text]}"  # repeats stay apart
        seen[rgb.text] += 1
        gap = abs(rgb.stamp - depth.stamp)
        if gap > options.max_pair_dt:
            result.rejects.append(_no_depth(dataset, sequence, frame_id, rgb, gap, options.max_pair_dt))
        else:
            out.append((frame_id, rgb, depth))
    return out


def backwards(entries: list[Entry], list_name: str, where: Path) -> list[str]:
    """Warnings for stamps earlier than the latest one before them (the order is kept, not re-sorted)."""
    notes, latest = [], None
    for e in entries:
        if latest is not None and e.stamp < latest.stamp:
            notes.append(f"{where}/{list_name} line {e.line}: timestamp {e.text} is earlier than {latest.text} "
                         f"(line {latest.line}); frames keep the file's order")
        if latest is None or e.stamp >= latest.stamp:
            latest = e
    return notes


def orphans(folder: Path, mentioned: set[Path], lists: str, dataset: str, sequence: str) -> list[Reject]:
    """Rejects for images under rgb/ and depth/ that no list file mentions."""
    out = []
    for field_name in ("rgb", "depth"):
        sub = folder / field_name
        files = sorted(p for p in sub.iterdir() if p.is_file() and not p.name.startswith(".")) if sub.is_dir() else []
        for path in files:
            if path.resolve() not in mentioned:
                out.append(Reject(frame_key(dataset, sequence, path.stem), str(path), field_name,
                                  f"{field_name} image not listed in {lists}, so it has no partner"))
    return out


def read_sequence(folder: Path, dataset: str, sequence: str, options: ReaderOptions, root: Path) -> IndexResult:
    """Index one TUM-layout sequence; intrinsics must come from the config or --intrinsics."""
    result = IndexResult()
    if (folder / "associations.txt").is_file():
        lists, mentioned = "associations.txt", []
        pairs = _read_associations(folder / "associations.txt", dataset, sequence, options, result, mentioned)
        ordered = [c for _, c, _ in pairs]
    else:
        lists = "rgb.txt or depth.txt"
        rgb = read_list(folder / "rgb.txt", "rgb", dataset, sequence, result)
        depth = read_list(folder / "depth.txt", "depth", dataset, sequence, result)
        mentioned, ordered = rgb + depth, rgb
        pairs = _pair_lists(rgb, depth, dataset, sequence, options, result)
    result.warnings += backwards(ordered, "associations.txt" if lists == "associations.txt" else "rgb.txt", folder)
    known = {e.path.resolve() for e in mentioned} | {Path(r.file).resolve() for r in result.rejects if r.file}
    result.rejects += orphans(folder, known, lists, dataset, sequence)
    if not pairs:
        return result
    if options.intrinsics is None:
        result.warnings.append(f"{folder}: the TUM layout carries no intrinsics; pass your camera's calibration "
                               "with --intrinsics or the dataset's config key datasets[].intrinsics (the Freiburg "
                               "values in docs/datasets.md fit only the TUM benchmark's own Kinects)")
    intrinsics = resolve_intrinsics(None, options, folder, result)
    for frame_id, colour, dep in pairs:
        encoding, scale = depth_format(dep.path, PNG_SCALE, options)
        result.frames.append(FrameRef(
            dataset=dataset, sequence=sequence, frame_id=frame_id, rgb=str(colour.path), depth=str(dep.path),
            depth_encoding=encoding, depth_scale=scale, intrinsics=intrinsics, timestamp=colour.stamp, layout=NAME))
    return result
