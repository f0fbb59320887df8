"""The INT8 calibration set: real frames from the manifest's train split, stratified per dataset.

INT8 scales are only as good as the activations they were measured on (the
reference calibrated on random noise). The set is drawn with a seed, an
equal share from every dataset of the train split (so a large dataset does
not crowd out the deployment domain), never from val or test, and written as
`calibration.npz`, which travels to the Jetson with the ONNX files:

    rgb       uint8 [N, 3, H, W]   divide by 255 for the graph's input
    keys      str [N]              manifest frame keys, in order
    datasets  str [N]
    seed, split                    how the set was drawn
"""

from __future__ import annotations

import os

import numpy as np

from distillery.deploy.frames import check_size
from distillery.atomic import atomic_write
from distillery.manifest import Manifest

SPLIT = "train"


def stratified_rows(records: list[dict], count: int, seed: int) -> list[int]:
    """Up to `count` train rows, an equal share per dataset (a short dataset's remainder goes to the others)."""
    rng = np.random.default_rng(seed)
    pools = {}
    for r in records:
        if r["split"] == SPLIT:
            pools.setdefault(r["dataset"], []).append(r["row"])
    pools = {name: list(rng.permutation(rows)) for name, rows in sorted(pools.items())}
    chosen: dict[str, list[int]] = {name: [] for name in pools}
    left = count
    while left > 0 and any(pools.values()):
        open_pools = [name for name in pools if pools[name]]
        share = max(left // len(open_pools), 1)
        for name in open_pools:
            take = pools[name][:min(share, left)]
            pools[name] = pools[name][len(take):]
            chosen[name] += take
            left -= len(take)
            if left == 0:
                break
    return sorted(int(r) for rows in chosen.values() for r in rows)


def build_calibration(manifest: str | os.PathLike, out: str | os.PathLike, count: int = 64, seed: int = 0) -> dict:
    """Draw the calibration set and write it to `out` (npz); returns its summary (keys per dataset)."""
    with Manifest(manifest) as m:
        check_size(m, manifest)
        rows = stratified_rows(m.records, count, seed)
        if not rows:
            raise ValueError(f"{manifest}: no frames in the {SPLIT!r} split to calibrate INT8 on")
        records = [m.records[r] for r in rows]
        if any(r["split"] != SPLIT for r in records):
            raise AssertionError("calibration drew a frame outside the train split")
        rgb = np.stack([np.moveaxis(m.read(r, ("rgb",))["rgb"], -1, 0) for r in rows])
    keys = np.array([r["key"] for r in records])
    datasets = np.array([r["dataset"] for r in records])
    with atomic_write(out) as tmp, open(tmp, "wb") as fh:
        np.savez_compressed(fh, rgb=rgb, keys=keys, datasets=datasets, seed=np.int64(seed), split=np.array(SPLIT))
    per_dataset = {str(name): int((datasets == name).sum()) for name in sorted(set(datasets))}
    return {"frames": len(rows), "seed": seed, "split": SPLIT, "per_dataset": per_dataset, "keys": keys.tolist()}


def load_calibration(path: str | os.PathLike) -> dict:
    """The calibration file as float32 rgb [N,3,H,W] in [0, 1] plus keys."""
    with np.load(path) as z:
        return {"rgb": z["rgb"].astype(np.float32) / 255.0, "keys": [str(k) for k in z["keys"]],
                "datasets": [str(d) for d in z["datasets"]], "seed": int(z["seed"]), "split": str(z["split"])}
