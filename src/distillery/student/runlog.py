"""What a training run records: metrics.jsonl (one JSON object per line) and TensorBoard scalars.

Only rank 0 writes. A resumed run first drops the records written after its
checkpoint (the steps it is about to redo), in metrics.jsonl and, through
SummaryWriter's purge_step, in TensorBoard, so both read as one continuous run.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

from distillery.atomic import read_jsonl, write_jsonl_atomic


def _plain(value):
    """A JSON-safe float / int / str of a metric value (tensors become floats, NaN becomes null)."""
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class RunLog:
    """metrics.jsonl + TensorBoard (under <out>/tensorboard) of one run; silent when not enabled."""

    def __init__(self, out_dir: str | Path, enabled: bool = True, resume_step: int = 0):
        self.enabled = enabled
        self.path = Path(out_dir) / "metrics.jsonl"
        self._writer = None
        if not enabled:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._keep_until(resume_step)
        from torch.utils.tensorboard import SummaryWriter

        self._writer = SummaryWriter(str(Path(out_dir) / "tensorboard"), purge_step=resume_step)

    def _keep_until(self, step: int) -> None:
        """Drop records from after `step` (all of them for a fresh run at step 0)."""
        if not self.path.exists():
            return
        kept = [r for r in read_jsonl(self.path) if step > 0 and r.get("step", 0) <= step]
        write_jsonl_atomic(self.path, kept)

    def record(self, kind: str, step: int, epoch: int, values: dict) -> None:
        """Append one record and mirror its numbers to TensorBoard as <kind>/<name>."""
        if not self.enabled:
            return
        row = {"kind": kind, "step": step, "epoch": epoch, "time": round(time.time(), 3)}
        row.update({k: _plain(v) for k, v in values.items()})
        with open(self.path, "a") as fh:
            fh.write(json.dumps(row, sort_keys=True) + "\n")
        for name, value in row.items():
            is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
            if is_number and name not in ("step", "epoch", "time"):
                self._writer.add_scalar(f"{kind}/{name}", value, step)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
