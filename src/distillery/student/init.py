"""How a new run's weights start: a fine-tune from its parent, a fresh run at its target's scale.

A resumed run restores everything from last.pt instead (student/train.py).
"""

from __future__ import annotations

import logging

from distillery.student.checkpoint import load_checkpoint
from distillery.student.config import TrainConfig, resolve_depth_loss
from distillery.student.data import FrameDataset, median_target
from distillery.student.losses import target_mode
from distillery.student.model import Student

log = logging.getLogger(__name__)


def load_parent_weights(model: Student, path: str) -> None:
    """Fine-tune start: the parent checkpoint's student weights (optimiser and schedule stay fresh)."""
    parent = load_checkpoint(path)
    model.load_state_dict(parent["model"])
    model.encoder_weights = f"init_from:{path} (its encoder first: {parent.get('encoder_weights', 'unknown')})"


def start_at_target_scale(model: Student, train_set: FrameDataset, cfg: TrainConfig) -> None:
    """A fresh run's depth head starts at depth_init_m, or (None) at the median training target when
    the loss regresses its values (berhu, l1); a scale-invariant loss (ssi) fixes no scale: 2 m."""
    if cfg.depth_init_m is not None or resolve_depth_loss(cfg.depth_teacher, cfg.depth_loss) == "ssi":
        return
    median = median_target(train_set, target_mode(cfg.depth_teacher, cfg.depth_target))
    if median is not None and median > 0:
        model.set_initial_depth(median)
        log.info("depth head starts at the median training target: %.3g", median)


def initialise(model: Student, cfg: TrainConfig, train_set: FrameDataset) -> None:
    """A new run (not a resume): its parent's weights when it fine-tunes, else the target's scale."""
    if cfg.init_from:
        load_parent_weights(model, cfg.init_from)
    else:
        start_at_target_scale(model, train_set, cfg)
