"""Manifest frames as training samples, mixtures of manifests and datasets, and the epoch sampler.

A sample is a dict of tensors:

    rgb              float32 [3, H, W] in [0, 1]
    tof_depth        float32 [1, H, W] metres, 0 = invalid
    tof_confidence   float32 [1, H, W] in [0, 1]
    teacher_depth    float32 [1, H, W] metres (zeros when absent) + has_teacher_depth (bool)
    teacher_depth_relative  float32 [1, H, W] relative teacher, unitless (zeros when absent) + has_ flag
    teacher_label    int64   [H, W] classes, 255 = ignore (all 255 when absent) + has_teacher_label
    truth_depth, truth_label (+ has_ flags)   evaluation datasets only (with_truth=True)
    row, key, source  manifest row, frame key, index of the manifest in the run's list

Ground truth is loaded only for evaluation: training datasets are built
with with_truth=False, so no loss can see it by accident.

The training sampler yields (frame index, draw seed) pairs: which frames an
epoch visits, in which order, and every augmentation draw are functions of
(seed, epoch) alone. That makes epochs reproducible across worker counts,
lets a resumed run start mid-epoch at an exact position, and shards the same
epoch across DDP ranks (as DistributedSampler does: padded by wrapping, then
rank-strided).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from distillery.classes import IGNORE_LABEL
from distillery.manifest import Manifest
from distillery.student.augment import augment
from distillery.student.config import AugmentConfig, TrainConfig
from distillery.student.losses import depth_target

TRAIN_FIELDS = ("rgb", "tof_depth", "tof_confidence", "teacher_depth", "teacher_depth_relative", "teacher_label")
TRUTH_FIELDS = ("truth_depth", "truth_label")


def _depth(array: np.ndarray | None, shape: tuple[int, int]) -> torch.Tensor:
    """A depth-like image as float32 [1, H, W]; non-finite values and absent slots become 0."""
    if array is None:
        return torch.zeros(1, *shape)
    depth = torch.from_numpy(np.nan_to_num(np.asarray(array, np.float32), nan=0.0, posinf=0.0, neginf=0.0))
    return depth.clamp_min(0)[None]


def _label(array: np.ndarray | None, shape: tuple[int, int]) -> torch.Tensor:
    if array is None:
        return torch.full(shape, IGNORE_LABEL, dtype=torch.int64)
    return torch.from_numpy(np.asarray(array, np.int64))


def frame_sample(frame: dict, source: int = 0) -> dict:
    """A manifest frame (Manifest.read) as a sample dict of tensors."""
    rgb = torch.from_numpy(np.ascontiguousarray(frame["rgb"])).permute(2, 0, 1).float() / 255
    shape = tuple(rgb.shape[-2:])
    sample = {"rgb": rgb, "tof_depth": _depth(frame["tof_depth"], shape),
              "tof_confidence": _depth(frame["tof_confidence"], shape),
              "row": int(frame["row"]), "key": frame["key"], "source": source}
    if "teacher_depth_relative" in frame:
        sample["teacher_depth_relative"] = _depth(frame["teacher_depth_relative"], shape)
        sample["has_teacher_depth_relative"] = torch.tensor(frame["teacher_depth_relative"] is not None)
    for depth_name, label_name in (("teacher_depth", "teacher_label"), ("truth_depth", "truth_label")):
        if depth_name in frame:
            sample[depth_name] = _depth(frame[depth_name], shape)
            sample[f"has_{depth_name}"] = torch.tensor(frame[depth_name] is not None)
            sample[label_name] = _label(frame[label_name], shape)
            sample[f"has_{label_name}"] = torch.tensor(frame[label_name] is not None)
    return sample


class FrameDataset(Dataset):
    """Frames (manifest index, row) of one or more manifests; item = index or (index, draw seed)."""

    def __init__(self, manifests: list[Manifest], frames: list[tuple[int, int]], with_truth: bool = False,
                 augmentation: AugmentConfig | None = None, seed: int = 0):
        self.manifests, self.frames = manifests, list(frames)
        self.fields = TRAIN_FIELDS + (TRUTH_FIELDS if with_truth else ())
        self.augmentation, self.seed = augmentation, seed

    def __len__(self) -> int:
        return len(self.frames)

    def __getitem__(self, item) -> dict:
        index, draw = item if isinstance(item, tuple) else (item, None)
        source, row = self.frames[index]
        sample = frame_sample(self.manifests[source].read(row, self.fields), source)
        if self.augmentation is not None:
            seed = draw if draw is not None else int(np.random.default_rng([self.seed, index]).integers(2**62))
            sample = augment(sample, self.augmentation, seed)
        return sample


@dataclasses.dataclass
class Source:
    """A group of training frames mixed with one weight: the frames of one dataset in one manifest."""

    manifest: int
    dataset: str
    indices: np.ndarray  # positions in the FrameDataset's frame list
    weight: float


def training_sources(manifests: list[Manifest], cfg: TrainConfig) -> tuple[list[tuple[int, int]], list[Source]]:
    """The training frames of every manifest and how they are mixed.

    Each manifest's weight (manifest_weights, default: its training frame count) is shared among
    its datasets by dataset_weights when given (other datasets left out), else by frame count.
    """
    if cfg.manifest_weights is not None and len(cfg.manifest_weights) != len(manifests):
        raise ValueError(f"{len(cfg.manifest_weights)} manifest weights for {len(manifests)} manifests")
    frames: list[tuple[int, int]] = []
    sources: list[Source] = []
    for m_index, manifest in enumerate(manifests):
        rows_by_dataset = {}
        for row in manifest.indices(split=cfg.train_split):
            rows_by_dataset.setdefault(manifest.records[row]["dataset"], []).append(int(row))
        if cfg.dataset_weights is not None:
            rows_by_dataset = {d: r for d, r in rows_by_dataset.items() if d in cfg.dataset_weights}
        total = sum(len(r) for r in rows_by_dataset.values())
        m_weight = cfg.manifest_weights[m_index] if cfg.manifest_weights is not None else total
        shares = {d: (cfg.dataset_weights[d] if cfg.dataset_weights else len(r)) for d, r in rows_by_dataset.items()}
        for dataset, rows in sorted(rows_by_dataset.items()):
            start = len(frames)
            frames += [(m_index, row) for row in rows]
            weight = m_weight * shares[dataset] / max(sum(shares.values()), 1e-12)
            sources.append(Source(m_index, dataset, np.arange(start, len(frames)), weight))
    sources = [s for s in sources if s.weight > 0 and len(s.indices)]
    if not sources:
        raise ValueError(f"no training frames: split {cfg.train_split!r} is empty in every manifest "
                         "(or excluded by the weights)")
    return frames, sources


def allocate(total: int, weights: list[float]) -> list[int]:
    """Split `total` draws among weights, rounding by largest remainder so the counts sum to total."""
    w = np.asarray(weights, np.float64) / np.sum(weights)
    exact = w * total
    counts = np.floor(exact).astype(int)
    for i in np.argsort(-(exact - counts), kind="stable")[: total - counts.sum()]:
        counts[i] += 1
    return counts.tolist()


class MixtureSampler(Sampler):
    """Per epoch, `samples_per_epoch` draws from the sources in proportion to their weights.

    Within a source frames are drawn without replacement (a fresh permutation each time the
    source is exhausted); the draws of all sources are then shuffled together. With one
    source and the default epoch size an epoch is exactly a permutation of the frames.
    """

    def __init__(self, sources: list[Source], samples_per_epoch: int, batch_size: int, seed: int = 0,
                 rank: int = 0, world_size: int = 1):
        self.sources, self.samples, self.batch_size = sources, samples_per_epoch, batch_size
        self.seed, self.rank, self.world_size = seed, rank, world_size
        self.epoch, self.start_step = 0, 0
        if self.steps_per_epoch < 1:
            raise ValueError(f"{samples_per_epoch} samples per epoch over {world_size} rank(s) make no batch "
                             f"of {batch_size}")

    @property
    def steps_per_epoch(self) -> int:
        return (-(-self.samples // self.world_size)) // self.batch_size

    def set_epoch(self, epoch: int, start_step: int = 0) -> None:
        """Choose the epoch to draw and the step to start at (non-zero when resuming mid-epoch)."""
        self.epoch, self.start_step = epoch, start_step

    def epoch_draws(self, epoch: int) -> tuple[np.ndarray, np.ndarray]:
        """All ranks' (frame indices, draw seeds) of an epoch, padded to a multiple of the world size."""
        rng = np.random.default_rng([self.seed, epoch])
        picks = []
        for source, count in zip(self.sources, allocate(self.samples, [s.weight for s in self.sources])):
            laps = -(-count // len(source.indices))
            picks.append(np.concatenate([rng.permutation(source.indices) for _ in range(laps)])[:count])
        indices = rng.permutation(np.concatenate(picks))
        seeds = rng.integers(0, 2**62, size=len(indices))
        padded = -(-len(indices) // self.world_size) * self.world_size
        wrap = np.arange(padded) % len(indices)
        return indices[wrap], seeds[wrap]

    def __iter__(self):
        indices, seeds = self.epoch_draws(self.epoch)
        indices, seeds = indices[self.rank::self.world_size], seeds[self.rank::self.world_size]
        lo, hi = self.start_step * self.batch_size, self.steps_per_epoch * self.batch_size
        return iter([(int(i), int(s)) for i, s in zip(indices[lo:hi], seeds[lo:hi])])

    def __len__(self) -> int:
        return (self.steps_per_epoch - self.start_step) * self.batch_size


def require_relative_depth(manifests: list[Manifest], frames: list[tuple[int, int]]) -> None:
    """A run that learns relative depth takes no ToF in its place: without relative teacher depth on any
    training frame it would learn no depth at all, so it stops, naming the fix."""
    if not any(manifests[m].records[row].get("has_teacher_depth_relative") for m, row in frames):
        paths = ", ".join(str(m.h5_path) for m in manifests)
        raise ValueError(f"depth_teacher is 'relative', but no training frame of {paths} has relative teacher "
                         "depth: configure a relative teacher (teachers.models, e.g. backend da2) and re-merge, "
                         "or choose depth_teacher: metric or tof")


def build_train_data(manifests: list[Manifest], cfg: TrainConfig, rank: int = 0, world_size: int = 1
                     ) -> tuple[FrameDataset, MixtureSampler]:
    frames, sources = training_sources(manifests, cfg)
    if cfg.depth_teacher == "relative":
        require_relative_depth(manifests, frames)
    dataset = FrameDataset(manifests, frames, with_truth=False,
                           augmentation=cfg.augmentation if cfg.augment else None, seed=cfg.seed)
    sampler = MixtureSampler(sources, cfg.samples_per_epoch or len(frames), cfg.batch_size, cfg.seed, rank,
                             world_size)
    return dataset, sampler


def build_val_dataset(manifests: list[Manifest], cfg: TrainConfig, rank: int = 0, world_size: int = 1
                      ) -> FrameDataset | None:
    """Every validation frame of every manifest (of the datasets in val_datasets when given; evenly
    thinned to max_val_frames), this rank's share; never augmented, ground truth included for
    evaluation. None when there is no validation split."""
    if cfg.val_datasets is not None:
        frames = [(i, int(row)) for name in cfg.val_datasets for i, m in enumerate(manifests)
                  for row in m.indices(split=cfg.val_split, dataset=name)]
        missing = [name for name in cfg.val_datasets
                   if not any(len(m.indices(split=cfg.val_split, dataset=name)) for m in manifests)]
        if missing:
            raise ValueError(f"val_datasets {missing}: no {cfg.val_split!r} frames of these datasets in "
                             f"{[str(m.h5_path) for m in manifests]}; give the dataset validation sequences "
                             "(a bigger val fraction, or its own split) or validate on other datasets")
    else:
        frames = [(i, int(row)) for i, m in enumerate(manifests) for row in m.indices(split=cfg.val_split)]
    if not frames:
        return None
    if cfg.max_val_frames is not None and len(frames) > cfg.max_val_frames:
        keep = np.linspace(0, len(frames) - 1, cfg.max_val_frames).round().astype(int)
        frames = [frames[i] for i in keep]
    return FrameDataset(manifests, frames[rank::world_size], with_truth=True)


def make_loader(dataset: Dataset, batch_size: int, num_workers: int, sampler: Sampler | None = None,
                pin_memory: bool = False) -> DataLoader:
    """A loader that takes its order from `sampler` and its worker seeds from a generator of its own,
    leaving the global torch RNG (which a resume restores) untouched."""
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, shuffle=False, num_workers=num_workers,
                      pin_memory=pin_memory, persistent_workers=False, drop_last=False,
                      prefetch_factor=4 if num_workers > 0 else None, generator=torch.Generator().manual_seed(0))


def median_target(dataset: FrameDataset, mode: str, max_frames: int = 32) -> float | None:
    """The median depth target (in the target's own units) over up to `max_frames` evenly spaced
    training frames; None when they hold no valid target pixel.

    A fresh student's depth head starts at this value (Student.set_initial_depth): the output layer's
    bias set to the target's typical value, so the first steps learn structure instead of spending
    hundreds of steps walking the output towards the target's scale. For a relative teacher
    regressed with L1 (V1) that scale is the teacher's unitless one, not metres."""
    picks = np.unique(np.linspace(0, len(dataset) - 1, min(max_frames, len(dataset))).round().astype(int))
    batch = torch.utils.data.default_collate([dataset[int(i)] for i in picks])
    target, valid = depth_target(batch, mode)
    values = target[valid]
    return float(values.median()) if values.numel() else None
