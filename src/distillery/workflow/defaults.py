"""The settings a config leaves out, filled from the code that owns their defaults.

The schema (workflow/schemas/config.schema.yaml) gives every setting its type,
bounds and description. A setting's default value lives once: in the settings
dataclass (or constant) of the stage that uses it, from which the stage's
command line also takes its option defaults. `fill(config)`, which `load`
runs on the schema-validated config, writes those defaults into the config in
place, so the rules (`config["deploy"]["parity_frames"]`), the `Workflow`
and `distillery plan` see every setting, as they did when the schema carried
copies of the numbers.

A section is filled only where the config has it (after validation, which
creates `deploy:` and `evaluation:` as empty mappings): a config without
teachers gets no `teachers.sanity`, one without `select:` no novelty scales.
A setting whose value is a mapping (`sharding.splits`) is one value: a config
that gives it keeps it whole; only nested settings dataclasses
(`evaluation.bootstrap`) are filled key by key.
"""

from __future__ import annotations

import copy
import dataclasses


def sections() -> dict[str, type]:
    """Config sections whose every key is a field of one dataclass: dotted path (`*`: each item of a list)
    -> the dataclass, whose defaults fill the keys a config leaves out."""
    from distillery.deploy.settings import DeploySettings
    from distillery.evaluation.settings import EvaluationConfig
    from distillery.ingest.bags.extract import BagSettings
    from distillery.ingest.settings import IngestSettings, ShardingSettings
    from distillery.teachers.sanity_limits import SanityLimits

    return {"ingest": IngestSettings, "sharding": ShardingSettings, "deploy": DeploySettings,
            "evaluation": EvaluationConfig, "teachers.sanity": SanityLimits, "datasets.*.bag": BagSettings}


def single_settings() -> dict[str, object]:
    """Settings of sections that no one dataclass backs: dotted path -> the default of the code that uses it."""
    from distillery.ingest.readers.base import AUTO
    from distillery.manifest.failures import MAX_FAILED_SHARE
    from distillery.manifest.schema import COMPRESSION_LEVEL
    from distillery.select.novelty import SelectSettings
    from distillery.teachers import settings as teachers

    return {"datasets.*.layout": AUTO, "manifest.compression_level": COMPRESSION_LEVEL,
            # select: share and threshold have no default (the config gives exactly one), the novelty scales do
            "select.translation_m": SelectSettings.translation_m, "select.rotation_deg": SelectSettings.rotation_deg,
            "select.depth_weight": SelectSettings.depth_weight,
            "teachers.weights_cache": teachers.WEIGHTS_CACHE, "teachers.device": teachers.DEVICE,
            "teachers.precision": teachers.PRECISION, "teachers.batch_size": teachers.BATCH_SIZE,
            "teachers.max_failed_share": MAX_FAILED_SHARE}


def section_defaults(settings: type) -> dict:
    """A settings dataclass's defaults as the config writes them (nested dataclasses as mappings)."""
    return dataclasses.asdict(settings())


def objects_at(config: dict, path: str) -> list[dict]:
    """The mappings of `config` at a dotted path (`*` steps into each item of a list); missing ones are
    skipped, so nothing is created."""
    found = [config]
    for key in path.split("."):
        if key == "*":
            found = [item for value in found if isinstance(value, list) for item in value]
        else:
            found = [value[key] for value in found if isinstance(value, dict) and key in value]
    return [value for value in found if isinstance(value, dict)]


def merge_missing(target: dict, settings: object) -> None:
    """Copy each field of the settings dataclass instance `settings` that `target` lacks; a nested settings
    dataclass fills a mapping the config gives the same way, any other value is kept as the config gives it."""
    for f in dataclasses.fields(settings):
        value = getattr(settings, f.name)
        if f.name not in target:
            target[f.name] = dataclasses.asdict(value) if dataclasses.is_dataclass(value) else copy.deepcopy(value)
        elif dataclasses.is_dataclass(value) and isinstance(target[f.name], dict):
            merge_missing(target[f.name], value)


def fill(config: dict) -> dict:
    """Fill `config` (schema-validated) in place with every default it leaves out; returns it."""
    for path, settings in sections().items():
        for section in objects_at(config, path):
            merge_missing(section, settings())
    for path, value in single_settings().items():
        parent, _, key = path.rpartition(".")
        for section in objects_at(config, parent):
            section.setdefault(key, copy.deepcopy(value))
    return config
