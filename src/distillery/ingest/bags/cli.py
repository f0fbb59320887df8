"""`distillery extract-bag`: a ROS 2 bag (MCAP or .db3) to the native layout, without ROS.

The project's main CLI adds this subcommand with `register(subparsers)`;
`args.func(args)` returns the exit status. A `BagError` (missing topic, no
CameraInfo, no transform, unsupported encoding) is a ValueError, which the
main CLI prints as one readable line.
"""

from __future__ import annotations

import argparse
import json

EPILOG = """\
output layout (native; ingest it with `distillery ingest DIR` or a dataset entry):
  DIR/seq-000/rgb/*.png, depth/*.npy (float32 metres on the colour camera),
      [confidence/*.npy in [0, 1]], intrinsics.json, timestamps.txt
  DIR/extract.json   topics, pairing, dropped frames, transform, confidence mapping

example:
  distillery extract-bag run1.mcap --out data/run1 --color-topic /camera/color/image_raw \\
      --depth-topic /camera/depth/image_rect_raw --sequence-seconds 60"""


def register(sub) -> None:
    p = sub.add_parser("extract-bag", help="ROS 2 bag (MCAP/.db3) to the native layout, without ROS",
                       description="Read colour, depth, CameraInfo and /tf_static from a ROS 2 bag, pair colour "
                                   "and depth by header stamp, re-project depth onto the colour camera and write "
                                   "native sequence folders.",
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("bag", help="bag directory (with metadata.yaml) or a .mcap / .db3 file")
    p.add_argument("--out", required=True, help="output folder (replaced when complete)")
    p.add_argument("--color-topic", required=True, help="sensor_msgs/Image or CompressedImage colour topic")
    p.add_argument("--depth-topic", required=True, help="depth topic: Image 16UC1 (mm) / 32FC1 (m) or compressedDepth")
    p.add_argument("--color-info-topic", default=None, help="colour CameraInfo (default: camera_info beside it)")
    p.add_argument("--depth-info-topic", default=None, help="depth CameraInfo (default: camera_info beside it)")
    p.add_argument("--confidence-topic", default=None, help="IR or confidence Image registered to depth (optional)")
    p.add_argument("--tolerance", type=float, default=0.05, help="max seconds between paired header stamps (0.05)")
    p.add_argument("--sequence-seconds", type=float, default=None, help="cut the recording into sequences this long")
    p.add_argument("--extrinsic", default=None,
                   help='depth-to-colour transform JSON {"translation": [x,y,z], "rotation": [x,y,z,w]} '
                        "instead of /tf_static")
    p.add_argument("--registered", action="store_true", help="depth is already aligned to the colour camera")
    p.add_argument("--undistort", action="store_true", help="undistort distorted images instead of refusing them")
    p.add_argument("--tf-topic", default="/tf_static", help="static transforms topic (default /tf_static)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def settings_from_args(args):
    from distillery.ingest.bags.extract import BagSettings

    return BagSettings(args.color_topic, args.depth_topic, args.color_info_topic, args.depth_info_topic,
                       args.confidence_topic, args.tolerance, args.sequence_seconds,
                       json.loads(args.extrinsic) if args.extrinsic else None, args.registered, args.undistort,
                       args.tf_topic)


def run(args) -> int:
    from distillery.ingest.bags.extract import extract_bag

    report = extract_bag(args.bag, args.out, settings_from_args(args), progress=not args.quiet)
    print(json.dumps({k: report[k] for k in ("frames", "sequences", "unpaired_color", "unpaired_depth",
                                             "truncated", "readable_messages", "depth_registration")}))
    return 0
