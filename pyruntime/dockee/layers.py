"""One image layer: safe extraction of a layer tar into overlay form, and the way back.

extract() unpacks an untrusted layer tar (plain, gzip, bzip2 or xz; a file or a pipe) into
an empty directory and returns its DiffID (sha256 of the uncompressed tar), the digest of
the bytes as given, and the size of the unpacked files.  It never follows a symlink while
extracting: every parent of an entry is checked with lstat (once per directory), so an
entry is written only below the layer directory.  It refuses, naming the entry:
  - names that are absolute or climb out with "..", hardlinks whose target does so or is
    not an earlier entry of this layer, relative symlink targets that leave the layer
    (absolute targets are kept as they are: they mean something only inside the rootfs);
  - a truncated or corrupt archive: the tar must end with its end-of-archive block.
Device nodes and ownership are kept (dockee runs as root).

Where GNU tar exists (and DOCKEE_EXTRACTOR is not "python") it does the writing, fed only
entries that passed the same rules (gnutar.py): the kernel work then runs on another core
while this process parses and hashes.  Otherwise _Extractor below writes every entry itself.

Whiteouts become overlay's form, so the directory serves as an overlay lowerdir as is:
`.wh.NAME` -> a 0/0 character device NAME; `DIR/.wh..wh..opq` -> xattr
trusted.overlay.opaque=y on DIR.  write_tar() is the inverse, for `save` and `commit`: a
deterministic tar (sorted names, numeric owners) with 0/0 character devices as `.wh.NAME`
and opaque directories as `DIR/.wh..wh..opq`.  Xattrs in the trusted.overlay namespace never
cross the archive boundary in either direction: a layer cannot smuggle in a redirect.
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import lzma
import os
import posixpath
import stat
import tarfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Protocol

from pyruntime.dockee import gnutar
from pyruntime.dockee.errors import DockeeError
from pyruntime.dockee.tarstream import (
    BLK,
    CHR,
    DIR,
    FIFO,
    LNK,
    REG,
    SYM,
    Entry,
    TarFormatError,
    TarReader,
    Writable,
    rebuild,
)

WHITEOUT = ".wh."
OPAQUE = ".wh..wh..opq"
OPAQUE_XATTR = "trusted.overlay.opaque"
REDIRECT_XATTR = "trusted.overlay.redirect"
_CHUNK = 1 << 20
_BLOCK = tarfile.BLOCKSIZE


class Readable(Protocol):
    def read(self, n: int = -1, /) -> bytes: ...


class BadArchive(DockeeError):
    """An archive or layer that is malformed, truncated, unsafe or does not match its digest."""


def chain_ids(diff_ids: list[str]) -> list[str]:
    """ChainID(L0) = DiffID(L0); ChainID(Ln) = sha256(ChainID(Ln-1) + " " + DiffID(Ln))."""
    out: list[str] = []
    for d in diff_ids:
        out.append(d if not out else "sha256:" + hashlib.sha256(f"{out[-1]} {d}".encode()).hexdigest())
    return out


def layer_path(name: str) -> str:
    """An archive name as a path relative to the layer root ("" for the root itself).

    ValueError for absolute names and any ".." component: one that climbs out is an attack,
    and one that stays inside means different things to different extractors.
    """
    if name.startswith("/"):
        raise ValueError("absolute path")
    norm = posixpath.normpath(name)
    if norm == ".." or norm.startswith("../"):
        raise ValueError("path leads outside the layer")
    if ".." in name.split("/"):
        raise ValueError("'..' in the path")
    return "" if norm == "." else norm


def unchecked_parents(rel: str, checked: set[str]) -> list[str]:
    """The parents of rel not yet in checked, outermost first ("" is the root, always checked)."""
    out = []
    parent = posixpath.dirname(rel)
    while parent not in checked and parent:
        out.append(parent)
        parent = posixpath.dirname(parent)
    return out[::-1]


def symlink_escapes(rel: str, target: str) -> bool:
    """A relative symlink target that leads above the layer root (absolute ones are kept)."""
    if target.startswith("/"):
        return False
    resolved = posixpath.normpath(posixpath.join(posixpath.dirname(rel), target))
    return resolved == ".." or resolved.startswith("../")


class _Hashing:
    """A read-only stream that hashes and counts what passes."""

    def __init__(self, raw: Readable, on_bytes: Callable[[int], None] | None = None) -> None:
        self.raw = raw
        self.sha = hashlib.sha256()
        self.count = 0
        self.on_bytes = on_bytes

    def read(self, n: int = -1) -> bytes:
        data = self.raw.read(n)
        if data:
            self.sha.update(data)
            self.count += len(data)
            if self.on_bytes:
                self.on_bytes(len(data))
        return data

    def drain(self) -> None:
        while self.read(_CHUNK):
            pass

    def digest(self) -> str:
        return "sha256:" + self.sha.hexdigest()


class _Prefixed:
    """A stream with its first bytes already read (to sniff the compression) put back."""

    def __init__(self, head: bytes, rest: Readable) -> None:
        self.head = head
        self.rest = rest

    def read(self, n: int = -1) -> bytes:
        if self.head:
            if n < 0 or n >= len(self.head):
                data, self.head = self.head, b""
                more = self.rest.read(-1 if n < 0 else n - len(data))
                return data + more
            data, self.head = self.head[:n], self.head[n:]
            return data
        return self.rest.read(n)


def decompressed(stream: Readable) -> Readable:
    head = b""
    while len(head) < 6:
        more = stream.read(6 - len(head))
        if not more:
            break
        head += more
    src = _Prefixed(head, stream)
    if head.startswith(b"\x1f\x8b"):
        return gzip.GzipFile(fileobj=src, mode="rb")  # type: ignore[call-overload]
    if head.startswith(b"BZh"):
        return bz2.BZ2File(src)  # type: ignore[call-overload]
    if head.startswith(b"\xfd7zXZ\x00"):
        return lzma.LZMAFile(src)  # type: ignore[arg-type]
    if head.startswith(b"\x28\xb5\x2f\xfd"):
        raise BadArchive("zstd-compressed layers are not supported")
    return src


@dataclass(frozen=True)
class Extracted:
    diff_id: str  # sha256 of the uncompressed tar
    digest: str  # sha256 of the bytes as read (the blob digest of a compressed layer)
    size: int  # bytes of regular files unpacked


class _Extractor:
    def __init__(self, dest: Path, what: str) -> None:
        self.dest = dest
        self.what = what  # names the archive in error messages
        self.known_dirs: set[str] = {""}  # relative dirs checked (or made) to be real directories
        self.dir_times: list[tuple[str, int]] = []
        self.size = 0

    def fail(self, entry: str, why: str) -> BadArchive:
        return BadArchive(f"{self.what}: entry {entry!r}: {why}")

    def path(self, rel: str) -> str:
        return os.path.join(self.dest, rel)

    # -- names ---------------------------------------------------------------------------

    def rel_name(self, name: str, entry: str) -> str:
        try:
            return layer_path(name)
        except ValueError as e:
            raise self.fail(entry, str(e)) from None

    def ensure_parents(self, rel: str, entry: str) -> None:
        """Make or verify every parent of rel as a real directory, never through a symlink."""
        for parent in unchecked_parents(rel, self.known_dirs):
            full = self.path(parent)
            try:
                st = os.lstat(full)
            except FileNotFoundError:
                os.mkdir(full, 0o755)
            else:
                if stat.S_ISLNK(st.st_mode):
                    raise self.fail(entry, f"parent {parent!r} is a symlink")
                if not stat.S_ISDIR(st.st_mode):
                    raise self.fail(entry, f"parent {parent!r} is not a directory")
            self.known_dirs.add(parent)

    def clear(self, rel: str, keep_dir: bool) -> bool:
        """Remove what is at rel (a later entry wins); True if a directory stays."""
        full = self.path(rel)
        try:
            st = os.lstat(full)
        except FileNotFoundError:
            return False
        if stat.S_ISDIR(st.st_mode):
            if keep_dir:
                return True
            _rmtree(full)
            prefix = rel + "/"
            self.known_dirs = {d for d in self.known_dirs if d != rel and not d.startswith(prefix)}
        else:
            os.unlink(full)
        return False

    # -- entries -------------------------------------------------------------------------

    def entry(self, m: Entry, reader: TarReader) -> None:
        entry = m.name
        rel = self.rel_name(m.name, entry)
        base = posixpath.basename(rel)
        if base.startswith(WHITEOUT):
            self.whiteout(m, rel, base, entry)
            return
        if rel == "":
            return  # the layer root itself: its directory is ours
        self.ensure_parents(rel, entry)
        full = self.path(rel)
        if m.type == DIR:
            if not self.clear(rel, keep_dir=True):
                os.mkdir(full, 0o700)
            self.known_dirs.add(rel)
            os.chown(full, m.uid, m.gid, follow_symlinks=False)
            os.chmod(full, m.mode & 0o7777)
            self.xattrs(m, full, entry)
            self.dir_times.append((rel, m.mtime_ns))
            return
        self.clear(rel, keep_dir=False)
        if m.type == REG:
            self.regular(reader, m, full, entry)
        elif m.type == SYM:
            target = m.linkname
            if symlink_escapes(rel, target):
                raise self.fail(entry, f"symlink target {target!r} leads outside the layer")
            os.symlink(target, full)
            self.meta_nofollow(m, full)
        elif m.type == LNK:
            target_rel = self.rel_name(m.linkname, entry)
            if target_rel == "":
                raise self.fail(entry, "hardlink to the layer root")
            self.ensure_parents(target_rel, entry)
            tfull = self.path(target_rel)
            try:
                tst = os.lstat(tfull)
            except FileNotFoundError:
                raise self.fail(entry, f"hardlink target {m.linkname!r} is not in this layer") from None
            if stat.S_ISDIR(tst.st_mode):
                raise self.fail(entry, f"hardlink target {m.linkname!r} is a directory")
            os.link(tfull, full, follow_symlinks=False)
        elif m.type in (CHR, BLK, FIFO):
            kind = stat.S_IFCHR if m.type == CHR else stat.S_IFBLK if m.type == BLK else stat.S_IFIFO
            os.mknod(full, kind | (m.mode & 0o7777), os.makedev(m.devmajor, m.devminor) if kind != stat.S_IFIFO else 0)
            os.chown(full, m.uid, m.gid, follow_symlinks=False)
            os.chmod(full, m.mode & 0o7777)
            os.utime(full, ns=(m.mtime_ns,) * 2, follow_symlinks=False)
        else:
            raise self.fail(entry, f"unsupported entry type {m.type!r}")

    def regular(self, reader: TarReader, m: Entry, full: str, entry: str) -> None:
        fd = os.open(full, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            for view in reader.data(m.size):
                while view:
                    view = view[os.write(fd, view):]
            os.fchown(fd, m.uid, m.gid)
            os.fchmod(fd, m.mode & 0o7777)
            self.xattrs(m, fd, entry)
            os.utime(fd, ns=(m.mtime_ns,) * 2)
        finally:
            os.close(fd)
        self.size += m.size

    def meta_nofollow(self, m: Entry, full: str) -> None:
        os.chown(full, m.uid, m.gid, follow_symlinks=False)
        os.utime(full, ns=(m.mtime_ns,) * 2, follow_symlinks=False)

    def xattrs(self, m: Entry, where: int | str, entry: str) -> None:
        for name, raw in m.xattrs.items():
            if name.startswith("trusted.overlay."):
                continue  # would let a layer redirect or hide what overlay shows
            try:
                os.setxattr(where, name, raw, follow_symlinks=False) if isinstance(where, str) \
                    else os.setxattr(where, name, raw)
            except OSError:
                pass  # e.g. security.selinux where the host has no SELinux: not the image's content

    def whiteout(self, m: Entry, rel: str, base: str, entry: str) -> None:
        parent = posixpath.dirname(rel)
        if base == OPAQUE:
            self.ensure_parents(rel, entry)
            os.setxattr(self.path(parent), OPAQUE_XATTR, b"y", follow_symlinks=False)
            return
        hidden = base[len(WHITEOUT):]
        if hidden.startswith(WHITEOUT):
            return  # other aufs meta files (.wh..wh.plnk, .wh..wh.aufs): not content
        if hidden in ("", ".", ".."):
            raise self.fail(entry, "bad whiteout name")
        target = posixpath.join(parent, hidden)
        self.ensure_parents(target, entry)
        self.clear(target, keep_dir=False)
        full = self.path(target)
        os.mknod(full, stat.S_IFCHR | 0o000, os.makedev(0, 0))
        os.chown(full, m.uid, m.gid, follow_symlinks=False)
        os.utime(full, ns=(m.mtime_ns,) * 2, follow_symlinks=False)

    def finish(self) -> None:
        # Directory times last: every entry created below a directory changes its mtime.
        for rel, mtime in reversed(self.dir_times):
            os.utime(self.path(rel), ns=(mtime,) * 2, follow_symlinks=False)
        os.chmod(self.dest, 0o755)


def extract(src: Readable, dest: Path, *, what: str = "layer",
            on_bytes: Callable[[int], None] | None = None, split: Path | None = None) -> Extracted:
    """Unpack the layer tar read from src into the empty directory dest (see module doc).

    split: where to keep the layer's tar-split record (gzip), from which rebuild_tar() makes
    the very same tar again; removed when the tar cannot be rebuilt (content not unpacked,
    megabytes after the end block).
    """
    record = io.BytesIO() if split else None  # small (~5% of the tar); compressed once at the end
    ex, reader = _extract(src, dest, what, on_bytes, record)
    if split and record is not None and reader.split_ok:
        split.write_bytes(gzip.compress(record.getvalue(), compresslevel=1))
    return ex


def rebuild_tar(split: Path, root: Path, out: Writable) -> bool:
    """The layer's original tar from its split record and its unpacked files in root."""

    def content(name: str) -> IO[bytes] | None:
        try:
            fd = os.open(os.path.join(root, layer_path(name)), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except (OSError, ValueError):
            return None
        return os.fdopen(fd, "rb")

    opened: list[IO[bytes]] = []

    def tracked(name: str) -> IO[bytes] | None:
        f = content(name)
        if f is not None:
            opened.append(f)
        return f

    try:
        with gzip.open(split, "rb") as rec:
            return rebuild(rec, tracked, out)
    except (OSError, EOFError, TarFormatError):
        return False
    finally:
        for f in opened:
            f.close()


def _extract(src: Readable, dest: Path, what: str, on_bytes: Callable[[int], None] | None,
             split_out: Writable | None) -> tuple[Extracted, TarReader]:
    outer = _Hashing(src, on_bytes)
    ex = _Extractor(dest, what)
    tar = None if os.environ.get("DOCKEE_EXTRACTOR") == "python" else gnutar.gnu_tar()
    reader: TarReader | None = None
    try:
        plain = _Hashing(decompressed(outer))
        reader = TarReader(plain, keep_raw=tar is not None, split=split_out)
        if tar is not None:
            size = gnutar.extract(reader, dest, tar)
        else:
            try:
                for m in reader.entries():
                    ex.entry(m, reader)
                reader.drain()
            finally:
                reader.close()
            ex.finish()
            size = ex.size
        outer.drain()
    except gnutar.Refused as e:
        raise BadArchive(f"{what}: {e}") from None
    except TarFormatError as e:
        if reader is None or not reader.last:
            raise BadArchive(f"{what}: not a tar archive, or corrupt from its start ({e})") from None
        raise BadArchive(f"{what}: {e}") from None
    except (EOFError, zlib.error, OSError, lzma.LZMAError) as e:
        if isinstance(e, OSError) and e.errno is not None and not isinstance(e, gzip.BadGzipFile):
            raise  # a real I/O error of ours (disk full, ...), not the archive's
        raise BadArchive(f"{what}: truncated or corrupt archive ({e})") from None
    except RuntimeError as e:  # tar failed on an archive that passed the checks
        raise BadArchive(f"{what}: {e}") from None
    return Extracted(plain.digest(), outer.digest(), size), reader


def _rmtree(path: str) -> None:
    import shutil

    shutil.rmtree(path)


# -- the way back: a layer directory (or an overlay upper dir) as a tar ----------------------

def _walk(root: str, rel: str = "") -> Iterator[tuple[str, os.stat_result]]:
    with os.scandir(os.path.join(root, rel) if rel else root) as it:
        entries = sorted(it, key=lambda e: e.name)
    for e in entries:
        r = posixpath.join(rel, e.name) if rel else e.name
        st = e.stat(follow_symlinks=False)
        yield r, st
        if stat.S_ISDIR(st.st_mode):
            yield from _walk(root, r)


def _xattrs(path: str) -> dict[str, str]:
    out: dict[str, str] = {}
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:
        return out
    for name in sorted(names):
        if name.startswith("trusted.overlay."):
            continue
        try:
            out["SCHILY.xattr." + name] = os.getxattr(path, name, follow_symlinks=False).decode(
                "utf-8", "surrogateescape")
        except OSError:
            continue
    return out


def _info(name: str, st: os.stat_result, kind: bytes) -> tarfile.TarInfo:
    ti = tarfile.TarInfo(name)
    ti.type = kind
    ti.mode = stat.S_IMODE(st.st_mode)
    ti.uid, ti.gid = st.st_uid, st.st_gid
    ti.uname = ti.gname = ""
    ti.mtime = int(st.st_mtime)
    return ti


def write_tar(root: Path, out: IO[bytes], *, upper: bool = False, exclude: frozenset[str] = frozenset()) -> None:
    """Write the directory root as a layer tar (see module doc) to out.

    upper=True: root is an overlay upper dir; a redirected directory (redirect_dir) is not
    a faithful diff of its lower layers, so it is refused rather than committed wrongly.
    """
    src = str(root)
    links: dict[tuple[int, int], str] = {}
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for rel, st in _walk(src):
            if rel in exclude:
                continue
            full = os.path.join(src, rel)
            mode = st.st_mode
            if stat.S_ISCHR(mode) and st.st_rdev == 0:
                ti = _info(posixpath.join(posixpath.dirname(rel), WHITEOUT + posixpath.basename(rel)), st,
                           tarfile.REGTYPE)
                ti.mode = 0o644
                tar.addfile(ti)
                continue
            if stat.S_ISDIR(mode):
                if upper:
                    try:
                        os.getxattr(full, REDIRECT_XATTR, follow_symlinks=False)
                    except OSError:
                        pass
                    else:
                        raise DockeeError(f"{full}: renamed directory (overlay redirect_dir) cannot be committed")
                ti = _info(rel, st, tarfile.DIRTYPE)
                ti.pax_headers = _xattrs(full)
                tar.addfile(ti)
                try:
                    opaque = os.getxattr(full, OPAQUE_XATTR, follow_symlinks=False) == b"y"
                except OSError:
                    opaque = False
                if opaque:
                    wt = _info(posixpath.join(rel, OPAQUE), st, tarfile.REGTYPE)
                    wt.mode = 0o644
                    tar.addfile(wt)
                continue
            if stat.S_ISLNK(mode):
                ti = _info(rel, st, tarfile.SYMTYPE)
                ti.linkname = os.readlink(full)
                tar.addfile(ti)
                continue
            if stat.S_ISREG(mode):
                key = (st.st_dev, st.st_ino)
                if st.st_nlink > 1 and key in links:
                    ti = _info(rel, st, tarfile.LNKTYPE)
                    ti.linkname = links[key]
                    tar.addfile(ti)
                    continue
                if st.st_nlink > 1:
                    links[key] = rel
                ti = _info(rel, st, tarfile.REGTYPE)
                ti.size = st.st_size
                ti.pax_headers = _xattrs(full)
                fd = os.open(full, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
                with os.fdopen(fd, "rb") as f:
                    tar.addfile(ti, f)
                continue
            kind = tarfile.CHRTYPE if stat.S_ISCHR(mode) else tarfile.BLKTYPE if stat.S_ISBLK(mode) \
                else tarfile.FIFOTYPE if stat.S_ISFIFO(mode) else None
            if kind is None:
                continue  # sockets do not belong in an image
            ti = _info(rel, st, kind)
            if kind != tarfile.FIFOTYPE:
                ti.devmajor, ti.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
            tar.addfile(ti)
