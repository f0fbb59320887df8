"""A submitit launcher for Slurm: `distillery train --submit ...`.

Builds a Slurm executor from partition / account / GPU options and submits a
TrainJob, one task per GPU; when submitit's own time-out signal arrives, the
job saves at the next step and lets submitit requeue it. This module imports
the training loop; `distributed` (which the loop imports) does not, so there
is no import cycle.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from distillery.student.distributed import PREEMPTION_SIGNALS
from distillery.student.train import run_training


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
