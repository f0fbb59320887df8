"""The jobs a checkpoint will add, before it has run.

Until plan_shards has written the shard plan, a dry run cannot list the
per-shard jobs (pack, teachers) that follow it. The plan runs the real
`plan_shards` on each dataset's index (or, for a generated dataset not yet
made, on an index of the config's `synth` size; for a folder without an
index, on an index made now) into a scratch copy of the working directory,
and dry-runs the same command there: the jobs downstream of the checkpoint
in that run are the ones the real run will add. The scratch folder links every top-level entry of the working
directory except results/, logs/ and .snakemake/, so datasets, weights and
config files given by relative path resolve as in the real run.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import tempfile
from pathlib import Path

from distillery.atomic import atomic_write
from distillery.plan.dryrun import Job, downstream_of, dry_run, parse_jobs
from distillery.plan.units import WorkSizes, count_lines, shard_sizes

SHARD_PLAN = "results/shards/plan"
SCHEMA = Path("workflow") / "schemas" / "config.schema.yaml"  # beside the Snakefile
_NOT_LINKED = {"results", "logs", ".snakemake"}
_FORCE_ALL = ("--forceall", "-F")


def pending_shard_plan(jobs: list[Job]) -> Job | None:
    """The checkpoint job that writes the shard plan, when the dry run still has to run it."""
    for job in jobs:
        if job.checkpoint and any(o.rstrip("/") == SHARD_PLAN for o in job.outputs):
            return job
    return None


def _synth_index(path: Path, name: str, synth: dict) -> None:
    """The index a generated dataset will have: `sequences` sequences of `frames` frames."""
    with atomic_write(path) as tmp, open(tmp, "w") as fh:
        for seq in range(int(synth["sequences"])):
            for frame in range(int(synth["frames"])):
                fh.write(json.dumps({"dataset": name, "sequence": f"{seq:04d}", "frame_id": f"{frame:06d}"}) + "\n")


def _bag_index(path: Path, name: str, bag: dict, file: Path) -> int:
    """The index a bag dataset will have before extract_bag has run, and its frame count: as many frames
    as the fewer of its colour and depth messages (found as the extraction finds them), in one sequence
    (a `sequence_seconds` cut is not foreseen). Reads the bag's topic table, not its messages."""
    from distillery.ingest.bags import BagSettings
    from distillery.ingest.bags.calibration import find_cameras
    from distillery.ingest.bags.source import open_bag

    settings = BagSettings(**{k: v for k, v in bag.items() if k != "path"})
    source = open_bag(file, allow_salvage=settings.salvage)
    cams = find_cameras(source, settings).cams
    frames = min(source.topics[cams[role].topic].count for role in ("color", "depth"))
    _synth_index(path, name, {"sequences": 1, "frames": frames})
    return frames


def _indexes(wf, workdir: Path, scratch: Path, sizes: WorkSizes) -> list[str]:
    """Each dataset's index: the one on disk, else one of its synth size, else one of a bag's message
    counts (until it is extracted), else one made now from the folder the run indexes (counted)."""
    from distillery.ingest.index import index_dataset, reader_options

    files = []
    for name, entry in wf.datasets.items():
        index = workdir / "results" / "index" / f"{name}.jsonl"
        if not index.exists():
            index = scratch / f"{name}.index.jsonl"
            folder = workdir / wf.dataset_folder(name)  # an absolute path stays as it is
            if "synth" in entry:
                _synth_index(index, name, entry["synth"])
            elif "bag" in entry and not folder.is_dir():
                sizes.dataset_frames[name] = _bag_index(index, name, entry["bag"], workdir / entry["bag"]["path"])
            else:
                r = wf.reader_settings(name)
                options = reader_options(r["depth_scale"], r["intrinsics"], r["max_pair_dt"])
                index_dataset(str(folder), name, str(index), str(scratch / f"{name}.q.jsonl"), r["layout"], options)
                sizes.dataset_frames[name] = count_lines(index)
        files.append(str(index))
    return files


def _write_plan(config: dict, schema: Path, workdir: Path, scratch: Path, sizes: WorkSizes) -> dict[str, int]:
    """The shard plan plan_shards will write, written into the scratch folder; frames per shard. The
    config is loaded as the Snakefile loads it (validated, defaults filled), on a copy."""
    from distillery.ingest.shards import plan_shards
    from distillery.workflow import load_validated

    wf = load_validated(copy.deepcopy(config), str(schema))
    sharding = wf.config["sharding"]
    folder = scratch / SHARD_PLAN
    logging.getLogger("distillery.ingest.shards").setLevel(logging.ERROR)  # its warnings belong to the real run
    plan_shards(_indexes(wf, workdir, scratch, sizes), str(folder), sharding["frames_per_shard"],
                sharding["splits"], sharding["seed"], wf.split_overrides())
    return shard_sizes(folder)


def _link_workdir(workdir: Path, scratch: Path) -> None:
    for entry in workdir.iterdir():
        if entry.name not in _NOT_LINKED:
            os.symlink(entry.resolve(), scratch / entry.name)


def expand_checkpoint(args: list[str], workdir: Path, snakefile: str | None, jobs: list[Job],
                      sizes: WorkSizes, config: dict) -> tuple[list[Job], str]:
    """Jobs to add after the pending shard-plan checkpoint, and a note saying how they were found.

    Adds the estimated shards to `sizes.shard_frames`. Returns ([], note) when a dataset cannot
    be indexed (its folder is missing or unreadable).
    """
    checkpoint = pending_shard_plan(jobs)
    if checkpoint is None:
        return [], ""
    with tempfile.TemporaryDirectory(prefix="distillery-plan-") as tmp:
        scratch = Path(tmp)
        _link_workdir(workdir, scratch)
        try:
            schema = (Path(snakefile).parent if snakefile else workdir) / SCHEMA
            shards = _write_plan(config, schema, workdir, scratch, sizes)
        except (OSError, ValueError) as err:
            return [], f"shard count unknown ({err}); the per-shard jobs are missing from this plan"
        # The scratch folder holds no outputs, so every job after the checkpoint runs there anyway;
        # forcing would also re-run the checkpoint and hide them again.
        what_if = parse_jobs(dry_run([a for a in args if a not in _FORCE_ALL], scratch, snakefile))
    # Shards of an earlier plan keep their sizes: the records of the run that packed them refer to them.
    sizes.shard_frames.update(shards)
    sources = sorted(set(sizes.dataset_sources.values()))
    sizes.shard_source = (f"estimated before plan_shards runs: {len(shards)} shards of "
                          f"{sum(shards.values())} frames (frames from {', '.join(sources)})")
    by_key = {j.key: j for j in what_if}
    for job in jobs:  # inputs the real dry run could not know yet (<TBD>)
        if "<TBD>" in job.inputs and job.key in by_key:
            job.inputs = by_key[job.key].inputs
    known = {j.key for j in jobs}
    added = [j for j in downstream_of(what_if, checkpoint.outputs) if j.key not in known]
    return added + _feeders(what_if, added, known, workdir, forced=any(a in _FORCE_ALL for a in args)), \
        sizes.shard_source


def _feeders(what_if: list[Job], added: list[Job], known: set, workdir: Path, forced: bool) -> list[Job]:
    """Jobs outside the checkpoint's descendants that only the added jobs need (a teacher's settings
    file, say): the real dry run cannot list them either. Those whose outputs exist in the working
    folder are left out unless the run is forced."""
    needed = {path for job in added for path in job.inputs}
    added_keys = {j.key for j in added}
    return [j for j in what_if
            if j.key not in known and j.key not in added_keys and needed.intersection(j.outputs)
            and (forced or not all((workdir / out).exists() for out in j.outputs))]
