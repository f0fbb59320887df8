"""TUM RGB-D benchmark sequences (https://cvg.cit.tum.de/data/datasets/rgbd-dataset)::

    rgbd_dataset_freiburg1_xyz/
        rgb.txt, depth.txt     "timestamp filename" lines, '#' comments
        rgb/1305031102.175304.png
        depth/1305031102.160407.png   uint16, 5000 units per metre; 0 = invalid
        associations.txt       optional: "t_rgb rgb_file t_depth depth_file" lines

Colour and depth run on separate clocks, so they are associated like TUM's
associate.py: one-to-one, closest timestamps first, at most
`options.max_pair_dt` seconds apart. rgb.txt + depth.txt are preferred when
present (they list every file, so leftovers can be reported);
associations.txt is used otherwise. TUM ships no intrinsics file.
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
EXPECTS = "rgb.txt and depth.txt (or associations.txt) of 'timestamp filename' lines"
PNG_SCALE = 5000.0  # TUM depth PNGs: 5000 units per metre


@dataclass
class Entry:
    """One listed file: its timestamp (as number and as written) and absolute path."""

    stamp: float
    text: str
    path: Path


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
    return Entry(value, stamp, target)


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
                       result: IndexResult) -> list[tuple[str, Entry, Entry]]:
    """Pairs given by associations.txt, still held to `options.max_pair_dt`."""
    out = []
    for n, fields in _lines(path):
        if len(fields) < 4:
            result.rejects.append(Reject(frame_key(dataset, sequence, f"{path.name}:{n}"), str(path), "rgb",
                                         f"{path.name} line {n}: want 't_rgb rgb_file t_depth depth_file'"))
            continue
        rgb = _entry(path, n, fields[0], fields[1], "rgb", dataset, sequence, result)
        depth = _entry(path, n, fields[2], fields[3], "depth", dataset, sequence, result)
        if rgb is None or depth is None:
            continue
        gap = abs(rgb.stamp - depth.stamp)
        if gap > options.max_pair_dt:
            result.rejects.append(_no_depth(dataset, sequence, rgb.text, rgb, gap, options.max_pair_dt))
        else:
            out.append((rgb.text, rgb, depth))
    return out


def read_sequence(folder: Path, dataset: str, sequence: str, options: ReaderOptions, root: Path) -> IndexResult:
    """Index one TUM sequence; intrinsics must come from the config."""
    result = IndexResult()
    if (folder / "rgb.txt").is_file() and (folder / "depth.txt").is_file():
        rgb = read_list(folder / "rgb.txt", "rgb", dataset, sequence, result)
        depth = read_list(folder / "depth.txt", "depth", dataset, sequence, result)
        pairs = _pair_lists(rgb, depth, dataset, sequence, options, result)
    else:
        pairs = _read_associations(folder / "associations.txt", dataset, sequence, options, result)
    if not pairs:
        return result
    if options.intrinsics is None:
        result.warnings.append(f"{folder}: TUM sequences carry no intrinsics; set them in the dataset's config "
                               "entry (the published fr1/fr2/fr3 values are in docs/datasets.md)")
    intrinsics = resolve_intrinsics(None, options, folder, result)
    for frame_id, colour, dep in pairs:
        encoding, scale = depth_format(dep.path, PNG_SCALE, options)
        result.frames.append(FrameRef(
            dataset=dataset, sequence=sequence, frame_id=frame_id, rgb=str(colour.path), depth=str(dep.path),
            depth_encoding=encoding, depth_scale=scale, intrinsics=intrinsics, timestamp=colour.stamp, layout=NAME))
    return result
