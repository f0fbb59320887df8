"""`make_plan`: dry-run the user's command and estimate what it will cost.

The steps: read the profile settings Snakemake will use (executor, job
limit, cores), dry-run the command, add the jobs a pending shard-plan
checkpoint will create (estimated shard count, said so), price every rule
from its benchmark records or defaults, and on Slurm ask each partition
whether its jobs fit a node.
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from distillery.plan.costs import load_defaults
from distillery.plan.dryrun import dry_run, parse_job_stats, parse_jobs
from distillery.plan.estimate import Plan, estimate
from distillery.plan.partition_fit import check_jobs
from distillery.plan.selection import apply_selection
from distillery.plan.units import work_sizes
from distillery.plan.whatif import expand_checkpoint


def default_snakefile() -> Path | None:
    """The project's Snakefile (next to src/), else None: Snakemake then looks in the working directory."""
    path = Path(__file__).resolve().parents[3] / "Snakefile"
    return path if path.exists() else None


def profile_settings(profiles: list[str], snakefile: Path | None) -> dict:
    """The settings of the given profiles, then the workflow profile (profiles/default), as Snakemake applies them."""
    from snakemake.cli import get_profile_dir

    files = []
    for name in profiles:
        found = get_profile_dir(name)
        if found is None:
            raise ValueError(f"profile {name!r} not found (a folder with config.yaml, here or in "
                             "~/.config/snakemake); `make setup` links profiles/slurm as `slurm`")
        files.append(found[1])
    workflow_profile = (snakefile.parent if snakefile else Path.cwd()) / "profiles" / "default" / "config.yaml"
    if workflow_profile.exists():
        files.append(workflow_profile)
    settings: dict = {}
    for path in files:
        settings.update(yaml.safe_load(Path(path).read_text()) or {})
    return settings


def load_config(configfiles: list[str], snakefile: Path | None) -> dict:
    """The workflow config as Snakemake builds it, key order included (the order of split fractions
    decides splits): the --configfile settings merged in order, or the template (config/config.yaml)
    when none is given (distillery.workflow.template_configfile: the Snakefile's own choice)."""
    from snakemake.utils import update_config

    from distillery.workflow import template_configfile

    template = template_configfile(snakefile.parent if snakefile else Path.cwd(), configfiles)
    config: dict = {}
    for path in [template] if template else configfiles:
        if Path(path).exists():
            update_config(config, yaml.safe_load(Path(path).read_text()) or {})
    return config


def _limits(settings: dict, jobs: int | None, cores: int | None) -> tuple[str, int, int]:
    executor = str(settings.get("executor", "local"))
    value = cores or settings.get("cores", "all")
    n_cores = (os.cpu_count() or 1) if value == "all" else int(value)
    limit = jobs or int(settings.get("jobs", n_cores))
    return executor, limit, n_cores


def make_plan(targets: list[str] = (), configfiles: list[str] = (), profiles: list[str] = (),
              workdir: str | Path = ".", snakefile: str | Path | None = None, extra_args: list[str] = (),
              jobs: int | None = None, cores: int | None = None, records: bool = True,
              defaults_file: str | Path | None = None, check_fit: bool | None = None) -> Plan:
    """The plan of `snakemake <targets> --configfile ... --profile ... <extra_args>` in `workdir`.

    `records=False` ignores earlier benchmark records (defaults only); `check_fit` asks Slurm whether
    jobs fit their partition's nodes (default: when the profile's executor is slurm).
    """
    workdir = Path(workdir).resolve()
    snakefile = Path(snakefile).resolve() if snakefile else default_snakefile()
    configfiles = [str(Path(c).resolve()) for c in configfiles]
    args = [*targets, *(["--configfile", *configfiles] if configfiles else []),
            *[a for p in profiles for a in ("--profile", p)], *extra_args]
    settings = profile_settings(list(profiles), snakefile)
    executor, limit, n_cores = _limits(settings, jobs, cores)
    config = load_config(configfiles, snakefile)

    text = dry_run(args, workdir, snakefile)
    planned, counts = parse_jobs(text), parse_job_stats(text)
    sizes = work_sizes(config, workdir)
    added, shard_note = expand_checkpoint(args, workdir, snakefile, planned, sizes, config)
    all_jobs = planned + added
    defaults = load_defaults(defaults_file)
    plan = estimate(all_jobs, sizes, workdir, records, defaults, executor, limit, n_cores, {j.key for j in added})
    plan.dry_run_counts = counts
    apply_selection(plan, config)
    if shard_note:
        plan.notes.append(shard_note + f"; {len(added)} jobs added after the checkpoint")
    elif sizes.shard_source and any("shard" in j.wildcards for j in all_jobs):
        plan.notes.append(f"shards: {len(sizes.shard_frames)} from the {sizes.shard_source}")
    if check_fit if check_fit is not None else executor == "slurm":
        plan.misfits, plan.fit_checked, fit_notes = check_jobs(all_jobs)
        plan.notes += fit_notes
    return plan
