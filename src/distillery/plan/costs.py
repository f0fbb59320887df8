"""Cost per unit of work of a rule: from its benchmark records, else a documented default.

Order of sources, each named in the plan:
1. records: `results/benchmarks/<rule>/*.tsv` of earlier runs, each matched to
   its job's units (frames of its shard, ...): wall and CPU seconds per unit
   are the records' totals divided by their units' total;
2. defaults: `defaults.json` next to this module (figures of the project's
   benchmarks, each with its source), per rule and device (gpu or cpu);
3. the rule's `runtime` request (minutes per job): an upper bound, said so,
   and kept out of the plan's estimated totals (estimate.Plan.totals).

A GPU default holds for the GPU model it was measured on (`gpu_model`, the
project's benchmarks ran on an H100); a job on another model (the profile's
`gpu_type`, e.g. l40s) is scaled by the ratio `defaults.json` states for it,
and its source says so.

Disk per unit comes from the rule's outputs already on disk, else the default.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from distillery.plan.dryrun import Job
from distillery.plan.records import read_record
from distillery.plan.units import WorkSizes, job_units, variant

DEFAULTS_FILE = Path(__file__).with_name("defaults.json")


@dataclass
class Cost:
    """Seconds of wall time and CPU time per unit of work, and where they come from."""

    unit: str
    wall_s: float
    cpu_s: float
    source: str
    gpu_s: float | None = None  # GPU seconds per unit; None = wall_s x GPUs of the job


def load_defaults(path: str | Path | None = None) -> dict:
    """The default costs: {"rules"|"backends": {name: {"gpu"|"cpu": {unit, wall_s, cpu_s, bytes, source}}}}."""
    return json.loads(Path(path or DEFAULTS_FILE).read_text())


def device(job: Job) -> str:
    return "gpu" if job.gpus > 0 else "cpu"


def wildcard_matches(template: str, job: Job, workdir: Path) -> dict[tuple, list[Path]]:
    """Files on disk that `template` (a path of `job`) names for other wildcard values, by wildcards.

    The job's wildcard values in the path become `*` for the search and groups for reading the
    values back, so this works for any rule whose wildcards all appear in its paths.
    """
    values = sorted(job.wildcards.items(), key=lambda kv: -len(kv[1]))
    if any(v not in template for _, v in values):
        return {} if job.wildcards else ({(): [workdir / template]} if (workdir / template).exists() else {})
    pattern, pattern_glob = re.escape(template), template
    for name, value in values:
        group = f"(?P<{name}>[^/]+)"
        pattern = pattern.replace(re.escape(value), group, 1).replace(re.escape(value), f"(?P={name})")
        pattern_glob = pattern_glob.replace(value, "*")
    regex = re.compile(pattern + "$")
    found: dict[tuple, list[Path]] = {}
    for path in sorted(workdir.glob(pattern_glob)):
        m = regex.match(os.path.relpath(path, workdir))
        if m:
            found.setdefault(tuple(sorted(m.groupdict().items())), []).append(path)
    return found


def _same_variant(wildcards: dict, job: Job) -> bool:
    return all(wildcards.get(k) == v for k, v in variant(job).items())


def from_records(jobs: list[Job], sizes: WorkSizes, workdir: Path) -> Cost | None:
    """Wall and CPU seconds per unit over the records of this rule and variant whose units are known."""
    job = jobs[0]
    unit = job_units(job, sizes)[1]
    wall = cpu = amount = 0.0
    used = 0
    for key, paths in wildcard_matches(job.benchmark or "", job, workdir).items():
        wildcards = dict(key)
        record = read_record(paths[0])
        if record is None or not _same_variant(wildcards, job) or record.cpu_s != record.cpu_s:  # NaN: unfinished
            continue
        n, record_unit = job_units(Job(rule=job.rule, wildcards=wildcards), sizes)
        if record_unit == unit:
            wall, cpu, amount, used = wall + record.wall_s, cpu + record.cpu_s, amount + n, used + 1
    if not used or amount <= 0:
        return None
    where = os.path.dirname(job.benchmark)
    return Cost(unit, wall / amount, cpu / amount, f"records: {used} in {where}")


def _default_entry(job: Job, sizes: WorkSizes, defaults: dict) -> tuple[dict | None, str]:
    """The default of a job's teacher backend (a `teacher` wildcard), else of its rule; and its key."""
    backend = sizes.teacher_backends.get(job.wildcards.get("teacher", ""))
    entry = defaults.get("backends", {}).get(backend, {}).get(device(job)) if backend else None
    if entry:
        return entry, backend
    return defaults.get("rules", {}).get(job.rule, {}).get(device(job)), job.rule


def gpu_model_factor(entry: dict, job: Job, defaults: dict) -> tuple[float, str]:
    """Time per unit on the job's GPU model (the profile's gpu_type) as a factor of the entry's, and what it
    rests on: 1 for the model it was measured on or an unnamed GPU; a stated ratio where the defaults have one."""
    measured, model = entry.get("gpu_model"), str(job.resources.get("gpu_model") or "").lower()
    if not measured or not model or model == measured:
        return 1.0, f" (on {measured.upper()})" if measured else ""
    ratio = (defaults.get("gpu_models") or {}).get(model)
    if not ratio:
        return 1.0, f" (on {measured.upper()}; no figure for {model}: counted as the {measured.upper()})"
    base = (defaults["gpu_models"].get(measured) or {}).get("factor", 1.0)
    factor = ratio["factor"] / base
    return factor, f"; x{factor:.2f} for {model}: {ratio['source']}"


def from_defaults(job: Job, sizes: WorkSizes, defaults: dict) -> Cost | None:
    entry, _ = _default_entry(job, sizes, defaults)
    unit = job_units(job, sizes)[1]
    if not entry or entry["unit"] != unit:
        return None
    factor, said = gpu_model_factor(entry, job, defaults) if job.gpus > 0 else (1.0, "")
    gpu_s = entry.get("gpu_s")
    return Cost(unit, entry["wall_s"] * factor, entry["cpu_s"] * factor, f"default: {entry['source']}{said}",
                None if gpu_s is None else gpu_s * factor)


def from_runtime(job: Job) -> Cost:
    minutes = job.resource_int("runtime", 0)
    return Cost("job", minutes * 60.0, minutes * 60.0 * job.cpus,
                f"no record or default: the rule's runtime request ({minutes} min/job), an upper bound")


def rule_cost(jobs: list[Job], sizes: WorkSizes, workdir: Path, defaults: dict, records: bool = True) -> Cost:
    """The cost per unit of one row's jobs (a rule, device and variant), from the best source there is."""
    if not jobs[0].benchmark and not _default_entry(jobs[0], sizes, defaults)[0]:
        return Cost("job", 0.0, 0.0, "no command to time (a target rule)")
    cost = from_records(jobs, sizes, workdir) if records and jobs[0].benchmark else None
    return cost or from_defaults(jobs[0], sizes, defaults) or from_runtime(jobs[0])


def path_bytes(path: Path) -> int:
    """Bytes of a file, or of every file under a folder."""
    if path.is_file():
        return path.stat().st_size
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.is_dir() else 0


def disk_per_unit(jobs: list[Job], sizes: WorkSizes, workdir: Path, defaults: dict) -> tuple[float | None, str]:
    """Output bytes per unit of a row: from its rule's outputs on disk, else the default, else unknown."""
    job = jobs[0]
    if not job.outputs:
        return 0.0, "no outputs"
    unit = job_units(job, sizes)[1]
    on_disk: dict[tuple, int] = {}
    for template in job.outputs:
        for key, paths in wildcard_matches(template, job, workdir).items():
            if _same_variant(dict(key), job):
                on_disk[key] = on_disk.get(key, 0) + sum(path_bytes(p) for p in paths)
    total = amount = 0.0
    for key, nbytes in on_disk.items():
        n, u = job_units(Job(rule=job.rule, wildcards=dict(key)), sizes)
        if u == unit:
            total, amount = total + nbytes, amount + n
    if amount > 0:
        return total / amount, f"{len(on_disk)} outputs on disk"
    entry, _ = _default_entry(job, sizes, defaults)
    if entry and entry["unit"] == unit and "bytes" in entry:
        return entry["bytes"], "default"
    return None, "unknown"
