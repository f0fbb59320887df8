"""Frame selection over one packed shard: which of its frames the teachers label, and why.

Frames are grouped by sequence in the shard's order. Camera poses come from
the sequence folder's `poses.txt` (`id tx ty tz qx qy qz qw`, the native and
synthetic layouts), found beside the frame's source image
(`<sequence>/rgb/<id>.png`); where a sequence has none, or not for every
frame, novelty comes from the images and ToF depth. The result is a JSON
file per shard (`results/select/<shard>.json`) that the teacher jobs read
and `selection_index` gathers beside the manifest (`selection.jsonl`).
"""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np

from distillery.atomic import write_text_atomic
from distillery.select.novelty import (SelectSettings, change_from_frames, change_from_poses, read_poses,
                                       select_sequence)


def _poses_for(sources: list[str]) -> np.ndarray | None:
    """Camera-to-world poses [N, 4, 4] of frames from their source image paths, or None if any is missing."""
    if not sources or not all(sources):
        return None
    poses_file = Path(sources[0]).parent.parent / "poses.txt"
    if not poses_file.is_file():
        return None
    poses = read_poses(poses_file)
    ids = [Path(s).stem for s in sources]
    if not all(i in poses for i in ids):
        return None
    return np.stack([poses[i] for i in ids])


def select_shard(shard: str, settings: SelectSettings) -> dict:
    """Per frame of the shard: selected, novelty, reason and what the change was measured from."""
    import hdf5plugin  # noqa: F401  (the shard's compression filters)

    with h5py.File(shard, "r") as f:
        keys = list(f["key"].asstr()[:])
        sequences = list(f["dataset"].asstr()[:]), list(f["sequence"].asstr()[:])
        sources = list(f["rgb_source"].asstr()[:]) if "rgb_source" in f else [""] * len(keys)
        groups: dict[tuple[str, str], list[int]] = {}
        for i, key in enumerate(zip(*sequences)):
            groups.setdefault(key, []).append(i)
        frames = [None] * len(keys)
        for (dataset, sequence), rows in groups.items():
            poses = _poses_for([sources[i] for i in rows])
            if poses is not None:
                change, source = change_from_poses(poses, settings.translation_m, settings.rotation_deg), "poses"
            else:
                change = change_from_frames([f["rgb"][i] for i in rows], [f["tof_depth"][i] for i in rows],
                                            settings.depth_weight)
                source = "frames"
            choice = select_sequence(change, settings, source)
            for j, i in enumerate(rows):
                frames[i] = {"key": keys[i], "selected": bool(choice.selected[j]),
                             "novelty": round(float(choice.novelty[j]), 4), "reason": choice.reasons[j],
                             "source": source}
    selected = sum(fr["selected"] for fr in frames)
    return {"shard": Path(shard).name.split(".")[0], "settings": settings.__dict__, "frames": frames,
            "selected": selected, "total": len(frames)}


def write_selection(shard: str, out: str, settings: SelectSettings) -> dict:
    result = select_shard(shard, settings)
    write_text_atomic(out, json.dumps(result, indent=1) + "\n")
    return result


def selected_mask(selection_json: str | None, keys: list[str]) -> np.ndarray | None:
    """The teacher runner's view of a selection file: a bool per shard frame (None: label every frame)."""
    if not selection_json:
        return None
    frames = {fr["key"]: fr["selected"] for fr in json.loads(Path(selection_json).read_text())["frames"]}
    missing = [k for k in keys if k not in frames]
    if missing:
        raise ValueError(f"{selection_json}: no selection for frames {missing[:3]} of the shard; re-run select")
    return np.array([frames[k] for k in keys], bool)


def gather(selection_files: list[str], out: str) -> dict:
    """One JSON line per frame of every shard (key, selected, novelty, reason, source) beside the manifest."""
    lines, selected, total = [], 0, 0
    for path in sorted(selection_files):
        data = json.loads(Path(path).read_text())
        lines += [json.dumps(fr | {"shard": data["shard"]}) for fr in data["frames"]]
        selected, total = selected + data["selected"], total + data["total"]
    write_text_atomic(out, "".join(line + "\n" for line in lines))
    return {"selected": selected, "total": total}
