# Config validation and every input/param function the rules use.
import json
import shlex
from pathlib import Path

from snakemake.utils import validate


validate(config, schema="../schemas/config.schema.yaml")

DATASETS = {d["name"]: d for d in config["datasets"]}
if len(DATASETS) != len(config["datasets"]):
    raise ValueError("config: dataset names must be unique")
SYNTH_DATASETS = [name for name, d in DATASETS.items() if "synth" in d]


wildcard_constraints:
    dataset="[A-Za-z0-9_.-]+",
    shard=r"shard-\d+",


def dataset_folder(wildcards):
    """The folder a dataset is indexed from: generated worlds live under results/synth."""
    entry = DATASETS[wildcards.dataset]
    if "synth" in entry:
        return f"results/synth/{wildcards.dataset}"
    return entry["path"]


def synth_params(wildcards):
    """The synth settings of a dataset entry, as the CLI options of `distillery synth`."""
    s = DATASETS[wildcards.dataset]["synth"]
    ingest = config["ingest"]
    return (
        f"--family {s['family']} --seed {s['seed']} --sequences {s['sequences']} "
        f"--frames {s['frames']} --height {s.get('height', ingest['height'])} "
        f"--width {s.get('width', ingest['width'])}"
    )


def reader_args(wildcards):
    """Per-dataset reader options (layout, depth scale, intrinsics) as CLI options."""
    entry = DATASETS[wildcards.dataset]
    args = ["--layout", entry.get("layout", "auto")]
    if entry.get("depth_scale") is not None:
        args += ["--depth-scale", str(entry["depth_scale"])]
    if entry.get("intrinsics") is not None:
        args += ["--intrinsics", shlex.quote(json.dumps(entry["intrinsics"]))]
    args += ["--max-pair-dt", str(config["ingest"]["max_pair_dt"])]
    return " ".join(args)


def split_overrides():
    """Datasets whose config entry puts every sequence into one split."""
    return {name: d["split"] for name, d in DATASETS.items() if d.get("split")}


def pack_args():
    """The storage settings shared by pack_shard, as CLI options."""
    ingest = config["ingest"]
    return (
        f"--height {ingest['height']} --width {ingest['width']} --fit {ingest['fit']} "
        f"--max-depth {ingest['max_depth_m']} "
        f"--compression-level {config['manifest']['compression_level']}"
    )


def shard_names(wildcards):
    """Shard names, known once the plan_shards checkpoint has run."""
    plan = checkpoints.plan_shards.get().output.plan
    return json.loads(Path(plan, "shards.json").read_text())["shards"]


def shard_files(wildcards):
    return expand("results/shards/{shard}.h5", shard=shard_names(wildcards))


def quarantine_files(wildcards):
    """Every quarantine report: one per dataset index and one per packed shard."""
    return expand(
        "results/index/{dataset}.quarantine.jsonl", dataset=list(DATASETS)
    ) + expand(
        "results/shards/{shard}.quarantine.jsonl", shard=shard_names(wildcards)
    )
