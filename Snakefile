# Distillery: knowledge distillation for robot perception, as one workflow DAG.
# Wiring only: stages live in workflow/rules/, logic in src/distillery/.
from snakemake.utils import min_version

min_version("9.0")


# config/config.yaml (the template of a real run) unless --configfile names whole configurations of
# its own, e.g. `--configfile config/demo.yaml` (`make demo`): see src/distillery/workflow/checks.py.
from distillery.workflow import template_configfile

if template_configfile(workflow.basedir, workflow.overwrite_configfiles):

    configfile: template_configfile(workflow.basedir, workflow.overwrite_configfiles)


include: "workflow/rules/common.smk"
include: "workflow/rules/synth.smk"
include: "workflow/rules/ingest.smk"
include: "workflow/rules/select.smk"
include: "workflow/rules/teachers.smk"
include: "workflow/rules/manifest.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/deploy.smk"


rule all:
    input:
        rules.merge_manifest.output,
        wf.selection_targets(),
        expand("results/train/{version}/best.pt", version=wf.built_versions()),
        wf.report_targets(),
        wf.deploy_targets(),
    default_target: True
