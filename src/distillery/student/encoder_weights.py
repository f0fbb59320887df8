"""The student encoder's starting weights: timm's ImageNet weights, fetched like teacher weights.

GPU nodes are offline on most clusters, so a training job never downloads.
The workflow's local rule `download_weights` (it runs where Snakemake runs,
e.g. a login node with internet) fetches each encoder's ImageNet weights from
timm's Hugging Face repository into the weights cache, laid out as
huggingface_hub's `local_dir` download lays it out:
`<cache>/timm/<model>.<tag>/model.safetensors` (the same `<cache>/<org>/<repo>/<file>`
as teacher weights). A training job reads that file, else the user's own
Hugging Face cache (`models--timm--<model>/snapshots/<rev>/model.safetensors`,
where timm itself keeps what it downloaded).

`encoder_weights` of a training config:
- `imagenet` (the default): those weights; missing, the job fails before
  anything else, naming the rule that fetches them;
- `random`: random initialisation, said on purpose (the demo, tests);
- `auto`: ImageNet when found, else random init with a warning;
- a path to a weight file (`.safetensors`, `.pth`).

What an encoder started from is recorded as one line (`describe`): in the
checkpoints, metrics.jsonl, the model card and the lineage report.
"""

from __future__ import annotations

import logging
from pathlib import Path

from distillery.manifest.content import file_sha256
from distillery.teachers.settings import WEIGHTS_CACHE  # the workflow's default teachers.weights_cache

log = logging.getLogger(__name__)

FILENAME = "model.safetensors"  # the safetensors file of timm's hub repositories (no pickle)
FETCH_RULE = "download_weights"  # the workflow rule that fills the cache (`snakemake download_weights_all`)


class MissingEncoderWeights(FileNotFoundError):
    """The ImageNet weights a run asks for are in neither cache."""


def hub_repo(timm_name: str) -> str:
    """timm's Hugging Face repository of a model's default pretrained weights, e.g. timm/efficientvit_b1.r224_in1k."""
    from distillery.student.backbones import HUB_REPOS

    if timm_name in HUB_REPOS:
        return HUB_REPOS[timm_name]
    import timm  # a model outside the table: ask timm (imports torch)

    return timm.models.get_pretrained_cfg(timm_name).hf_hub_id


def cache_file(timm_name: str, cache: str | Path) -> Path:
    """Where download_weights puts a model's ImageNet weights in the weights cache."""
    return Path(cache) / hub_repo(timm_name) / FILENAME


def hf_cache_file(timm_name: str) -> Path | None:
    """The model's weights in the user's Hugging Face cache (where timm downloads to), else None."""
    from huggingface_hub import try_to_load_from_cache

    for filename in (FILENAME, "pytorch_model.bin"):
        found = try_to_load_from_cache(hub_repo(timm_name), filename)
        if isinstance(found, str):
            return Path(found)
    return None


def find_imagenet(timm_name: str, cache: str | Path | None) -> Path | None:
    """The ImageNet weights file of a model: the weights cache first, then the Hugging Face cache."""
    if cache is not None and cache_file(timm_name, cache).is_file():
        return cache_file(timm_name, cache)
    return hf_cache_file(timm_name)


def missing_message(backbone: str, timm_name: str, cache: str | Path | None) -> str:
    where = cache_file(timm_name, cache if cache is not None else WEIGHTS_CACHE)
    return (f"ImageNet weights of the {backbone} encoder (hf://{hub_repo(timm_name)}/{FILENAME}) are not at {where} "
            f"nor in the Hugging Face cache: fetch them where there is internet with the workflow rule "
            f"{FETCH_RULE} (`snakemake download_weights_all` on a login node), or set encoder_weights: random "
            f"to train from scratch on purpose")


def resolve(backbone: str, timm_name: str, weights: str, cache: str | Path | None = None) -> Path | None:
    """The file to load for `weights`; None = random init. Never downloads."""
    if weights == "random":
        return None
    if weights in ("imagenet", "auto"):
        found = find_imagenet(timm_name, cache)
        if found is None and weights == "imagenet":
            raise MissingEncoderWeights(missing_message(backbone, timm_name, cache))
        if found is None:
            log.warning("no ImageNet weights for %s: encoder_weights auto starts from random init", backbone)
        return found
    path = Path(weights)
    if not path.is_file():
        raise FileNotFoundError(f"encoder weight file not found: {path} (encoder_weights of the {backbone} encoder)")
    return path


def describe(timm_name: str, weights: str, path: Path | None) -> str:
    """One line saying what an encoder started from, with the file's hash when it came from one."""
    if path is None:
        return "random"
    digest = file_sha256(path)[:16]
    if weights in ("imagenet", "auto"):
        return f"imagenet hf://{hub_repo(timm_name)} (sha256 {digest})"
    return f"file {path} (sha256 {digest})"
