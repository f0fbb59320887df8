"""A version's run folder: what a run is (its identity), whether it may be resumed, and moving it aside.

A run's identity is the content of its inputs: the settings, the content id
of every manifest it reads (`Manifest.content_id`, written by the merge) and
the SHA-256 of the parent checkpoint a fine-tune starts from. Paths take no
part, so a moved manifest still resumes, and a re-merged manifest with other
data or a retrained parent never does.

    resume       same identity and the run stopped before its last epoch
    fresh start  anything else: a finished run, other settings or inputs,
                 --no-resume. The folder's files are first moved to
                 <out>/previous/<UTC stamp>/ (never deleted), with
                 archived.json saying why.

Snakemake deletes a job's outputs (best.pt) before re-running it; the
archived last.pt holds the best weights, and the archive gets its best.pt
back from there.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

from distillery.atomic import move_durable, write_text_atomic
from distillery.manifest import Manifest
from distillery.manifest.content import file_sha256
from distillery.student.config import TrainConfig, config_from_dict, fingerprint

log = logging.getLogger(__name__)

PREVIOUS = "previous"


def manifest_id(path: str | os.PathLike) -> str:
    """A manifest's content id; for a file without one (not written by the merge), its bytes' SHA-256."""
    with Manifest(path) as manifest:
        try:
            return manifest.content_id
        except ValueError:
            log.warning("%s has no content_id: identifying it by the SHA-256 of its bytes", path)
    return "sha256:" + file_sha256(path)


def run_inputs(cfg: TrainConfig, manifests: list[str]) -> dict:
    """The content identity of a run's inputs: manifest content ids (in order) and the parent's SHA-256."""
    return {"manifests": [manifest_id(m) for m in manifests],
            "parent_sha256": file_sha256(cfg.init_from) if cfg.init_from else None}


def run_fingerprint(cfg: TrainConfig, manifests: list[str]) -> tuple[str, dict]:
    """(fingerprint, inputs) of a run: settings plus the content identity of its inputs."""
    inputs = run_inputs(cfg, manifests)
    return fingerprint(cfg, inputs), inputs


def finished(ckpt: dict) -> bool:
    """True when a last.pt was written after the run's final epoch."""
    return int(ckpt["progress"]["epoch"]) >= int(ckpt["config"]["epochs"])


def resume_decision(ckpt: dict | None, run_fingerprint: str, resume: str, path: Path) -> tuple[bool, str]:
    """(resume?, why) for a run folder whose last.pt is `ckpt` (None when absent).

    resume: "auto" (resume an interrupted run of the same identity), "always"
    (insist; a finished run then has nothing left to do) or "never".
    """
    if ckpt is None:
        if resume == "always":
            raise FileNotFoundError(f"--resume: no checkpoint to resume at {path}")
        return False, "no checkpoint"
    same = ckpt.get("fingerprint") == run_fingerprint
    if resume == "always":
        if not same:
            raise ValueError(f"{path} was written with other settings or inputs; cannot resume it")
        return True, "resume requested"
    if resume == "never":
        return False, "a fresh start was asked for (--no-resume)"
    if not same:
        return False, "the settings or inputs (manifest content, parent weights) changed"
    if finished(ckpt):
        return False, "the previous run had finished: this is a rerun"
    return True, "interrupted run with the same settings and inputs"


def _stamp_folder(out_dir: Path) -> Path:
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    dest, n = out_dir / PREVIOUS / stamp, 1
    while dest.exists():
        dest, n = out_dir / PREVIOUS / f"{stamp}-{n}", n + 1
    return dest


def _restore_best(dest: Path) -> None:
    """Write best.pt of an archived run from its last.pt when the workflow manager had deleted it."""
    from distillery.student.checkpoint import atomic_save, load_checkpoint, weights_file

    if (dest / "best.pt").exists() or not (dest / "last.pt").exists():
        return
    try:
        last = load_checkpoint(dest / "last.pt")
        if last.get("best_state") is None:
            return
        cfg = config_from_dict(last["config"], str(dest / "last.pt"))
        progress = last["progress"]
        atomic_save(weights_file(last["best_state"], cfg, last.get("best_metrics") or {},
                                 progress.get("best_epoch") or 0, progress["global_step"],
                                 last.get("encoder_weights", "unknown")), dest / "best.pt")
    except (ValueError, KeyError, TypeError) as err:  # an older checkpoint: last.pt itself is kept
        log.warning("could not rebuild best.pt of %s from its last.pt: %s", dest, err)


def archive_run(out_dir: str | os.PathLike, reason: str) -> Path | None:
    """Move a run folder's files (all but previous/) to previous/<stamp>/; None when there was nothing."""
    out_dir = Path(out_dir)
    if not out_dir.is_dir():
        return None
    entries = [p for p in out_dir.iterdir() if p.name != PREVIOUS and not p.name.endswith(".tmp")]
    if not entries:
        return None
    dest = _stamp_folder(out_dir)
    dest.mkdir(parents=True)
    for entry in entries:
        move_durable(entry, dest / entry.name)
    _restore_best(dest)
    write_text_atomic(dest / "archived.json", json.dumps(
        {"reason": reason, "archived_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
         "files": sorted(p.name for p in entries)}, indent=1) + "\n")
    log.warning("starting a fresh run (%s): the previous run's files are now in %s", reason, dest)
    return dest
