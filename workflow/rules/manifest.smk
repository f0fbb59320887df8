# Merge: every shard and quarantine report into manifest.h5 / manifest.jsonl.


rule merge_manifest:
    input:
        shards=shard_files,
        quarantines=quarantine_files,
        layers=teacher_layers,
        failures=teacher_failure_lists,
    output:
        h5="results/manifest/manifest.h5",
        jsonl="results/manifest/manifest.jsonl",
        quarantine="results/manifest/quarantine.jsonl",
        summary="results/manifest/summary.json",
    params:
        max_bad_share=config["ingest"]["max_bad_share"],
        compression_level=config["manifest"]["compression_level"],
        max_failed_share=wf.max_failed_share(),
    log:
        "logs/merge_manifest/merge_manifest.log",
    benchmark:
        "results/benchmarks/merge_manifest/merge_manifest.tsv"
    resources:
        **job_resources("merge_manifest"),
    conda:
        "../../envs/distillery.yaml"
    shell:
        "distillery merge --shards {input.shards:q} --quarantines {input.quarantines:q} "
        "--layers {input.layers:q} --failures {input.failures:q} "
        "--max-failed-share {params.max_failed_share} "
        "--out-h5 {output.h5:q} --out-jsonl {output.jsonl:q} "
        "--out-quarantine {output.quarantine:q} --out-summary {output.summary:q} "
        "--max-bad-share {params.max_bad_share} "
        "--compression-level {params.compression_level} > {log:q} 2>&1"
