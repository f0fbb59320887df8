"""The jobs of a Snakemake dry run, read from `snakemake -n` as a user runs it.

`snakemake -n` prints one block per job (rule name, input, output,
benchmark, wildcards, threads, resources evaluated for the first attempt,
profile and `set-resources` applied) and a "Job stats" table. Reading that
output, rather than Snakemake's internal DAG objects, keeps the plan working
with the user's own command line: their config files, profile and targets
are passed through unchanged, and what the plan counts is exactly what the
dry run shows.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

# "rule X:", "localrule X:", "checkpoint X:", "localcheckpoint X:" at the start of a line.
_HEADER = re.compile(r"^(local)?(rule|checkpoint) ([A-Za-z_][A-Za-z0-9_]*):\s*$")
_FIELD = re.compile(r"^    ([a-z_]+): ?(.*)$")
_STATS_ROW = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)\s+(\d+)\s*$")


@dataclass
class Job:
    """One job of the dry run, as Snakemake printed it."""

    rule: str
    checkpoint: bool = False
    local: bool = False
    jobid: int = -1
    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    benchmark: str | None = None
    wildcards: dict[str, str] = field(default_factory=dict)
    threads: int = 1
    resources: dict[str, str] = field(default_factory=dict)

    @property
    def key(self) -> tuple:
        """Rule and wildcards: the same job in two dry runs has the same key."""
        return (self.rule, tuple(sorted(self.wildcards.items())))

    def resource_int(self, name: str, default: int = 0) -> int:
        """An integer resource (gpu, mem_mb, runtime, cpus_per_task), `default` when absent or <TBD>."""
        try:
            return int(float(self.resources[name]))
        except (KeyError, ValueError):
            return default

    @property
    def gpus(self) -> int:
        """GPUs the job asks for: the generic `gpu` resource, or the count in a `gres=gpu[:type]:N`."""
        if self.resource_int("gpu"):
            return self.resource_int("gpu")
        gres = self.resources.get("gres", "")
        m = re.search(r"gpu(?::[A-Za-z0-9_.-]+)?:(\d+)", gres)
        return int(m.group(1)) if m else (1 if gres.startswith("gpu") else 0)

    @property
    def cpus(self) -> int:
        """CPUs the job asks for: the profile's cpus_per_task, else its threads."""
        return max(self.resource_int("cpus_per_task", self.threads), 1)


def _split_list(text: str) -> list[str]:
    return [p for p in (s.strip() for s in text.split(", ")) if p]


def _parse_pairs(text: str) -> dict[str, str]:
    """`a=1, b=x` -> {"a": "1", "b": "x"} (values run to the next `, name=`)."""
    out: dict[str, str] = {}
    for m in re.finditer(r"([A-Za-z_][A-Za-z0-9_]*)=(.*?)(?=, [A-Za-z_][A-Za-z0-9_]*=|$)", text):
        out[m.group(1)] = m.group(2).strip()
    return out


def _apply_field(job: Job, name: str, value: str) -> None:
    if name == "input":
        job.inputs = _split_list(value)
    elif name == "output":
        job.outputs = _split_list(value)
    elif name == "benchmark":
        job.benchmark = value.strip() or None
    elif name == "jobid":
        job.jobid = int(value)
    elif name == "wildcards":
        job.wildcards = _parse_pairs(value)
    elif name == "threads":
        job.threads = int(value)
    elif name == "resources":
        job.resources = _parse_pairs(value)


def parse_jobs(text: str) -> list[Job]:
    """Every job block of a `snakemake -n` output, in the order printed."""
    jobs: list[Job] = []
    current: Job | None = None
    for line in text.splitlines():
        head = _HEADER.match(line)
        if head:
            current = Job(rule=head.group(3), checkpoint=head.group(2) == "checkpoint", local=bool(head.group(1)))
            jobs.append(current)
            continue
        m = _FIELD.match(line)
        if current is not None and m:
            _apply_field(current, m.group(1), m.group(2))
        elif not line.startswith(" "):
            current = None
    return jobs


def parse_job_stats(text: str) -> dict[str, int]:
    """The "Job stats" table of a dry run: jobs per rule (without the total row)."""
    counts: dict[str, int] = {}
    in_table = False
    for line in text.splitlines():
        if line.startswith("Job stats:"):
            in_table, counts = True, {}
            continue
        if not in_table:
            continue
        m = _STATS_ROW.match(line.strip())
        if m and m.group(1) not in ("job", "total"):
            counts[m.group(1)] = int(m.group(2))
        elif line.strip().startswith("total") or (not line.strip() and counts):
            in_table = False
    return counts


def snakemake_bin() -> str:
    """The snakemake next to this Python (the project's venv), else the one on PATH."""
    local = Path(sys.executable).parent / "snakemake"
    return str(local) if local.exists() else "snakemake"


def dry_run(args: list[str], workdir: str | Path | None = None, snakefile: str | Path | None = None,
            timeout: int = 900) -> str:
    """Run `snakemake -n <args>` (in `workdir`) and return what it printed; raise on failure."""
    cmd = [snakemake_bin(), "-n"]
    if snakefile:
        cmd += ["-s", str(snakefile)]
    if workdir:
        cmd += ["-d", str(workdir)]
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    proc = subprocess.run([*cmd, *args], capture_output=True, text=True, env=env, timeout=timeout)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
        raise RuntimeError(f"the dry run failed ({' '.join(cmd + args)}):\n{tail}")
    return proc.stdout + "\n" + proc.stderr


def downstream_of(jobs: list[Job], paths: list[str]) -> list[Job]:
    """Jobs that need one of `paths`, directly or through the outputs of other such jobs.

    An input inside a folder (a checkpoint's directory output) counts as needing the folder.
    """
    reached_paths = {p.rstrip("/") for p in paths}
    reached: list[Job] = []
    changed = True
    while changed:
        changed = False
        for job in jobs:
            if any(job is r for r in reached):
                continue
            for path in job.inputs:
                parts = Path(path).parts
                if any(str(Path(*parts[:i])) in reached_paths for i in range(1, len(parts) + 1)):
                    reached.append(job)
                    reached_paths.update(o.rstrip("/") for o in job.outputs)
                    changed = True
                    break
    return [j for j in jobs if any(j is r for r in reached)]


def job_depths(jobs: list[Job]) -> dict[int, int]:
    """Each job's stage (by id(job)): 0 for jobs needing no other job's output, else 1 + its producers' deepest."""
    producers = {o.rstrip("/"): j for j in jobs for o in j.outputs}
    depths: dict[int, int] = {}

    def depth(job: Job, seen: frozenset = frozenset()) -> int:
        if id(job) not in depths:
            found = []
            for path in job.inputs:
                parts = Path(path).parts
                for i in range(len(parts), 0, -1):
                    producer = producers.get(str(Path(*parts[:i])))
                    if producer is not None and producer is not job and id(producer) not in seen:
                        found.append(depth(producer, seen | {id(job)}) + 1)
                        break
            depths[id(job)] = max(found, default=0)
        return depths[id(job)]

    for job in jobs:
        depth(job)
    return depths
