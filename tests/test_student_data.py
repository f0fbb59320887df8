"""Student data: manifest samples, mixtures, the epoch sampler and the V5 augmentations.

`write_manifest` (also used by the other test_student_* files) writes a
small manifest with every slot the student reads: ToF with an invalid band,
teacher depth on some frames, teacher labels, and ground truth.
"""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch

from distillery.classes import IGNORE_LABEL
from distillery.manifest import Manifest, create_layout
from distillery.student.augment import augment, flip, warp
from distillery.student.config import AugmentConfig, TrainConfig
from distillery.student.data import (FrameDataset, MixtureSampler, Source, allocate, build_train_data,
                                     build_val_dataset, frame_sample, training_sources)


def write_manifest(path, frames: int = 8, size=(64, 96), datasets=("ds",), splits=("train", "train", "val"),
                   teacher_every: int = 2, seed: int = 0) -> str:
    """A manifest of `frames` frames per dataset; sequence i of a dataset gets split splits[i % len]."""
    rng = np.random.default_rng(seed)
    h, w = size
    n = frames * len(datasets)
    rows = np.arange(h, dtype=np.float32)[:, None] * np.ones(w, np.float32)
    with h5py.File(path, "w") as f:
        create_layout(f, n, h, w)
        for i in range(n):
            dataset, local = datasets[i // frames], i % frames
            truth = 1.0 + 3.0 * rows / h + 0.1 * (i % 5)
            tof = truth.copy()
            tof[: h // 4] = 0.0  # ToF fails on the top band
            f["rgb"][i] = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
            f["tof_depth"][i] = tof
            f["tof_confidence"][i] = np.where(tof > 0, 0.9, 0.0)
            f["truth_depth"][i], f["has_truth_depth"][i] = truth, True
            f["truth_label"][i], f["has_truth_label"][i] = (rows * 6 // h).astype(np.uint8), True
            if local % teacher_every == 0:
                f["teacher_depth"][i], f["has_teacher_depth"][i] = truth * 1.05, True
                f["teacher_label"][i], f["has_teacher_label"][i] = (rows * 6 // h).astype(np.uint8), True
            sequence = f"seq{local // 2}"
            f["key"][i] = f"{dataset}/{sequence}/{local:04d}"
            f["dataset"][i], f["sequence"][i] = dataset, sequence
            f["split"][i] = splits[(local // 2) % len(splits)]
            f["tof_valid_share"][i] = float((tof > 0).mean())
    return str(path)


@pytest.fixture
def manifest(tmp_path):
    return Manifest(write_manifest(tmp_path / "m.h5"))


def test_sample_has_every_field_with_units_and_absent_slots_filled(manifest):
    with_teacher = frame_sample(manifest.read(0), 0)
    without = frame_sample(manifest.read(1), 0)
    assert with_teacher["rgb"].shape == (3, 64, 96) and 0 <= with_teacher["rgb"].min() <= with_teacher["rgb"].max() <= 1
    assert with_teacher["tof_depth"].shape == (1, 64, 96) and with_teacher["tof_depth"].dtype == torch.float32
    assert with_teacher["has_teacher_depth"] and not without["has_teacher_depth"]
    assert without["teacher_depth"].abs().sum() == 0
    assert (without["teacher_label"] == IGNORE_LABEL).all() and without["teacher_label"].dtype == torch.int64
    assert with_teacher["key"] == "ds/seq0/0000" and with_teacher["row"] == 0


def test_training_samples_carry_no_truth_but_validation_samples_do(manifest):
    cfg = TrainConfig(batch_size=2)
    train_set, _ = build_train_data([manifest], cfg)
    val_set = build_val_dataset([manifest], cfg)
    assert not any(k.startswith("truth") for k in train_set[0])
    assert val_set[0]["has_truth_depth"] and "truth_label" in val_set[0]
    assert {manifest.records[r]["split"] for _, r in train_set.frames} == {"train"}
    assert {manifest.records[r]["split"] for _, r in val_set.frames} == {"val"}


def test_allocate_splits_draws_by_weight_and_sums_exactly():
    assert allocate(10, [1, 1]) == [5, 5]
    assert allocate(10, [3, 1]) == [8, 2]  # 7.5 / 2.5: the tie goes to the first
    assert sum(allocate(7, [0.2, 0.3, 0.5])) == 7


def test_one_source_epoch_is_a_permutation_and_reproducible():
    sampler = MixtureSampler([Source(0, "ds", np.arange(10), 1.0)], 10, batch_size=2, seed=3)
    first = [i for i, _ in sampler]
    assert sorted(first) == list(range(10))
    assert first == [i for i, _ in sampler]
    sampler.set_epoch(1)
    assert [i for i, _ in sampler] != first


def test_mixture_draws_each_source_by_weight_without_repeats_until_exhausted():
    sources = [Source(0, "a", np.arange(0, 4), 1.0), Source(0, "b", np.arange(4, 104), 1.0)]
    sampler = MixtureSampler(sources, 40, batch_size=4, seed=0)
    drawn = np.array([i for i, _ in sampler])
    small = drawn[drawn < 4]
    assert len(small) == 20  # half the epoch from the 4-frame source: 5 laps
    assert all(np.bincount(small, minlength=4) == 5)
    assert len(set(drawn[drawn >= 4])) == 20


def test_mixture_weights_across_manifests_and_datasets(tmp_path):
    a = Manifest(write_manifest(tmp_path / "a.h5", frames=8, datasets=("x", "y")))
    b = Manifest(write_manifest(tmp_path / "b.h5", frames=8, datasets=("z",)))
    cfg = TrainConfig(manifest_weights=[3.0, 1.0])
    frames, sources = training_sources([a, b], cfg)
    weights = {s.dataset: s.weight for s in sources}
    assert weights == pytest.approx({"x": 1.5, "y": 1.5, "z": 1.0})
    cfg = TrainConfig(dataset_weights={"y": 1.0})
    frames, sources = training_sources([a], cfg)
    assert [s.dataset for s in sources] == ["y"] and all(a.records[r]["dataset"] == "y" for _, r in frames)


def test_ddp_ranks_split_an_epoch_and_a_resumed_sampler_starts_mid_epoch():
    source = [Source(0, "ds", np.arange(12), 1.0)]
    whole = list(MixtureSampler(source, 12, batch_size=2, seed=1))
    ranks = [list(MixtureSampler(source, 12, batch_size=2, seed=1, rank=r, world_size=2)) for r in (0, 1)]
    assert sorted(ranks[0] + ranks[1]) == sorted(whole) and not set(ranks[0]) & set(ranks[1])
    resumed = MixtureSampler(source, 12, batch_size=2, seed=1)
    resumed.set_epoch(0, start_step=2)
    assert list(resumed) == whole[4:] and len(resumed) == 8


def _geometric_only(**kw) -> AugmentConfig:
    off = dict(jitter_p=0, exposure_p=0, blur_p=0, noise_p=0, jpeg_p=0, cutout_p=0)
    return AugmentConfig(**{**off, **kw})


def test_flip_moves_every_image_field_together(manifest):
    sample = frame_sample(manifest.read(0), 0)
    flipped = dict(sample)
    flip(flipped)
    for name in ("rgb", "tof_depth", "teacher_depth", "teacher_label", "tof_confidence"):
        assert torch.equal(flipped[name], torch.flip(sample[name], dims=(-1,)))


def test_warp_uses_nearest_values_fills_outside_and_divides_depth_by_zoom(manifest):
    sample = frame_sample(manifest.read(0), 0)
    warped = dict(sample)
    warp(warped, angle_deg=10.0, zoom=0.85)  # zoom out: the border comes from outside the frame
    depth_values = set(np.unique(sample["teacher_depth"].numpy() / 0.85).round(4))
    assert set(np.unique(warped["teacher_depth"].numpy()).round(4)) <= depth_values | {0.0}
    assert set(np.unique(warped["teacher_label"].numpy())) <= set(range(6)) | {IGNORE_LABEL}
    assert warped["teacher_label"][0, 0] == IGNORE_LABEL and warped["teacher_depth"][0, 0, 0] == 0
    assert warped["teacher_label"].dtype == torch.int64


def test_augment_is_seeded_and_photometric_changes_rgb_only(manifest):
    sample = frame_sample(manifest.read(0), 0)
    photometric_only = AugmentConfig(flip_p=0, geometric_p=0, jitter_p=1, exposure_p=1, blur_p=1, noise_p=1,
                                     jpeg_p=1, cutout_p=1)
    a, b = augment(sample, photometric_only, 7), augment(sample, photometric_only, 7)
    assert torch.equal(a["rgb"], b["rgb"]) and not torch.equal(a["rgb"], sample["rgb"])
    assert not torch.equal(a["rgb"], augment(sample, photometric_only, 8)["rgb"])
    for name in ("tof_depth", "teacher_depth", "teacher_label", "tof_confidence"):
        assert torch.equal(a[name], sample[name])
    assert 0 <= a["rgb"].min() and a["rgb"].max() <= 1


def test_augmented_dataset_depends_on_the_draw_and_validation_is_never_augmented(manifest):
    cfg = TrainConfig(batch_size=2, augment=True, augmentation=_geometric_only(flip_p=1.0, geometric_p=0))
    train_set, _ = build_train_data([manifest], cfg)
    val_set = build_val_dataset([manifest], cfg)
    plain = frame_sample(manifest.read(train_set.frames[0][1]), 0)
    assert torch.equal(train_set[(0, 5)]["rgb"], torch.flip(plain["rgb"], dims=(-1,)))
    row = val_set.frames[0][1]
    assert torch.equal(val_set[0]["rgb"], frame_sample(manifest.read(row), 0)["rgb"])
    assert isinstance(FrameDataset([manifest], [(0, 0)])[0], dict)
