"""Ingest stage functions: index a dataset, and run the whole ingest in-process.

The workflow runs index -> plan -> pack (per shard) -> merge as separate
jobs. `ingest_folder` chains the same functions in one process for users
who want a manifest from one folder without Snakemake (and for tests).
"""

from __future__ import annotations

import logging
from pathlib import Path

from distillery.ingest.readers import AUTO, read_dataset
from distillery.ingest.readers.base import ReaderOptions
from distillery.ingest.frames import Intrinsics
from distillery.atomic import write_jsonl_atomic
from distillery.manifest.merge import merge_manifest
from distillery.ingest.pack import PackSettings, pack_shard
from distillery.ingest.settings import DEFAULTS, SHARDING, default_splits
from distillery.ingest.shards import plan_shards

log = logging.getLogger(__name__)


def reader_options(depth_scale: float | None = None, intrinsics: dict | None = None,
                   max_pair_dt: float = DEFAULTS.max_pair_dt) -> ReaderOptions:
    """ReaderOptions from a dataset's config entry."""
    k = Intrinsics(**intrinsics) if intrinsics else None
    return ReaderOptions(depth_scale=depth_scale, intrinsics=k, max_pair_dt=max_pair_dt)


def index_dataset(root: str, name: str, out_index: str, out_quarantine: str, layout: str = AUTO,
                  options: ReaderOptions | None = None) -> dict:
    """Write the frame index (jsonl of FrameRefs) and the index-stage quarantine of one dataset."""
    if not Path(root).is_dir():
        raise FileNotFoundError(f"dataset {name!r}: folder not found: {root}")
    result = read_dataset(root, name, layout=layout, options=options)
    write_jsonl_atomic(out_index, [ref.to_dict() for ref in result.frames])
    write_jsonl_atomic(out_quarantine, [r.to_dict() for r in result.rejects])
    layouts = sorted({ref.layout for ref in result.frames})
    sequences = len({ref.sequence for ref in result.frames})
    for reject in result.rejects:
        log.warning("quarantined %s: %s %s: %s", reject.frame, reject.field, reject.file, reject.reason)
    return {"dataset": name, "frames": len(result.frames), "quarantined": len(result.rejects),
            "sequences": sequences, "layouts": layouts, "warnings": result.warnings}


def ingest_folder(root: str, out_dir: str, name: str | None = None, layout: str = AUTO,
                  options: ReaderOptions | None = None, settings: PackSettings = PackSettings(),
                  frames_per_shard: int = SHARDING.frames_per_shard, fractions: dict[str, float] | None = None,
                  split: str | None = None, max_bad_share: float = DEFAULTS.max_bad_share,
                  progress: bool = True) -> dict:
    """Build manifest.h5 / manifest.jsonl for one dataset folder under `out_dir` (settings left out: the
    workflow's defaults, distillery.ingest.settings; `fractions` None: the default splits)."""
    name = name or Path(root).resolve().name
    out = Path(out_dir)
    index = index_dataset(root, name, str(out / "index" / f"{name}.jsonl"),
                          str(out / "index" / f"{name}.quarantine.jsonl"), layout, options)
    plan = plan_shards([str(out / "index" / f"{name}.jsonl")], str(out / "shards" / "plan"), frames_per_shard,
                       fractions or default_splits(), split_overrides={name: split} if split else None)
    shard_files, quarantines = [], [str(out / "index" / f"{name}.quarantine.jsonl")]
    for shard in plan["shards"]:
        h5, q = out / "shards" / f"{shard}.h5", out / "shards" / f"{shard}.quarantine.jsonl"
        pack_shard(str(out / "shards" / "plan" / f"{shard}.jsonl"), str(h5), str(q), settings, progress)
        shard_files.append(str(h5))
        quarantines.append(str(q))
    manifest_dir = out / "manifest"
    summary = merge_manifest(shard_files, quarantines, str(manifest_dir / "manifest.h5"),
                             str(manifest_dir / "manifest.jsonl"), str(manifest_dir / "quarantine.jsonl"),
                             str(manifest_dir / "summary.json"), max_bad_share, settings.compression_level, progress)
    summary["index"] = index
    return summary
