"""Running on a cluster: DDP under torchrun, pre-emption signals, and a submitit launcher for Slurm.

DDP: `torchrun --nproc_per_node N -m distillery.cli train ...` sets RANK,
WORLD_SIZE and LOCAL_RANK; `init_distributed` joins the process group (NCCL
on GPUs, gloo on CPU). Rank 0 alone logs and writes checkpoints.

Pre-emption: Slurm sends SIGTERM before killing a pre-empted job, and
`--signal=USR1@<s>` (or submitit's USR2) before its time limit. The handler
only raises a flag; the training loop looks at it at the next step
boundary, writes last.pt and stops with PREEMPTED_EXIT_CODE, so the job
(requeued by Slurm or submitit, or re-run by Snakemake) resumes from there.

submitit: `distillery train --submit ...` builds a Slurm executor from
partition / account / GPU options and submits a TrainJob, one task per GPU;
when submitit's own time-out signal arrives, the job saves at the next step
and lets submitit requeue it.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import signal
from pathlib import Path

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


def unwrap(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


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


@dataclasses.dataclass
class SlurmOptions:
    """Slurm resources of one training job (cluster specifics stay out of the workflow's rules)."""

    partition: str | None = None
    account: str | None = None
    gpus: int = 1  # GPUs per node; one task (DDP rank) per GPU
    nodes: int = 1
    cpus_per_gpu: int = 8
    mem_gb: int = 32
    timeout_min: int = 720
    job_name: str = "distillery-train"
    qos: str | None = None
    constraint: str | None = None
    gres: str | None = None  # e.g. "gpu:l40s:1" when the cluster needs a typed gres instead of --gpus-per-node


def executor_parameters(opts: SlurmOptions) -> dict:
    """submitit.AutoExecutor.update_parameters arguments for `opts` (only the ones that are set)."""
    params = {"name": opts.job_name, "nodes": opts.nodes, "tasks_per_node": max(opts.gpus, 1),
              "cpus_per_task": opts.cpus_per_gpu, "timeout_min": opts.timeout_min, "mem_gb": opts.mem_gb,
              "slurm_signal_delay_s": 120}
    if opts.gres:
        params["slurm_gres"] = opts.gres
    else:
        params["gpus_per_node"] = opts.gpus
    for name in ("partition", "account", "qos", "constraint"):
        if getattr(opts, name):
            params[f"slurm_{name}"] = getattr(opts, name)
    return params


def make_executor(folder: str | os.PathLike, opts: SlurmOptions, cluster: str | None = None):
    """A submitit AutoExecutor for `opts`; cluster="debug" or "local" runs without Slurm."""
    import submitit

    executor = submitit.AutoExecutor(folder=str(folder), cluster=cluster)
    params = executor_parameters(opts)
    if executor.cluster != "slurm":
        params = {k: v for k, v in params.items() if not k.startswith("slurm_") and k != "mem_gb"}
    executor.update_parameters(**params)
    return executor


def master_port(job_id: str) -> int:
    """A rendezvous port derived from the job id, so that jobs sharing a node do not collide."""
    digits = "".join(c for c in job_id if c.isdigit())[-4:] or "0"
    return 20000 + int(digits)


class TrainJob:
    """The picklable callable submitit runs on every task: sets up DDP variables, then trains.

    checkpoint() is submitit's requeue hook; a requeued job resumes from <out>/last.pt.
    """

    def __init__(self, cfg, manifests: list[str], out_dir: str, resume: str = "auto"):
        self.cfg, self.manifests, self.out_dir, self.resume = cfg, manifests, out_dir, resume

    def __call__(self) -> dict:
        import submitit

        from distillery.student.train import run_training

        job = submitit.JobEnvironment()
        os.environ.update(RANK=str(job.global_rank), LOCAL_RANK=str(job.local_rank),
                          WORLD_SIZE=str(job.num_tasks), MASTER_ADDR=job.hostnames[0],
                          MASTER_PORT=str(master_port(str(job.job_id))))
        signals = (*PREEMPTION_SIGNALS, job._usr_sig())  # submitit's time-out signal (USR2 by default)
        return run_training(self.cfg, self.manifests, self.out_dir, resume=self.resume, signals=signals)

    def checkpoint(self):
        import submitit

        return submitit.helpers.DelayedSubmission(TrainJob(self.cfg, self.manifests, self.out_dir, "auto"))


def submit(cfg, manifests: list[str], out_dir: str, opts: SlurmOptions, cluster: str | None = None):
    """Submit a training job; returns the submitit job (its logs are in <out>/submitit/)."""
    executor = make_executor(Path(out_dir) / "submitit", opts, cluster)
    return executor.submit(TrainJob(cfg, [str(Path(m).resolve()) for m in manifests], str(Path(out_dir).resolve())))
