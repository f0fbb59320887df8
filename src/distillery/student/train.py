"""The training loop of the student, readable top to bottom: setup_run() builds a Run, train() runs it.

    run = setup_run(cfg, ["results/manifest/manifest.h5"], "results/train/v5")
    with PreemptionGuard():
        summary = train(run)

Fine-tuning and resuming are different things. `init_from` starts a new run
from a parent's weights with a fresh optimiser, schedule and epoch count.
Resuming continues an interrupted run from <out>/last.pt: model, optimiser,
scheduler, grad scaler, RNG states, epoch, step and sampler position, so on
CPU it ends with weights bit-identical to an uninterrupted run. A resume
happens only for an interrupted run of the same settings and input content
(fingerprint); anything else starts fresh after moving the previous run's
files to <out>/previous/<stamp>/ (student/rundir.py).

A stop request (SIGTERM, SIGUSR1, or max_steps) is honoured at the next step
boundary: last.pt is written and the run stops; a signal makes the process
exit with PREEMPTED_EXIT_CODE (75).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from distillery.manifest import Manifest
from distillery.student.checkpoint import (FORMAT, FORMAT_VERSION, atomic_save, cpu_state_dict, load_checkpoint,
                                           rng_state, set_rng_state, snapshot, weights_file)
from distillery.student.config import TrainConfig
from distillery.student.data import MixtureSampler, build_train_data, build_val_dataset, make_loader
from distillery.student.distributed import (PREEMPTED_EXIT_CODE, PREEMPTION_SIGNALS, DistEnv, PreemptionGuard,
                                            all_reduce_sum, any_rank, barrier, broadcast_buffers, cleanup,
                                            init_distributed, wrap_ddp)
from distillery.student.init import initialise
from distillery.student.losses import StudentLoss
from distillery.student.metrics import Evaluator
from distillery.student.model import Student, build_student, check_encoder_weights
from distillery.student.optim import build_optimizer, build_scheduler
from distillery.student.rundir import archive_run, resume_decision, run_fingerprint
from distillery.student.runlog import RunLog

log = logging.getLogger(__name__)


class Preempted(Exception):
    """Raised after last.pt was written in answer to a pre-emption signal."""

    exit_code = PREEMPTED_EXIT_CODE


@dataclasses.dataclass
class Progress:
    epoch: int = 0  # epochs completed
    step_in_epoch: int = 0  # optimiser steps done in the current epoch
    global_step: int = 0  # optimiser steps done in the run
    best_value: float | None = None  # best validation score so far
    best_epoch: int | None = None


@dataclasses.dataclass
class Run:
    """Everything a training run holds; built by setup_run()."""

    cfg: TrainConfig
    env: DistEnv
    device: torch.device
    out_dir: Path
    fingerprint: str
    model: Student
    loss_fn: StudentLoss
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    sampler: MixtureSampler
    train_loader: torch.utils.data.DataLoader
    val_loader: torch.utils.data.DataLoader | None
    progress: Progress
    log: RunLog
    best_state: dict | None = None  # snapshot() of the best weights so far
    best_metrics: dict | None = None
    total_steps: int = 0
    inputs: dict | None = None  # content identity of the inputs (manifest content ids, parent SHA-256)
    started: str = ""  # UTC start of the run (kept by a resume): each fresh run writes files of its own


def resolve_device(cfg: TrainConfig, env: DistEnv) -> torch.device:
    if cfg.device == "cpu" or (cfg.device == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    return torch.device("cuda", env.local_rank)


def seed_everything(seed: int) -> None:
    import random

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@contextlib.contextmanager
def kernel_determinism(deterministic: bool, device: torch.device):
    """Deterministic kernels while training (warn-only on CUDA, where some ops have none), or cuDNN
    autotuning when not; the process-wide settings are restored afterwards."""
    previous = (torch.are_deterministic_algorithms_enabled(),
                torch.is_deterministic_algorithms_warn_only_enabled(), torch.backends.cudnn.benchmark)
    torch.use_deterministic_algorithms(deterministic, warn_only=device.type == "cuda")
    torch.backends.cudnn.benchmark = not deterministic and device.type == "cuda"
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous[0], warn_only=previous[1])
        torch.backends.cudnn.benchmark = previous[2]


def set_encoder_frozen(model: Student, frozen: bool) -> None:
    """A frozen encoder gets no gradients (AdamW then skips it) and keeps BatchNorm statistics fixed."""
    model.encoder.requires_grad_(not frozen)
    model.train()
    if frozen:
        model.encoder.eval()


def resume_point(out_dir: Path, resume: str, fingerprint: str, env: DistEnv) -> dict | None:
    """The last.pt to resume from, or None for a fresh run (the previous run's files moved aside first).

    resume: auto, always or never (student/rundir.py says when a run resumes).
    Every rank reads the decision before rank 0 moves anything.
    """
    path = out_dir / "last.pt"
    ckpt = load_checkpoint(path) if path.exists() else None
    resumed, why = resume_decision(ckpt, fingerprint, resume, path)
    barrier(env)
    if not resumed and env.is_main:
        archive_run(out_dir, why)
    barrier(env)
    return ckpt if resumed else None


def restore(run: Run, ckpt: dict) -> None:
    """Load a last.pt into a freshly built run."""
    run.model.load_state_dict(ckpt["model"])
    run.model.encoder_weights = ckpt.get("encoder_weights", run.model.encoder_weights)
    run.loss_fn.load_state_dict(ckpt["loss"])
    run.optimizer.load_state_dict(ckpt["optimizer"])
    run.scheduler.load_state_dict(ckpt["scheduler"])
    run.scaler.load_state_dict(ckpt["scaler"])
    run.progress = Progress(**ckpt["progress"])
    run.best_state, run.best_metrics = ckpt.get("best_state"), ckpt.get("best_metrics")
    run.started = ckpt.get("run", {}).get("started", run.started)
    set_rng_state(ckpt["rng"])


def setup_run(cfg: TrainConfig, manifests: list[str], out_dir: str | Path, resume: str = "auto",
              env: DistEnv | None = None) -> Run:
    """Build data, model, loss, optimiser and schedule of a run, fresh, fine-tuned or resumed."""
    env = env or DistEnv()
    out_dir = Path(out_dir)
    device = resolve_device(cfg, env)
    seed_everything(cfg.seed)
    fingerprint, inputs = run_fingerprint(cfg, manifests)
    ckpt = resume_point(out_dir, resume, fingerprint, env)
    if ckpt is None:
        check_encoder_weights(cfg)  # missing ImageNet weights fail here, before any data is read
    opened = [Manifest(path) for path in manifests]
    train_set, sampler = build_train_data(opened, cfg, env.rank, env.world_size)
    val_set = build_val_dataset(opened, cfg, env.rank, env.world_size)
    model = build_student(dataclasses.replace(cfg, encoder_weights="random") if cfg.init_from or ckpt else cfg)
    if ckpt is None:
        initialise(model, cfg, train_set)
    loss_fn = StudentLoss.from_config(cfg)
    model.to(device)
    loss_fn.to(device)
    if cfg.channels_last:
        model.to(memory_format=torch.channels_last)
    optimizer = build_optimizer(model, loss_fn, cfg)
    total_steps = cfg.epochs * sampler.steps_per_epoch
    scheduler = build_scheduler(optimizer, cfg, total_steps)
    scaler = torch.amp.GradScaler("cuda", enabled=device.type == "cuda" and cfg.amp == "fp16")
    pin = device.type == "cuda"
    train_loader = make_loader(train_set, cfg.batch_size, cfg.num_workers, sampler, pin)
    # A rank whose share of validation frames is empty still joins the metric reduction: no `if val_set`.
    val_loader = make_loader(val_set, cfg.batch_size, cfg.num_workers, None, pin) if val_set is not None else None
    run = Run(cfg, env, device, out_dir, fingerprint, model, loss_fn, optimizer, scheduler, scaler, sampler,
              train_loader, val_loader, Progress(), log=None, total_steps=total_steps, inputs=inputs,
              started=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    if ckpt is not None:
        restore(run, ckpt)
        if env.is_main:
            log.info("resuming from %s at step %d (epoch %d)", out_dir / "last.pt", run.progress.global_step,
                     run.progress.epoch)
    run.log = RunLog(out_dir, env.is_main, run.progress.global_step)
    return run


def autocast(run: Run):
    if run.device.type != "cuda" or run.cfg.amp == "off":
        return contextlib.nullcontext()
    return torch.autocast("cuda", dtype=torch.bfloat16 if run.cfg.amp == "bf16" else torch.float16)


def to_device(batch: dict, run: Run) -> dict:
    out = {k: v.to(run.device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}
    if run.cfg.channels_last:
        out["rgb"] = out["rgb"].contiguous(memory_format=torch.channels_last)
    return out


def train_step(run: Run, model: torch.nn.Module, batch: dict) -> dict[str, torch.Tensor]:
    """One optimiser step on one batch; returns the loss parts, the gradient norm and the LRs."""
    batch = to_device(batch, run)
    with autocast(run):
        outputs = model(batch["rgb"])
    parts = run.loss_fn(outputs, batch)
    run.optimizer.zero_grad(set_to_none=True)
    run.scaler.scale(parts["loss"]).backward()
    for p in run.loss_fn.parameters():  # the Kendall weights live outside DDP: average them by hand
        if run.env.distributed and p.grad is not None:
            all_reduce_sum(p.grad, run.env).div_(run.env.world_size)
    run.scaler.unscale_(run.optimizer)
    params = [p for g in run.optimizer.param_groups for p in g["params"] if p.grad is not None]
    parts["grad_norm"] = torch.nn.utils.clip_grad_norm_(params, run.cfg.grad_clip or float("inf"))
    run.scaler.step(run.optimizer)
    run.scaler.update()
    run.scheduler.step()
    for group in run.optimizer.param_groups:
        parts[f"lr_{group['name']}"] = torch.tensor(group["lr"])
    return parts


@torch.no_grad()
def evaluate(run: Run) -> dict[str, float]:
    """Validation metrics of the current weights, combined over ranks; {} without a validation split."""
    if run.val_loader is None:
        return {}
    model = run.model
    was_training = model.training
    model.eval()
    evaluator = Evaluator(run.cfg.num_classes, run.loss_fn.depth_target, run.device)  # the mode the run learns
    losses = torch.zeros(3, dtype=torch.float64, device=run.device)  # depth, seg, batches
    for batch in run.val_loader:
        batch = to_device(batch, run)
        with autocast(run):
            outputs = model(batch["rgb"])
        evaluator.update(outputs, batch)
        parts = run.loss_fn(outputs, batch)
        losses += torch.stack([parts["depth"].double(), parts["seg"].double(), torch.ones((), device=run.device,
                                                                                          dtype=torch.float64)])
    evaluator.load_state(all_reduce_sum(evaluator.state(), run.env))
    all_reduce_sum(losses, run.env)
    model.train(was_training)
    metrics = evaluator.compute()
    if losses[2] > 0:
        metrics.update({"loss/depth": float(losses[0] / losses[2]), "loss/seg": float(losses[1] / losses[2])})
    return metrics


def selection_score(run: Run, metrics: dict) -> float | None:
    """The validation value best.pt is chosen on (lower is better), or None without validation."""
    if not metrics:
        return None
    key = run.cfg.best_metric if run.cfg.best_metric in metrics else "loss/depth"
    if key != run.cfg.best_metric:
        log.warning("validation has no %s: choosing best.pt on %s", run.cfg.best_metric, key)
    value = metrics[key]
    return -value if run.cfg.best_mode == "max" and key == run.cfg.best_metric else value


def save_last(run: Run) -> None:
    if not run.env.is_main:
        return
    state = {"format": FORMAT, "format_version": FORMAT_VERSION, "kind": "last", "fingerprint": run.fingerprint,
             "config": dataclasses.asdict(run.cfg), "model": cpu_state_dict(run.model),
             "loss": cpu_state_dict(run.loss_fn), "optimizer": run.optimizer.state_dict(),
             "scheduler": run.scheduler.state_dict(), "scaler": run.scaler.state_dict(), "rng": rng_state(),
             "progress": dataclasses.asdict(run.progress), "best_state": run.best_state,
             "best_metrics": run.best_metrics, "encoder_weights": run.model.encoder_weights,
             "run": run_record(run)}
    atomic_save(state, run.out_dir / "last.pt")


def run_record(run: Run) -> dict:
    """What identifies the run a checkpoint belongs to: fingerprint, input identity, start time."""
    return {"fingerprint": run.fingerprint, "inputs": run.inputs, "started": run.started}


def save_best(run: Run) -> None:
    if run.env.is_main:
        weights = weights_file(run.best_state, run.cfg, run.best_metrics or {}, run.progress.best_epoch or 0,
                               run.progress.global_step, run.model.encoder_weights)
        atomic_save({**weights, "run": run_record(run)}, run.out_dir / "best.pt")


def end_epoch(run: Run) -> dict:
    """Count the epoch, validate, keep the best weights, write last.pt (and best.pt when improved)."""
    run.progress.epoch += 1
    run.progress.step_in_epoch = 0
    broadcast_buffers(run.model, run.env)
    metrics = evaluate(run)
    score = selection_score(run, metrics)
    improved = score is None or run.progress.best_value is None or score < run.progress.best_value
    if improved:
        run.progress.best_value, run.progress.best_epoch = score, run.progress.epoch
        run.best_state, run.best_metrics = snapshot(run.model, run.loss_fn), metrics
        save_best(run)
    run.log.record("val", run.progress.global_step, run.progress.epoch, {**metrics, "best": improved})
    save_last(run)
    return metrics


def stop_requested(run: Run, guard: PreemptionGuard | None) -> str | None:
    """"preempted" or "max_steps" when the run must stop before its next step, else None."""
    if any_rank(guard is not None and guard.requested, run.env, run.device):
        return "preempted"
    if run.cfg.max_steps is not None and run.progress.global_step >= run.cfg.max_steps:
        return "max_steps"
    return None


def stop(run: Run, reason: str, guard: PreemptionGuard | None) -> dict:
    """Write last.pt and end the run: return for max_steps, raise Preempted for a signal."""
    save_last(run)
    run.log.record("stop", run.progress.global_step, run.progress.epoch, {"reason": reason})
    run.log.close()
    barrier(run.env)
    if reason == "preempted":
        if run.env.is_main:
            guard.chain()  # e.g. submitit: requeue the job now that the state is saved
        raise Preempted(f"stopped at step {run.progress.global_step}: state saved to {run.out_dir / 'last.pt'}")
    return {"status": "stopped", **dataclasses.asdict(run.progress)}


def train_epoch(run: Run, guard: PreemptionGuard | None) -> str | None:
    """The remaining steps of the current epoch; returns a stop reason when stopped early."""
    frozen = run.progress.epoch < run.cfg.freeze_encoder_epochs
    set_encoder_frozen(run.model, frozen)
    model = wrap_ddp(run.model, run.env, run.device)
    run.sampler.set_epoch(run.progress.epoch, run.progress.step_in_epoch)
    bar = tqdm(total=run.sampler.steps_per_epoch, initial=run.progress.step_in_epoch, mininterval=1.0,
               desc=f"epoch {run.progress.epoch + 1}/{run.cfg.epochs}{' (encoder frozen)' if frozen else ''}",
               disable=not (run.cfg.progress and run.env.is_main), dynamic_ncols=True)
    with bar:
        for batch in run.train_loader:
            reason = stop_requested(run, guard)
            if reason:
                return reason
            parts = train_step(run, model, batch)
            run.progress.step_in_epoch += 1
            run.progress.global_step += 1
            bar.update(1)
            if run.progress.global_step % max(1, run.cfg.log_every_steps) == 0:
                values = {k: float(v.detach()) for k, v in parts.items()}
                bar.set_postfix(loss=f"{values['loss']:.4f}")
                run.log.record("train", run.progress.global_step, run.progress.epoch, values)
            if run.cfg.save_every_steps and run.progress.global_step % run.cfg.save_every_steps == 0:
                save_last(run)
    return stop_requested(run, guard)


def train(run: Run, guard: PreemptionGuard | None = None) -> dict:
    """Train to the configured epoch count (or until stopped); returns a summary dict."""
    if run.env.is_main:
        log.info("training %s (%s encoder) for %d epochs of %d steps into %s", run.cfg.backbone,
                 run.model.encoder_weights, run.cfg.epochs, run.sampler.steps_per_epoch, run.out_dir)
        if run.model.encoder_weights == "random" and not run.cfg.init_from:
            log.info("the encoder starts from random weights: %d frozen epochs, encoder learning rate %g x lr%s",
                     run.cfg.freeze_encoder_epochs, run.cfg.encoder_lr_scale,
                     "" if run.cfg.freeze_encoder_epochs == 0 and run.cfg.encoder_lr_scale == 1.0 else
                     " (a random encoder learns nothing while frozen: set freeze_encoder_epochs 0, encoder_lr_scale 1)")
        if run.val_loader is None:
            log.warning("no %r frames to validate on: best.pt will hold the final weights", run.cfg.val_split)
    run.log.record("start", run.progress.global_step, run.progress.epoch,
                   {"encoder_weights": run.model.encoder_weights, "resumed": run.progress.global_step > 0})
    metrics = run.best_metrics or {}
    with kernel_determinism(run.cfg.deterministic, run.device):
        while run.progress.epoch < run.cfg.epochs:
            reason = train_epoch(run, guard)
            if reason:
                return stop(run, reason, guard)
            metrics = end_epoch(run)
    if run.env.is_main and (not (run.out_dir / "best.pt").exists() or run.best_state is None):
        run.best_state = run.best_state or snapshot(run.model, run.loss_fn)
        save_best(run)  # best.pt deleted by a workflow manager, or never written
    run.log.record("done", run.progress.global_step, run.progress.epoch, {"best_epoch": run.progress.best_epoch})
    run.log.close()
    barrier(run.env)
    return {"status": "done", **dataclasses.asdict(run.progress), "metrics": metrics,
            "best_metrics": run.best_metrics}


def run_training(cfg: TrainConfig, manifests: list[str], out_dir: str | Path, resume: str = "auto",
                 signals=PREEMPTION_SIGNALS) -> dict:
    """The whole run in this process (one DDP rank under torchrun): set up, train, clean up."""
    env = init_distributed(cfg.device)
    try:
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        run = setup_run(cfg, manifests, out_dir, resume, env)
        with PreemptionGuard(signals) as guard:
            return train(run, guard)
    finally:
        cleanup(env)
