"""`distillery select`: which frames of a shard the teachers label; `distillery select-index`: all shards' choices.

    distillery select --shard results/shards/shard-0123.h5 --share 0.2 --out results/select/shard-0123.json
    distillery select-index --selections results/select/*.json --out results/manifest/selection.jsonl
"""

from __future__ import annotations

import argparse
import json

from distillery.select.novelty import SelectSettings

EPILOG = """\
Novelty is the change from one frame to the next, summed along the sequence: camera motion where the
sequence folder has poses.txt (translation / --translation-m + rotation / --rotation-deg), else the
change of a small grey image plus that of log ToF depth. --share labels about that share of each
sequence at equal steps of novelty; --threshold labels a frame once that much novelty has built up
since the last labelled one. Every sequence keeps its first frame. Unselected frames stay in the
manifest without teacher labels and train on the ToF fallback of the hybrid target."""


def register(sub) -> None:
    """Add the "select" and "select-index" subcommands to an argparse subparsers object."""
    p = sub.add_parser("select", help="choose the frames of a shard the teachers label (novelty)",
                       description="Write a JSON with, per frame of the shard, whether the teachers label it, its "
                                   "novelty and the reason.", epilog=EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--shard", required=True, help="a packed shard (results/shards/<shard>.h5)")
    p.add_argument("--out", required=True, help="the selection JSON to write")
    how = p.add_mutually_exclusive_group(required=True)
    how.add_argument("--share", type=float, help="label about this share (0-1] of each sequence's frames")
    how.add_argument("--threshold", type=float, help="label a frame once this much novelty has built up")
    p.add_argument("--translation-m", type=float, default=SelectSettings.translation_m,
                   help="camera translation counting as 1 (default %(default)s m)")
    p.add_argument("--rotation-deg", type=float, default=SelectSettings.rotation_deg,
                   help="camera rotation counting as 1 (default %(default)s degrees)")
    p.add_argument("--depth-weight", type=float, default=SelectSettings.depth_weight,
                   help="ToF-depth change next to image change (default %(default)s)")
    p.set_defaults(func=_run_select)
    q = sub.add_parser("select-index", help="gather every shard's selection into one JSON-lines file",
                       description="One line per frame: key, selected, novelty, reason, source, shard.")
    q.add_argument("--selections", nargs="*", default=[], help="selection JSONs of `distillery select`")
    q.add_argument("--out", required=True, help="the JSON-lines file to write (beside the manifest)")
    q.set_defaults(func=_run_index)


def _run_select(args) -> int:
    from distillery.select.shard import write_selection

    try:
        settings = SelectSettings(share=args.share, threshold=args.threshold, translation_m=args.translation_m,
                                  rotation_deg=args.rotation_deg, depth_weight=args.depth_weight)
    except ValueError as err:
        raise SystemExit(f"distillery select: {err}") from None
    result = write_selection(args.shard, args.out, settings)
    print(json.dumps({"shard": result["shard"], "selected": result["selected"], "total": result["total"]}))
    return 0


def _run_index(args) -> int:
    from distillery.select.shard import gather

    print(json.dumps(gather(args.selections, args.out)))
    return 0
