"""The demo lineage end to end: wall time of `make demo`'s Snakemake run, per-rule time, CPU time.

Runs the project's whole workflow with the default config (four generated worlds, teachers, the
manifest, nine versions: ten training runs, the evaluation of each on every test set, the deployment
of each: ONNX, INT8, fused graph, model card, Jetson bundle; the report)
in an empty working folder, as `make demo` does on a fresh clone, on --cores cores (2 by default).
Prints and writes:

    wall_s            total wall time of the run
    cpu_s             CPU time of every job (user + system, all child processes)
    jobs_cpu_s        the same from Snakemake's benchmark files (per job)
    cpu_per_wall      cpu_s / wall_s: how busy the cores were (the lineage's parallelism on this machine)
    rules             per rule: jobs and summed wall seconds (Snakemake's benchmark files)
    load_before       1-minute load average before the run: other work sharing the machine inflates wall_s

    .venv/bin/python benchmarks/bench_lineage.py                  # 2 cores, a temporary folder
    .venv/bin/python benchmarks/bench_lineage.py --cores 4 --keep demo-run
"""

from __future__ import annotations

import argparse
import csv
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import report

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def rule_times(workdir: Path) -> dict[str, dict]:
    """Per rule: number of jobs and the sum of their wall seconds, from results/benchmarks/<rule>/."""
    out: dict[str, dict] = {}
    for tsv in sorted((workdir / "results" / "benchmarks").rglob("*.tsv")):
        rule = tsv.relative_to(workdir / "results" / "benchmarks").parts[0]
        with tsv.open() as f:
            rows = list(csv.DictReader(f, delimiter="\t"))
        entry = out.setdefault(rule, {"jobs": 0, "wall_s": 0.0, "cpu_s": 0.0})
        entry["jobs"] += 1
        entry["wall_s"] = round(entry["wall_s"] + sum(float(r["s"]) for r in rows), 1)
        entry["cpu_s"] = round(entry["cpu_s"] + sum(float(r["cpu_time"]) for r in rows), 1)
    return out


def run_demo(workdir: Path, cores: int) -> dict:
    """Run the whole default workflow in workdir; return wall and CPU seconds."""
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    load = os.getloadavg()[0]
    start = time.perf_counter()
    proc = subprocess.run([str(BIN / "snakemake"), "-s", str(ROOT / "Snakefile"), "-d", str(workdir),
                           "--cores", str(cores)], env=env, cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"the demo run failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall_s": round(wall, 1), "cpu_s": round(cpu, 1), "cpu_per_wall": round(cpu / wall, 2),
            "load_before": round(load, 2), "load_after": round(os.getloadavg()[0], 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cores", type=int, default=2, help="cores Snakemake may use (default 2)")
    parser.add_argument("--keep", default=None,
                        help="run in this new or empty folder and keep it (default: a temporary one)")
    args = parser.parse_args()
    if args.keep and Path(args.keep).exists() and any(Path(args.keep).iterdir()):
        # Snakemake would reuse the outputs there and time only what changed: not the demo's cost.
        sys.exit(f"--keep {args.keep}: the folder is not empty; give a new folder or remove it first")
    workdir = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="distillery-demo-"))
    try:
        figures = run_demo(workdir.resolve(), args.cores)
        figures["cores"] = args.cores
        figures["versions"] = len(list((workdir / "results" / "train").iterdir()))
        figures["report"] = (workdir / "results" / "report" / "lineage.html").is_file()
        figures["rules"] = rule_times(workdir)
        figures["jobs_cpu_s"] = round(sum(r["cpu_s"] for r in figures["rules"].values()), 1)
        report("lineage", figures)
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
