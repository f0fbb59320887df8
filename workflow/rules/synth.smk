# Generated RGB-D worlds: the embedded demo data and the test data.


rule synthesize_world:
    output:
        world=directory("results/synth/{dataset}"),
    params:
        family=lambda w: wf.synth_settings(w.dataset)["family"],
        seed=lambda w: wf.synth_settings(w.dataset)["seed"],
        sequences=lambda w: wf.synth_settings(w.dataset)["sequences"],
        frames=lambda w: wf.synth_settings(w.dataset)["frames"],
        height=lambda w: wf.synth_settings(w.dataset)["height"],
        width=lambda w: wf.synth_settings(w.dataset)["width"],
    log:
        "logs/synthesize_world/{dataset}.log",
    benchmark:
        "results/benchmarks/synthesize_world/{dataset}.tsv"
    resources:
        **job_resources("synthesize_world"),
    conda:
        "../../envs/distillery.yaml"
    shell:
        "distillery synth --out {output.world:q} --family {params.family} --seed {params.seed} "
        "--sequences {params.sequences} --frames {params.frames} --height {params.height} "
        "--width {params.width} > {log:q} 2>&1"
