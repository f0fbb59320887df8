"""`distillery extract-bag`: a ROS 1 or ROS 2 bag to the native layout, without ROS.

The project's main CLI adds this subcommand with `register(subparsers)`;
`args.func(args)` returns the exit status. A `BagError` (missing topic, no
CameraInfo, no transform, unsupported encoding, cut-off bag) is a
ValueError, which the main CLI prints as one readable line.
"""

from __future__ import annotations

import argparse
import json

from distillery.ingest.bags.extract import BagSettings

DEFAULTS = BagSettings()  # the options' defaults, as a dataset's `bag:` entry's

EPILOG = """\
output layout (native; ingest it with `distillery ingest DIR` or a dataset entry):
  DIR/seq-000/rgb/*.png, depth/*.npy (float32 metres on the colour camera),
      [confidence/*.npy in [0, 1]], intrinsics.json, timestamps.txt
  DIR/extract.json   topics, pairing, dropped frames, transform, confidence mapping

examples:
  distillery extract-bag d435.bag --out data/d435          # RealSense Viewer / librealsense recording
  distillery extract-bag run1.mcap --list-topics           # image and CameraInfo topics, types, counts
  distillery extract-bag run1.mcap --out data/run1 --color-topic /camera/color/image_raw \\
      --depth-topic /camera/depth/image_rect_raw --sequence-seconds 60"""


def register(sub) -> None:
    p = sub.add_parser("extract-bag", help="ROS 1 .bag or ROS 2 bag (MCAP/.db3) to the native layout, without ROS",
                       description="Read colour, depth, CameraInfo and the depth-to-colour transform from a bag, "
                                   "pair colour and depth by header stamp, re-project depth onto the colour camera "
                                   "and write native sequence folders. librealsense bags (RealSense Viewer) need "
                                   "no topic flags: their streams, extrinsics and depth unit are read from the bag.",
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("bag", help="ROS 1 .bag file, ROS 2 bag directory (with metadata.yaml) or a .mcap / .db3 file")
    p.add_argument("--out", help="output folder (replaced when complete); required unless --list-topics")
    p.add_argument("--list-topics", action="store_true", help="print the image and CameraInfo topics and exit")
    p.add_argument("--color-topic", default=None, help="sensor_msgs/Image or CompressedImage colour topic "
                                                        "(default: from a librealsense bag's layout)")
    p.add_argument("--depth-topic", default=None, help="depth topic: Image 16UC1 / mono16 (counts of --depth-unit), "
                                                        "32FC1 (m) or compressedDepth")
    p.add_argument("--color-info-topic", default=None,
                   help="colour CameraInfo (default: image_transport's <ns>/camera_info of the image topic)")
    p.add_argument("--depth-info-topic", default=None, help="depth CameraInfo (default: as for colour)")
    p.add_argument("--depth-unit", type=float, default=None,
                   help="metres per integer depth count (default: the bag's Depth Units, else 0.001)")
    p.add_argument("--confidence-topic", default=None, help="IR or confidence Image registered to depth (optional; "
                                                             "needs --confidence-scale or --confidence-range)")
    p.add_argument("--confidence-scale", type=float, default=None, help="confidence = clip(value * S, 0, 1)")
    p.add_argument("--confidence-range", type=float, nargs=2, default=None, metavar=("LOW", "HIGH"),
                   help="confidence = clip((value - LOW) / (HIGH - LOW), 0, 1)")
    p.add_argument("--trusted-floor", type=float, default=DEFAULTS.trusted_floor,
                   help="warn when confidence trusts less than this share of the valid depth (%(default)s)")
    p.add_argument("--tolerance", type=float, default=DEFAULTS.tolerance,
                   help="max seconds between paired header stamps (%(default)s)")
    p.add_argument("--sequence-seconds", type=float, default=None, help="cut the recording into sequences this long")
    p.add_argument("--extrinsic", default=None,
                   help='depth-to-colour transform JSON {"translation": [x,y,z], "rotation": [x,y,z,w]} '
                        "instead of the bag's own")
    p.add_argument("--registered", action="store_true", help="depth is already aligned to the colour camera")
    p.add_argument("--undistort", action="store_true", help="undistort distorted images instead of refusing them")
    p.add_argument("--tf-topic", default=DEFAULTS.tf_topic, help="static transforms topic (default %(default)s)")
    p.add_argument("--salvage", action="store_true",
                   help="extract the readable prefix of a recording cut short (disk full, power lost)")
    p.add_argument("--settings", default=None, metavar="JSON",
                   help="a dataset's `bag:` config entry as one JSON object (keys as the options, with _); "
                        "its keys override the options (the workflow passes this)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def settings_from_args(args):
    given = json.loads(args.settings) if getattr(args, "settings", None) else {}
    for key, value in given.items():
        if key == "path":
            continue  # the bag itself is the positional argument
        if not hasattr(args, key):
            raise SystemExit(f"extract-bag: --settings has an unknown key {key!r}")
        setattr(args, key, json.dumps(value) if key == "extrinsic" and value is not None else value)

    return BagSettings(
        color_topic=args.color_topic, depth_topic=args.depth_topic, color_info_topic=args.color_info_topic,
        depth_info_topic=args.depth_info_topic, confidence_topic=args.confidence_topic,
        confidence_scale=args.confidence_scale, confidence_range=args.confidence_range,
        trusted_floor=args.trusted_floor, tolerance=args.tolerance, sequence_seconds=args.sequence_seconds,
        extrinsic=json.loads(args.extrinsic) if args.extrinsic else None, registered=args.registered,
        undistort=args.undistort, depth_unit=args.depth_unit, tf_topic=args.tf_topic, salvage=args.salvage)


def run(args) -> int:
    from distillery.ingest.bags.extract import extract_bag
    from distillery.ingest.bags.source import open_bag

    if args.list_topics:
        source = open_bag(args.bag, allow_salvage=args.salvage)
        print(f"{args.bag}: image and CameraInfo topics (name, type, messages)\n{source.listing()}")
        return 0
    if not args.out:
        raise ValueError("extract-bag: --out DIR is required (or --list-topics to see the bag's topics)")
    report = extract_bag(args.bag, args.out, settings_from_args(args), progress=not args.quiet)
    print(json.dumps({k: report[k] for k in ("frames", "sequences", "unpaired_color", "unpaired_depth",
                                             "truncated", "readable_messages", "depth_registration")}))
    return 0
