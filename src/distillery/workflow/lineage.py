"""The lineage of student versions as configuration: dataset roles, defaults, parents-first order.

The reference lineage speaks of datasets by what they are for (NYU, SUN
RGB-D, DIODE, the LILocBench corridors). A config maps each such *role* to
a dataset of the manifest (`lineage.roles: {nyu: rooms, corridor: ...}`),
and a version's `datasets` (its training mixture) and `val_datasets` (what
its best.pt is chosen on) may name roles or datasets. Everything here is a
pure function of the config, called when Snakemake builds the DAG, so a
typo stops `snakemake -n` at once, naming the version and the value.

`training.defaults` holds the settings every version starts from (a
version's own keys win), so a new version is one entry and nothing else.
"""

from __future__ import annotations

ROLES = ("nyu", "sun", "diode", "corridor")
# Keys of a version entry that the workflow reads; everything else is a `distillery train` setting.
WORKFLOW_KEYS = ("parent", "gpus", "datasets", "val_datasets", "reference")


def version_entry(training: dict, name: str) -> dict:
    """A version's settings: training.defaults, overridden by the version's own keys."""
    versions = training.get("versions") or {}
    if name not in versions:
        raise ValueError(f"config: training.versions has no {name!r} (has {sorted(versions)})")
    return {**(training.get("defaults") or {}), **(versions[name] or {})}


def check_roles(roles: dict, datasets: list[str]) -> None:
    """Every role maps to a dataset of the config."""
    for role, dataset in (roles or {}).items():
        if dataset not in datasets:
            raise ValueError(f"config: lineage.roles.{role} is {dataset!r}, which is not a dataset "
                             f"(datasets: {sorted(datasets)})")


def resolve_name(value: str, roles: dict, datasets: list[str], where: str) -> str:
    """A role or dataset name as a dataset name; anything else raises naming `where` and the value."""
    if value in (roles or {}):
        return roles[value]
    if value in datasets:
        return value
    if value in ROLES:
        raise ValueError(f"config: {where} names the role {value!r}, which is not mapped to a dataset: set "
                         f"lineage.roles.{value} to one of your datasets ({sorted(datasets)})")
    raise ValueError(f"config: {where} names {value!r}, which is neither a dataset ({sorted(datasets)}) "
                     f"nor a lineage role ({sorted(roles or {})})")


def mixture(value, roles: dict, datasets: list[str], where: str) -> dict[str, float]:
    """`datasets` of a version (a list: equal weights; a mapping: name -> weight) as dataset -> weight."""
    items = value.items() if isinstance(value, dict) else ((name, 1.0) for name in value)
    out: dict[str, float] = {}
    for name, weight in items:
        dataset = resolve_name(name, roles, datasets, where)
        out[dataset] = out.get(dataset, 0.0) + float(weight)
    if not out:
        raise ValueError(f"config: {where} is empty; name at least one dataset or role")
    return out


def resolved_settings(entry: dict, roles: dict, datasets: list[str], version: str) -> dict:
    """The `distillery train` settings of a version entry: workflow keys dropped, roles resolved.

    `datasets` becomes `dataset_weights` (train on those datasets, mixed by weight); `val_datasets`
    becomes the list of datasets best.pt is chosen on.
    """
    settings = {k: v for k, v in entry.items() if k not in WORKFLOW_KEYS}
    if entry.get("datasets") is not None:
        settings["dataset_weights"] = mixture(entry["datasets"], roles, datasets,
                                              f"training.versions.{version}.datasets")
    if entry.get("val_datasets") is not None:
        settings["val_datasets"] = [resolve_name(n, roles, datasets, f"training.versions.{version}.val_datasets")
                                    for n in entry["val_datasets"]]
    return settings


def parents_first(versions: dict[str, dict]) -> list[str]:
    """Version names, each after its parent; an unknown parent or a cycle raises naming the version."""
    order: list[str] = []
    state: dict[str, str] = {}

    def visit(name: str, trail: tuple[str, ...]) -> None:
        if state.get(name) == "done":
            return
        if name in trail:
            cycle = " -> ".join((*trail[trail.index(name):], name))
            raise ValueError(f"config: training.versions.{name}.parent makes a cycle: {cycle}")
        parent = (versions[name] or {}).get("parent")
        if parent is not None:
            if parent not in versions:
                raise ValueError(f"config: training.versions.{name}.parent is {parent!r}, which is not a version "
                                 f"(versions: {sorted(versions)})")
            visit(parent, (*trail, name))
        state[name] = "done"
        order.append(name)

    for name in versions:
        visit(name, ())
    return order


def descendants(versions: dict[str, dict], root: str) -> list[str]:
    """Every version that fine-tunes from `root`, directly or through others, parents first."""
    out: set[str] = set()
    changed = True
    while changed:
        changed = False
        for name, entry in versions.items():
            if (entry or {}).get("parent") in ({root} | out) and name not in out:
                out.add(name)
                changed = True
    return [v for v in parents_first(versions) if v in out]


def check_lineage(training: dict, roles: dict, datasets: list[str]) -> list[str]:
    """Validate the whole lineage at DAG build; return the versions parents first.

    Checks: roles map to datasets; parents exist and form no cycle; every name in a version's
    `datasets` / `val_datasets` is a role or a dataset; `training.build` names versions.
    """
    check_roles(roles, datasets)
    versions = training.get("versions") or {}
    order = parents_first(versions)
    for name in order:
        resolved_settings(version_entry(training, name), roles, datasets, name)
    for name in training.get("build") or []:
        if name not in versions:
            raise ValueError(f"config: training.build names {name!r}, which is not a version "
                             f"(versions: {sorted(versions)})")
    return order


def lineage_summary(training: dict, roles: dict, datasets: list[str]) -> dict[str, dict]:
    """version -> its entry with defaults applied and roles resolved (what the report shows, the
    reference implementation's figures of `reference` included)."""
    out = {}
    for name in parents_first(training.get("versions") or {}):
        entry = version_entry(training, name)
        summary = {k: entry[k] for k in ("parent", "backbone", "depth_teacher", "depth_loss", "augment", "lr",
                                         "freeze_encoder_epochs", "epochs", "reference") if k in entry}
        if entry.get("datasets") is not None:
            summary["datasets"] = entry["datasets"]  # as the config names them (roles)
            summary["dataset_weights"] = mixture(entry["datasets"], roles, datasets, name)
        if entry.get("val_datasets") is not None:
            summary["val_datasets"] = [resolve_name(n, roles, datasets, name) for n in entry["val_datasets"]]
        out[name] = summary
    return out
