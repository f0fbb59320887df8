"""Measured costs: the benchmark records Snakemake writes for every job.

Each rule declares `benchmark: results/benchmarks/<rule>/<wildcards>.tsv`;
Snakemake fills it with the job's wall time `s`, `cpu_time` (user + system
seconds of the whole process tree), `max_rss` (MB) and more. A record names
its job by its file name, so a rule's records can be matched to the amount
of work each job did (frames of its shard, samples of its training run) and
turned into a cost per unit.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Record:
    """One job's measured cost (the mean over the rows of a repeated benchmark)."""

    path: Path
    wall_s: float
    cpu_s: float
    max_rss_mb: float

    @property
    def name(self) -> str:
        """The record's file name without `.tsv`: the job's wildcard value for one-wildcard rules."""
        return self.path.name[: -len(".tsv")]


def _number(text: str | None) -> float:
    try:
        value = float(text)
    except (TypeError, ValueError):
        return math.nan
    return value


def read_record(path: str | Path) -> Record | None:
    """A benchmark TSV as a Record; None for an empty or unreadable file (a job killed mid-write)."""
    path = Path(path)
    try:
        with open(path, newline="") as fh:
            rows = list(csv.DictReader(fh, delimiter="\t"))
    except (OSError, csv.Error):
        return None
    rows = [r for r in rows if not math.isnan(_number(r.get("s")))]
    if not rows:
        return None

    def mean(key: str) -> float:
        values = [v for v in (_number(r.get(key)) for r in rows) if not math.isnan(v)]
        return sum(values) / len(values) if values else math.nan

    return Record(path, mean("s"), mean("cpu_time"), mean("max_rss"))
