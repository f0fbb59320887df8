"""Open a bag without ROS: ROS 1 `.bag`, ROS 2 MCAP or sqlite3 `.db3`; salvage a cut-off one on request.

`rosbags` reads all three in pure Python, from a ROS 2 bag directory
(`metadata.yaml` + storage files, what `ros2 bag record` writes), a bare
`.mcap` / `.db3` file, or a ROS 1 `.bag` (what `rosbag record` and the
RealSense Viewer write). Messages are yielded raw (CDR bytes for ROS 2, ROS 1
serialisation for `.bag`) so that the caller deserialises only what it
needs, with the message definitions the bag carries (a bag converted from
ROS 1 keeps ROS 1 definitions, e.g. `K` and a Header with `seq`); ROS 2
Humble's (ROS 1 Noetic's for `.bag`) are the fallback.

A recording cut short (disk full, power lost) is refused unless the caller
asks for salvage (`salvage=True`, the `--salvage` flag): the refusal names
the flag and how many messages its readable prefix holds. With it, the
prefix is streamed (`salvage.py`) and `BagSource.truncated` /
`BagSource.salvaged` say so for the report. Any other damage is an error.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from rosbags.highlevel import AnyReader
from rosbags.typesys import Stores, get_typestore

from distillery.ingest.bags import salvage

log = logging.getLogger(__name__)

STORAGE_SUFFIXES = (".mcap", ".db3", ".bag")
IMAGE_TYPES = ("sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage")
INFO_TYPE = "sensor_msgs/msg/CameraInfo"


class BagError(ValueError):
    """A bag cannot be extracted as asked; the message names the topic or message and the fix."""


@dataclass
class Topic:
    name: str
    msgtype: str
    count: int


@dataclass
class BagSource:
    """The topics of one bag and a way to read their raw messages in recorded order."""

    path: Path
    storage: list[Path]  # storage files in recording order (a split recording has several)
    topics: dict[str, Topic] = field(default_factory=dict)
    ros1: bool = False
    truncated: bool = False
    salvaged: int = 0
    typestore: object = field(default_factory=lambda: get_typestore(Stores.ROS2_HUMBLE))

    def listing(self) -> str:
        """The image and CameraInfo topics, one a line with type and count, for a user to pick from."""
        rows = [t for t in self.topics.values() if t.msgtype in IMAGE_TYPES + (INFO_TYPE,)]
        return "\n".join(f"  {t.name}  {t.msgtype.replace('/msg/', '/')}  {t.count}"
                         for t in sorted(rows, key=lambda t: t.name)) or "  (no image or CameraInfo topic)"

    def require(self, topic: str, msgtypes: tuple[str, ...], role: str, flag: str) -> Topic:
        """The topic, checked to exist and to carry one of `msgtypes`; BagError naming the fix otherwise."""
        if topic not in self.topics:
            raise BagError(f"{self.path}: no topic {topic!r} for the {role} (set {flag}); image and info "
                           f"topics in the bag (name, type, messages):\n{self.listing()}")
        found = self.topics[topic]
        if found.msgtype not in msgtypes:
            raise BagError(f"{self.path}: topic {topic!r} for the {role} carries {found.msgtype}, "
                           f"expected {' or '.join(msgtypes)}")
        if found.count == 0:
            raise BagError(f"{self.path}: topic {topic!r} for the {role} has no messages")
        return found

    def deserialize(self, raw: bytes, msgtype: str):
        if self.ros1:
            return self.typestore.deserialize_ros1(raw, msgtype)
        return self.typestore.deserialize_cdr(raw, msgtype)

    def messages(self, topics: set[str]) -> Iterator[tuple[str, int, bytes]]:
        """(topic, record time ns, raw bytes) of the wanted topics, in storage order."""
        if self.truncated:
            for storage in self.storage:
                for topic, _, stamp, raw in salvage.messages(storage):
                    if topic in topics:
                        yield topic, stamp, raw
            return
        with AnyReader([self.path], default_typestore=self.typestore) as reader:
            conns = [c for c in reader.connections if c.topic in topics]
            for conn, stamp, raw in reader.messages(connections=conns):
                yield conn.topic, stamp, raw


def _storage_files(path: Path) -> list[Path]:
    """The storage files of a bag path, in recording order (`name_0.mcap`, `name_1.mcap`, ...)."""
    if path.is_file():
        return [path]
    files = sorted((p for p in path.iterdir() if p.suffix in STORAGE_SUFFIXES[:2]),
                   key=lambda p: (len(p.stem), p.stem))
    if not files:
        raise BagError(f"{path}: not a ROS 2 bag (no .mcap or .db3 file, no metadata.yaml)")
    return files


def open_bag(path: str | Path, allow_salvage: bool = False) -> BagSource:
    """Index a bag's topics; a cut-off bag fails unless `allow_salvage`, which reads its prefix."""
    path = Path(path)
    if not path.exists():
        raise BagError(f"{path}: bag not found")
    if path.is_file() and path.suffix not in STORAGE_SUFFIXES:
        raise BagError(f"{path}: unknown bag file type {path.suffix!r} (expected .bag, .mcap, .db3 or a bag directory)")
    storage = _storage_files(path)
    source = BagSource(path, storage, ros1=path.suffix == ".bag")
    if source.ros1:
        source.typestore = get_typestore(Stores.ROS1_NOETIC)
    cuts = {s: why for s in storage if (why := salvage.truncation(s))}
    if cuts:
        return _salvaged(source, cuts, allow_salvage)
    try:
        with AnyReader([path], default_typestore=source.typestore) as reader:
            source.topics = {c.topic: Topic(c.topic, c.msgtype, c.msgcount) for c in reader.connections}
            source.typestore = reader.typestore  # the bag's own message definitions
    except Exception as exc:  # rosbags raises several types for a damaged file
        hint = "; a bag directory without metadata.yaml: pass its storage file itself" \
            if path.is_dir() and not (path / "metadata.yaml").is_file() else ""
        raise BagError(f"{path}: not a readable bag ({type(exc).__name__}: {exc}); it is not cut short "
                       f"(its index/footer is there), so it cannot be salvaged{hint}") from None
    return source


def _salvaged(source: BagSource, cuts: dict[Path, str], allow: bool) -> BagSource:
    """Count the readable prefix (streamed); refuse without `allow`, else return a salvage source."""
    source.truncated = True
    counts: dict[str, int] = {}
    types: dict[str, str] = {}
    try:
        for storage in source.storage:
            for topic, msgtype, _, _ in salvage.messages(storage):
                counts[topic] = counts.get(topic, 0) + 1
                types[topic] = msgtype
    except salvage.SalvageError as exc:
        raise BagError(str(exc)) from None
    source.salvaged = sum(counts.values())
    why = "; ".join(f"{s.name}: {w}" for s, w in cuts.items())
    if not allow:
        raise BagError(f"{source.path}: the recording is cut short ({why}); its readable prefix holds "
                       f"{source.salvaged} messages: pass --salvage (bag entry `salvage: true`) to extract them")
    if not source.salvaged:
        raise BagError(f"{source.path}: the recording is cut short ({why}) and no message before the cut is readable")
    log.warning("%s is cut short (%s): extracting the %d messages before the cut", source.path, why, source.salvaged)
    source.topics = {t: Topic(t, types[t], counts[t]) for t in types}
    return source
