"""Which planned jobs fit no node of their Slurm partition: the plan's use of `distillery.cluster`.

A job asking for more CPUs, memory or GPUs than any node of its partition
has is accepted by `sbatch` and then pends for ever. The workflow stops
before submitting such a job; the plan lists them all up front, grouped by
rule, partition and request, with the same check (`cluster.fit_problem` on
the nodes `sinfo` reports).
"""

from __future__ import annotations

import dataclasses
import subprocess

from distillery import cluster
from distillery.plan.dryrun import Job


def job_request(job: Job) -> cluster.Request:
    """What a dry-run job asks Slurm for: CPUs per task, memory (MB), GPUs and their model."""
    model = job.resources.get("gpu_model") or _gres_model(job.resources.get("gres", ""))
    return cluster.Request(cpus=job.cpus, mem_mb=job.resource_int("mem_mb", 0), gpus=job.gpus,
                           gpu_model=model or None)


def _gres_model(gres: str) -> str:
    fields = gres.split(":")
    return fields[1] if len(fields) == 3 else ""


def check_jobs(jobs: list[Job], query=cluster.partition_nodes) -> tuple[list[dict], list[str], list[str]]:
    """Jobs that fit no node (grouped by rule, partition and request), the partitions checked, and
    notes on the partitions Slurm could not be asked about."""
    nodes_of: dict[str, tuple | str] = {}
    found: dict[tuple, dict] = {}
    for job in jobs:
        partition = job.resources.get("slurm_partition")
        if not partition or job.local:
            continue
        if partition not in nodes_of:
            try:
                nodes_of[partition] = tuple(query(partition))
            except (cluster.SlurmQueryError, OSError, subprocess.TimeoutExpired) as err:
                nodes_of[partition] = str(err)
        nodes = nodes_of[partition]
        if isinstance(nodes, str):
            continue
        request = job_request(job)
        reason = cluster.fit_problem(request, partition, list(nodes))
        if reason:
            entry = found.setdefault((job.rule, partition, request), {
                "rule": job.rule, "partition": partition, "jobs": 0, "request": dataclasses.asdict(request),
                "reason": reason})
            entry["jobs"] += 1
    notes = [f"partition {p!r} not checked: {v}" for p, v in nodes_of.items() if isinstance(v, str)]
    checked = [p for p, v in nodes_of.items() if not isinstance(v, str)]
    return list(found.values()), checked, notes
