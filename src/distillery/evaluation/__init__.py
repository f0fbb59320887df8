"""Evaluation of student checkpoints: the test split of each dataset, every reference, with intervals.

Modules: `regions` (depth references and the pixel regions scored), `bootstrap`
(set-level statistics and 95 % intervals over sequences), `runner` (a
checkpoint on a manifest's test split -> evaluation JSON, frames.jsonl and
predictions), `fusion_io` (`distillery fusion` on .npy files or a manifest
split), `cli` (`distillery evaluate`, `distillery fusion`). Metric definitions
and the JSON schema: docs/evaluation.md.
"""

from distillery.evaluation.runner import EvalSettings, evaluate

__all__ = ["EvalSettings", "evaluate"]
