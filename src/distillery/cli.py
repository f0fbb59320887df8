"""`distillery <stage> ...`: the command line that the workflow's rules call.

Each stage is a thin parser around a pure function of the package. Errors a
user can fix (bad config, missing folder, too many bad frames) end with one
readable line and exit status 1 instead of a traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

from distillery import __version__


def build_parser() -> argparse.ArgumentParser:
    from distillery.deploy import cli as deploy_cli
    from distillery.plan import cli as plan_cli
    from distillery.student import cli as student_cli
    from distillery.evaluation import cli as evaluation_cli
    from distillery.report import cli as report_cli
    from distillery.ingest import cli as ingest_cli
    from distillery.ingest.bags import cli as bag_cli
    from distillery.manifest import cli as manifest_cli
    from distillery.select import cli as select_cli
    from distillery.synth import cli as synth_cli
    from distillery.teachers import cli as teachers_cli

    parser = argparse.ArgumentParser(prog="distillery", description="Distil foundation-model teachers into a "
                                     "robot perception student: one subcommand per pipeline stage.")
    parser.add_argument("--version", action="version", version=f"distillery {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="<stage>")
    synth_cli.register(sub)
    bag_cli.register(sub)
    plan_cli.register(sub)
    student_cli.register(sub)
    teachers_cli.register(sub)
    evaluation_cli.register(sub)
    report_cli.register(sub)
    deploy_cli.register(sub)
    ingest_cli.register(sub)
    select_cli.register(sub)
    manifest_cli.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    from distillery.ingest.frames import FrameError
    from distillery.manifest.failures import TooManyFailedFrames
    from distillery.manifest.merge import TooManyBadFrames

    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        return args.func(args)
    except (FrameError, TooManyBadFrames, TooManyFailedFrames, FileNotFoundError, ValueError,
            json.JSONDecodeError) as err:
        print(f"distillery {args.command}: error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
