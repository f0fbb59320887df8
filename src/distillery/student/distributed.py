"""Running on a cluster: DDP under torchrun and pre-emption signals (the Slurm launcher is `submit`).

DDP: `torchrun --nproc_per_node N -m distillery.cli train ...` sets RANK,
WORLD_SIZE and LOCAL_RANK; `init_distributed` joins the process group (NCCL
on GPUs, gloo on CPU). Rank 0 alone logs and writes checkpoints.

Pre-emption: Slurm sends SIGTERM before killing a pre-empted job, and
`--signal=USR1@<s>` (or submitit's USR2) before its time limit. The handler
only raises a flag; the training loop looks at it at the next step
boundary, writes last.pt and stops with PREEMPTED_EXIT_CODE, so the job
(requeued by Slurm or submitit, or re-run by Snakemake) resumes from there.

"""

from __future__ import annotations

import dataclasses
import logging
import os
import signal

import torch
import torch.distributed as dist
from torch import nn

log = logging.getLogger(__name__)

PREEMPTED_EXIT_CODE = 75  # EX_TEMPFAIL: "temporary failure, retry"; last.pt holds the state to resume
PREEMPTION_SIGNALS = (signal.SIGTERM, signal.SIGUSR1)


@dataclasses.dataclass(frozen=True)
class DistEnv:
    """Where this process sits in a (possibly single-process) job."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device: str = "auto") -> DistEnv:
    """Join the torchrun process group when WORLD_SIZE > 1; a single-process DistEnv otherwise."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size == 1:
        return DistEnv()
    env = DistEnv(int(os.environ["RANK"]), world_size, int(os.environ.get("LOCAL_RANK", "0")))
    use_cuda = device != "cpu" and torch.cuda.is_available()
    if use_cuda:
        torch.cuda.set_device(env.local_rank)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return env


def cleanup(env: DistEnv) -> None:
    if env.distributed and dist.is_initialized():
        dist.destroy_process_group()


def barrier(env: DistEnv) -> None:
    if env.distributed:
        dist.barrier()


def all_reduce_sum(tensor: torch.Tensor, env: DistEnv) -> torch.Tensor:
    """Sum a tensor over ranks (in place); a no-op in a single process."""
    if env.distributed:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def any_rank(flag: bool, env: DistEnv, device: torch.device | str = "cpu") -> bool:
    """True on every rank when the flag is set on any rank (so all ranks stop at the same step)."""
    if not env.distributed:
        return flag
    return bool(all_reduce_sum(torch.tensor([float(flag)], device=device), env).item() > 0)


def wrap_ddp(model: nn.Module, env: DistEnv, device: torch.device) -> nn.Module:
    """DDP over the parameters that currently require gradients; rewrap when that set changes
    (the encoder freeze), because DDP fixes its gradient buckets at construction."""
    if not env.distributed:
        return model
    ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=ids, broadcast_buffers=True)


def broadcast_buffers(model: nn.Module, env: DistEnv) -> None:
    """Give every rank rank 0's buffers (BatchNorm statistics): DDP syncs them at the start of each
    forward, so after the last step of an epoch each rank still holds its own."""
    if env.distributed:
        for buffer in model.buffers():
            dist.broadcast(buffer, src=0)


class PreemptionGuard:
    """Turns pre-emption signals into a flag read at step boundaries.

    Handlers that were installed before (submitit's requeue handler) are kept and called by
    `chain()` once the state is saved, so submitit can still requeue the job.
    """

    def __init__(self, signals=PREEMPTION_SIGNALS):
        self.signals = tuple(signals)
        self.received: int | None = None
        self._previous: dict[int, object] = {}

    def _handle(self, signum, frame) -> None:
        log.warning("received %s: saving at the next step boundary", signal.Signals(signum).name)
        self.received = signum

    def __enter__(self) -> PreemptionGuard:
        for sig in self.signals:
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    @property
    def requested(self) -> bool:
        return self.received is not None

    def chain(self) -> None:
        """Call the handler that was installed before ours for the received signal, if it was a function."""
        previous = self._previous.get(self.received)
        if callable(previous):
            previous(self.received, None)
