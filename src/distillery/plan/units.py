"""How much work each job does, in the unit its cost scales with.

A cost measured on one job is carried to another by its amount of work:

- a job with a `shard` wildcard: the frames of its shard (the shard plan);
- a job with a `dataset` wildcard: the frames of its dataset (its index, or
  the config's `synth` size before the dataset exists);
- the rules of RULE_UNITS: all frames of the run (plan_shards,
  merge_manifest), the samples a training version sees (epochs x
  samples_per_epoch), the test frames a version is evaluated on
  (evaluate_version), or the sample of frames a sanity gate labels
  (teacher_sanity: teachers.sanity.frames);
- any other rule: one unit per job (its cost is the mean job's cost).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

from distillery.ingest.settings import default_splits
from distillery.plan.dryrun import Job
from distillery.teachers.sanity_limits import SanityLimits

# Rules whose cost scales with something other than their wildcards; every rule not listed and
# without a shard or dataset wildcard costs the same per job.
RULE_UNITS = {"plan_shards": "frames", "merge_manifest": "frames", "train_student": "samples",
              "evaluate_version": "test_frames", "teacher_sanity": "sanity_frames"}
# Wildcards that count work; any other wildcard (teacher, version, ...) names a variant of the rule,
# priced on its own.
UNIT_WILDCARDS = ("shard", "dataset")


@dataclass
class WorkSizes:
    """Frames per dataset and per shard, training settings: what units are counted from."""

    dataset_frames: dict[str, int] = field(default_factory=dict)
    dataset_sources: dict[str, str] = field(default_factory=dict)
    shard_frames: dict[str, int] = field(default_factory=dict)
    shard_source: str = ""
    training: dict[str, dict] = field(default_factory=dict)
    train_fraction: float = 1.0
    teacher_backends: dict[str, str] = field(default_factory=dict)  # teacher id -> backend
    test_shares: dict[str, float] = field(default_factory=dict)  # evaluated dataset -> its test share
    sanity_frames: int = SanityLimits.frames  # frames a depth teacher's sanity gate labels

    @property
    def total_frames(self) -> int | None:
        return sum(self.dataset_frames.values()) if self.dataset_frames else None

    @property
    def test_frames(self) -> int | None:
        """Frames of the test splits a version is evaluated on (None while a dataset's size is unknown)."""
        if not self.test_shares or any(n not in self.dataset_frames for n in self.test_shares):
            return None
        return round(sum(self.dataset_frames[n] * share for n, share in self.test_shares.items()))


def count_lines(path: str | Path) -> int:
    with open(path, "rb") as fh:
        return sum(1 for line in fh if line.strip())


def dataset_sizes(config: dict, workdir: Path) -> tuple[dict[str, int], dict[str, str]]:
    """Frames per dataset and where the count came from (index, synth size, or indexed now)."""
    frames, sources = {}, {}
    for entry in config.get("datasets", []):
        name = entry["name"]
        index = workdir / "results" / "index" / f"{name}.jsonl"
        if index.exists():
            frames[name], sources[name] = count_lines(index), f"index {index.relative_to(workdir)}"
        elif "synth" in entry:
            s = entry["synth"]
            frames[name], sources[name] = int(s["sequences"]) * int(s["frames"]), "config synth size"
        elif "bag" in entry and not (workdir / "results" / "bags" / name).is_dir():
            sources[name] = "the bag's colour and depth message counts (not extracted yet)"
        else:
            sources[name] = "an index made for the plan (none yet)"
    return frames, sources


def shard_sizes(plan_dir: Path) -> dict[str, int]:
    """Frames per shard of a written shard plan; {} when the plan does not exist yet."""
    plan_file = plan_dir / "shards.json"
    if not plan_file.exists():
        return {}
    names = json.loads(plan_file.read_text())["shards"]
    return {n: count_lines(plan_dir / f"{n}.jsonl") for n in names if (plan_dir / f"{n}.jsonl").exists()}


def test_shares(config: dict, fractions: dict[str, float]) -> dict[str, float]:
    """Share of each evaluated dataset's frames in its test split: evaluation.sets (every dataset when null);
    a dataset whose entry forces a split is all test or none, the others' share is the test fraction."""
    sets = (config.get("evaluation") or {}).get("sets")
    roles = (config.get("lineage") or {}).get("roles") or {}
    entries = {d["name"]: d for d in config.get("datasets", [])}
    names = list(entries) if sets is None else [roles.get(n, n) for n in sets]
    shares = {}
    for name in dict.fromkeys(names):
        split = entries.get(name, {}).get("split")
        shares[name] = 1.0 if split == "test" else 0.0 if split else fractions.get("test", 0.0)
    return shares


def work_sizes(config: dict, workdir: Path) -> WorkSizes:
    """What the units of this workdir's jobs are counted from; shards from the written plan, if any."""
    from distillery.workflow.lineage import version_entry

    frames, sources = dataset_sizes(config, workdir)
    shards = shard_sizes(workdir / "results" / "shards" / "plan")
    splits = (config.get("sharding") or {}).get("splits", default_splits())  # as the run splits
    fractions = {k: v / (sum(splits.values()) or 1.0) for k, v in splits.items()}
    train_fraction = fractions.get("train", 1.0) if splits else 1.0
    teachers = config.get("teachers") or {}
    models = teachers.get("models", [])
    training = config.get("training") or {}
    versions = {v: version_entry(training, v) for v in training.get("versions") or {}}  # defaults applied
    return WorkSizes(frames, sources, shards, "shard plan results/shards/plan" if shards else "",
                     versions, train_fraction,
                     {m["id"]: m["backend"] for m in models if "id" in m and "backend" in m},
                     test_shares(config, fractions),
                     int((teachers.get("sanity") or {}).get("frames", SanityLimits.frames)))


def variant(job: Job) -> dict[str, str]:
    """The job's wildcards that name a variant of its rule (all but the unit wildcards)."""
    return {k: v for k, v in job.wildcards.items() if k not in UNIT_WILDCARDS}


def _training_samples(settings: dict, sizes: WorkSizes) -> int | None:
    from distillery.student.config import TrainConfig

    defaults = {f.name: f.default for f in dataclasses.fields(TrainConfig)}
    epochs = settings.get("epochs", defaults["epochs"])
    per_epoch = settings.get("samples_per_epoch", defaults["samples_per_epoch"])
    if per_epoch is None:
        if sizes.total_frames is None:
            return None
        per_epoch = round(sizes.total_frames * sizes.train_fraction)
    return int(epochs) * int(per_epoch)


def job_units(job: Job, sizes: WorkSizes) -> tuple[float, str]:
    """(amount, unit) of a job's work; (1, "job") when its unit is unknown or it has none."""
    amount: float | None = None
    unit = "job"
    if "shard" in job.wildcards:
        amount, unit = sizes.shard_frames.get(job.wildcards["shard"]), "frames"
    elif "dataset" in job.wildcards:
        amount, unit = sizes.dataset_frames.get(job.wildcards["dataset"]), "frames"
    elif RULE_UNITS.get(job.rule) == "frames":
        amount, unit = sizes.total_frames, "frames"
    elif RULE_UNITS.get(job.rule) == "samples" and "version" in job.wildcards:
        settings = sizes.training.get(job.wildcards["version"])
        amount, unit = (_training_samples(settings, sizes) if settings is not None else None), "samples"
    elif RULE_UNITS.get(job.rule) == "test_frames":
        amount, unit = sizes.test_frames, "frames"
    elif RULE_UNITS.get(job.rule) == "sanity_frames":
        amount, unit = sizes.sanity_frames, "frames"
    if amount is None or unit == "job":
        return 1.0, "job"
    return float(amount), unit
