"""The training configuration: one dataclass, one comment per field.

A config comes from the workflow config's `training.versions.<version>`
mapping, from a YAML file holding such a mapping (or a whole workflow config
plus a version name), and from JSON overrides on the command line. Unknown
keys are errors, so a typo never silently trains with a default.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import yaml


@dataclass
class AugmentConfig:
    """The V5 "deployment" augmentations; each is drawn per sample with its probability."""

    flip_p: float = 0.5  # horizontal flip
    rotate_deg: float = 10.0  # rotation drawn from +-rotate_deg
    scale_range: tuple[float, float] = (0.85, 1.15)  # zoom factor; depth is divided by it (metric consistency)
    geometric_p: float = 0.5  # probability of the rotation + zoom warp
    jitter_p: float = 0.8  # colour jitter (brightness, contrast, saturation, hue)
    brightness: float = 0.2
    contrast: float = 0.2
    saturation: float = 0.2
    hue: float = 0.03
    exposure_range: tuple[float, float] = (0.7, 1.3)  # linear-light gain
    exposure_p: float = 0.5
    blur_p: float = 0.2  # Gaussian blur, sigma in blur_sigma
    blur_sigma: tuple[float, float] = (0.3, 1.5)
    noise_p: float = 0.3  # Gaussian sensor noise with std up to noise_std (RGB in [0, 1])
    noise_std: float = 0.03
    jpeg_p: float = 0.3  # JPEG re-encoding, quality drawn from jpeg_quality
    jpeg_quality: tuple[int, int] = (50, 85)
    cutout_p: float = 0.3  # one grey rectangle over the RGB, up to cutout_max_share of each side
    cutout_max_share: float = 0.3


DEFAULT_FREEZE_EPOCHS = 5  # frozen encoder epochs of a run from scratch that states none


@dataclass
class TrainConfig:
    # --- model ---
    backbone: str = "efficientvit_b1"  # efficientvit_b1 (V4-V9) or mobilenetv3_small (V1-V3)
    encoder_weights: str = "imagenet"  # imagenet (fetched by download_weights; missing = the run fails before it
    # starts), random (on purpose), auto (ImageNet if found, else random with a warning), or a weight file
    weights_cache: str | None = None  # where download_weights puts the ImageNet weights (teachers.weights_cache)
    num_classes: int = 6  # floor, wall, person, furniture, glass, other
    depth_init_m: float | None = None  # initial depth (softplus bias); None = median target of a fresh run
    # --- data ---
    train_split: str = "train"
    val_split: str = "val"
    manifest_weights: list[float] | None = None  # mixing weight per --manifest; None = by size
    dataset_weights: dict[str, float] | None = None  # train only on these datasets, mixed by these weights
    samples_per_epoch: int | None = None  # None = the number of training frames
    max_val_frames: int | None = None  # cap on validation frames (evenly spaced); None = all
    val_datasets: list[str] | None = None  # choose best.pt on the val frames of these datasets only; None = all
    batch_size: int = 16
    num_workers: int = 2  # DataLoader worker processes (0 = load in the training process)
    augment: bool = False  # the V5 augmentations
    augmentation: AugmentConfig = field(default_factory=AugmentConfig)
    # --- loss ---
    depth_teacher: str = "metric"  # metric (teacher_depth, m), relative (teacher_depth_relative, SSI loss), tof
    depth_target: str = "hybrid"  # hybrid (teacher per frame, else ToF), fusion (per pixel, like runtime), tof_only
    depth_loss: str | None = None  # berhu, l1 or ssi; None = berhu (metric, tof) or ssi (relative teacher)
    berhu_threshold: float = 0.2  # c = this x the batch's max |error|
    lambda_e: float = 0.1  # weight of the edge-aware smoothness L_edge, added outside the Kendall weighting
    kendall: bool = True  # learned uncertainty weighting of depth and segmentation
    kendall_clamp: float = 2.0  # s_d, s_s are clamped to [-clamp, clamp]
    seg_weight: float = 1.0  # weight of the segmentation loss when kendall is off
    # --- optimisation ---
    epochs: int = 30
    lr: float = 1e-3  # decoders; 1e-3 (V4), 3e-4 for fine-tunes
    encoder_lr_scale: float = 0.1  # encoder learning rate = lr x this
    kendall_lr: float = 1e-3  # learning rate of s_d, s_s
    weight_decay: float = 1e-4  # encoder and decoders (not the Kendall parameters)
    warmup_steps: int = 0  # linear warm-up before the cosine decay
    min_lr_ratio: float = 0.01  # the cosine ends at lr x this
    freeze_encoder_epochs: int | None = None  # encoder frozen (no updates, BatchNorm in eval mode) for these
    # epochs; a fine-tune (init_from) must state it, a run from scratch gets 5 when it does not
    grad_clip: float = 1.0  # max global gradient norm; 0 = off
    amp: str = "bf16"  # bf16, fp16 or off; CUDA only (CPU always runs fp32)
    channels_last: bool = True  # NHWC memory format: faster convolutions with cuDNN and with oneDNN on CPU
    # --- run ---
    seed: int = 0
    deterministic: bool = True  # deterministic kernels (bit-identical CPU resume)
    device: str = "auto"  # auto (cuda when available), cpu, cuda
    init_from: str | None = None  # fine-tune: parent checkpoint whose weights start this run
    best_metric: str = "depth/target/rmse"  # validation metric choosing best.pt (never truth); relative: .../ssi
    best_mode: str = "min"  # min or max
    save_every_steps: int = 0  # also write last.pt every this many steps; 0 = per epoch only
    log_every_steps: int = 10  # training scalars to TensorBoard and metrics.jsonl
    max_steps: int | None = None  # stop (as if interrupted, last.pt written) after this many steps
    progress: bool = True  # tqdm progress bar on rank 0

    def __post_init__(self):
        """A fine-tune states its freeze schedule; a run from scratch that states none freezes 5 epochs."""
        if self.freeze_encoder_epochs is None:
            if self.init_from:
                raise ValueError(f"a fine-tune (init_from {self.init_from}) must state freeze_encoder_epochs: "
                                 "the epochs its encoder stays frozen (0 = none)")
            self.freeze_encoder_epochs = DEFAULT_FREEZE_EPOCHS


# Fields that change how a run executes, not what it computes: excluded from the resume fingerprint.
RUNTIME_FIELDS = ("num_workers", "progress", "log_every_steps", "save_every_steps", "max_steps", "device",
                  "weights_cache")
CHOICES = {"depth_teacher": ("metric", "relative", "tof"), "depth_target": ("hybrid", "fusion", "tof_only"),
           "depth_loss": (None, "berhu", "l1", "ssi"),
           "amp": ("bf16", "fp16", "off"), "best_mode": ("min", "max"), "device": ("auto", "cpu", "cuda"),
           "backbone": ("efficientvit_b1", "mobilenetv3_small")}


# Settings renamed since checkpoints were first written: a stored config still loads.
RENAMED = {"smoothness_weight": "lambda_e"}


def _build(cls, values: dict, where: str):
    if cls is TrainConfig:
        values = {RENAMED.get(k, k): v for k, v in values.items()}
    names = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(names))
    if unknown:
        raise ValueError(f"{where}: unknown training setting(s) {unknown}")
    kwargs = {}
    for name, value in values.items():
        if name == "augmentation":
            value = _build(AugmentConfig, value or {}, f"{where}.augmentation")
        elif isinstance(value, list) and isinstance(names[name].default, tuple):
            value = tuple(value)
        kwargs[name] = value
    return cls(**kwargs)


DEPTH_LOSSES = ("berhu", "l1", "ssi")


def resolve_depth_loss(depth_teacher: str, depth_loss: str | None) -> str:
    """The depth loss of a run: berhu for a metric or ToF target, ssi for a relative one, unless set.

    `ssi` compares the student's inverse depth with the relative teacher up to a per-frame scale and
    shift. `l1` or `berhu` on a relative teacher regress its unitless values as if they were metres:
    the reference lineage's V1 recipe, whose student has no metric scale."""
    if depth_loss is None:
        return "ssi" if depth_teacher == "relative" else "berhu"
    if depth_loss not in DEPTH_LOSSES:
        raise ValueError(f"unknown depth loss {depth_loss!r}: choose one of {list(DEPTH_LOSSES)}")
    if depth_loss == "ssi" and depth_teacher != "relative":
        raise ValueError(f"depth_loss 'ssi' is for a relative teacher; depth_teacher {depth_teacher!r} gives "
                         "metres: choose berhu or l1")
    return depth_loss


def validate(cfg: TrainConfig) -> TrainConfig:
    for name, allowed in CHOICES.items():
        if getattr(cfg, name) not in allowed:
            raise ValueError(f"training setting {name}={getattr(cfg, name)!r}: choose one of {list(allowed)}")
    if cfg.depth_teacher == "relative" and cfg.depth_target != "hybrid":
        raise ValueError(f"depth_target={cfg.depth_target!r} mixes ToF metres into the target, but depth_teacher "
                         "is relative (unitless): a relative target trains on the relative teacher alone; "
                         "leave depth_target out, or choose depth_teacher: metric")
    cfg.depth_loss = resolve_depth_loss(cfg.depth_teacher, cfg.depth_loss)
    if cfg.depth_loss == "ssi" and cfg.best_metric == "depth/target/rmse":
        cfg.best_metric = "depth/target/ssi"  # chosen on what it learns: the relative depth up to scale and shift
    if "truth" in cfg.best_metric:
        raise ValueError(f"best_metric {cfg.best_metric!r} uses ground truth; select on teacher agreement")
    if cfg.batch_size < 1 or cfg.epochs < 1:
        raise ValueError("batch_size and epochs must be at least 1")
    return cfg


def config_from_dict(values: dict, where: str = "training config") -> TrainConfig:
    return validate(_build(TrainConfig, dict(values), where))


def load_config(path: str | Path | None = None, version: str | None = None, overrides: dict | None = None
                ) -> TrainConfig:
    """A TrainConfig from a YAML file (a training mapping, or a workflow config + version) and overrides."""
    values: dict = {}
    if path is not None:
        data = yaml.safe_load(Path(path).read_text()) or {}
        if "training" in data:
            versions = data["training"].get("versions", {})
            if version not in versions:
                raise ValueError(f"{path}: training.versions has no {version!r} (has {sorted(versions)})")
            data = versions[version]
        elif version is not None:
            raise ValueError(f"{path}: --version given but the file has no training section")
        values.update(data)
    values.update(overrides or {})
    return config_from_dict(values, str(path or "training config"))


def fingerprint(cfg: TrainConfig, inputs: dict) -> str:
    """A hash of everything that decides a run's result; a resume must match it.

    `inputs` identifies the data by content, never by path: the manifests'
    content ids and the parent checkpoint's SHA-256 (student/rundir.py), so
    a re-merged manifest or a retrained parent gives a new fingerprint.
    """
    values = {k: v for k, v in dataclasses.asdict(cfg).items() if k not in (*RUNTIME_FIELDS, "init_from")}
    values["inputs"] = inputs
    return hashlib.sha256(json.dumps(values, sort_keys=True, default=str).encode()).hexdigest()[:16]
