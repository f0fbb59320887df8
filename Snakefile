# Distillery: knowledge distillation for robot perception, as one workflow DAG.
# Wiring only: stages live in workflow/rules/, logic in src/distillery/.
from snakemake.utils import min_version

min_version("9.0")


configfile: f"{workflow.basedir}/config/config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/synth.smk"
include: "workflow/rules/ingest.smk"
include: "workflow/rules/teachers.smk"
include: "workflow/rules/manifest.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/deploy.smk"


rule all:
    input:
        rules.merge_manifest.output,
        training_targets(),
        report_targets(),
        deploy_targets(),
    default_target: True
