"""Does each job fit a node of its Slurm partition? Asked of Slurm before anything is submitted.

A job that asks for more CPUs, memory or GPUs than any node of its partition
has, or more time than the partition allows, is accepted by `sbatch` and then
pends for ever (`Reason=PartitionConfig`) while Snakemake waits silently. The
plan lists such jobs up front. The node sizes come from
`sinfo -h -N -p PART -o "%N|%c|%m|%G|%l"` (node, CPUs, memory in MB, GRES,
partition time limit); parsing and checking are pure functions.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass

from distillery.plan.dryrun import Job

SINFO_FORMAT = "%N|%c|%m|%G|%l"


@dataclass
class Node:
    name: str
    cpus: int
    mem_mb: int
    gpus: dict[str, int]  # GPU type ("" when untyped) -> count
    time_limit_min: float  # the partition's limit; inf when unlimited


def parse_time_limit(text: str) -> float:
    """Slurm's `[days-]hours:minutes:seconds` (or minutes, or infinite/UNLIMITED) in minutes."""
    text = text.strip()
    if text.lower() in ("infinite", "unlimited", "n/a", ""):
        return float("inf")
    days, _, rest = text.rpartition("-")
    parts = [int(p) for p in rest.split(":")]
    if len(parts) == 1:
        hours, minutes, seconds = 0, parts[0], 0
    elif len(parts) == 2:
        hours, minutes, seconds = 0, parts[0], parts[1]
    else:
        hours, minutes, seconds = parts[-3:]
    return (int(days or 0) * 24 + hours) * 60 + minutes + seconds / 60


def parse_gres(text: str) -> dict[str, int]:
    """`gpu:l40s:2(S:0-1),gpu:a100:1` -> {"l40s": 2, "a100": 1}; `gpu:4` -> {"": 4}; (null) -> {}."""
    gpus: dict[str, int] = {}
    for item in re.sub(r"\([^)]*\)", "", text).split(","):
        fields = item.strip().split(":")
        if fields[0] != "gpu" or len(fields) < 2:
            continue
        kind, count = (fields[1], fields[2]) if len(fields) >= 3 else ("", fields[1])
        if count.isdigit():
            gpus[kind] = gpus.get(kind, 0) + int(count)
    return gpus


def parse_sinfo(text: str) -> list[Node]:
    """Nodes of `sinfo -h -N -o "%N|%c|%m|%G|%l"` output (one line per node and partition)."""
    nodes = []
    for line in text.splitlines():
        fields = line.strip().split("|")
        if len(fields) != 5:
            continue
        name, cpus, mem, gres, limit = fields
        nodes.append(Node(name, int(cpus.rstrip("+")), int(mem.rstrip("+")), parse_gres(gres),
                          parse_time_limit(limit)))
    return nodes


def query_partition(partition: str, run=subprocess.run) -> list[Node]:
    """The nodes of one partition, asked of Slurm; raises RuntimeError when Slurm cannot answer."""
    if run is subprocess.run and shutil.which("sinfo") is None:
        raise RuntimeError("sinfo not found: not on a Slurm login node")
    proc = run(["sinfo", "-h", "-N", "-p", partition, "-o", SINFO_FORMAT], capture_output=True, text=True,
               timeout=60)
    if proc.returncode != 0:
        raise RuntimeError(f"sinfo -p {partition} failed: {proc.stderr.strip()}")
    nodes = parse_sinfo(proc.stdout)
    if not nodes:
        raise RuntimeError(f"partition {partition!r} has no nodes (sinfo printed none): check slurm_partition")
    return nodes


def job_request(job: Job) -> dict:
    """What a job asks Slurm for: CPUs, memory (MB), GPUs (of a model, if named), minutes."""
    return {"cpus": job.cpus, "mem_mb": job.resource_int("mem_mb", 0), "gpus": job.gpus,
            "gpu_model": job.resources.get("gpu_model", "") or _gres_model(job.resources.get("gres", "")),
            "runtime_min": job.resource_int("runtime", 0)}


def _gres_model(gres: str) -> str:
    fields = gres.split(":")
    return fields[1] if len(fields) == 3 else ""


def _node_gpus(node: Node, model: str) -> int:
    return node.gpus.get(model, 0) if model else sum(node.gpus.values())


def misfit(request: dict, nodes: list[Node]) -> str | None:
    """Why no node of the partition can run the request; None when one can."""
    if any(n.cpus >= request["cpus"] and n.mem_mb >= request["mem_mb"]
           and _node_gpus(n, request["gpu_model"]) >= request["gpus"] for n in nodes):
        limit = min(n.time_limit_min for n in nodes)
        if request["runtime_min"] > limit:
            return f"asks for {request['runtime_min']} min, the partition allows {limit:.0f} min"
        return None
    big = max(nodes, key=lambda n: (_node_gpus(n, request["gpu_model"]), n.cpus, n.mem_mb))
    gpu_kind = f" {request['gpu_model']}" if request["gpu_model"] else ""
    return (f"asks for {request['cpus']} CPUs, {request['mem_mb']} MB, {request['gpus']}{gpu_kind} GPUs; "
            f"the largest node ({big.name}) has {big.cpus} CPUs, {big.mem_mb} MB, "
            f"{_node_gpus(big, request['gpu_model'])}{gpu_kind} GPUs")


def check_jobs(jobs: list[Job], query=query_partition) -> tuple[list[dict], list[str], list[str]]:
    """Jobs (grouped by rule, partition and request) that fit no node, the partitions checked, and
    notes on partitions not checked."""
    cache: dict[str, list[Node] | str] = {}
    found: dict[tuple, dict] = {}
    for job in jobs:
        partition = job.resources.get("slurm_partition")
        if not partition or job.local:
            continue
        if partition not in cache:
            try:
                cache[partition] = query(partition)
            except (RuntimeError, OSError, subprocess.TimeoutExpired) as err:
                cache[partition] = str(err)
        nodes = cache[partition]
        if isinstance(nodes, str):
            continue
        request = job_request(job)
        reason = misfit(request, nodes)
        if reason:
            key = (job.rule, partition, tuple(sorted(request.items())))
            found.setdefault(key, {"rule": job.rule, "partition": partition, "jobs": 0, "request": request,
                                   "reason": reason})["jobs"] += 1
    notes = [f"partition {p!r} not checked: {v}" for p, v in cache.items() if isinstance(v, str)]
    checked = [p for p, v in cache.items() if not isinstance(v, str)]
    return list(found.values()), checked, notes
