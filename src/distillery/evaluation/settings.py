"""The evaluation settings and their defaults, in one place, without importing torch.

`EvalSettings` is how `distillery evaluate` runs (its options default to it);
`EvaluationConfig` is the config's `evaluation:` section, whose defaults are
EvalSettings' own. The workflow fills every key a config leaves out from
`EvaluationConfig()` (distillery.workflow.defaults), so the evaluate_version
jobs and a hand-run `distillery evaluate` use the same numbers.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass
class EvalSettings:
    """How to run an evaluation; none of these changes a number except split, resamples and seed."""

    split: str = "test"  # the split evaluated; only the test split is unseen by training and selection
    batch_size: int = 8
    num_workers: int = 0  # DataLoader worker processes
    device: str = "cpu"  # cpu, cuda or auto
    resamples: int = 1000  # bootstrap resamples (0: no intervals)
    seed: int = 0  # bootstrap seed
    version: str | None = None  # version name in the JSON; default: the checkpoint's folder name
    progress: bool = True


@dataclasses.dataclass(frozen=True)
class BootstrapConfig:
    """`evaluation.bootstrap`: 95 % intervals by resampling whole test sequences."""

    resamples: int = EvalSettings.resamples
    seed: int = EvalSettings.seed


@dataclasses.dataclass(frozen=True)
class EvaluationConfig:
    """The config's `evaluation:` section; the schema (workflow/schemas/config.schema.yaml) describes each key."""

    sets: list[str] | None = None  # datasets evaluated per version (None: every dataset of the manifest)
    bootstrap: BootstrapConfig = dataclasses.field(default_factory=BootstrapConfig)
    batch_size: int = EvalSettings.batch_size
    device: str = EvalSettings.device
