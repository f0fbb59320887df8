"""The readable prefix of a bag cut short (disk full, power lost), streamed with bounded memory.

Only truncation counts as damage that can be salvaged, and `truncation(path)`
says whether a storage file is cut short, from its own structure:

- MCAP: a complete file ends with the 8-byte magic after its footer.
- ROS 1 (`#ROSBAG V2.0`): the bag header's `index_pos` points at the
  connection/chunk index written when the recorder closes the file; it is 0
  (never closed) or beyond the end of a cut file.
- sqlite3: the database header's page count times the page size is longer
  than the file.

`messages(storage, topics)` then yields (topic, type, record time ns, raw
bytes) of the complete messages before the cut, one record or one chunk in
memory at a time (a chunk is at most the recorder's chunk size, ~1 MiB by
default), so a multi-GB recording is read in a few MiB. A partially written
last chunk yields the messages its compressed stream still decodes.
"""

from __future__ import annotations

import bz2
import logging
import sqlite3
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

log = logging.getLogger(__name__)

MCAP_MAGIC = b"\x89MCAP0\r\n"
ROS1_MAGIC = b"#ROSBAG V2.0\n"
SQLITE_MAGIC = b"SQLite format 3\x00"


class SalvageError(ValueError):
    """The storage file cannot be read even as a prefix."""


def truncation(storage: Path) -> str | None:
    """Why `storage` is cut short, or None when its structure is complete."""
    size = storage.stat().st_size
    with storage.open("rb") as f:
        head = f.read(100)
        if head.startswith(MCAP_MAGIC):
            f.seek(max(0, size - 8))
            return None if size > 16 and f.read(8) == MCAP_MAGIC else "MCAP file without its closing magic"
        if head.startswith(ROS1_MAGIC):
            index_pos = _ros1_header(f).get("index_pos")
            pos = struct.unpack("<Q", index_pos)[0] if index_pos and len(index_pos) == 8 else 0
            if pos == 0 or pos >= size:
                return f"ROS 1 bag whose index (at byte {pos}) was never written or lies past its end ({size} bytes)"
            return None
        if head.startswith(SQLITE_MAGIC):
            page = int.from_bytes(head[16:18], "big")
            page = 65536 if page == 1 else page
            pages = int.from_bytes(head[28:32], "big")
            if size % page or (pages and pages * page > size):
                return f"sqlite file of {size} bytes, shorter than its {pages} pages of {page} bytes"
            return None
    return None


def _ros1_header(f: BinaryIO) -> dict[str, bytes]:
    """The fields of the ROS 1 bag header record right after the magic."""
    f.seek(len(ROS1_MAGIC))
    raw = f.read(4)
    return _fields(f.read(int.from_bytes(raw, "little"))) if len(raw) == 4 else {}


def _fields(header: bytes) -> dict[str, bytes]:
    out, pos = {}, 0
    while pos + 4 <= len(header):
        n = int.from_bytes(header[pos:pos + 4], "little")
        name, _, value = header[pos + 4:pos + 4 + n].partition(b"=")
        out[name.decode(errors="replace")] = value
        pos += 4 + n
    return out


def _partial(data: bytes, compression: str) -> bytes:
    """As much as a possibly cut-off compressed stream yields."""
    if compression in ("", "none"):
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
        if compression == "bz2":
            return bz2.BZ2Decompressor().decompress(data)
    except MemoryError:
        raise  # not damage: a chunk that does not fit must fail the job, not shorten the salvage
    except Exception as exc:  # noqa: BLE001 - the damaged chunk yields nothing
        log.warning("undecodable %s chunk at the damaged end (%s)", compression, exc)
        return b""
    raise SalvageError(f"chunk compression {compression!r} is not supported")


# ---------------------------------------------------------------- MCAP


def _string(buf: bytes, pos: int) -> tuple[str, int]:
    n = int.from_bytes(buf[pos:pos + 4], "little")
    return buf[pos + 4:pos + 4 + n].decode(), pos + 4 + n


def _mcap_record(op: int, body: bytes, state: dict) -> Iterator[tuple[int, int, bytes]]:
    if op == 0x03:  # schema: id, name, encoding, data
        state["schemas"][int.from_bytes(body[:2], "little")] = _string(body, 2)[0]
    elif op == 0x04:  # channel: id, schema id, topic, ...
        state["channels"][int.from_bytes(body[:2], "little")] = (
            _string(body, 4)[0], state["schemas"].get(int.from_bytes(body[2:4], "little"), ""))
    elif op == 0x05:  # message: channel, sequence, log time, publish time, data
        yield int.from_bytes(body[:2], "little"), int.from_bytes(body[6:14], "little"), body[22:]
    elif op == 0x06 and len(body) >= 36:  # chunk: times, size, crc, compression, records
        compression, at = _string(body, 28)
        records = _partial(body[at + 8:], compression)
        pos = 0
        while pos + 9 <= len(records):
            inner, size = records[pos], int.from_bytes(records[pos + 1:pos + 9], "little")
            if pos + 9 + size > len(records):
                return
            yield from _mcap_record(inner, records[pos + 9:pos + 9 + size], state)
            pos += 9 + size


def _mcap(f: BinaryIO, size: int) -> Iterator[tuple[str, str, int, bytes]]:
    state: dict = {"schemas": {}, "channels": {}}
    f.seek(len(MCAP_MAGIC))
    while True:
        head = f.read(9)
        if len(head) < 9:
            return
        op, length = head[0], int.from_bytes(head[1:9], "little")
        body = f.read(min(length, size))  # a cut length field cannot ask for more than the file
        cut = len(body) < length
        if cut and op != 0x06:
            return
        for cid, stamp, raw in _mcap_record(op, body, state):
            if cid in state["channels"]:
                yield *state["channels"][cid], stamp, raw
        if cut:
            return


# ---------------------------------------------------------------- ROS 1


def _ros1_records(f: BinaryIO, limit: int) -> Iterator[tuple[dict, bytes]]:
    """(header fields, data) of the complete records of a stream; stops at a cut."""
    while True:
        raw = f.read(4)
        if len(raw) < 4:
            return
        n = int.from_bytes(raw, "little")
        header = f.read(min(n, limit))
        raw = f.read(4)
        if len(header) < n or len(raw) < 4:
            return
        m = int.from_bytes(raw, "little")
        data = f.read(min(m, limit))
        fields = _fields(header)
        if len(data) < m:
            if fields.get("op") == b"\x05":
                yield fields, data  # a chunk cut mid-way: its compressed prefix may still decode
            return
        yield fields, data


def _ros1_messages(records: Iterator[tuple[dict, bytes]], conns: dict) -> Iterator[tuple[str, str, int, bytes]]:
    import io

    for fields, data in records:
        op = fields.get("op")
        if op == b"\x07":  # connection: conn, topic; data holds type, md5sum, definition
            kind = _fields(data).get("type", b"").decode()
            pkg, _, name = kind.partition("/")
            conns[int.from_bytes(fields["conn"], "little")] = (fields["topic"].decode(), f"{pkg}/msg/{name}")
        elif op == b"\x02":  # message: conn, time (sec, nsec)
            conn = conns.get(int.from_bytes(fields["conn"], "little"))
            if conn is not None:
                sec, nsec = struct.unpack("<II", fields["time"])
                yield *conn, sec * 1_000_000_000 + nsec, data
        elif op == b"\x05":  # chunk: compression, size; data holds records
            body = _partial(data, fields.get("compression", b"none").decode())
            yield from _ros1_messages(_ros1_records(io.BytesIO(body), len(body)), conns)


def _ros1(f: BinaryIO, size: int) -> Iterator[tuple[str, str, int, bytes]]:
    header_len = int.from_bytes((f.seek(len(ROS1_MAGIC)), f.read(4))[1], "little")
    f.seek(len(ROS1_MAGIC) + 4 + header_len)
    f.seek(int.from_bytes(f.read(4), "little"), 1)  # the header record's padding
    yield from _ros1_messages(_ros1_records(f, size), {})


# ---------------------------------------------------------------- sqlite3


def _sqlite(storage: Path) -> Iterator[tuple[str, str, int, bytes]]:
    """Rows of a cut-off rosbag2 sqlite file, one at a time.

    SQLite refuses a file shorter than its header's page count unless
    `writable_schema` is on, in which case it reads the pages that exist;
    nothing is written (the connection is read-only).
    """
    db = sqlite3.connect(f"file:{storage}?mode=ro", uri=True)
    try:
        db.execute("PRAGMA writable_schema=ON")
        topics = {i: (name, kind) for i, name, kind in db.execute("SELECT id, name, type FROM topics")}
        cursor = db.execute("SELECT topic_id, timestamp, data FROM messages ORDER BY id")
        while True:
            try:
                row = cursor.fetchone()
            except sqlite3.DatabaseError as exc:
                log.warning("%s: reading stopped at the damaged part (%s)", storage, exc)
                return
            if row is None:
                return
            if row[0] in topics:
                yield *topics[row[0]], row[1], bytes(row[2])
    finally:
        db.close()


def messages(storage: Path) -> Iterator[tuple[str, str, int, bytes]]:
    """(topic, message type, record time ns, raw bytes) of the readable prefix of `storage`."""
    size = storage.stat().st_size
    with storage.open("rb") as f:
        magic = f.read(16)
        if magic.startswith(MCAP_MAGIC):
            yield from _mcap(f, size)
        elif magic.startswith(ROS1_MAGIC):
            yield from _ros1(f, size)
        elif magic.startswith(SQLITE_MAGIC):
            f.close()
            yield from _sqlite(storage)
        else:
            raise SalvageError(f"{storage}: neither MCAP, ROS 1 bag nor sqlite3 (bad magic)")
