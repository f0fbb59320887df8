# Generated RGB-D worlds: the embedded demo data and the test data.


rule synthesize_world:
    output:
        world=directory("results/synth/{dataset}"),
    params:
        settings=synth_params,
    log:
        "logs/synthesize_world/{dataset}.log",
    benchmark:
        "results/benchmarks/synthesize_world/{dataset}.tsv"
    resources:
        **job_resources("synthesize_world"),
    conda:
        "../../envs/distillery.yaml"
    shell:
        "distillery synth --out {output.world:q} {params.settings} > {log:q} 2>&1"
