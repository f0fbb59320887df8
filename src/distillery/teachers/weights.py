"""Teacher weights: a local path or a hub id, resolved to files in a shared cache.

A config names weights in one of three ways:
- a local path: a file (`/models/yolov8l.pt`) or a repository folder (`/models/DA3METRIC-LARGE`);
- `hf://org/repo` (a repository snapshot) or `hf://org/repo/file` (one file of it), which
  resolve to `<cache>/org/repo[/file]`;
- `random`: the real architecture with untrained weights (tests and benchmarks only).

GPU jobs only ever read local files. The workflow's `download_weights`
rule (a local rule: it runs where Snakemake runs, e.g. a login node with
internet) fills the cache from the Hugging Face hub before any teacher job
starts; a missing local file stops the workflow at DAG build time, naming
the file and how to get it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from distillery.manifest.content import file_sha256
from distillery.teachers.backends import backend_info

HUB_PREFIX = "hf://"
RANDOM = "random"
_HUB_RE = re.compile(r"^hf://([\w.-]+/[\w.-]+)(?:/(.+))?$")


# Backends whose checkpoints are full Python pickles (Ultralytics .pt): loading one runs code, so they are
# read only from the weights cache, the folder the workflow's download rule fills from the hub.
PICKLE_BACKENDS = ("yolo",)


class MissingWeights(FileNotFoundError):
    """A weights file the config names is not on disk."""


class UntrustedWeights(ValueError):
    """A pickled checkpoint named outside the weights cache."""


def check_pickle_source(backend: str, spec: str | None, cache: str | Path) -> None:
    """Refuse a pickle-format checkpoint that does not lie inside the weights cache.

    Ultralytics loads its .pt files with full unpickling, which can execute
    code; the cache holds only what `download_weights` fetched from the hub
    (or what an administrator put there deliberately), so nothing else is loaded.
    """
    if backend not in PICKLE_BACKENDS or not spec or spec == RANDOM or spec.startswith(HUB_PREFIX):
        return
    path, root = Path(spec).expanduser().resolve(), Path(cache).expanduser().resolve()
    if not path.is_relative_to(root):
        raise UntrustedWeights(
            f"weights {spec!r} of backend {backend!r}: its checkpoints are Python pickles, loaded only from the "
            f"weights cache ({root}); name them as hf://org/repo/file, or copy the file into the cache")


@dataclass(frozen=True)
class WeightFile:
    """One file a teacher needs: where it must be, and the hub repo/file it comes from (if any)."""

    path: Path
    repo: str | None = None
    filename: str | None = None


def parse_hub(spec: str) -> tuple[str, str | None]:
    """`hf://org/repo[/file]` -> (org/repo, file or None)."""
    m = _HUB_RE.match(spec)
    if not m:
        raise ValueError(f"weights {spec!r}: a hub id is written hf://org/repo or hf://org/repo/file")
    return m.group(1), m.group(2)


def weight_files(backend: str, spec: str, cache: str | Path) -> list[WeightFile]:
    """The files a backend needs for weights `spec`; empty for simulated backends and `random`."""
    info = backend_info(backend)
    if info.simulated or spec == RANDOM:
        return []
    if spec.startswith(HUB_PREFIX):
        repo, filename = parse_hub(spec)
        folder = Path(cache) / repo
        if filename:
            return [WeightFile(folder / filename, repo, filename)]
        if info.weight_files is None:
            raise ValueError(f"weights {spec!r}: backend {backend!r} loads one checkpoint file, "
                             "name it as hf://org/repo/file")
        return [WeightFile(folder / name, repo, name) for name in info.weight_files]
    path = Path(spec).expanduser()
    if info.weight_files is None or (path.suffix and not path.is_dir()):
        return [WeightFile(path)]
    return [WeightFile(path / name) for name in info.weight_files]


def resolve(backend: str, spec: str | None, cache: str | Path) -> str | None:
    """The local path a backend loads (file or folder), `random`, or None for simulated backends."""
    if spec is None or backend_info(backend).simulated:
        return None
    if spec == RANDOM:
        return RANDOM
    if spec.startswith(HUB_PREFIX):
        repo, filename = parse_hub(spec)
        return str(Path(cache) / repo / filename) if filename else str(Path(cache) / repo)
    return str(Path(spec).expanduser())


_DIGESTS: dict[tuple, str] = {}


def _file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file, cached per (path, size, mtime) for the life of the process."""
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _DIGESTS:
        _DIGESTS[key] = file_sha256(path)
    return _DIGESTS[key]


def weights_sha256(backend: str, weights: str | None, simulated: bool) -> str:
    """What a teacher's weights are, as the manifest records it: the SHA-256 of the weights file (of each
    file of a repository folder, combined as `name:sha256` lines), or a phrase for simulated and untrained
    teachers, which load no file. `simulated` comes from the teacher, which knows what it is."""
    if simulated:
        return "simulated teacher: no weights"
    if not weights or weights == RANDOM:
        return "random: untrained weights"
    path = Path(weights)
    if path.is_file():
        return _file_sha256(path)
    files = [f.path for f in weight_files(backend, weights, ".")]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise MissingWeights(f"weights of teacher backend {backend!r} not found: {missing}")
    import hashlib

    lines = "".join(f"{f.name}:{_file_sha256(f)}\n" for f in files)
    return hashlib.sha256(lines.encode()).hexdigest()


def how_to_get(f: WeightFile, cache: str | Path) -> str:
    if f.repo:
        return (f"download it on a machine with internet: `snakemake download_weights_all` (or "
                f"`distillery teach download-weights --repo {f.repo} --file {f.filename} --cache {cache}`)")
    return "copy the file there, or point the config at a hub id (hf://org/repo/file) to download it"


def check_present(backend: str, spec: str, cache: str | Path, include_hub: bool = True) -> None:
    """Raise MissingWeights naming every missing file and how to get it.

    With include_hub=False, files that a hub download can provide are not
    checked (the workflow's download rule fetches them first).
    """
    check_pickle_source(backend, spec, cache)
    missing = [f for f in weight_files(backend, spec, cache)
               if not f.path.is_file() and (include_hub or f.repo is None)]
    if missing:
        lines = [f"  {f.path}: {how_to_get(f, cache)}" for f in missing]
        raise MissingWeights(f"weights of teacher backend {backend!r} ({spec}) not found:\n" + "\n".join(lines))


def download(repo: str, filename: str, cache: str | Path) -> Path:
    """Fetch one file of a hub repository into `<cache>/<repo>/<filename>` (needs internet)."""
    from huggingface_hub import hf_hub_download

    target = Path(cache) / repo
    target.mkdir(parents=True, exist_ok=True)
    try:
        path = hf_hub_download(repo_id=repo, filename=filename, local_dir=str(target))
    except Exception as err:  # the hub client raises many types (offline, 404, auth); all mean "not fetched"
        raise MissingWeights(f"could not download {filename} of hf://{repo} into {target}: "
                             f"{type(err).__name__}: {err}. Run this step on a machine with internet "
                             f"(a login node), or copy the file to {target / filename}") from err
    return Path(path)
