"""The deployment settings (the config's `deploy:` section) and their defaults, in one place.

The workflow fills every key a config leaves out from `DeploySettings()`
(distillery.workflow.defaults), and `distillery export | calibrate | quantize |
test-frames | fused-graph | engine-bench` take their option defaults from
`DEFAULTS`, so the command line run by hand and the workflow's jobs agree
without a second copy of any number. The engine settings' defaults are the
constants of `distillery.deploy.engine`, which travels alone in the Jetson
bundle and so cannot import this module.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from distillery.deploy import engine, spec


@dataclass(frozen=True)
class DeploySettings:
    """What `deploy:` sets; the schema (workflow/schemas/config.schema.yaml) describes each key."""

    versions: list[str] | None = None  # versions deployed, of those built (None: every built version)
    calibration_frames: int = 64  # INT8 calibration frames drawn from the train split
    calibration_seed: int = 0  # seed of the calibration draw
    parity_frames: int = 16  # test frames of the ONNX-vs-PyTorch parity check
    fused_frames: int = 16  # test frames of the fused-graph check
    eval_frames: int | None = None  # test frames of the INT8-vs-FP32 accuracy (None: all)
    engines: bool = False  # build and time TensorRT engines (TensorRT and an NVIDIA GPU where jobs run)
    precisions: list[str] = field(default_factory=lambda: list(spec.PRECISIONS))  # engine precisions built
    engine_warmup: int = engine.WARMUP
    engine_runs: int = engine.RUNS
    latency_budget_ms: float = engine.BUDGET_MS
    agreement_frames: int = engine.AGREEMENT_FRAMES
    # The INT8 gate: what INT8 may cost against the FP32 graph (delta1 and mIoU in absolute points, AbsRel as a
    # share of FP32's AbsRel); quantize_int8 fails past any of them.
    int8_max_delta1_drop: float = 0.02
    int8_max_absrel_increase: float = 0.1
    int8_max_miou_drop: float = 0.03



DEFAULTS = DeploySettings()
