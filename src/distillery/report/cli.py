"""`distillery report`: the lineage report from every evaluation JSON.

    distillery report --evaluations results/evaluation/*/*.json --lineage lineage.json \\
        --manifest results/manifest/manifest.h5 --checkpoint V1=results/train/V1/best.pt ... \\
        --out-html results/report/lineage.html --out-md results/report/lineage.md
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

EPILOG = """\
--lineage is a JSON object {version: config entry} (the workflow's training.versions, with each
version's datasets resolved), as a string or a file path. An entry's "reference" text (the reference
implementation's figure on real data) fills the "reference, real data" column; "-" without one. Quantization results are read from
DEPLOY_DIR/<version>/quantization.json for the versions that have one.

The page embeds every figure (PNG data URIs) and opens offline; the markdown summary holds the
same tables and links to the page."""


def _checkpoint(text: str) -> tuple[str, str]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected VERSION=PATH, got {text!r}")
    version, path = text.split("=", 1)
    return version, path


def register(sub) -> None:
    """Add the "report" subcommand to an argparse subparsers object."""
    p = sub.add_parser("report", help="write the lineage report (HTML page + markdown summary)",
                       description="Read every evaluation JSON, the lineage config, the manifest and each "
                                   "version's best.pt; write one self-contained HTML page (lineage graph, table "
                                   "with confidence intervals, plots, qualitative panels) and a markdown summary.",
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--evaluations", nargs="+", required=True, metavar="JSON",
                   help="evaluation JSONs (results/evaluation/<version>/<set>.json)")
    p.add_argument("--lineage", required=True, help="JSON object {version: config entry}, or a file holding one")
    p.add_argument("--manifest", required=True, help="manifest.h5 (teacher provenance, panel frames)")
    p.add_argument("--checkpoint", type=_checkpoint, action="extend", nargs="+", default=[], metavar="VERSION=PATH",
                   help="each version's best.pt for the qualitative panels (several, or repeat the option)")
    p.add_argument("--deploy-dir", default=None, help="folder of results/deploy/<version>/quantization.json")
    p.add_argument("--frames", type=int, default=3, help="fixed test frames in the panels (default 3)")
    p.add_argument("--out-html", required=True, help="HTML page to write")
    p.add_argument("--out-md", required=True, help="markdown summary to write")
    p.set_defaults(func=run)


def _lineage(text: str) -> dict:
    path = Path(text)
    if not text.lstrip().startswith("{") and path.is_file():
        text = path.read_text()
    lineage = json.loads(text)
    if not isinstance(lineage, dict) or not all(isinstance(v, dict) for v in lineage.values()):
        raise ValueError("--lineage: expected a JSON object {version: {parent, backbone, ...}}")
    return lineage


def run(args) -> int:
    from distillery.report.build import build_report

    summary = build_report(args.evaluations, _lineage(args.lineage), args.manifest, dict(args.checkpoint),
                           args.out_html, args.out_md, args.deploy_dir, args.frames)
    print(json.dumps(summary))
    return 0
