"""`distillery plan`: the cost of a run before submitting it, as a table or JSON."""

from __future__ import annotations

import json
import shlex
import sys

from distillery.atomic import write_text_atomic
from distillery.plan.estimate import Plan, human_bytes, human_duration

COLUMNS = ("rule", "jobs", "GPU/job", "GPU-h", "CPU-h", "wall", "disk", "source (per unit)")


def _row(r) -> list[str]:
    jobs = f"{r.jobs}" + (f" ({r.estimated_jobs} est.)" if r.estimated_jobs else "")
    name = r.rule + (f"[{r.variant}]" if r.variant else "")
    return [name, jobs, str(r.gpus_per_job), f"{r.gpu_hours:.2f}", f"{r.cpu_hours:.3f}", human_duration(r.wall_s),
            human_bytes(r.disk_bytes), _source(r)]


def _source(r) -> str:
    if r.cost_source.startswith("no command"):
        return r.cost_source
    return f"{r.cost_source} (per {r.unit.rstrip('s')})"


def format_table(plan: Plan) -> str:
    """The plan as a text table: one row per rule, then totals, GPU jobs, partition fit and notes."""
    rows = [list(COLUMNS)] + [_row(r) for r in plan.rules]
    t = plan.totals
    rows.append(["total (estimates)", str(t["jobs"]), "", f"{t['gpu_hours']:.2f}", f"{t['cpu_hours']:.3f}",
                 human_duration(t["wall_s"]), human_bytes(t["disk_bytes"]), ""])
    if t["upper_bound_rules"]:
        rows.append(["upper bounds, apart", str(t["upper_bound_jobs"]), "", f"{t['upper_bound_gpu_hours']:.2f}",
                     f"{t['upper_bound_cpu_hours']:.3f}", human_duration(t["upper_bound_wall_s"]), "",
                     "runtime requests of rows with no record or default"])
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS) - 1)]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths)))
             + "  " + row[-1] for row in rows]
    lines.insert(1, "-" * len(lines[0].rstrip()))
    lines.insert(len(lines) - (2 if t["upper_bound_rules"] else 1), "-" * len(lines[0].rstrip()))
    where = f"{plan.slots} jobs at once ({plan.executor})"
    lines += ["", f"wall time: {where}, stages one after another (an upper bound)",
              f"manifest: {human_bytes(t['manifest_bytes'])} expected (merge_manifest outputs)"]
    if t["upper_bound_rules"]:
        lines.append(f"upper bounds (no record or default, the runtime request), not in the estimates: "
                     f"{t['upper_bound_gpu_hours']:.2f} GPU-h and {t['upper_bound_cpu_hours']:.3f} CPU-h, in "
                     f"{', '.join(sorted(set(t['upper_bound_rules'])))}")
    if t["disk_unknown_rules"]:
        lines.append(f"disk unknown for: {', '.join(sorted(set(t['disk_unknown_rules'])))} "
                     "(no outputs on disk, no default)")
    gpu = plan.gpu_jobs()
    lines.append("GPU jobs: " + ("none" if not gpu else f"{t['gpu_jobs']}"))
    for g in gpu:
        name = g["rule"] + (f"[{g['variant']}]" if g["variant"] else "")
        lines.append(f"  {name}: {g['jobs']} x {g['gpus_per_job']} GPU on partition {g['partition'] or '(local)'}")
    if plan.fit_checked:
        where = ", ".join(plan.fit_checked)
        lines.append(f"partition fit ({where}): " + ("every job fits a node" if not plan.misfits else
                                                     f"{sum(m['jobs'] for m in plan.misfits)} jobs fit no node"))
        lines += [f"  {m['rule']} ({m['jobs']} jobs) on {m['partition']}: {m['reason']}" for m in plan.misfits]
    lines += [f"note: {n}" for n in plan.notes]
    return "\n".join(lines)


def register(sub) -> None:
    p = sub.add_parser("plan", help="what a run will cost: jobs, GPU-hours, wall time, disk per rule",
                       description="Dry-run the workflow with your targets, config and profile and estimate, "
                                   "per rule, the jobs, GPUs per job, GPU-hours, CPU-hours, wall time and disk, "
                                   "from the benchmark records of earlier runs (results/benchmarks/) or "
                                   "documented defaults (docs/plan.md). With a Slurm profile, also lists jobs "
                                   "that fit no node of their partition.")
    p.add_argument("targets", nargs="*", help="Snakemake targets (default: the workflow's default target)")
    p.add_argument("--configfile", action="append", default=[], help="workflow config file (repeatable)")
    p.add_argument("--profile", action="append", default=[], help="Snakemake profile, e.g. slurm (repeatable)")
    p.add_argument("-d", "--directory", default=".", help="working directory of the run (default: here)")
    p.add_argument("-s", "--snakefile", default=None, help="Snakefile (default: this project's)")
    p.add_argument("--forceall", action="store_true", help="plan every job, as `snakemake --forceall` would run")
    p.add_argument("--snakemake-args", default="", help="more Snakemake options, one quoted string")
    p.add_argument("--jobs", type=int, default=None, help="jobs at once (default: the profile's `jobs`)")
    p.add_argument("--cores", type=int, default=None, help="local cores (default: the profile's `cores`)")
    p.add_argument("--no-records", action="store_true", help="ignore earlier benchmark records (defaults only)")
    p.add_argument("--defaults", default=None, help="JSON of default costs (default: the packaged defaults.json)")
    p.add_argument("--check-fit", dest="check_fit", action="store_true", default=None,
                   help="ask Slurm whether jobs fit their partition (default: with a slurm executor)")
    p.add_argument("--no-check-fit", dest="check_fit", action="store_false", help="do not ask Slurm")
    p.add_argument("--json", default=None, metavar="FILE", help="also write the plan as JSON ('-': print JSON only)")
    p.add_argument("--rulegraph", default=None, metavar="SVG", help="also draw the rule graph into this SVG file")
    p.set_defaults(func=run)


def run(args) -> int:
    from distillery.plan.build import make_plan

    extra = (["--forceall"] if args.forceall else []) + shlex.split(args.snakemake_args)
    try:
        plan = make_plan(args.targets, args.configfile, args.profile, args.directory, args.snakefile, extra,
                         args.jobs, args.cores, not args.no_records, args.defaults, args.check_fit)
    except RuntimeError as err:
        print(f"distillery plan: error: {err}", file=sys.stderr)
        return 1
    text = json.dumps(plan.to_dict(), indent=1)
    if args.json == "-":
        print(text)
    else:
        print(format_table(plan))
        if args.json:
            write_text_atomic(args.json, text + "\n")
    if args.rulegraph:
        from distillery.plan.graph import rulegraph_svg

        config = args.configfile[-1] if args.configfile else None
        write_text_atomic(args.rulegraph, rulegraph_svg(args.directory, config, args.snakefile))
    return 0
