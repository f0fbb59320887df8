"""One pass over a bag: calibration, header stamps and frames together, in bounded memory.

`stream_pass` reads every message the extraction needs once. CameraInfo,
transforms and librealsense options go to `calibration.absorb`; colour and
depth images wait in a small window (`Window`), keyed by header stamp, until
their pairing can no longer change: the window pairs them with `pair_frames`
(one-to-one, closest first, within the tolerance, as the whole recording is
paired), and a pair is final once both streams' newest stamps are more than
twice the tolerance past it. A final pair is decoded and handed to the
writer at once, numbered in colour-stamp order.

The window relies on what recorders do: each stream's header stamps
increase, and the calibration comes before (or soon after) the first
images. The caller checks the outcome against the pairing of all stamps and
the calibration as read to the end; when anything differs (stamps out of
order, a transform published late, a stream silent for longer than the
window holds, a confidence topic), the streamed frames are dropped and a
second pass writes them from the recorded stamps. Memory stays bounded: the
window holds at most `WINDOW_MESSAGES` images and `WINDOW_BYTES` of them,
beyond which it gives up streaming.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from tqdm import tqdm

from distillery.ingest.bags import calibration, decode
from distillery.ingest.bags.calibration import Found
from distillery.ingest.bags.source import BagSource
from distillery.ingest.readers.tum import associate

WINDOW_MESSAGES = 64  # images waiting for their pairing to be final (a 30 Hz pair needs about 8)
WINDOW_BYTES = 64 * 2**20


class NotReady(Exception):
    """Raised by an `emit` that cannot finish a frame yet (e.g. a transform chain still incomplete)."""


def pair_frames(color: list[int], depth: list[int], tolerance: float) -> list[tuple[int, int]]:
    """(colour stamp, depth stamp) pairs in colour order, one-to-one, closest first within `tolerance` s."""
    cs, ds = sorted(set(color)), sorted(set(depth))
    pairs = associate([t / 1e9 for t in cs], [t / 1e9 for t in ds], tolerance)
    return [(cs[i], ds[j]) for i, j in sorted(pairs.items())]


def decode_part(source: BagSource, role: str, found: Found, raw: bytes, s) -> np.ndarray:
    """The array of one image message of camera `role` (colour RGB, depth metres, confidence in [0, 1])."""
    cam = found.cams[role]
    msg = source.deserialize(raw, cam.msgtype)
    if role == "color":
        return decode.colour_image(msg, cam.msgtype, cam.topic)
    if role == "depth":
        return decode.depth_image(msg, cam.msgtype, cam.topic, found.depth_unit)
    return decode.confidence_image(msg, cam.topic, s.confidence_scale, s.confidence_range)


class Window:
    """Colour and depth images by header stamp, released as pairs once no later image can change them."""

    def __init__(self, tolerance: float, emit: Callable[[int, int, bytes, bytes], None]):
        self.tolerance, self.emit = tolerance, emit
        self.slack = 2 * int(tolerance * 1e9)
        self.raw: dict[str, dict[int, bytes]] = {"color": {}, "depth": {}}
        self.taken: dict[str, set[int]] = {"color": set(), "depth": set()}  # the first message of a stamp counts
        self.newest: dict[str, int | None] = {"color": None, "depth": None}
        self.decided = None  # stamps below this were paired or dropped
        self.last = None  # colour stamp of the last released pair
        self.size = 0
        self.ok = True

    def give_up(self) -> None:
        """Stop streaming (the caller's second pass writes the frames) and free the window."""
        self.ok = False
        self.raw = {"color": {}, "depth": {}}
        self.size = 0

    def add(self, role: str, stamp: int, raw: bytes, release: bool) -> None:
        """Hold one image; with `release`, hand on the pairs that are final now."""
        if not self.ok or stamp in self.taken[role]:
            return
        if self.decided is not None and stamp < self.decided:
            return self.give_up()  # out of order: the pairing around it is already decided
        self.taken[role].add(stamp)
        self.raw[role][stamp] = raw
        self.size += len(raw)
        newest = self.newest[role]
        self.newest[role] = stamp if newest is None else max(newest, stamp)
        if release:
            self.release(final=False)
        if self.ok and (len(self.raw["color"]) + len(self.raw["depth"]) > WINDOW_MESSAGES or self.size > WINDOW_BYTES):
            self.give_up()

    def release(self, final: bool) -> None:
        """Emit the final pairs (all of them when `final`) in colour order; drop images left unpaired."""
        if not self.ok or (not final and None in self.newest.values()):
            return
        edge = None if final else min(self.newest.values()) - self.slack
        colour, depth = self.raw["color"], self.raw["depth"]
        for c, d in pair_frames(list(colour), list(depth), self.tolerance):
            if edge is not None and max(c, d) >= edge:
                continue
            if self.last is not None and c < self.last:
                return self.give_up()
            self.last = c
            raw_c, raw_d = colour.pop(c), depth.pop(d)
            self.size -= len(raw_c) + len(raw_d)
            try:
                self.emit(c, d, raw_c, raw_d)
            except NotReady:
                return self.give_up()
        self.decided = None if final else edge - self.slack // 2
        for images in (colour, depth):
            for stamp in [t for t in images if final or t < self.decided]:
                self.size -= len(images.pop(stamp))


def stream_pass(source: BagSource, found: Found, s, emit: Callable[[int, int, bytes, bytes], None],
                progress: bool) -> Window:
    """Read the bag once: calibration and stamps into `found`, final pairs to `emit(c, d, raw_c, raw_d)`."""
    topics = calibration.calibration_topics(source, found, s)
    window = Window(s.tolerance, emit)
    if s.depth_unit is not None:
        found.depth_unit = float(s.depth_unit)  # frames are decoded during the pass: the setting counts from the start
    if "confidence" in found.cams:
        window.give_up()  # confidence is paired with the paired depth afterwards: the second pass does it
    roles = {found.cams[r].topic: r for r in ("color", "depth")}
    is_ready = False
    total = sum(source.topics[t].count for t in topics if t in source.topics)
    for topic, _, raw in tqdm(source.messages(topics), total=total, desc="extract", unit="msg",
                              disable=not progress):
        stamp = calibration.absorb(source, found, s, topic, raw)
        if topic in roles and window.ok:
            is_ready = is_ready or calibration.ready(source, found, s)
            window.add(roles[topic], stamp, raw, is_ready)
    if window.ok and (is_ready or calibration.ready(source, found, s)):
        window.release(final=True)
    else:
        window.give_up()
    return window
