"""`distillery merge | info`: the manifest stage's command line.

Thin parsers around `distillery.manifest`; the project's main CLI adds them
with `register(subparsers)`.
"""

from __future__ import annotations

import json

from distillery.ingest.settings import DEFAULTS as INGEST
from distillery.manifest.failures import MAX_FAILED_SHARE
from distillery.manifest.schema import COMPRESSION_LEVEL


def register(sub) -> None:
    """Add the manifest subcommands to an argparse subparsers object."""
    for add in (_add_merge, _add_info):
        add(sub)


def _add_merge(sub) -> None:
    p = sub.add_parser("merge", help="merge shard files into manifest.h5 and manifest.jsonl",
                       description="Copy shard chunks into one manifest, gather every quarantine report and "
                                   "fail when a dataset's bad-frame share passes --max-bad-share.")
    p.add_argument("--shards", nargs="+", required=True, help="shard HDF5 files, in order")
    p.add_argument("--quarantines", nargs="*", default=[], help="quarantine reports of index and pack stages")
    p.add_argument("--layers", nargs="*", default=[], help="layer files (teacher outputs per shard) to merge in")
    p.add_argument("--failures", nargs="*", default=[],
                   help="teacher failure lists, results/teachers/<teacher>/<shard>.failures.jsonl")
    p.add_argument("--max-failed-share", type=float, default=MAX_FAILED_SHARE,
                   help="largest tolerated share of a shard's frames one teacher failed on (default %(default)s)")
    p.add_argument("--out-h5", required=True, help="manifest.h5 to write")
    p.add_argument("--out-jsonl", required=True, help="manifest.jsonl to write")
    p.add_argument("--out-quarantine", required=True, help="combined quarantine report to write")
    p.add_argument("--out-summary", required=True, help="summary JSON to write")
    p.add_argument("--max-bad-share", type=float, default=INGEST.max_bad_share,
                   help="largest tolerated bad-frame share of a dataset (default %(default)s)")
    p.add_argument("--compression-level", type=int, default=COMPRESSION_LEVEL, help="Zstd level (default %(default)s)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_run_merge)


def _run_merge(args) -> int:
    from distillery.manifest.merge import merge_manifest

    summary = merge_manifest(args.shards, args.quarantines, args.out_h5, args.out_jsonl, args.out_quarantine,
                             args.out_summary, args.max_bad_share, args.compression_level, not args.quiet,
                             args.layers, args.failures, args.max_failed_share)
    print(f"manifest: {args.out_h5} ({summary['frames']} frames, {summary['quarantined']} quarantined)")
    return 0


def _add_info(sub) -> None:
    p = sub.add_parser("info", help="summarise a manifest", description="Print counts per split and dataset, "
                       "the frames with metric and with relative teacher depth, labels and boxes, the mean ToF "
                       "valid share, the share of valid depth that confidence trusts (with warnings), and each "
                       "teacher's id, backend, weights hash and the size of the frames it labelled (JSON).")
    p.add_argument("manifest", help="manifest.h5")
    p.set_defaults(func=_run_info)


def _run_info(args) -> int:
    from distillery.manifest import Manifest
    from distillery.manifest.info import manifest_info

    with Manifest(args.manifest) as m:
        print(json.dumps(manifest_info(m), indent=1))
    return 0
