"""Split assignment per sequence and the cutting of the frame index into shards.

Neighbouring frames of a sequence are near copies, so splits are assigned to
whole sequences, never to single frames. Both the split and the shard names
are stable under added data:

- a sequence's split is drawn from a hash of (seed, dataset, sequence)
  alone, so adding or removing other sequences never moves it; the
  fractions hold in expectation (a dataset of few sequences may leave a
  split empty: the plan warns, and a dataset's `split` setting decides);
- shards are cut per sequence (consecutive runs of at most
  frames_per_shard frames, so frames appended to a sequence only change
  its last shard) and named by a hash of their frame list (file paths
  reduced to file names), so an unchanged shard keeps its name, its packed
  file and its teacher labels, and new data only adds shards. Files
  replaced in place under the same names are not seen: re-pack them with
  `snakemake --forcerun pack_shard`.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import OrderedDict, deque
from itertools import compress, repeat
from operator import itemgetter, ne, setitem
from pathlib import Path

from distillery.atomic import atomic_files, read_jsonl, write_text_atomic
from distillery.ingest.settings import SHARDING

log = logging.getLogger(__name__)

PLAN_FILE = "shards.json"
SHARD_PATTERN = r"shard-[0-9a-f]{16}"  # what plan_shards names shards (the workflow's wildcard constraint)


def unit_hash(*parts) -> float:
    """A number in [0, 1) that depends only on `parts` (SHA-256, not Python's salted hash)."""
    digest = hashlib.sha256("\0".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def _split_rank(split: str) -> tuple[int, str]:
    order = ("train", "val", "test")
    return (order.index(split) if split in order else len(order), split)


def sequence_split(dataset: str, sequence: str, fractions: dict[str, float], seed: int) -> str:
    """The split of one sequence: a function of (seed, dataset, sequence) and the fractions only.

    Splits are laid out on [0, 1) in a fixed order (train, val, test, then others by name), not
    in the config's key order, so rewriting the config (YAML tools sort keys) moves no sequence."""
    splits = [(s, fractions[s]) for s in sorted(fractions, key=_split_rank) if fractions[s] > 0]
    if not splits:
        raise ValueError(f"split fractions {fractions}: at least one must be positive")
    u = unit_hash(seed, dataset, sequence) * sum(f for _, f in splits)
    for split, fraction in splits:
        if u < fraction:
            return split
        u -= fraction
    return splits[-1][0]


def assign_splits(seq_sizes: dict[str, int], fractions: dict[str, float], seed: int, salt: str) -> dict[str, str]:
    """Map each sequence of dataset `salt` to its split (sizes are not consulted: see sequence_split)."""
    return {seq: sequence_split(salt, seq, fractions, seed) for seq in seq_sizes}


# Fields of an index row that hold file paths: the name sees only their file names, so moving a
# dataset folder (or the whole project) renames no shard and re-packs nothing.
PATH_FIELDS = ("rgb", "depth", "confidence", "truth_depth", "truth_semantics")


# One encoder for every row: `json.dumps(row, sort_keys=True)` builds a new one per call, which at
# a million rows costs more than the encoding itself. Same output.
_ENCODE = json.JSONEncoder(sort_keys=True).encode
_BOUNDARY = "}, {"  # between two rows of an encoded list of rows


def _name_text(row: dict) -> str:
    """The row as the shard name sees it: every field, file paths reduced to file names."""
    return _ENCODE({k: Path(v).name if k in PATH_FIELDS and v else v for k, v in row.items()}) + "\n"


def encode_rows(rows: list[dict]) -> str:
    """The rows as written, one sorted-key JSON row a line (`json.dumps(row, sort_keys=True)`).

    The list is encoded in one call (a call per row costs more than its encoding) and cut at the
    row boundaries: the ", " between two rows is the one place the text has "}, {" unless a value
    holds it too, so exactly len(rows) - 1 of them means they are the boundaries; otherwise the
    rows are encoded one by one."""
    if not rows:
        return ""
    inner = _ENCODE(rows)[1:-1]
    if inner.count(_BOUNDARY) == len(rows) - 1:
        return inner.replace(_BOUNDARY, "}\n{") + "\n"
    return "".join([_ENCODE(r) + "\n" for r in rows])


def _folders(values: list) -> set[str] | None:
    """The folders (text up to the last "/", non-empty) of one path field's values, or None when one
    is not a string or its `Path.name` is not the text after the last "/" ("", ".", ".." or a
    trailing "/"). String and set operations over all values at once: no Python step per value."""
    if not set(map(type, values)) <= {str}:
        return None
    joined = "\0" + "\0".join(values) + "\0"
    if joined.count("\0") != len(values) + 1:
        return None  # a NUL inside a value: the rows' own Path.name decides
    if "/\0" in joined or (".\0" in joined and any(bad in joined for bad in ("/.\0", "/..\0", "\0.\0", "\0..\0"))):
        return None
    first = values[0][: values[0].rfind("/") + 1]
    if joined.count("\0" + first) == len(values) and joined.count("/") == first.count("/") * len(values):
        return {first} if first else set()  # every value starts with `first` and has no "/" after it
    return {head + sep for head, sep in set(map(itemgetter(0, 1), map(str.rpartition, values, repeat("/"))))
            if head or sep}


def _cut_folders(rows: list[dict], text: str) -> str | None:
    """`text` (the rows as written, one sorted-key JSON row a line) with the folders of the path
    fields cut off: the name text without encoding the rows again. JSON encodes a string character
    by character, so the encoded folder is a prefix of the encoded path; folders are cut longest
    first, so that a folder inside another is cut before its parent. None for values whose
    `Path.name` is not the text after the last "/" (not a string; "", ".", ".." or a trailing "/")."""
    cuts = set()
    for k in PATH_FIELDS:
        values = list(filter(None, map(dict.get, rows, repeat(k))))
        if not values:
            continue
        folders = _folders(values)
        if folders is None:
            return None
        cuts.update((k, folder) for folder in folders)
    for k, folder in sorted(cuts, key=lambda c: -len(c[1])):
        text = text.replace(f'"{k}": "{_ENCODE(folder)[1:-1]}', f'"{k}": "')
    return text


def shard_name(rows: list[dict], text: str | None = None) -> str:
    """A shard's name: a hash of its frame list (every field, split included, paths as file names),
    so the same frames give the same name. `text`, the frame list as written, spares encoding the
    rows a second time (see `_cut_folders`)."""
    named = _cut_folders(rows, text) if text is not None else None
    if named is None:
        named = "".join(map(_name_text, rows))
    return "shard-" + hashlib.sha256(named.encode()).hexdigest()[:16]


def read_index(path: str, block: int = 1 << 26) -> list[dict]:
    """The rows of a frame index (jsonl), decoded a block of lines (64 MiB) per call (about a third
    faster than line by line, and without the whole file's text in memory at once); a bad line is
    reported by `read_jsonl`, which names it."""
    rows: list[dict] = []
    with open(path) as fh:
        while True:
            text = fh.read(block) + fh.readline()  # whole lines
            if not text:
                return rows
            try:
                rows += json.loads("[" + text.strip().replace("\n", ",") + "]")
            except json.JSONDecodeError:  # blank lines, or a bad one
                lines = [line for line in text.splitlines() if line.strip()]
                try:
                    rows += json.loads("[" + ",".join(lines) + "]")
                except json.JSONDecodeError:
                    return read_jsonl(path)


def group_by_sequence(frames: list[dict]) -> "OrderedDict[tuple[str, str], list[dict]]":
    """The frames of each (dataset, sequence), in index order. An index lists a sequence's frames
    together, so the frames are taken run by run (where the key changes), not one by one."""
    groups: OrderedDict[tuple[str, str], list[dict]] = OrderedDict()
    if not frames:
        return groups
    keys = list(map(itemgetter("dataset", "sequence"), frames))
    starts = [0, *compress(range(1, len(keys)), map(ne, keys[1:], keys[:-1])), len(keys)]
    for start, end in zip(starts[:-1], starts[1:]):
        groups.setdefault(keys[start], []).extend(frames[start:end])
    return groups


def _sequence_splits(groups, fractions: dict[str, float], seed: int, split_overrides: dict[str, str]) -> dict:
    """(dataset, sequence) -> split, dataset by dataset in index order."""
    per_dataset: dict[str, dict[str, int]] = {}
    for (dataset, seq), items in groups.items():
        per_dataset.setdefault(dataset, {})[seq] = len(items)
    seq_split = {}
    for dataset, sizes in per_dataset.items():
        if dataset in split_overrides:
            mapping = {seq: split_overrides[dataset] for seq in sizes}
        else:
            mapping = assign_splits(sizes, fractions, seed, dataset)
        seq_split.update({(dataset, seq): split for seq, split in mapping.items()})
    return seq_split


def plan_shards(index_files: list[str], out_dir: str, frames_per_shard: int, fractions: dict[str, float],
                seed: int = SHARDING.seed, split_overrides: dict[str, str] | None = None) -> dict:
    """Write `<out_dir>/shards.json` and one `<shard>.jsonl` frame list per shard.

    `split_overrides` maps a dataset name to the split all of its sequences
    go to (e.g. a held-out test dataset). Shard lists are written (and fsynced) in the background
    while the next ones are encoded; they take their names only once every shard is named and
    none is a duplicate.
    """
    if frames_per_shard < 1:
        raise ValueError(f"frames_per_shard must be >= 1, got {frames_per_shard}")
    groups = group_by_sequence([fr for path in index_files for fr in read_index(path)])
    seq_split = _sequence_splits(groups, fractions, seed, split_overrides or {})
    n_groups, names, summary = len(groups), [], {}
    out = Path(out_dir)
    with atomic_files(out) as put:
        for key in sorted(groups):
            rows, split = groups.pop(key), seq_split[key]  # popped: a written shard's rows are freed
            deque(map(setitem, rows, repeat("split"), repeat(split)), maxlen=0)  # rows are this call's own
            summary[split] = summary.get(split, 0) + len(rows)
            for i in range(0, len(rows), frames_per_shard):
                shard = rows[i:i + frames_per_shard]
                text = encode_rows(shard)
                names.append(shard_name(shard, text))
                put(f"{names[-1]}.jsonl", text)
        if len(set(names)) != len(names):
            raise ValueError("two shards have the same frames: a frame appears twice in the indexes")
    for split in fractions:
        if fractions[split] > 0 and not summary.get(split):
            log.warning("split %r has no frames: too few sequences (%d) for the fractions %s; "
                        "set a dataset's 'split' in the config to choose", split, n_groups, fractions)
    plan = {"shards": names, "frames": sum(summary.values()), "frames_per_shard": frames_per_shard,
            "splits": summary, "sequence_splits": {f"{d}/{s}": v for (d, s), v in seq_split.items()}}
    write_text_atomic(out / PLAN_FILE, json.dumps(plan, indent=1, sort_keys=True) + "\n")
    return plan


_PLANS: dict[tuple, list[str]] = {}


def shard_names(plan_dir: str) -> list[str]:
    """Shard names of a written plan (what the Snakemake checkpoint reads).

    Input functions ask for them once per job: the parsed list is kept per (path, size, mtime), so a
    DAG of thousands of jobs reads and parses shards.json once, and a rewritten plan is read again."""
    path = Path(plan_dir) / PLAN_FILE
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _PLANS:
        with open(path) as fh:
            _PLANS[key] = json.load(fh)["shards"]
    return list(_PLANS[key])
