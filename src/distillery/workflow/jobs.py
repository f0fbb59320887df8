"""What each job asks a cluster for, and whether its partition can hold it.

One table sizes every rule by what the job really runs (a simulated teacher is
numpy on one CPU, a real one a network on a GPU). Memory (MB) and runtime
(minutes) are those of the first attempt; each retry multiplies both (a job
killed for memory comes back with more), capped on Slurm at the partition's
largest node. Partitions and the GPU model come from the profile's
default-resources: jobs with GPUs go to `gpu_partition`, the rest to
`slurm_partition`. On Slurm, a job no node of its partition can hold stops the
run before it is submitted (`distillery.cluster`), naming the rule, the request
and the partition's largest node.
"""

from __future__ import annotations

from dataclasses import dataclass

from distillery import cluster

JOB_SIZES = {
    "synthesize_world": (2000, 60),
    "extract_bag": (4000, 120),
    "index_dataset": (2000, 30),
    "plan_shards": (2000, 30),
    "pack_shard": (2000, 60),
    "merge_manifest": (4000, 120),
    "select_frames": (2000, 2),  # frame selection of one shard (and gathering every shard's)
    "teacher_settings": (500, 5),  # writes a teacher's settings file (the re-label trigger)
    "teacher_sim": (2000, 30),  # simulated teacher (any task) and its sanity gate
    "teacher_real": (32000, 240),  # a real network: weights, activations, DataLoader workers
    "train_cpu": (8000, 720),
    "train_gpu": (16000, 720),  # the student and its DataLoader workers beside a GPU
    "evaluate_version": (4000, 60),
    "report": (4000, 30),
    "export": (4000, 30),  # ONNX export, INT8 calibration and quantisation, fused graph
    "deploy_small": (1000, 10),  # model card, bundle
    "deploy_gpu": (8000, 60),  # TensorRT engine build and latency
}


@dataclass(frozen=True)
class Profile:
    """What the profile in use says about the cluster (its default-resources) and the executor."""

    slurm: bool = False  # jobs go to Slurm (the executor plugin is slurm)
    slurm_partition: str | None = None
    gpu_partition: str | None = None
    gpu_type: str | None = None

    def partition(self, gpus: int) -> str | None:
        """The partition of a job with this many GPUs (None off Slurm profiles)."""
        return (gpus and self.gpu_partition) or self.slurm_partition

    def gpu_model(self, gpus: int) -> str | None:
        return self.gpu_type if gpus else None


def mem_mb(size: str, attempt: int, node_max: int | None = None) -> int:
    """Memory of an attempt: the table's, times the attempt, capped at `node_max` (never below the first)."""
    mem = JOB_SIZES[size][0]
    if attempt > 1 and node_max is not None:
        return max(mem, min(mem * attempt, node_max))
    return mem * attempt


def runtime(size: str, attempt: int) -> int:
    """Minutes of an attempt: the table's, times the attempt."""
    return JOB_SIZES[size][1] * attempt


def node_max_mem(profile: Profile, gpus: int, nodes=None) -> int | None:
    """The largest node's memory of the job's partition, on Slurm (retries are capped at it), else None."""
    partition = profile.partition(gpus)
    if not (profile.slurm and partition):
        return None
    return max(n.mem_mb for n in (nodes if nodes is not None else cluster.partition_nodes(partition)))


def check_fit(rule: str, profile: Profile, size: str, gpus: int, cpus: int, attempt: int = 1, nodes=None) -> None:
    """On Slurm, raise cluster.RequestTooLarge when no node of the job's partition can hold it."""
    partition = profile.partition(gpus)
    if not (profile.slurm and partition):
        return
    request = cluster.Request(cpus, mem_mb(size, attempt, node_max_mem(profile, gpus, nodes)), gpus,
                              profile.gpu_model(gpus))
    cluster.check_request(rule, request, partition, nodes)


def teacher_jobs(wf) -> list[tuple[str, str, int, int]]:
    """(rule, size, gpus, cpus) of every teacher job of a Workflow: they wait behind the plan_shards
    checkpoint, but their size depends on the teacher alone, so they are checked before anything runs."""
    jobs = []
    for tid, entry in wf.teacher_by_id.items():
        size, gpus = wf.teacher_size(tid), wf.teacher_gpus(tid)
        if entry["task"] == "depth":
            jobs.append(("teacher_sanity", size, gpus, 1))  # the gate runs first, on one CPU
        jobs.append((f"teacher_{entry['task']}", size, gpus, wf.teacher_threads(tid)))
    return jobs
