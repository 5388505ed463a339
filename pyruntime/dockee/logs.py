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


def complete_end(path: Path) -> int:
    """Byte offset after the last whole raw line now (a line being written is left for `follow`)."""
    try:
        with open(path, "rb") as f:
            end = f.seek(0, os.SEEK_END)
            pos = end
            while pos > 0:
                step = min(65536, pos)
                f.seek(pos - step)
                block = f.read(step)
                i = block.rfind(b"\n")
                if i >= 0:
                    return pos - step + i + 1
                pos -= step
    except FileNotFoundError:
        pass
    return 0


def tail_start(path: Path, n: int, end: int) -> int:
    """Where the last n entries begin, found reading backwards from `end` (never the whole file):
    after n final (`F`) raw lines, at the next earlier final line that leaves no counted entry
    open (an entry's partial `P` chunks may precede another stream's lines)."""
    counted = 0
    open_streams: set[str] = set()

    def boundary(line: bytes) -> bool:
        nonlocal counted
        parsed = parse_line(line)
        if not parsed or not parsed[2]:
            return False
        stream = parsed[1]
        open_streams.discard(stream)  # this final line ends the stream's earlier entry
        if counted < n:
            counted += 1
            open_streams.add(stream)
            return False
        return not open_streams

    with open(path, "rb") as f:
        pos, carry = end, b""
        while pos > 0:
            step = min(65536, pos)
            f.seek(pos - step)
            block = f.read(step) + carry
            lines = block.split(b"\n")
            carry = lines[0]  # maybe cut: finished by the next (earlier) block
            offset = pos - step + len(lines[0]) + 1
            starts = []
            for line in lines[1:]:
                starts.append((offset, line))
                offset += len(line) + 1
            for start, line in reversed(starts):
                if boundary(line):
                    return start + len(line) + 1
            pos -= step
        if boundary(carry):
            return len(carry) + 1
    return 0


def iter_entries(path: Path, start: int = 0, end: int | None = None) -> Iterator[Entry]:
    """The whole entries between two byte offsets, streamed (a log may be larger than memory)."""
    j = Joiner()
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        return
    with f:
        f.seek(start)
        left = (end - start) if end is not None else None
        while left is None or left > 0:
            raw = f.readline() if left is None else f.readline(left)
            if not raw:
                break
            if left is not None:
                left -= len(raw)
            e = j.feed(raw)
            if e:
                yield e
    yield from j.flush()


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
