"""Checks of the training versions' own settings, run when Snakemake builds the DAG.

`lineage.check_lineage` checks how versions relate (parents exist, no
cycle, dataset and role names in `datasets` / `val_datasets`); the checks
here look at each version's settings on their own, with training.defaults
applied. A failure names the version, the key and the value:

- `init_from` is not a workflow setting: a version fine-tunes through
  `parent: <version>`, whose best.pt the workflow tracks and hashes (a file
  path given to `init_from` would be invisible to reruns).
- a fine-tune (a version with a parent) states `freeze_encoder_epochs`,
  so no fine-tune silently freezes its encoder for the default 5 epochs.
- `dataset_weights` names datasets of the config.

Pure functions of the config: unit-tested without Snakemake.
"""

from __future__ import annotations

from distillery.workflow.lineage import version_entry


def check_version(name: str, entry: dict, datasets: list[str]) -> None:
    """Raise ValueError naming the version and value when one version's settings cannot be trained."""
    where = f"config: training.versions.{name}"
    if entry.get("init_from") is not None:
        raise ValueError(f"{where}.init_from is {entry['init_from']!r}: a workflow version fine-tunes through "
                         "`parent: <version>` (whose best.pt the workflow tracks), not a file path")
    parent = entry.get("parent")
    if parent is not None and entry.get("freeze_encoder_epochs") is None:
        raise ValueError(f"{where} fine-tunes {parent!r} but states no freeze_encoder_epochs: say how many "
                         "epochs its encoder stays frozen (0 = none)")
    for dataset in entry.get("dataset_weights") or {}:
        if dataset not in datasets:
            raise ValueError(f"{where}.dataset_weights names {dataset!r}, which is not a dataset "
                             f"(datasets: {sorted(datasets)})")


def check_versions(training: dict, datasets: list[str]) -> None:
    """check_version for every version of a config's `training` section, defaults applied."""
    if (training.get("defaults") or {}).get("init_from") is not None:
        raise ValueError("config: training.defaults.init_from: a workflow version fine-tunes through "
                         "`parent: <version>`, not a file path")
    for name in training.get("versions") or {}:
        check_version(name, version_entry(training, name), datasets)
