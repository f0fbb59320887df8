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
teachers gets no `teachers.sanity`.
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
    from distillery.teachers.sanity_limits import SanityLimits

    return {"deploy": DeploySettings, "evaluation": EvaluationConfig, "teachers.sanity": SanityLimits,
            "datasets.*.bag": BagSettings}


def single_settings() -> dict[str, object]:
    """Settings of sections that no one dataclass backs: dotted path -> the default of the code that uses it."""
    from distillery.framesize import HEIGHT, WIDTH
    from distillery.manifest.failures import MAX_FAILED_SHARE

    return {"ingest.height": HEIGHT, "ingest.width": WIDTH, "teachers.max_failed_share": MAX_FAILED_SHARE}


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


def merge_missing(target: dict, defaults: dict) -> None:
    """Copy each key of `defaults` that `target` lacks; mappings present in both are merged the same way."""
    for key, value in defaults.items():
        if key not in target:
            target[key] = copy.deepcopy(value)
        elif isinstance(value, dict) and isinstance(target[key], dict):
            merge_missing(target[key], value)


def fill(config: dict) -> dict:
    """Fill `config` (schema-validated) in place with every default it leaves out; returns it."""
    for path, settings in sections().items():
        defaults = section_defaults(settings)
        for section in objects_at(config, path):
            merge_missing(section, defaults)
    for path, value in single_settings().items():
        parent, _, key = path.rpartition(".")
        for section in objects_at(config, parent):
            section.setdefault(key, copy.deepcopy(value))
    return config
