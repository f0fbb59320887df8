"""Does a job's request fit a Slurm partition? Ask Slurm, compare, say why not.

Slurm accepts a job that asks for more CPUs, memory or GPUs than any node of
its partition has, then keeps it pending (`Reason=PartitionConfig`) for ever,
and a workflow manager waiting on it prints nothing. The workflow therefore
checks every job before it is submitted and stops with a message naming the
rule, the request and the partition's largest node.

Pure parts (parsing, comparing) are separate from the one function that runs
`sinfo`, so they are tested without a cluster and reused by any caller:

    from distillery import cluster
    nodes = cluster.partition_nodes("gpu")              # runs sinfo once per partition (cached)
    why = cluster.fit_problem(cluster.Request(cpus=4, mem_mb=32000, gpus=1, gpu_model="l40s"), "gpu", nodes)
    if why: ...                                          # a readable reason, or None when it fits
    cluster.check_request("teacher_depth", request, "gpu")  # raises RequestTooLarge with rule + reason

A node fits when it alone has at least the CPUs, the memory (RealMemory, MB)
and the GPUs (of the model, when one is asked for) of the request: every job
of this workflow is a single-node job.
"""

from __future__ import annotations

import functools
import re
import shutil
import subprocess
from dataclasses import dataclass

SINFO_FORMAT = "%N|%c|%m|%G"


class RequestTooLarge(RuntimeError):
    """A job asks for more than any node of its partition has: it would wait for ever."""


class SlurmQueryError(RuntimeError):
    """sinfo failed or knows no such partition."""


@dataclass(frozen=True)
class Node:
    """What one node offers: CPUs, memory in MB, and GPUs per model ("" = a GPU of no named model)."""

    name: str
    cpus: int
    mem_mb: int
    gpus: dict

    def gpu_count(self, model: str | None = None) -> int:
        return sum(n for m, n in self.gpus.items() if not model or m == model)

    def describe(self) -> str:
        gpus = ", ".join(f"{n} {m or 'GPU'}" for m, n in sorted(self.gpus.items())) or "no GPUs"
        return f"{self.name}: {self.cpus} CPUs, {self.mem_mb} MB, {gpus}"


@dataclass(frozen=True)
class Request:
    """What one job asks for: CPUs per task, memory (MB), GPUs and their model (None = any)."""

    cpus: int = 1
    mem_mb: int = 0
    gpus: int = 0
    gpu_model: str | None = None

    def describe(self) -> str:
        gpus = f", {self.gpus} GPU{'s' if self.gpus > 1 else ''}" + (f" ({self.gpu_model})" if self.gpu_model else "")
        return f"{self.cpus} CPUs, {self.mem_mb} MB" + (gpus if self.gpus else "")


_GRES_RE = re.compile(r"gpu(?::([A-Za-z0-9_.-]+))?:(\d+)")


def parse_gres(gres: str) -> dict:
    """`gpu:l40s:2(S:0-1),gpu:a100:1` -> {"l40s": 2, "a100": 1}; `gpu:4` -> {"": 4}; `(null)` -> {}."""
    out: dict = {}
    for part in gres.split(","):
        m = _GRES_RE.match(part.strip())
        if m:
            out[m.group(1) or ""] = out.get(m.group(1) or "", 0) + int(m.group(2))
    return out


def parse_sinfo(text: str) -> list[Node]:
    """Nodes of `sinfo -h -N -o '%N|%c|%m|%G'` output (one line per node and partition)."""
    nodes = {}
    for line in text.splitlines():
        parts = line.strip().split("|")
        if len(parts) != 4:
            continue
        name, cpus, mem, gres = parts
        nodes[name] = Node(name, int(re.sub(r"\D", "", cpus) or 0), int(re.sub(r"\D", "", mem) or 0), parse_gres(gres))
    return list(nodes.values())


def fits(request: Request, node: Node) -> bool:
    return (node.cpus >= request.cpus and node.mem_mb >= request.mem_mb
            and node.gpu_count(request.gpu_model) >= request.gpus)


def largest(nodes: list[Node]) -> Node:
    """The node with the most GPUs, then CPUs, then memory: what a message names as the partition's best."""
    return max(nodes, key=lambda n: (n.gpu_count(), n.cpus, n.mem_mb))


def fit_problem(request: Request, partition: str, nodes: list[Node]) -> str | None:
    """None when some node of the partition can run the request, else why not (naming the largest node)."""
    if not nodes:
        return f"partition {partition!r} has no nodes"
    if any(fits(request, n) for n in nodes):
        return None
    best = largest(nodes)
    short = [what for what, ok in (("CPUs", best.cpus >= request.cpus), ("memory", best.mem_mb >= request.mem_mb),
                                   ("GPUs", best.gpu_count(request.gpu_model) >= request.gpus)) if not ok]
    return (f"asks for {request.describe()}, but no node of partition {partition!r} has that much "
            f"({' and '.join(short) or 'no single node has all of it'}); its largest node is {best.describe()}")


def run_sinfo(partition: str) -> str:
    """Raw `sinfo` node lines of one partition."""
    if shutil.which("sinfo") is None:
        raise SlurmQueryError("sinfo not found: cannot check job sizes against the cluster")
    proc = subprocess.run(["sinfo", "-h", "-N", "-p", partition, "-o", SINFO_FORMAT], capture_output=True,
                          text=True, timeout=60)
    if proc.returncode != 0:
        raise SlurmQueryError(f"sinfo -p {partition} failed: {proc.stderr.strip()}")
    return proc.stdout


@functools.lru_cache(maxsize=None)
def partition_nodes(partition: str) -> tuple[Node, ...]:
    """The nodes of a partition, asked of Slurm once per process."""
    nodes = tuple(parse_sinfo(run_sinfo(partition)))
    if not nodes:
        raise SlurmQueryError(f"Slurm knows no nodes in partition {partition!r} (a typo in the profile's "
                              "slurm_partition or gpu_partition?); `sinfo -s` lists the partitions")
    return nodes


def check_request(rule: str, request: Request, partition: str, nodes=None) -> None:
    """Raise RequestTooLarge naming the rule, the request and the partition's largest node."""
    problem = fit_problem(request, partition, list(nodes if nodes is not None else partition_nodes(partition)))
    if problem:
        raise RequestTooLarge(
            f"rule {rule} {problem}. Slurm would keep this job pending for ever. Make the job smaller (the "
            "sizes table in src/distillery/workflow/jobs.py, or set-resources in the profile) or send it to a "
            "partition with larger nodes.")
