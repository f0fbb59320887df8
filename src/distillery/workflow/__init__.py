"""The workflow's decisions, as plain functions and classes of the config.

`workflow/rules/common.smk` validates the config, builds one `Workflow` with
`load(config)` and passes its answers to the rules through thin input
functions, so every decision is unit-tested without Snakemake:

- `checks`: which config file a run starts from, the untouched template, the
  Slurm training guard and the encoder weights a version fetches;
- `plan`: datasets, lineage versions (built, deployed), evaluation sets,
  teachers and their settings, each rule's settings;
- `jobs`: the job sizes table, retries' memory and the partition-fit check;
- `lineage`: dataset roles, version defaults, parents-first order and the
  lineage checks; `versions`: each version's own settings checked.
"""

from distillery.workflow.checks import (DEMO, DEMO_FRAMES, TEMPLATE, ancestors_and_self, demo_sized,
                                        encoder_file, no_datasets_message, on_cpu, real_datasets,
                                        slurm_training_message, slurm_training_problems,
                                        template_configfile)
from distillery.workflow.plan import Workflow, load, load_validated

__all__ = ["DEMO", "DEMO_FRAMES", "TEMPLATE", "Workflow", "ancestors_and_self", "demo_sized", "encoder_file",
           "load", "load_validated", "no_datasets_message", "on_cpu", "real_datasets", "slurm_training_message",
           "slurm_training_problems", "template_configfile"]
