"""Optimiser and learning-rate schedule of the student.

AdamW in three parameter groups, because the parts learn at different
speeds: a (possibly pretrained) encoder at a tenth of the rate, the decoders
at the full rate, and the two Kendall log-variances at their own rate without
weight decay (decay would pull them towards equal task weights). The schedule
is a per-step cosine with an optional linear warm-up.
"""

from __future__ import annotations

import math
from functools import partial

import torch

from distillery.student.config import TrainConfig


def cosine_factor(step: int, total: int, warmup: int, min_ratio: float) -> float:
    """LR multiplier: linear warm-up to 1, then a cosine from 1 down to min_ratio at `total` steps."""
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def build_optimizer(model: torch.nn.Module, loss_fn: torch.nn.Module, cfg: TrainConfig) -> torch.optim.AdamW:
    """AdamW with three groups: encoder at lr x encoder_lr_scale, decoders at lr, Kendall at kendall_lr."""
    groups = [{"name": "encoder", "params": list(model.encoder.parameters()), "lr": cfg.lr * cfg.encoder_lr_scale,
               "weight_decay": cfg.weight_decay},
              {"name": "decoders", "params": model.decoder_parameters(), "lr": cfg.lr,
               "weight_decay": cfg.weight_decay},
              {"name": "kendall", "params": list(loss_fn.parameters()), "lr": cfg.kendall_lr, "weight_decay": 0.0}]
    return torch.optim.AdamW([g for g in groups if g["params"]])


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: TrainConfig, total_steps: int
                    ) -> torch.optim.lr_scheduler.LambdaLR:
    """Per-step cosine decay over the whole run (after cfg.warmup_steps of linear warm-up)."""
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, partial(cosine_factor, total=total_steps, warmup=cfg.warmup_steps, min_ratio=cfg.min_lr_ratio))
