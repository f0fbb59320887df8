"""What trusted ToF depth is, for every stage that counts it.

Training and fusion trust a ToF pixel where its confidence is at or above
`CONF_MIN` (fusion.py re-exports it). A camera tool whose "confidence" is
really IR brightness, or a badly chosen mapping, leaves most valid depth
below that gate, and training and fusion then ignore it without a word. So
extraction (`distillery extract-bag`) and ingest (`pack_shard`) count the
share of valid depth that confidence trusts and warn when it falls below a
floor (`trusted_floor`, default `TRUSTED_FLOOR`). Pure numpy, no torch: the
ingest jobs import it.

Counts travel as JSON ({"floor": f, "datasets": {name: [valid, trusted]}}):
a shard's `trusted_depth` attribute, summed into the manifest's by the merge,
summarised by `distillery info`. Frames whose confidence was derived from
valid depth (no sensor channel) are not counted: they trust all of it.
"""

from __future__ import annotations

import json

import numpy as np

CONF_MIN = 0.5  # ToF confidence at or above which a pixel is trusted (training and fusion)
TRUSTED_FLOOR = 0.5  # warn when confidence trusts less than this share of the valid depth


def trusted_counts(depth: np.ndarray, confidence: np.ndarray) -> tuple[int, int]:
    """(valid, trusted) pixel counts: depth > 0, and of those, confidence >= CONF_MIN."""
    valid = depth > 0
    return int(np.count_nonzero(valid)), int(np.count_nonzero(valid & (confidence >= CONF_MIN)))


def trusted_warning(share: float, floor: float, fix: str) -> str | None:
    """The warning for a trusted share below `floor` (None when it is not), ending with `fix`."""
    if share >= floor:
        return None
    return (f"confidence trusts {share:.1%} of the valid depth (confidence >= {CONF_MIN}), below the floor of "
            f"{floor:.0%}: {fix}; training and fusion ignore untrusted depth")


def counts_json(counts: dict[str, list[int]], floor: float) -> str:
    """The `trusted_depth` attribute of a shard or manifest."""
    return json.dumps({"floor": floor, "datasets": {d: [int(v), int(t)] for d, (v, t) in sorted(counts.items())}})


def combine(parts: list[str | None]) -> str:
    """Sum the `trusted_depth` attributes of shards (absent ones, from older packs, are skipped)."""
    counts: dict[str, list[int]] = {}
    floors = []
    for part in filter(None, parts):
        data = json.loads(part)
        floors.append(float(data["floor"]))
        for name, (valid, trusted) in data["datasets"].items():
            total = counts.setdefault(name, [0, 0])
            total[0] += valid
            total[1] += trusted
    return counts_json(counts, min(floors, default=TRUSTED_FLOOR))


def trust_summary(attr: str | None) -> dict:
    """Trusted share of valid depth, overall and per dataset, and a warning per dataset below the floor."""
    if not attr:
        return {"trusted_share": None, "note": "packed without trusted-depth counts"}
    data = json.loads(attr)
    floor, datasets = float(data["floor"]), data["datasets"]
    valid, trusted = sum(v for v, _ in datasets.values()), sum(t for _, t in datasets.values())
    shares = {name: round(t / v, 4) if v else 0.0 for name, (v, t) in datasets.items()}
    warnings = [f"{name}: {w}" for name, share in shares.items()
                if (w := trusted_warning(share, floor, "check the camera's confidence (or its mapping)"))]
    return {"trusted_share": round(trusted / valid, 4) if valid else None, "trusted_floor": floor,
            "datasets": shares, "warnings": warnings}
