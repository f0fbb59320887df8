"""Evaluation of student checkpoints: the test split of each dataset, every reference, with intervals.

Modules: `regions` (depth references and the pixel regions scored), `bootstrap`
(set-level statistics and 95 % intervals over sequences), `runner` (a
checkpoint on a manifest's test split -> evaluation JSON, frames.jsonl and
predictions), `settings` (EvalSettings and the config's `evaluation:` section, with their
defaults), `fusion_io` (`distillery fusion` on .npy files or a manifest
split), `cli` (`distillery evaluate`, `distillery fusion`). Metric definitions
and the JSON schema: docs/evaluation.md.
"""

__all__ = ["EvalSettings", "evaluate"]


def __getattr__(name: str):
    # Lazy: `distillery <any stage> --help` must not pay for importing torch.
    if name == "EvalSettings":
        from distillery.evaluation import settings

        return settings.EvalSettings
    if name in __all__:
        from distillery.evaluation import runner

        return getattr(runner, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
