"""The sanity gate's limits (the config's `teachers.sanity:` section) and their defaults, in one place.

A module of its own, without numpy or torch, so that the workflow (which fills
every key a config leaves out from `SanityLimits()`, distillery.workflow.defaults)
and `distillery plan` read the defaults without loading a teacher.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SanityLimits:
    """What the gate checks (distillery.teachers.sanity); the schema describes each key."""

    frames: int = 8  # frames the depth teacher labels, spread evenly over every shard
    max_depth_m: float = 50.0  # a frame whose largest depth passes this is absurd
    max_mean_m: float = 20.0  # a frame whose mean depth passes this is absurd
    fail_r: float = 0.5  # Pearson r with the valid ToF below this fails the run
    warn_r: float = 0.7  # below this warns
    min_tof_pixels: int = 200  # valid ToF pixels needed for the correlation
