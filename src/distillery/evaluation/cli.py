"""`distillery evaluate` and `distillery fusion`: thin parsers around evaluation.runner and fusion_io.

    distillery evaluate --checkpoint results/train/V5/best.pt --manifest results/manifest/manifest.h5 \\
        --set rooms --out results/evaluation/V5/rooms.json [--dump-predictions results/evaluation/V5]
    distillery evaluate --checkpoint results/train/V5/best.pt --manifest results/manifest/manifest.h5 \\
        --set rooms corridors --out-dir results/evaluation/V5      # several sets, the student loaded once
    distillery fusion --student s.npy --tof tof.npy --confidence conf.npy --out fused.npz
    distillery fusion --checkpoint best.pt --manifest manifest.h5 --split test --out fused.npz
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from distillery.evaluation.settings import EvalSettings

DEFAULTS = EvalSettings()

EVALUATE_HELP = """Evaluate a student checkpoint on the test split of datasets of a manifest.

Per set, writes OUT (or OUT_DIR/<set>.json for several sets; the evaluation
JSON: every depth metric against truth, valid ToF and the teacher, per range
bin and on ToF-invalid pixels, fused depth against truth and teacher,
segmentation mIoU; each with a 95 % bootstrap interval over sequences) and
OUT's sibling <set>.frames.jsonl (one row per frame). With --dump-predictions
DIR also DIR/<set>.predictions.npz (keys, depth, segmentation argmax, fused),
from which every number can be recomputed with numpy (docs/evaluation.md)."""

FUSION_HELP = """Confidence-gated fusion of student depth with ToF depth.

Per pixel: the ToF where confidence >= 0.5 and 0.05 < d < 10 m, else s x student
with s = median(ToF / student) over those pixels of the frame (s = 1 and the
frame flagged no_trusted when there are none). Either three .npy arrays of one
shape ([H, W], [N, H, W] or [N, 1, H, W]), or a checkpoint run over a manifest
split. OUT is an .npz with fused, scale, no_trusted (and keys, student for a
manifest)."""


def register(sub) -> None:
    p = sub.add_parser("evaluate", help="evaluate a checkpoint on one dataset's test split (JSON + CIs)",
                       description=EVALUATE_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", required=True, help="student checkpoint (best.pt)")
    p.add_argument("--manifest", required=True, help="manifest.h5")
    p.add_argument("--set", required=True, dest="datasets", nargs="+", metavar="SET",
                   help="dataset(s) of the manifest to evaluate on")
    out = p.add_mutually_exclusive_group(required=True)
    out.add_argument("--out", help="evaluation JSON to write, one --set only (frames.jsonl goes beside it)")
    out.add_argument("--out-dir", help="folder for <set>.json and <set>.frames.jsonl of every --set")
    p.add_argument("--dump-predictions", default=None, metavar="DIR", help="also write DIR/<set>.predictions.npz")
    p.add_argument("--version-name", default=None, help="version name in the JSON (default: checkpoint folder)")
    p.add_argument("--bootstrap", type=int, default=DEFAULTS.resamples,
                   help="bootstrap resamples over sequences (default %(default)s)")
    p.add_argument("--seed", type=int, default=DEFAULTS.seed, help="bootstrap seed (default %(default)s)")
    p.add_argument("--batch-size", type=int, default=DEFAULTS.batch_size,
                   help="frames per forward pass (default %(default)s)")
    p.add_argument("--num-workers", type=int, default=DEFAULTS.num_workers, help="DataLoader workers (default %(default)s)")
    p.add_argument("--device", default=DEFAULTS.device, choices=("cpu", "cuda", "auto"),
                   help="device (default %(default)s)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_run_evaluate)

    f = sub.add_parser("fusion", help="fuse student depth with ToF (.npy files or a checkpoint on a manifest)",
                       description=FUSION_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    f.add_argument("--student", help="student depth .npy (file mode)")
    f.add_argument("--tof", help="ToF depth .npy, metres (file mode)")
    f.add_argument("--confidence", help="ToF confidence .npy in [0, 1] (file mode)")
    f.add_argument("--checkpoint", help="student checkpoint (manifest mode)")
    f.add_argument("--manifest", help="manifest.h5 (manifest mode)")
    f.add_argument("--split", default="test", help="manifest split to fuse (default test)")
    f.add_argument("--set", dest="dataset", default=None, help="only this dataset of the manifest")
    f.add_argument("--batch-size", type=int, default=8, help="frames per forward pass (default 8)")
    f.add_argument("--device", default="cpu", choices=("cpu", "cuda"), help="device (default cpu)")
    f.add_argument("--out", required=True, help=".npz to write")
    f.add_argument("--quiet", action="store_true", help="no progress bar")
    f.set_defaults(func=_run_fusion)


def _run_evaluate(args) -> int:
    import torch

    from distillery.evaluation.runner import evaluate

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.bootstrap < 0 or args.batch_size < 1:
        raise ValueError("--bootstrap must be >= 0 and --batch-size >= 1")
    settings = EvalSettings(batch_size=args.batch_size, num_workers=args.num_workers, device=args.device,
                            resamples=args.bootstrap, seed=args.seed, version=args.version_name,
                            progress=not args.quiet)
    if args.out and len(args.datasets) > 1:
        raise ValueError(f"--out names one file but --set names {len(args.datasets)} sets; use --out-dir")
    for dataset in args.datasets:
        out = args.out or str(Path(args.out_dir, f"{dataset}.json"))
        result = evaluate(args.checkpoint, args.manifest, dataset, out, args.dump_predictions, settings)
        print(json.dumps({k: result[k] for k in ("version", "set", "frames", "sequences")} | {"out": out}))
    return 0


def _run_fusion(args) -> int:
    from distillery.evaluation import fusion_io

    files = (args.student, args.tof, args.confidence)
    if all(files) and not (args.checkpoint or args.manifest):
        summary = fusion_io.fuse_files(*files, args.out)
    elif args.checkpoint and args.manifest and not any(files):
        summary = fusion_io.fuse_split(args.checkpoint, args.manifest, args.out, args.split, args.dataset,
                                       args.batch_size, args.device, not args.quiet)
    else:
        raise ValueError("give either --student, --tof and --confidence (.npy files) "
                         "or --checkpoint and --manifest, not a mix")
    print(json.dumps(summary | {"out": args.out}))
    return 0
