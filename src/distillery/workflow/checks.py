"""Decisions the workflow makes when Snakemake builds the DAG, as plain functions of the config.

`workflow/rules/common.smk` calls these, so the rules stay wiring and every
decision is unit-tested without Snakemake:

- which configuration a run starts from: `config/config.yaml` (the template
  of a real run) when no `--configfile` is given, else the `--configfile`
  files alone. Snakemake merges mappings key by key, so a demo given with
  `--configfile` on top of the template would inherit the template's GPU
  teachers and training sizes; a `--configfile` is therefore a whole
  configuration (`config/demo.yaml` is one) and `--config KEY=VALUE` still
  overrides single keys of whichever file is used.
- a template without datasets stops with one line saying what to add.
- which encoders' ImageNet weights the download_weights rule fetches: those
  of every version that starts from them (no parent, encoder_weights
  imagenet or auto), so training jobs on offline GPU nodes find them.
- under a Slurm executor, a training planned on CPU, or demo-sized training on
  data that is not generated, stops the DAG build naming the version and the
  setting, unless the config opts in (`training.allow_cpu_on_slurm`,
  `training.allow_demo_size_on_slurm`): such runs waste a week of a team's
  queue time before anyone reads the numbers.
"""

from __future__ import annotations

from pathlib import Path

from distillery.workflow.lineage import version_entry

TEMPLATE = Path("config") / "config.yaml"  # the real run's configuration, edited by a user
DEMO = Path("config") / "demo.yaml"  # the embedded demo: generated worlds, simulated teachers, CPU
# Fewer frames than this seen in a whole training run is demo-sized (the demo sees 3 x 32 = 96).
DEMO_FRAMES = 2000


def template_configfile(basedir: str | Path, cli_configfiles) -> Path | None:
    """The file `configfile:` loads: the template when no --configfile is given, else None."""
    return None if list(cli_configfiles or ()) else Path(basedir) / TEMPLATE


def no_datasets_message(config: dict) -> str | None:
    """One line for a config without datasets (the untouched template), else None."""
    if config.get("datasets"):
        return None
    return (f"config: no datasets: add your RGB-D folders under `datasets:` in {TEMPLATE} "
            f"(see its comments and README \"Your own data\"), or run `make demo` "
            f"(snakemake --configfile {DEMO})")


def encoder_file(entry: dict, cache: str | Path):
    """The ImageNet weight file (a teachers.weights.WeightFile with its hub repo) a version's encoder starts
    from, or None: a fine-tune starts from its parent, `random` or a file path from nothing to fetch."""
    from distillery.student.encoder_weights import FILENAME, cache_file, hub_repo
    from distillery.student.backbones import BACKBONES
    from distillery.teachers.weights import WeightFile

    if entry.get("parent") or entry.get("encoder_weights", "imagenet") not in ("imagenet", "auto"):
        return None
    timm_name = BACKBONES[entry.get("backbone", "efficientvit_b1")][0]
    return WeightFile(cache_file(timm_name, cache), hub_repo(timm_name), FILENAME)


def ancestors_and_self(training: dict, names: list[str]) -> list[str]:
    """`names` and every version they fine-tune from (parents first is not needed: a set in config order)."""
    versions = training.get("versions") or {}
    wanted: set[str] = set()
    stack = list(names)
    while stack:
        name = stack.pop()
        if name in wanted or name not in versions:
            continue
        wanted.add(name)
        parent = (versions[name] or {}).get("parent")
        if parent:
            stack.append(parent)
    return [v for v in versions if v in wanted]


def on_cpu(entry: dict) -> str | None:
    """The setting that puts a version's training on the CPU (gpus 0 or device cpu), else None."""
    if int(entry.get("gpus") or 0) == 0:
        return f"gpus: {entry.get('gpus', 0)}"
    if entry.get("device") == "cpu":
        return "device: cpu"
    return None


def demo_sized(entry: dict) -> str | None:
    """The settings that make a version demo-sized (fewer than DEMO_FRAMES frames seen), else None."""
    per_epoch = entry.get("samples_per_epoch")
    if per_epoch is None:
        return None  # every training frame each epoch: sized by the data
    epochs = int(entry.get("epochs", 30))
    if epochs * int(per_epoch) >= DEMO_FRAMES:
        return None
    return f"epochs: {epochs} x samples_per_epoch: {per_epoch} = {epochs * int(per_epoch)} frames"


def real_datasets(entry: dict, roles: dict, datasets: dict[str, dict]) -> list[str]:
    """The datasets a version trains on (its `datasets`, roles resolved; all when absent) that are not
    generated worlds."""
    names = entry.get("datasets")
    if names is None:
        chosen = list(datasets)
    else:
        keys = names.keys() if isinstance(names, dict) else names
        chosen = [(roles or {}).get(n, n) for n in keys]
    return [n for n in chosen if n in datasets and "synth" not in datasets[n]]


def slurm_training_problems(training: dict, roles: dict, datasets: dict[str, dict], versions: list[str]
                            ) -> list[str]:
    """Why each of `versions` (defaults applied) should not be submitted to Slurm as configured."""
    problems = []
    for name in ancestors_and_self(training, versions):
        entry = version_entry(training, name)
        cpu = on_cpu(entry)
        if cpu and not training.get("allow_cpu_on_slurm"):
            problems.append(f"training.versions.{name} trains on the CPU ({cpu}) under the Slurm executor: set "
                            f"gpus: 1 (in training.defaults or the version), or training.allow_cpu_on_slurm: true "
                            f"to mean it")
        small, real = demo_sized(entry), real_datasets(entry, roles, datasets)
        if small and real and not training.get("allow_demo_size_on_slurm"):
            problems.append(f"training.versions.{name} is demo-sized ({small}) on real data ({', '.join(real)}) "
                            f"under the Slurm executor: raise epochs / samples_per_epoch (null = every frame), "
                            f"or set training.allow_demo_size_on_slurm: true to mean it")
    return problems


def slurm_training_message(training: dict, roles: dict, datasets: dict[str, dict], versions: list[str]
                           ) -> str | None:
    """Every problem of slurm_training_problems, one line each, or None when there is none."""
    problems = slurm_training_problems(training, roles, datasets, versions)
    return "\n".join(f"config: {p}" for p in problems) or None
