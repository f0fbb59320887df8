"""One home per default: the schema describes a setting, the stage's settings dataclass owns its default.

For every config section backed by a dataclass (distillery.workflow.defaults.sections) the schema's
properties and the dataclass's fields name the same keys, the schema carries no default value of its own
for them, and a config that leaves the keys out gets the dataclass's defaults once the workflow loads it
(what the rules and `distillery plan` read). The same holds for the single settings that a constant or a
dataclass field of the code owns (datasets' layout, manifest.compression_level, select's novelty scales, the
teacher jobs' settings, teachers.max_failed_share).
"""

from __future__ import annotations

import copy
import dataclasses

import yaml
from snakemake.utils import validate
from workflow_util import DEMO, ROOT, snakemake

from distillery.workflow import defaults, load

SCHEMA = ROOT / "workflow" / "schemas" / "config.schema.yaml"


def schema_node(schema: dict, path: str) -> dict:
    """The schema of the config object at a dotted path (`*`: an item of a list)."""
    node = schema
    for key in path.split("."):
        node = node["items"] if key == "*" else node["properties"][key]
    return node


def check_keys(node: dict, settings: type, where: str) -> None:
    """The schema object's optional keys are the dataclass's fields, with no default of the schema's own
    (a nested section may default to {}, which the workflow then fills)."""
    fields = {f.name: f for f in dataclasses.fields(settings)}
    optional = set(node["properties"]) - set(node.get("required", ()))
    assert optional == set(fields), f"{where}: schema {sorted(optional)} vs {settings.__name__} {sorted(fields)}"
    for name, field in fields.items():
        prop = node["properties"][name]
        factory = field.default_factory
        if factory is not dataclasses.MISSING and dataclasses.is_dataclass(factory()):
            assert prop.get("default", {}) == {}, f"{where}.{name}"
            check_keys(prop, type(factory()), f"{where}.{name}")
        else:
            assert "default" not in prop, f"{where}.{name}: the default lives in {settings.__name__}"


def without(config: dict, path: str, keys) -> None:
    """Remove `keys` from every object of `config` at `path`."""
    for section in defaults.objects_at(config, path):
        for key in keys:
            section.pop(key, None)


def test_each_default_lives_in_the_code_and_reaches_a_config_that_leaves_it_out():
    schema = yaml.safe_load(SCHEMA.read_text())
    sections, singles = defaults.sections(), defaults.single_settings()
    for path, settings in sections.items():
        check_keys(schema_node(schema, path), settings, path)
    for path in singles:
        parent, _, key = path.rpartition(".")
        assert "default" not in schema_node(schema, parent)["properties"][key], path

    config = yaml.safe_load(DEMO.read_text())
    config["datasets"].append({"name": "robot", "bag": {"path": "recordings/robot.bag"}})
    config["select"] = {"share": 0.5}
    for path, settings in sections.items():
        without(config, path, [f.name for f in dataclasses.fields(settings)])
    for path in singles:
        parent, _, key = path.rpartition(".")
        without(config, parent, [key])
    validate(config, schema=str(SCHEMA))
    loaded = load(copy.deepcopy(config)).config
    for path, settings in sections.items():
        expected, found = defaults.section_defaults(settings), defaults.objects_at(loaded, path)
        assert found, path
        for section in found:  # every setting, and nothing else than the required keys (a bag's path)
            assert {k: v for k, v in section.items() if k in expected} == expected, path
            assert set(section) - set(expected) <= set(schema_node(schema, path).get("required", ())), path
    for path, value in singles.items():
        parent, _, key = path.rpartition(".")
        found = [section[key] for section in defaults.objects_at(loaded, parent)]
        assert found and found == [value] * len(found), path  # each dataset gets its layout
    assert loaded["select"]["share"] == 0.5 and "threshold" not in loaded["select"]  # no default: one of the two


def test_a_mapping_setting_is_kept_whole_and_sections_the_config_lacks_stay_absent():
    """sharding.splits given in part is the config's choice (a split left out gets no sequences), not merged
    with the default fractions; a config without select or teachers gets neither section."""
    config = yaml.safe_load(DEMO.read_text())
    config["sharding"] = {"splits": {"train": 0.9, "val": 0.1}}
    del config["teachers"]
    config["training"]["build"] = []  # the demo's versions learn from teachers
    validate(config, schema=str(SCHEMA))
    loaded = load(config).config
    assert loaded["sharding"]["splits"] == {"train": 0.9, "val": 0.1}
    assert loaded["sharding"]["frames_per_shard"] == defaults.section_defaults(defaults.sections()["sharding"])[
        "frames_per_shard"]
    assert "select" not in loaded and "teachers" not in loaded


def test_select_null_labels_every_frame_as_an_absent_section_does(tmp_path):
    """docs/selection.md: `select: null` is no selection; the workflow accepts it and plans no select job."""
    dry = snakemake(tmp_path, "-n", config={"select": None}).stdout  # fails on a non-zero exit
    assert "select_frames" not in dry and "plan_shards" in dry
