# Frame selection before the teachers (docs/selection.md): with `select:` in the config, each packed shard
# gets a selection JSON (which frames the teachers label, their novelty and why), every teacher job of the
# shard labels only those, and selection_index gathers the choices beside the manifest. Without `select:`
# (or `select: null`) no job of this file runs and the teachers label every frame.


def selection_enabled():
    return bool(config.get("select"))


def selection_input(wildcards):
    """A teacher job's selection JSON as a named input, when selection is on."""
    return {"selection": f"results/select/{wildcards.shard}.json"} if selection_enabled() else {}


def selection_arg(wildcards):
    """`--selection FILE` for the teacher CLIs, or nothing."""
    return f"--selection results/select/{wildcards.shard}.json" if selection_enabled() else ""


def select_args():
    """The selection settings as `distillery select` options (validated by the schema)."""
    s = config.get("select") or {}
    how = f"--share {s['share']}" if s.get("share") is not None else f"--threshold {s.get('threshold')}"
    return (
        f"{how} --translation-m {s.get('translation_m', 0.25)} --rotation-deg {s.get('rotation_deg', 10.0)} "
        f"--depth-weight {s.get('depth_weight', 1.0)}"
    )


def selection_targets():
    return ["results/manifest/selection.jsonl"] if selection_enabled() else []


rule select_frames:
    input:
        shard="results/shards/{shard}.h5",
    output:
        selection="results/select/{shard}.json",
    params:
        settings=select_args(),
    log:
        "logs/select_frames/{shard}.log",
    benchmark:
        "results/benchmarks/select_frames/{shard}.tsv"
    resources:
        **job_resources("select_frames"),
    shell:
        "distillery select --shard {input.shard} {params.settings} --out {output.selection} > {log} 2>&1"


rule selection_index:
    input:
        selections=lambda wildcards: expand("results/select/{shard}.json", shard=shard_names(wildcards)),
    output:
        index="results/manifest/selection.jsonl",
    log:
        "logs/selection_index/selection_index.log",
    benchmark:
        "results/benchmarks/selection_index/selection_index.tsv"
    resources:
        **job_resources("select_frames"),
    shell:
        "distillery select-index --selections {input.selections} --out {output.index} > {log} 2>&1"
