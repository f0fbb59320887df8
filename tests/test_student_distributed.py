"""DDP on CPU (gloo, two processes under torchrun), the pre-emption guard, and the submitit launcher."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys

import pytest
import torch
from test_student_data import write_manifest
from test_student_train import tiny_config

from distillery.student.checkpoint import load_checkpoint
from distillery.student.distributed import PreemptionGuard
from distillery.student.submit import SlurmOptions, executor_parameters, make_executor, master_port, submit

RANK_SCRIPT = """
import json, sys, torch
from distillery.student.config import config_from_dict
from distillery.student.distributed import cleanup, init_distributed
from distillery.student.train import setup_run, train

settings, manifest, out = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3]
env = init_distributed("cpu")
run = setup_run(config_from_dict(settings), [manifest], out, "never", env)
summary = train(run)
torch.save({"model": run.model.state_dict(), "loss": run.loss_fn.state_dict(), "steps": summary["global_step"]},
           f"{out}/rank{env.rank}.pt")
cleanup(env)
"""


@pytest.fixture(scope="module")
def manifest(tmp_path_factory):
    return write_manifest(tmp_path_factory.mktemp("data") / "m.h5", frames=12)


def test_two_ddp_ranks_on_gloo_end_with_identical_weights(manifest, tmp_path):
    script = tmp_path / "rank.py"
    script.write_text(RANK_SCRIPT)
    settings = dataclasses.asdict(tiny_config(device="cpu"))  # epoch 1 frozen encoder, epoch 2 all: DDP rewrapped
    out = tmp_path / "ddp"
    out.mkdir()
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           str(script), json.dumps(settings), manifest, str(out)],
                          capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    rank0, rank1 = (torch.load(out / f"rank{r}.pt") for r in (0, 1))
    # 9 training frames over 2 ranks with batches of 2: each rank takes 2 steps per epoch
    assert rank0["steps"] == rank1["steps"] == 4
    for part in ("model", "loss"):
        for name, value in rank0[part].items():
            assert torch.equal(value, rank1[part][name]), f"{part}.{name} differs between ranks"
    saved = load_checkpoint(out / "last.pt")["model"]
    assert all(torch.equal(saved[k], v) for k, v in rank0["model"].items())
    assert not (out / "rank1").exists() and len(list(out.glob("*.pt"))) == 4  # last, best, rank0, rank1


def test_guard_flags_a_signal_and_chains_the_previous_handler():
    seen = []
    previous = signal.signal(signal.SIGUSR1, lambda signum, frame: seen.append(signum))
    try:
        with PreemptionGuard((signal.SIGUSR1,)) as guard:
            assert not guard.requested
            os.kill(os.getpid(), signal.SIGUSR1)
            assert guard.requested and seen == []  # the training loop decides when to act
            guard.chain()
            assert seen == [signal.SIGUSR1]
        assert signal.getsignal(signal.SIGUSR1) is not guard._handle
    finally:
        signal.signal(signal.SIGUSR1, previous)


def test_slurm_executor_parameters_without_submitting(tmp_path, monkeypatch):
    import submitit.slurm.slurm

    monkeypatch.setattr(submitit.slurm.slurm.SlurmExecutor, "affinity", classmethod(lambda cls: 1))  # "srun exists"
    opts = SlurmOptions(partition="l40s_public", account="lab", gpus=2, cpus_per_gpu=4, mem_gb=64, timeout_min=600)
    params = executor_parameters(opts)
    assert params["slurm_partition"] == "l40s_public" and params["slurm_account"] == "lab"
    assert params["gpus_per_node"] == 2 and params["tasks_per_node"] == 2 and params["cpus_per_task"] == 4
    executor = make_executor(tmp_path, opts, cluster="slurm")
    script = executor._executor._make_submission_file_text("python -m job", "1")
    for line in ("--partition=l40s_public", "--account=lab", "--gpus-per-node=2", "--ntasks-per-node=2",
                 "--mem=64GB", "--time=600", "--signal=USR2@120"):
        assert f"#SBATCH {line}" in script
    typed = executor_parameters(SlurmOptions(gres="gpu:l40s:1"))
    assert typed["slurm_gres"] == "gpu:l40s:1" and "gpus_per_node" not in typed
    assert 20000 <= master_port("12345_7") < 30000


def test_submitit_debug_executor_runs_a_training_job(manifest, tmp_path):
    cfg = tiny_config(epochs=1, freeze_encoder_epochs=0, augment=False)
    job = submit(cfg, [manifest], str(tmp_path / "run"), SlurmOptions(), cluster="debug")
    summary = job.result()
    assert summary["status"] == "done" and (tmp_path / "run" / "best.pt").exists()
