"""The ingest settings (the config's `ingest:` and `sharding:` sections) and their defaults, in one place.

The workflow fills every key a config leaves out from `IngestSettings()` and
`ShardingSettings()` (distillery.workflow.defaults), and `distillery index |
plan-shards | pack-shard | ingest | merge` take their option defaults from
`DEFAULTS` and `SHARDING`, as do `PackSettings`, `ReaderOptions` and
`ingest_folder`, so a hand-run command and the workflow's jobs agree without
a second copy of any number. The frame size is distillery.framesize's and
the trusted-depth floor distillery.confidence's (shared with other stages).
The module is light to import (numpy at most): the workflow reads it at
every DAG build.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from distillery.confidence import TRUSTED_FLOOR
from distillery.framesize import HEIGHT, WIDTH

FITS = ("crop", "stretch")  # how a frame meets the stored aspect ratio (distillery.ingest.resize)


@dataclass(frozen=True)
class IngestSettings:
    """What `ingest:` sets; the schema (workflow/schemas/config.schema.yaml) describes each key."""

    height: int = HEIGHT  # stored frame height
    width: int = WIDTH  # stored frame width
    fit: str = "crop"  # centre-crop to the stored aspect ratio (or stretch)
    max_depth_m: float = 20.0  # depth beyond this is invalid; a frame mostly beyond it is absurd (wrong scale)
    max_bad_share: float = 0.05  # the merge fails when a dataset's share of quarantined frames passes this
    max_pair_dt: float = 0.02  # seconds allowed between paired RGB and depth timestamps
    trusted_floor: float = TRUSTED_FLOOR  # pack warns when confidence trusts less of a dataset's valid depth


def default_splits() -> dict[str, float]:
    """The split fractions of a config that names none (a fresh mapping each call)."""
    return {"train": 0.8, "val": 0.1, "test": 0.1}


@dataclass(frozen=True)
class ShardingSettings:
    """What `sharding:` sets: frames per shard and the per-sequence split draw (distillery.ingest.shards).

    `splits` is one setting: a config's mapping replaces the default whole (a split it leaves out gets no
    frames), it is not merged key by key."""

    frames_per_shard: int = 256  # frames per shard: one teacher job per shard and teacher
    seed: int = 0  # seed of the sequence-to-split assignment
    splits: dict[str, float] = field(default_factory=default_splits)  # split fractions


DEFAULTS = IngestSettings()
SHARDING = ShardingSettings()
