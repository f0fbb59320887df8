"""Open a ROS 2 bag (MCAP or sqlite3 `.db3`) without ROS, and salvage a truncated one.

`rosbags` reads both storage formats in pure Python, from a bag directory
(`metadata.yaml` + storage files, what `ros2 bag record` writes) or from a
bare `.mcap` / `.db3` file. Messages are yielded raw (CDR bytes) so that the
caller deserialises only what it needs, with the message definitions the bag
carries (a bag converted from ROS 1 keeps ROS 1 definitions, e.g. `K` and a
Header with `seq`); ROS 2 Humble's are the fallback.

A recording cut short (disk full, power lost) has no MCAP summary/footer or
a sqlite file whose last pages are missing. Such a bag is read as far as it
goes: `BagSource.truncated` is set and `BagSource.salvaged` counts the
messages of its readable prefix, so that the extraction can report them.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from rosbags.highlevel import AnyReader
from rosbags.typesys import Stores, get_typestore

log = logging.getLogger(__name__)

STORAGE_SUFFIXES = (".mcap", ".db3")


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
    truncated: bool = False
    salvaged: int = 0
    typestore: object = field(default_factory=lambda: get_typestore(Stores.ROS2_HUMBLE))

    def require(self, topic: str, msgtypes: tuple[str, ...], role: str, flag: str) -> Topic:
        """The topic, checked to exist and to carry one of `msgtypes`; BagError naming the fix otherwise."""
        if topic not in self.topics:
            known = ", ".join(f"{t.name} ({t.msgtype})" for t in self.topics.values()) or "none"
            raise BagError(f"{self.path}: no topic {topic!r} for the {role} (set {flag}); topics in the bag: {known}")
        found = self.topics[topic]
        if found.msgtype not in msgtypes:
            raise BagError(f"{self.path}: topic {topic!r} for the {role} carries {found.msgtype}, "
                           f"expected {' or '.join(msgtypes)}")
        if found.count == 0:
            raise BagError(f"{self.path}: topic {topic!r} for the {role} has no messages")
        return found

    def deserialize(self, raw: bytes, msgtype: str):
        return self.typestore.deserialize_cdr(raw, msgtype)

    def messages(self, topics: set[str]) -> Iterator[tuple[str, int, bytes]]:
        """(topic, record time ns, raw CDR) of the wanted topics, in storage order."""
        if self.truncated:
            for storage in self.storage:
                yield from _salvage_messages(storage, topics)
            return
        with AnyReader([self.path], default_typestore=self.typestore) as reader:
            conns = [c for c in reader.connections if c.topic in topics]
            for conn, stamp, raw in reader.messages(connections=conns):
                yield conn.topic, stamp, raw


def _storage_files(path: Path) -> list[Path]:
    """The storage files of a bag path, in recording order (`name_0.mcap`, `name_1.mcap`, ...)."""
    if path.is_file():
        return [path]
    files = sorted((p for p in path.iterdir() if p.suffix in STORAGE_SUFFIXES),
                   key=lambda p: (len(p.stem), p.stem))
    if not files:
        raise BagError(f"{path}: not a ROS 2 bag (no .mcap or .db3 file, no metadata.yaml)")
    return files


def open_bag(path: str | Path) -> BagSource:
    """Index a bag's topics; a truncated bag is opened in salvage mode instead of failing."""
    path = Path(path)
    if not path.exists():
        raise BagError(f"{path}: bag not found")
    if path.suffix == ".bag":
        raise BagError(f"{path}: a ROS 1 bag; convert it to ROS 2 storage first "
                       f"(rosbags-convert --src {path.name} --dst <folder> [--dst-storage mcap])")
    if path.is_file() and path.suffix not in STORAGE_SUFFIXES:
        raise BagError(f"{path}: unknown bag file type {path.suffix!r} (expected .mcap, .db3 or a bag directory)")
    source = BagSource(path, _storage_files(path))
    try:
        with AnyReader([path], default_typestore=source.typestore) as reader:
            source.topics = {c.topic: Topic(c.topic, c.msgtype, c.msgcount) for c in reader.connections}
            source.typestore = reader.typestore  # the bag's own message definitions
        return source
    except Exception as exc:  # rosbags raises several types for a damaged file
        log.warning("%s: not readable as a whole (%s); reading its readable prefix", path, exc)
        reason = str(exc)
    source.truncated = True
    counts: dict[str, int] = {}
    types: dict[str, str] = {}
    for storage in source.storage:
        types.update(_salvage_types(storage))
    try:
        for topic, _, _ in source.messages(set(types)):
            counts[topic] = counts.get(topic, 0) + 1
    except Exception as exc:  # noqa: BLE001 - nothing readable at all
        raise BagError(f"{path}: damaged bag with no readable messages ({reason}; {exc})") from None
    source.topics = {t: Topic(t, types[t], counts.get(t, 0)) for t in types}
    source.salvaged = sum(counts.values())
    if not types:
        raise BagError(f"{path}: damaged bag with no readable topics ({reason})")
    return source


# ---------------------------------------------------------------- salvage of a truncated storage file


MCAP_MAGIC = b"\x89MCAP0\r\n"


def _partial_decompress(data: bytes, compression: str) -> bytes:
    """As much of a chunk's records as a possibly cut-off compressed stream yields."""
    if compression == "":
        return data
    try:
        if compression == "zstd":
            try:
                from compression import zstd  # Python >= 3.14
            except ImportError:
                from backports import zstd
            return zstd.ZstdDecompressor().decompress(data)
        if compression == "lz4":
            import lz4.frame

            return lz4.frame.LZ4FrameDecompressor().decompress(data)
    except Exception as exc:  # noqa: BLE001 - the damaged chunk yields nothing
        log.warning("undecodable %s chunk at the damaged end (%s)", compression, exc)
        return b""
    raise BagError(f"MCAP chunk compression {compression!r} is not supported")


def _string(buf: bytes, pos: int) -> tuple[str, int]:
    n = int.from_bytes(buf[pos:pos + 4], "little")
    return buf[pos + 4:pos + 4 + n].decode(), pos + 4 + n


def _mcap_records(buf: bytes, pos: int, state: dict) -> Iterator[tuple[int, int, bytes]]:
    """(channel id, log time, data) of the complete message records in `buf` from `pos`; stops at a cut."""
    while pos + 9 <= len(buf):
        op, size = buf[pos], int.from_bytes(buf[pos + 1:pos + 9], "little")
        body = buf[pos + 9:pos + 9 + size]
        pos += 9 + size
        if op == 0x03 and len(body) == size:  # schema: id, name, encoding, data
            name, _ = _string(body, 2)
            state["schemas"][int.from_bytes(body[:2], "little")] = name
        elif op == 0x04 and len(body) == size:  # channel: id, schema id, topic, ...
            topic, _ = _string(body, 4)
            state["channels"][int.from_bytes(body[:2], "little")] = (
                topic, state["schemas"].get(int.from_bytes(body[2:4], "little"), ""))
        elif op == 0x05 and len(body) == size:  # message: channel, sequence, log time, publish time, data
            yield int.from_bytes(body[:2], "little"), int.from_bytes(body[6:14], "little"), body[22:]
        elif op == 0x06 and len(body) >= 36:  # chunk: times, size, crc, compression, records
            compression, at = _string(body, 28)
            records = _partial_decompress(body[at + 8:], compression)
            yield from _mcap_records(records, 0, state)
        if len(body) < size:
            return


def _mcap_prefix(storage: Path) -> tuple[dict, list[tuple[int, int, bytes]]]:
    """Channels {id: (topic, type)} and messages of the readable part of an MCAP file."""
    buf = storage.read_bytes()
    if buf[:8] != MCAP_MAGIC:
        raise BagError(f"{storage}: not an MCAP file (bad magic)")
    state: dict = {"schemas": {}, "channels": {}}
    return state["channels"], list(_mcap_records(buf, 8, state))


def _sqlite_prefix(storage: Path) -> sqlite3.Connection:
    """A read-only connection to a cut-off sqlite file.

    SQLite refuses a file shorter than its header's page count unless
    `writable_schema` is on, in which case it reads the pages that exist;
    nothing is written (the connection is read-only).
    """
    db = sqlite3.connect(f"file:{storage}?mode=ro", uri=True)
    db.execute("PRAGMA writable_schema=ON")
    return db


def _salvage_types(storage: Path) -> dict[str, str]:
    """topic -> message type of a damaged storage file."""
    if storage.suffix == ".mcap":
        return dict(_mcap_prefix(storage)[0].values())
    db = _sqlite_prefix(storage)
    try:
        return dict(db.execute("SELECT name, type FROM topics").fetchall())
    finally:
        db.close()


def _salvage_messages(storage: Path, topics: set[str]) -> Iterator[tuple[str, int, bytes]]:
    """Messages of the readable prefix of a damaged storage file; stops quietly at the damage."""
    if storage.suffix == ".mcap":
        channels, records = _mcap_prefix(storage)
        for cid, stamp, raw in records:
            if cid in channels and channels[cid][0] in topics:
                yield channels[cid][0], stamp, raw
        return
    db = _sqlite_prefix(storage)
    try:
        names = dict(db.execute("SELECT id, name FROM topics").fetchall())
        cursor = db.execute("SELECT topic_id, timestamp, data FROM messages ORDER BY id")
        while True:
            try:
                row = cursor.fetchone()
            except sqlite3.DatabaseError as exc:
                log.warning("%s: reading stopped at the damaged part (%s)", storage, exc)
                return
            if row is None:
                return
            if names.get(row[0]) in topics:
                yield names[row[0]], row[1], bytes(row[2])
    finally:
        db.close()
