"""`distillery index | plan-shards | pack-shard | ingest`: the ingest stage's command line.

Each subcommand is a thin parser around a pure function of `distillery.ingest`;
the project's main CLI adds them with `register(subparsers)`. Option defaults
are the workflow's (distillery.ingest.settings, the manifest's compression
level), so a hand run and a workflow job agree.
"""

from __future__ import annotations

import json

from distillery.ingest.readers.base import AUTO
from distillery.ingest.settings import DEFAULTS, FITS, SHARDING
from distillery.manifest.schema import COMPRESSION_LEVEL


def register(sub) -> None:
    """Add the ingest subcommands to an argparse subparsers object."""
    for add in (_add_index, _add_plan, _add_pack, _add_ingest):
        add(sub)


def _optional_float(text: str) -> float | None:
    """A number, or None for `None` / `null` (a config setting left unset)."""
    return None if text in ("None", "null", "") else float(text)


def _add_index(sub) -> None:
    p = sub.add_parser("index", help="index one dataset folder (no pixels decoded)",
                       description="Detect a dataset's layout, pair its RGB and depth files and write a frame "
                                   "index (jsonl) plus the index-stage quarantine report.")
    p.add_argument("--dataset", required=True, help="dataset folder (one sequence or a folder of sequences)")
    p.add_argument("--name", required=True, help="dataset name used in frame keys and the manifest")
    p.add_argument("--layout", default=AUTO, help="native, reference, tum, 7scenes, open3d or auto (default %(default)s)")
    p.add_argument("--depth-scale", type=_optional_float, default=None,
                   help="raw depth units per metre (None or absent: the layout's default)")
    p.add_argument("--intrinsics", default=None,
                   help="JSON {fx,fy,cx,cy,width,height} for datasets without any (null: none)")
    p.add_argument("--max-pair-dt", type=float, default=DEFAULTS.max_pair_dt,
                   help="max seconds between paired RGB and depth (default %(default)s)")
    p.add_argument("--out", required=True, help="frame index to write (jsonl)")
    p.add_argument("--quarantine", required=True, help="quarantine report to write (jsonl)")
    p.set_defaults(func=_run_index)


def _run_index(args) -> int:
    from distillery.ingest.index import index_dataset, reader_options

    options = reader_options(args.depth_scale, json.loads(args.intrinsics) if args.intrinsics else None,
                             args.max_pair_dt)
    result = index_dataset(args.dataset, args.name, args.out, args.quarantine, args.layout, options)
    print(json.dumps(result))
    return 0


def _add_plan(sub) -> None:
    p = sub.add_parser("plan-shards", help="assign splits per sequence and cut the index into shards",
                       description="Read frame indexes, assign train/val/test per sequence and write "
                                   "shards.json plus one frame list per shard into --out.")
    p.add_argument("indexes", nargs="+", help="frame index files (jsonl)")
    p.add_argument("--out", required=True, help="plan folder to write")
    p.add_argument("--frames-per-shard", type=int, default=SHARDING.frames_per_shard,
                   help="frames per shard (default %(default)s)")
    p.add_argument("--splits", default=json.dumps(SHARDING.splits), help="JSON split fractions (default %(default)s)")
    p.add_argument("--split-overrides", default="{}", help="JSON {dataset: split} forcing a dataset's split")
    p.add_argument("--seed", type=int, default=SHARDING.seed,
                   help="seed of the sequence-to-split assignment (default %(default)s)")
    p.set_defaults(func=_run_plan)


def _run_plan(args) -> int:
    from distillery.ingest.shards import plan_shards

    plan = plan_shards(args.indexes, args.out, args.frames_per_shard, json.loads(args.splits), args.seed,
                       json.loads(args.split_overrides))
    print(json.dumps({k: plan[k] for k in ("frames", "splits")} | {"shards": len(plan["shards"])}))
    return 0


def _add_pack_options(p) -> None:
    p.add_argument("--height", type=int, default=DEFAULTS.height, help="stored frame height (default %(default)s)")
    p.add_argument("--width", type=int, default=DEFAULTS.width, help="stored frame width (default %(default)s)")
    p.add_argument("--fit", choices=FITS, default=DEFAULTS.fit,
                   help="centre-crop to the target aspect ratio, or stretch (default %(default)s)")
    p.add_argument("--max-depth", type=float, default=DEFAULTS.max_depth_m,
                   help="depth above this (m) is an invalid pixel; a frame mostly beyond it is absurd "
                        "(default %(default)s)")
    p.add_argument("--compression-level", type=int, default=COMPRESSION_LEVEL, help="Zstd level (default %(default)s)")
    p.add_argument("--trusted-floor", type=float, default=DEFAULTS.trusted_floor,
                   help="warn when confidence trusts less than this share of a dataset's valid depth "
                        "(default %(default)s)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _pack_settings(args):
    from distillery.ingest.pack import PackSettings

    return PackSettings(args.height, args.width, args.fit, args.max_depth, args.compression_level,
                        args.trusted_floor)


def _add_pack(sub) -> None:
    p = sub.add_parser("pack-shard", help="decode, validate and resize one shard into HDF5",
                       description="Decode every frame of a shard's frame list, quarantine bad frames and "
                                   "write the rest into a shard HDF5 file.")
    p.add_argument("--frames", required=True, help="the shard's frame list (jsonl from plan-shards)")
    p.add_argument("--out", required=True, help="shard HDF5 to write")
    p.add_argument("--quarantine", required=True, help="quarantine report to write (jsonl)")
    _add_pack_options(p)
    p.set_defaults(func=_run_pack)


def _run_pack(args) -> int:
    from distillery.ingest.pack import pack_shard

    print(json.dumps(pack_shard(args.frames, args.out, args.quarantine, _pack_settings(args), not args.quiet)))
    return 0


def _add_ingest(sub) -> None:
    p = sub.add_parser("ingest", help="one folder to a manifest in one process (no Snakemake)",
                       description="Index, shard, pack and merge one dataset folder in this process.")
    p.add_argument("dataset", help="dataset folder")
    p.add_argument("--out", required=True, help="output folder (index/, shards/, manifest/)")
    p.add_argument("--name", default=None, help="dataset name (default: the folder name)")
    p.add_argument("--layout", default=AUTO, help="layout, or auto (default %(default)s)")
    p.add_argument("--depth-scale", type=float, default=None, help="raw depth units per metre")
    p.add_argument("--intrinsics", default=None, help="JSON {fx,fy,cx,cy,width,height} fallback")
    p.add_argument("--split", default=None, help="put every sequence into this split")
    p.add_argument("--frames-per-shard", type=int, default=SHARDING.frames_per_shard,
                   help="frames per shard (default %(default)s)")
    p.add_argument("--max-bad-share", type=float, default=DEFAULTS.max_bad_share,
                   help="largest tolerated bad-frame share (default %(default)s)")
    _add_pack_options(p)
    p.set_defaults(func=_run_ingest)


def _run_ingest(args) -> int:
    from distillery.ingest.index import ingest_folder, reader_options

    options = reader_options(args.depth_scale, json.loads(args.intrinsics) if args.intrinsics else None)
    summary = ingest_folder(args.dataset, args.out, args.name, args.layout, options, _pack_settings(args),
                            args.frames_per_shard, split=args.split, max_bad_share=args.max_bad_share,
                            progress=not args.quiet)
    print(f"manifest: {summary['manifest']} ({summary['frames']} frames, {summary['quarantined']} quarantined)")
    return 0
