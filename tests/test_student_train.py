"""The training loop: schedule, freezing, resume (bit-identical), fine-tune, best.pt, signals."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from test_student_data import write_manifest

from distillery.student.checkpoint import load_checkpoint, load_student
from distillery.student.config import TrainConfig, config_from_dict
from distillery.student.distributed import PREEMPTED_EXIT_CODE
from distillery.student.optim import cosine_factor
from distillery.student.train import set_encoder_frozen, setup_run, train


def tiny_config(**overrides) -> TrainConfig:
    """Two epochs of three augmented steps on 64x96 frames; the encoder frozen in the first."""
    cfg = TrainConfig(backbone="mobilenetv3_small", encoder_weights="random", epochs=2, batch_size=2,
                      num_workers=0, freeze_encoder_epochs=1, progress=False, log_every_steps=1, augment=True)
    return dataclasses.replace(cfg, **overrides)


@pytest.fixture(scope="module")
def manifest(tmp_path_factory):
    return write_manifest(tmp_path_factory.mktemp("data") / "m.h5")


def _train(cfg: TrainConfig, manifest: str, out, resume: str = "auto") -> dict:
    return train(setup_run(cfg, [manifest], out, resume))


def _weights(path) -> dict:
    ckpt = load_checkpoint(path)
    return {**{f"model.{k}": v for k, v in ckpt["model"].items()}, **{f"loss.{k}": v for k, v in ckpt["loss"].items()}}


def _assert_identical(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k].cpu(), b[k].cpu())]
    assert not different, f"{len(different)} tensors differ, e.g. {different[:3]}"


@pytest.fixture(scope="module")
def uninterrupted(manifest, tmp_path_factory):
    out = tmp_path_factory.mktemp("uninterrupted")
    summary = _train(tiny_config(), manifest, out)
    return out, summary


def test_cosine_schedule_with_warmup():
    assert cosine_factor(0, 100, 0, 0.0) == 1.0
    assert cosine_factor(50, 100, 0, 0.0) == pytest.approx(0.5)
    assert cosine_factor(100, 100, 0, 0.1) == pytest.approx(0.1)
    assert [cosine_factor(s, 100, 4, 0.0) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]


def test_three_parameter_groups_and_a_frozen_encoder(manifest, tmp_path):
    run = setup_run(tiny_config(lr=1e-3, encoder_lr_scale=0.1, kendall_lr=5e-3), [manifest], tmp_path)
    groups = {g["name"]: g for g in run.optimizer.param_groups}
    assert groups["encoder"]["lr"] == pytest.approx(1e-4) and groups["decoders"]["lr"] == pytest.approx(1e-3)
    assert groups["kendall"]["lr"] == pytest.approx(5e-3) and groups["kendall"]["weight_decay"] == 0.0
    assert groups["encoder"]["weight_decay"] == 1e-4
    set_encoder_frozen(run.model, True)
    assert not any(p.requires_grad for p in run.model.encoder.parameters())
    assert not run.model.encoder.training and run.model.depth_decoder.training


def test_run_writes_checkpoints_metrics_and_learns(uninterrupted):
    out, summary = uninterrupted
    assert summary["status"] == "done" and summary["global_step"] == 6 and summary["epoch"] == 2
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    train_losses = [r["loss"] for r in records if r["kind"] == "train"]
    assert len(train_losses) == 6 and all(torch.isfinite(torch.tensor(train_losses)))
    val = [r for r in records if r["kind"] == "val"]
    assert len(val) == 2 and "depth/target/rmse" in val[0] and "depth/truth_tof_invalid/rmse" in val[0]
    best = load_checkpoint(out / "best.pt")
    assert best["kind"] == "weights" and "optimizer" not in best and best["metrics"]
    assert any((out / "tensorboard").iterdir())
    model = load_student(out / "best.pt")
    assert model(torch.rand(1, 3, 64, 96))["depth"].shape == (1, 1, 64, 96)


@pytest.mark.parametrize("stop_at", [2, 4])  # inside the frozen first epoch, and inside the second
def test_interrupted_then_resumed_run_ends_bit_identical(manifest, uninterrupted, tmp_path, stop_at):
    stopped = _train(tiny_config(max_steps=stop_at), manifest, tmp_path)
    assert stopped["status"] == "stopped" and stopped["global_step"] == stop_at
    resumed = _train(tiny_config(), manifest, tmp_path, resume="always")
    assert resumed["global_step"] == 6
    _assert_identical(_weights(tmp_path / "last.pt"), _weights(uninterrupted[0] / "last.pt"))
    _assert_identical(_weights(tmp_path / "best.pt"), _weights(uninterrupted[0] / "best.pt"))
    steps = [json.loads(line)["step"] for line in (tmp_path / "metrics.jsonl").read_text().splitlines()
             if json.loads(line)["kind"] == "train"]
    assert steps == list(range(1, 7))  # one continuous log, no step twice


def test_fine_tune_starts_from_parent_weights_with_a_fresh_optimiser(manifest, uninterrupted, tmp_path):
    parent = uninterrupted[0] / "best.pt"
    run = setup_run(tiny_config(init_from=str(parent), lr=3e-4), [manifest], tmp_path)
    parent_model = load_checkpoint(parent)["model"]
    _assert_identical({k: v for k, v in run.model.state_dict().items()}, parent_model)
    assert run.optimizer.state_dict()["state"] == {} and run.scheduler.last_epoch == 0
    assert run.progress.global_step == 0 and run.progress.epoch == 0
    assert run.optimizer.param_groups[1]["lr"] == pytest.approx(3e-4)
    assert run.model.encoder_weights == f"init_from:{parent} (its encoder first: random)"


def test_resume_refuses_other_settings_and_auto_starts_fresh(manifest, uninterrupted, tmp_path):
    for name in ("last.pt", "best.pt"):
        (tmp_path / name).write_bytes((uninterrupted[0] / name).read_bytes())
    with pytest.raises(ValueError, match="other settings"):
        setup_run(tiny_config(lr=5e-4), [manifest], tmp_path, resume="always")
    assert setup_run(tiny_config(lr=5e-4), [manifest], tmp_path).progress.global_step == 0
    with pytest.raises(FileNotFoundError):
        setup_run(tiny_config(), [manifest], tmp_path / "empty", resume="always")


def test_finished_run_rewrites_a_deleted_best_checkpoint(manifest, uninterrupted, tmp_path):
    for name in ("last.pt", "best.pt"):
        (tmp_path / name).write_bytes((uninterrupted[0] / name).read_bytes())
    (tmp_path / "best.pt").unlink()  # as Snakemake does with the outputs of a job it re-runs
    summary = _train(tiny_config(), manifest, tmp_path, resume="always")  # auto would retrain (test_rundir.py)
    assert summary["global_step"] == 6
    _assert_identical(_weights(tmp_path / "best.pt"), _weights(uninterrupted[0] / "best.pt"))


def test_best_checkpoint_is_never_chosen_on_ground_truth():
    with pytest.raises(ValueError, match="ground truth"):
        config_from_dict({"best_metric": "depth/truth_tof_invalid/rmse"})
    with pytest.raises(ValueError, match="unknown training setting"):
        config_from_dict({"epochz": 3})


def _logged_steps(path) -> list[int]:
    """Steps of the complete lines of a metrics.jsonl that another process is appending to."""
    text = path.read_text() if path.exists() else ""
    return [json.loads(line).get("step", 0) for line in text.split("\n")[:-1] if line.strip()]


def _wait_for_step(path, step: int, proc, timeout: float = 120.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        if any(s >= step for s in _logged_steps(path)):
            return
        time.sleep(0.02)
    raise AssertionError(f"training did not reach step {step}: {proc.communicate()}")


SIGNAL_SETTINGS = {**dataclasses.asdict(tiny_config()), "epochs": 3, "samples_per_epoch": 16}  # 24 steps


@pytest.fixture(scope="module")
def signal_reference(manifest, tmp_path_factory):
    """The uninterrupted run the signalled runs must match."""
    out = tmp_path_factory.mktemp("signal_reference")
    _train(config_from_dict(SIGNAL_SETTINGS), manifest, out)
    return out


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGUSR1], ids=["SIGTERM", "SIGUSR1"])
def test_signal_saves_at_a_step_boundary_exits_75_and_resumes_identically(manifest, signal_reference, tmp_path,
                                                                          signum):
    out = tmp_path / "signalled"
    cmd = [sys.executable, "-m", "distillery.student.cli", "train", "--manifest", manifest, "--out", str(out),
           "--config-json", json.dumps(SIGNAL_SETTINGS), "--threads", str(torch.get_num_threads())]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for_step(out / "metrics.jsonl", 2, proc)
    os.kill(proc.pid, signum)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == PREEMPTED_EXIT_CODE, stderr
    stopped_at = load_checkpoint(out / "last.pt")["progress"]["global_step"]
    assert 2 <= stopped_at < 24 and "pre-empted" in stderr
    _train(config_from_dict(SIGNAL_SETTINGS), manifest, out, resume="always")
    _assert_identical(_weights(out / "last.pt"), _weights(signal_reference / "last.pt"))


needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.mark.gpu
@needs_cuda
@pytest.mark.parametrize("amp", ["bf16", "fp16", "off"])
def test_gpu_training_with_amp_and_channels_last(manifest, tmp_path, amp):
    cfg = tiny_config(backbone="efficientvit_b1", amp=amp, device="auto", num_workers=1)
    run = setup_run(cfg, [manifest], tmp_path)
    assert run.device.type == "cuda" and run.scaler.is_enabled() == (amp == "fp16")
    assert run.model.depth_decoder.head.weight.is_contiguous(memory_format=torch.channels_last)
    summary = train(run)
    assert summary["status"] == "done" and summary["global_step"] == 6
    losses = [json.loads(line)["loss"] for line in (tmp_path / "metrics.jsonl").read_text().splitlines()
              if json.loads(line)["kind"] == "train"]
    assert len(losses) == 6 and all(loss is not None and loss == loss for loss in losses)
    model = load_student(tmp_path / "best.pt", device="cuda")
    with torch.no_grad():
        assert torch.isfinite(model(torch.rand(1, 3, 64, 96, device="cuda"))["depth"]).all()
