"""Per-rule estimates of a dry run: jobs, GPUs, GPU-hours, CPU-hours, wall time and disk.

Wall time of a rule: its jobs run `slots` at a time (the profile's `jobs`
limit on a cluster; cores / threads per job locally), so the rule takes the
longer of its longest job and its summed job time over the slots. The total
wall time adds the rules up, one stage after another: an upper bound when
stages overlap (depth and detect teachers run side by side).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path

from distillery.plan.costs import Cost, device, disk_per_unit, rule_cost
from distillery.plan.dryrun import Job, job_depths
from distillery.plan.units import WorkSizes, job_units, variant


@dataclass
class RuleEstimate:
    """One row of the plan: a rule's jobs on one device, and what they cost."""

    rule: str
    variant: str  # the values of the rule's variant wildcards (a teacher, a version), "" for none
    device: str
    jobs: int
    gpus_per_job: int
    cpus_per_job: int
    partition: str | None
    units: float
    unit: str
    gpu_hours: float
    cpu_hours: float
    job_wall_s: float
    wall_s: float
    disk_bytes: float | None
    cost_source: str
    disk_source: str
    estimated_jobs: int = 0  # jobs added for a checkpoint that has not run yet

    @property
    def upper_bound(self) -> bool:
        """Priced by its runtime request (no record, no default): a bound, not an estimate."""
        return self.cost_source.startswith("no record")


@dataclass
class Plan:
    rules: list[RuleEstimate]
    slots: int
    executor: str
    notes: list[str] = field(default_factory=list)
    misfits: list[dict] = field(default_factory=list)
    fit_checked: list[str] = field(default_factory=list)  # partitions Slurm answered for
    dry_run_counts: dict[str, int] = field(default_factory=dict)  # the dry run's own "Job stats"

    @property
    def totals(self) -> dict:
        """gpu_hours and cpu_hours are estimates (records and defaults); rows priced by their runtime request
        are upper bounds, summed apart (upper_bound_*) and never added to the estimates."""
        disk = [r.disk_bytes for r in self.rules if r.disk_bytes is not None]
        estimated = [r for r in self.rules if not r.upper_bound]
        bounded = [r for r in self.rules if r.upper_bound]
        return {"jobs": sum(r.jobs for r in self.rules),
                "gpu_jobs": sum(r.jobs for r in self.rules if r.gpus_per_job > 0),
                "gpu_hours": sum(r.gpu_hours for r in estimated),
                "cpu_hours": sum(r.cpu_hours for r in estimated),
                "wall_s": sum(r.wall_s for r in estimated),
                "upper_bound_wall_s": sum(r.wall_s for r in bounded),
                "disk_bytes": sum(disk),
                "disk_unknown_rules": [r.rule for r in self.rules if r.disk_bytes is None],
                "upper_bound_rules": [r.rule for r in bounded],
                "upper_bound_jobs": sum(r.jobs for r in bounded),
                "upper_bound_gpu_hours": sum(r.gpu_hours for r in bounded),
                "upper_bound_cpu_hours": sum(r.cpu_hours for r in bounded),
                "manifest_bytes": next((r.disk_bytes for r in self.rules if r.rule == "merge_manifest"), None)}

    def gpu_jobs(self) -> list[dict]:
        """The jobs that would run on GPU partitions, per rule and partition."""
        return [{"rule": r.rule, "variant": r.variant, "jobs": r.jobs, "gpus_per_job": r.gpus_per_job,
                 "partition": r.partition} for r in self.rules if r.gpus_per_job > 0]

    def to_dict(self) -> dict:
        return {"executor": self.executor, "slots": self.slots, "rules": [asdict(r) for r in self.rules],
                "totals": self.totals, "gpu_jobs": self.gpu_jobs(), "fit_checked": self.fit_checked,
                "misfits": self.misfits, "dry_run_counts": self.dry_run_counts, "notes": self.notes}


def job_slots(job: Job, executor: str, job_limit: int, cores: int) -> int:
    """How many jobs of this kind run at once: the job limit on a cluster, cores / threads locally."""
    if executor != "local":
        return max(job_limit, 1)
    return max(min(job_limit, cores // max(job.threads, 1)), 1)


def estimate_rule(jobs: list[Job], sizes: WorkSizes, workdir: Path, records: bool, defaults: dict,
                  slots: int, estimated: set) -> RuleEstimate:
    """Sum one row's jobs (a rule, device and variant) at the row's cost per unit."""
    cost: Cost = rule_cost(jobs, sizes, workdir, defaults, records)
    amounts = [job_units(j, sizes)[0] if cost.unit != "job" else 1.0 for j in jobs]
    walls = [cost.wall_s * a for a in amounts]
    gpu_s = sum((cost.gpu_s * a if cost.gpu_s is not None else w * j.gpus)
                for j, a, w in zip(jobs, amounts, walls))
    disk_rate, disk_source = disk_per_unit(jobs, sizes, workdir, defaults)
    wall = max(max(walls, default=0.0), sum(walls) / slots)
    first = jobs[0]
    return RuleEstimate(
        rule=first.rule, variant=",".join(variant(first).values()), device=device(first), jobs=len(jobs),
        gpus_per_job=first.gpus, cpus_per_job=first.cpus,
        partition=first.resources.get("slurm_partition"), units=sum(amounts), unit=cost.unit,
        gpu_hours=gpu_s / 3600, cpu_hours=cost.cpu_s * sum(amounts) / 3600,
        job_wall_s=sum(walls) / len(walls), wall_s=wall,
        disk_bytes=None if disk_rate is None else disk_rate * sum(job_units(j, sizes)[0] for j in jobs),
        cost_source=cost.source, disk_source=disk_source,
        estimated_jobs=sum(1 for j in jobs if j.key in estimated))


def estimate(jobs: list[Job], sizes: WorkSizes, workdir: Path, records: bool, defaults: dict,
             executor: str, job_limit: int, cores: int, estimated: set | None = None) -> Plan:
    """The plan of a dry run's jobs: one row per rule, device and variant, in the order stages run."""
    groups: dict[tuple, list[Job]] = defaultdict(list)
    for job in jobs:
        groups[(job.rule, device(job), tuple(variant(job).items()))].append(job)
    depths = job_depths(jobs)
    rows = []
    for group in sorted(groups.values(), key=lambda g: min(depths[id(j)] for j in g)):
        slots = job_slots(group[0], executor, job_limit, cores)
        rows.append(estimate_rule(group, sizes, workdir, records, defaults, slots, estimated or set()))
    return Plan(rows, job_limit if executor != "local" else cores, executor)


def human_duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def human_bytes(n: float | None) -> str:
    if n is None:
        return "?"
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"
