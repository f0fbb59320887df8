"""`distillery synth`: write a procedural synthetic RGB-D world with full ground truth.

The project's main CLI adds this subcommand with `register(subparsers)` and
then calls `args.func(args)`, which returns the exit status.
"""

from __future__ import annotations

import argparse
import sys

from distillery.framesize import HEIGHT, WIDTH
from distillery.synth.scene import FAMILIES
from distillery.synth.world import generate_world

DESCRIPTION = """\
Render a synthetic indoor RGB-D world on the CPU: sequences of a robot camera
moving down a corridor or round a room, with RGB, simulated ToF depth and
confidence (with the real sensor's failure modes: polished floor, glass,
range limit, dark surfaces, flying pixels, noise) and ground truth (true
z-depth, 6-class semantics, instance ids, intrinsics, camera poses).
Each (family, seed) is one domain; the output is bit-identical for the same
arguments, and re-running into the same --out resumes or does nothing."""

EPILOG = """\
output layout:
  OUT/world.json                       written last: marks a complete world
  OUT/<family>-s<seed>-<NN>/rgb/*.png  + depth/*.npy, confidence/*.npy,
      intrinsics.json, timestamps.txt, poses.txt,
      truth/depth/*.npy, truth/semantics/*.png, truth/instances/*.png

example:
  distillery synth --out data/synth/corridor-s0 --family corridor --seed 0 --sequences 4 --frames 300"""


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _size(text: str) -> int:
    value = int(text)
    if value < 16:
        raise argparse.ArgumentTypeError(f"must be >= 16 pixels, got {value}")
    return value


def _seed(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def register(subparsers) -> argparse.ArgumentParser:
    """Add the "synth" subcommand to an argparse subparsers object."""
    parser = subparsers.add_parser(
        "synth", help="render a procedural synthetic RGB-D world with ground truth",
        description=DESCRIPTION, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, metavar="DIR",
                        help="output folder of the world (created; an existing complete world with the same "
                             "arguments is left as is, a partial one is completed)")
    parser.add_argument("--family", choices=FAMILIES, default="corridor",
                        help="scene family: long corridors with glazed offices, or rooms with windows "
                             "(default: %(default)s)")
    parser.add_argument("--seed", type=_seed, default=0,
                        help="world seed (>= 0): picks camera, ToF sensor, style and scenes; different seeds "
                             "act as different domains (default: %(default)s)")
    parser.add_argument("--sequences", type=_positive, default=2,
                        help="number of sequences, each a different scene of the world (default: %(default)s)")
    parser.add_argument("--frames", type=_positive, default=100,
                        help="frames per sequence, at 30 Hz (default: %(default)s)")
    parser.add_argument("--height", type=_size, default=HEIGHT, help="image height in pixels (default: %(default)s)")
    parser.add_argument("--width", type=_size, default=WIDTH, help="image width in pixels (default: %(default)s)")
    parser.add_argument("--workers", type=_positive, default=1,
                        help="processes rendering frames in parallel; the output does not depend on it "
                             "(default: %(default)s)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """Generate the world described by `args`; print a one-line summary; return the exit status."""
    try:
        summary = generate_world(args.out, args.family, args.seed, args.sequences, args.frames,
                                 height=args.height, width=args.width, progress=not args.quiet,
                                 workers=getattr(args, "workers", 1))
    except (FileExistsError, ValueError) as exc:
        print(f"distillery synth: error: {exc}", file=sys.stderr)
        return 2
    speed = f", {summary['ms_per_frame']:.1f} ms/frame" if summary["ms_per_frame"] else ""
    print(f"synth: wrote {summary['frames_written']} of {summary['frames_total']} frames "
          f"({summary['frames_skipped']} already there) to {summary['out_dir']}; "
          f"mean ToF invalid share {summary['tof_invalid_share']:.3f}{speed}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run `synth` on its own (python -m distillery.synth.cli ...), without the project's main CLI."""
    parser = argparse.ArgumentParser(prog="distillery")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
