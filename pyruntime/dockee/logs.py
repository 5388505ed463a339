"""Reading conmon's k8s-file logs: `TIMESTAMP stdout|stderr P|F content` per line.

`P` marks a partial chunk (conmon reads 8 KiB at a time); the chunks up to the next `F` form one
line, so long lines come back whole. `follow` drains to EOF after the container has stopped,
so nothing written just before the end is lost (podman#10596).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO


@dataclass
class Entry:
    time: str
    stream: str  # stdout or stderr
    data: bytes  # with its newline when the line was complete


def parse_line(raw: bytes) -> tuple[str, str, bool, bytes] | None:
    parts = raw.rstrip(b"\n").split(b" ", 3)
    if len(parts) < 3:
        return None
    ts, stream, tag = parts[0].decode(errors="replace"), parts[1].decode(errors="replace"), parts[2]
    content = parts[3] if len(parts) == 4 else b""
    if stream not in ("stdout", "stderr") or tag not in (b"P", b"F"):
        return None
    return ts, stream, tag == b"F", content


class Joiner:
    """Feeds raw log lines; yields whole entries once their final chunk has arrived."""

    def __init__(self) -> None:
        self.pending: dict[str, tuple[str, bytes]] = {}

    def feed(self, raw: bytes) -> Entry | None:
        parsed = parse_line(raw)
        if parsed is None:
            return None
        ts, stream, full, content = parsed
        start, buf = self.pending.pop(stream, (ts, b""))
        buf += content
        if not full:
            self.pending[stream] = (start, buf)
            return None
        return Entry(start, stream, buf + b"\n")

    def flush(self) -> list[Entry]:
        out = [Entry(ts, s, buf) for s, (ts, buf) in self.pending.items()]
        self.pending.clear()
        return out


def read_entries(path: Path) -> tuple[list[Entry], int]:
    """Every whole entry so far, and the byte offset where following should continue."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return [], 0
    end = data.rfind(b"\n") + 1  # a line still being written is left for `follow`
    j = Joiner()
    out: list[Entry] = []
    for raw in data[:end].splitlines(keepends=True):
        e = j.feed(raw)
        if e:
            out.append(e)
    return out + j.flush(), end


def follow(path: Path, running: Callable[[], bool], start_at: int = 0, poll: float = 0.1) -> Iterator[Entry]:
    """New entries from byte offset `start_at` on, until the container stops and the file is drained."""
    j = Joiner()
    f: BinaryIO | None = None
    buf = b""
    try:
        while True:
            if f is None:
                try:
                    f = open(path, "rb")
                    f.seek(start_at)
                except FileNotFoundError:
                    f = None
            alive = running()  # asked before reading, so the last read sees everything written
            got = False
            if f is not None:
                while True:
                    chunk = f.read(65536)
                    if not chunk:
                        break
                    got = True
                    buf += chunk
                    *lines, buf = buf.split(b"\n")
                    for line in lines:
                        e = j.feed(line + b"\n")
                        if e:
                            yield e
            if not alive and not got:
                break
            if not got:
                time.sleep(poll)
        yield from j.flush()
    finally:
        if f is not None:
            f.close()


def size(path: Path) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0
