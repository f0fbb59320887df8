# The lineage report: every built version on every evaluation set, one self-contained HTML page
# (results/report/lineage.html) and a markdown summary (docs/lineage.md).


rule report:
    input:
        unpack(report_inputs),
    output:
        html="results/report/lineage.html",
        md="results/report/lineage.md",
    params:
        lineage=as_json(wf.lineage_summary()),
        checkpoints=[f"{v}=results/train/{v}/best.pt" for v in wf.built_versions()],
        deploy_dir="results/deploy",
        frames=3,
    log:
        "logs/report/report.log",
    benchmark:
        "results/benchmarks/report/report.tsv"
    resources:
        **job_resources("report"),
    conda:
        "../../envs/distillery.yaml"
    shell:
        "distillery report --evaluations {input.evaluations:q} --lineage {params.lineage:q} "
        "--manifest {input.manifest:q} --checkpoint {params.checkpoints:q} --deploy-dir {params.deploy_dir} "
        "--frames {params.frames} --out-html {output.html:q} --out-md {output.md:q} > {log:q} 2>&1"
