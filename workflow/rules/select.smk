# Frame selection before the teachers (docs/selection.md): with `select:` in the config, each packed shard
# gets a selection JSON (which frames the teachers label, their novelty and why), every teacher job of the
# shard labels only those, and selection_index gathers the choices beside the manifest. Without `select:`
# (or `select: null`) no job of this file runs and the teachers label every frame.


rule select_frames:
    input:
        shard="results/shards/{shard}.h5",
    output:
        selection="results/select/{shard}.json",
    params:
        how=wf.select_settings()["how"],
        amount=wf.select_settings()["amount"],
        translation_m=wf.select_settings()["translation_m"],
        rotation_deg=wf.select_settings()["rotation_deg"],
        depth_weight=wf.select_settings()["depth_weight"],
    log:
        "logs/select_frames/{shard}.log",
    benchmark:
        "results/benchmarks/select_frames/{shard}.tsv"
    resources:
        **job_resources("select_frames"),
    conda:
        "../../envs/distillery.yaml"
    shell:
        "distillery select --shard {input.shard:q} --{params.how} {params.amount} "
        "--translation-m {params.translation_m} --rotation-deg {params.rotation_deg} "
        "--depth-weight {params.depth_weight} --out {output.selection:q} > {log:q} 2>&1"


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
    conda:
        "../../envs/distillery.yaml"
    shell:
        "distillery select-index --selections {input.selections:q} --out {output.index:q} > {log:q} 2>&1"
