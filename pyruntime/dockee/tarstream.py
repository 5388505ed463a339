"""A strict, fast reader of tar streams: headers and data in one pass, nothing seeks.

Why not tarfile: in stream mode it copies its buffer for every 512-byte header and it
ends silently at a short or invalid header, so a truncated archive looks complete.  This
reader parses ustar, GNU (long names and links) and pax headers (path, linkpath, size,
uid, gid, mtime, SCHILY.xattr.*), checks every header's checksum, and requires the
end-of-archive block: a short stream or a bad header raises TarFormatError naming the
last good entry.  Regular file data is handed out as memoryviews of its read buffer, so
writing it costs no extra copy.  GNU sparse files and multi-volume archives are refused.

The source is read by a helper thread (reading, decompressing and hashing release the
GIL) while the caller writes files: two cores, two jobs.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from typing import Protocol

BLOCK = 512
CHUNK = 1 << 20

REG, LNK, SYM, CHR, BLK, DIR, FIFO = "0", "1", "2", "3", "4", "5", "6"
_INTERPRETED = {"path", "linkpath", "size", "uid", "gid", "mtime", "uname", "gname"}
_TYPES = {b"0": REG, b"\0": REG, b"7": REG, b"1": LNK, b"2": SYM, b"3": CHR, b"4": BLK, b"5": DIR, b"6": FIFO}


class Readable(Protocol):
    def read(self, n: int = -1, /) -> bytes: ...


class Writable(Protocol):
    def write(self, data: bytes, /) -> int: ...


class TarFormatError(Exception):
    pass


class Entry:
    __slots__ = ("name", "type", "mode", "uid", "gid", "size", "mtime", "linkname", "devmajor", "devminor",
                 "xattrs", "raw", "mtime_ns")

    def __init__(self) -> None:
        self.name = ""
        self.type = REG
        self.mode = 0
        self.uid = 0
        self.gid = 0
        self.size = 0
        self.mtime = 0  # seconds
        self.mtime_ns = 0
        self.linkname = ""
        self.devmajor = 0
        self.devminor = 0
        self.xattrs: dict[str, bytes] = {}
        self.raw = b""  # the header blocks as read (pax/GNU ones included), when the reader keeps them


def _num(field: bytes) -> int:
    if field and field[0] & 0x80:  # base-256 (GNU) for big or negative numbers
        n = int.from_bytes(field[1:], "big")
        return n - (1 << (8 * len(field) - 8)) if field[0] == 0xFF else n
    text = field.split(b"\0", 1)[0].strip(b" ")
    if not text:
        return 0
    try:
        return int(text, 8)
    except ValueError:
        raise TarFormatError(f"bad number {field!r} in a header") from None


def _pax_int(pax: dict[str, bytes], key: str, default: int) -> int:
    if key not in pax:
        return default
    text = pax[key]
    if not text.isdigit():
        raise TarFormatError(f"bad pax {key} {text[:20]!r}")
    return int(text)


def _pax_time_ns(value: bytes) -> int:
    """A pax time ("1700000000.123456789", maybe negative) in nanoseconds, exactly."""
    text = value.decode("ascii")
    sign = -1 if text.startswith("-") else 1
    whole, _, frac = text.lstrip("-").partition(".")
    if not whole.isdigit() or (frac and not frac.isdigit()):
        raise ValueError(text)
    return sign * (int(whole) * 10**9 + int((frac + "000000000")[:9]))


def _str(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


def _pax(data: bytes) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    pos = 0
    while pos < len(data):
        if data[pos] == 0:
            break
        sp = data.find(b" ", pos)
        if sp < 0:
            raise TarFormatError("bad pax record")
        try:
            length = int(data[pos:sp])
        except ValueError:
            raise TarFormatError("bad pax record length") from None
        rec = data[sp + 1:pos + length]
        if length <= 0 or pos + length > len(data) or not rec.endswith(b"\n") or b"=" not in rec:
            raise TarFormatError("bad pax record")
        key, _, value = rec[:-1].partition(b"=")
        out[_str(key)] = value
        pos += length
    return out


class _Feed:
    """Chunks of the source, read ahead by a thread; read errors re-raised in the reader."""

    def __init__(self, src: Readable) -> None:
        self.q: queue.Queue[bytes | BaseException | None] = queue.Queue(maxsize=8)
        self.stop = False
        self.thread = threading.Thread(target=self._run, args=(src,), daemon=True)
        self.thread.start()

    def _run(self, src: Readable) -> None:
        try:
            while not self.stop:
                data = src.read(CHUNK)
                if not data:
                    break
                self.q.put(data)
            self.q.put(None)
        except BaseException as e:  # handed to the reader, which raises it
            self.q.put(e)

    def get(self) -> bytes:
        item = self.q.get()
        if isinstance(item, BaseException):
            raise item
        if item is None:
            self.q.put(None)  # stay at EOF
            return b""
        return item

    def close(self) -> None:
        self.stop = True
        while self.thread.is_alive():
            try:
                self.q.get(timeout=0.1)
            except queue.Empty:
                pass
        self.thread.join()


class TarReader:
    def __init__(self, src: Readable, threaded: bool = True, keep_raw: bool = False,
                 split: Writable | None = None) -> None:
        self.keep_raw = keep_raw
        # The tar-split record (see write_split): every byte that is not file content, so
        # the layer's exact tar can be rebuilt from it and the unpacked files.
        self.split = split
        self.split_ok = split is not None
        self._meta: list[bytes] = []
        self.feed = _Feed(src) if threaded else None
        self.src = src
        self.buf = memoryview(b"")
        self.pos = 0
        self.base = 0  # stream offset of buf[0]
        self.last = ""  # the last entry read, for error messages

    def _more(self) -> bytes:
        return self.feed.get() if self.feed else self.src.read(CHUNK)

    def _fill(self, n: int) -> bool:
        """At least n bytes buffered from pos; False at EOF before that."""
        while len(self.buf) - self.pos < n:
            data = self._more()
            if not data:
                return False
            rest = self.buf[self.pos:]
            self.base += self.pos
            self.buf = memoryview(bytes(rest) + data) if len(rest) else memoryview(data)
            self.pos = 0
        return True

    def _take(self, n: int) -> bytes:
        if not self._fill(n):
            raise self._truncated()
        out = bytes(self.buf[self.pos:self.pos + n])
        self.pos += n
        return out

    def _truncated(self) -> TarFormatError:
        after = f" after entry {self.last!r}" if self.last else ""
        return TarFormatError(f"truncated archive{after}")

    def data(self, size: int, meta: bool = False) -> Iterator[memoryview]:
        """The next size bytes (an entry's content) in pieces; then skips the padding."""
        remaining = size
        while remaining > 0:
            if len(self.buf) - self.pos == 0 and not self._fill(1):
                raise self._truncated()
            n = min(remaining, len(self.buf) - self.pos)
            view = self.buf[self.pos:self.pos + n]
            if meta and self.split is not None:
                self._meta.append(bytes(view))
            yield view
            self.pos += n
            remaining -= n
        pad = -size % BLOCK
        if pad:
            padding = self._take(pad)
            if self.split is not None:
                self._meta.append(padding)  # as found, zero or not

    def _skip_raw(self, n: int) -> None:
        self.split_ok = False  # content nobody unpacked cannot be rebuilt from the layer
        while n > 0:
            if len(self.buf) - self.pos == 0 and not self._fill(1):
                raise self._truncated()
            k = min(n, len(self.buf) - self.pos)
            self.pos += k
            n -= k

    def _skip(self, size: int) -> None:
        for _ in self.data(size, meta=True):
            pass

    def _header(self) -> bytes | None:
        if not self._fill(BLOCK):
            if len(self.buf) - self.pos == 0:
                after = f" after entry {self.last!r}" if self.last else ""
                raise TarFormatError(f"archive ends without its end-of-archive block{after}")
            raise self._truncated()
        block = bytes(self.buf[self.pos:self.pos + BLOCK])
        self.pos += BLOCK
        if self.split is not None:
            self._meta.append(block)
        if block.count(0) == BLOCK:
            return None
        chk = _num(block[148:156])
        if chk != sum(block) - sum(block[148:156]) + 8 * 32:
            after = f" after entry {self.last!r}" if self.last else ""
            raise TarFormatError(f"corrupt header (bad checksum){after}")
        return block

    def entries(self) -> Iterator[Entry]:
        """Entries in order; a caller that wants the content reads data(e.size) before next."""
        pax: dict[str, bytes] = {}
        long_name: bytes | None = None
        long_link: bytes | None = None
        raw: list[bytes] = []
        while True:
            block = self._header()
            if block is None:
                return
            t = block[156:157]
            size = _num(block[124:136])
            if size < 0:
                raise TarFormatError(f"negative size after entry {self.last!r}")
            if t in (b"x", b"g", b"L", b"K"):
                if size > 64 << 20:
                    raise TarFormatError(f"metadata header of {size} bytes after entry {self.last!r}")
                body = b"".join(bytes(v) for v in self.data(size, meta=True))
                if t == b"g":
                    # Dropped, never passed on; but one that would rename what follows is refused,
                    # since another reader may apply it.
                    bad = sorted(k for k in _pax(body) if k in _INTERPRETED or k.startswith("GNU.sparse."))
                    if bad:
                        raise TarFormatError(f"global pax header sets {', '.join(bad)} after entry {self.last!r}")
                    continue
                if t == b"x":
                    pax.update(_pax(body))
                elif t == b"L":
                    long_name = body.split(b"\0", 1)[0]
                elif t == b"K":
                    long_link = body.split(b"\0", 1)[0]
                if self.keep_raw:
                    raw.append(block + body + b"\0" * (-size % BLOCK))
                continue
            kind = _TYPES.get(t)
            if kind is None:
                if t == b"V":
                    self._skip(size)
                    continue
                what = "GNU sparse file" if t == b"S" else "multi-volume archive" if t == b"M" else f"type {t!r}"
                raise TarFormatError(f"unsupported entry ({what}) after entry {self.last!r}")
            e = Entry()
            name = block[0:100].split(b"\0", 1)[0]
            if block[257:263] == b"ustar\0":
                prefix = block[345:500].split(b"\0", 1)[0]
                if prefix:
                    name = prefix + b"/" + name
            if long_name is not None:
                name = long_name
            link = long_link if long_link is not None else block[157:257].split(b"\0", 1)[0]
            for key in ("path", "linkpath"):
                if b"\0" in pax.get(key, b""):  # C readers would stop at the NUL, we would not
                    raise TarFormatError(f"NUL in a pax {key} after entry {self.last!r}")
            e.name = _str(pax["path"]) if "path" in pax else _str(name)
            e.linkname = _str(pax["linkpath"]) if "linkpath" in pax else _str(link)
            e.mode = _num(block[100:108])
            e.uid = _pax_int(pax, "uid", _num(block[108:116]))
            e.gid = _pax_int(pax, "gid", _num(block[116:124]))
            e.size = _pax_int(pax, "size", size)
            try:
                e.mtime_ns = _pax_time_ns(pax["mtime"]) if "mtime" in pax else _num(block[136:148]) * 10**9
            except ValueError:
                raise TarFormatError(f"bad pax mtime in entry {e.name!r}") from None
            e.mtime = e.mtime_ns // 10**9
            if t in (b"3", b"4"):
                e.devmajor = _num(block[329:337])
                e.devminor = _num(block[337:345])
            if any(k.startswith("GNU.sparse.") for k in pax):
                raise TarFormatError(f"unsupported entry (GNU sparse file) {e.name!r}")
            e.xattrs = {k[13:]: v for k, v in pax.items() if k.startswith("SCHILY.xattr.")}
            if kind == REG and e.name.endswith("/"):
                kind = DIR  # old tars mark directories by the name only
            e.type = kind
            if kind != REG and e.size:
                # GNU tar reads data after some such headers (dumpdirs), others do not: refused
                raise TarFormatError(f"entry {e.name!r}: a size on a non-file entry")
            if self.keep_raw:
                raw.append(block)
                e.raw = b"".join(raw)
            pax, long_name, long_link, raw = {}, None, None, []
            self.last = e.name
            end = self.base + self.pos + e.size + (-e.size % BLOCK)
            if self.split is not None and e.size:
                self._flush_meta()
                name = e.name.encode("utf-8", "surrogateescape")
                self.split.write(b"C" + e.size.to_bytes(8, "big") + len(name).to_bytes(4, "big") + name)
            yield e
            left = end - (self.base + self.pos)  # content the caller did not read
            if left > 0:
                self._skip_raw(left)

    def _flush_meta(self) -> None:
        assert self.split is not None
        if self._meta:
            data = b"".join(self._meta)
            self.split.write(b"R" + len(data).to_bytes(4, "big") + data)
            self._meta = []

    def drain(self) -> None:
        """Read the rest of the source (the padding after the end block), for its digest."""
        tail = len(self.buf) - self.pos
        if self.split is not None:
            self._meta.append(bytes(self.buf[self.pos:]))
        while True:
            data = self._more()
            if not data:
                break
            tail += len(data)
            if self.split is not None and tail <= 1 << 20:
                self._meta.append(data)
            else:
                self.split_ok = False  # a megabyte of junk after the end is not worth keeping
        self.base += len(self.buf)
        self.buf, self.pos = memoryview(b""), 0
        if self.split is not None:
            self._flush_meta()

    def close(self) -> None:
        if self.feed:
            self.feed.close()


def rebuild(split: Readable, content: Callable[[str], Readable | None], out: Writable) -> bool:
    """Write the original tar from its split record and the entries' content (opened by
    name); False when a file is missing or shorter than recorded (then the caller packs
    the layer anew)."""

    def exactly(n: int) -> bytes:
        data = split.read(n)
        if len(data) != n:
            raise TarFormatError("truncated tar-split record")
        return data

    while True:
        kind = split.read(1)
        if not kind:
            return True
        if kind == b"R":
            out.write(exactly(int.from_bytes(exactly(4), "big")))
        elif kind == b"C":
            size = int.from_bytes(exactly(8), "big")
            name = _str(exactly(int.from_bytes(exactly(4), "big")))
            src = content(name)
            if src is None:
                return False
            remaining = size
            while remaining:
                chunk = src.read(min(remaining, CHUNK))
                if not chunk:
                    return False
                out.write(chunk)
                remaining -= len(chunk)
        else:
            raise TarFormatError(f"bad tar-split record {kind!r}")


def read_all(src: Readable, on_entry: Callable[[Entry, TarReader], None]) -> None:
    """Call on_entry for each entry (it must consume data for regular files), then drain."""
    reader = TarReader(src)
    try:
        for e in reader.entries():
            on_entry(e, reader)
        reader.drain()
    finally:
        reader.close()
