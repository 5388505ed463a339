"""Layer extraction through GNU tar, every entry checked before tar sees it.

Why: writing thousands of files is kernel work; GNU tar does it on the second core while
this process parses, checks and hashes the stream.  `import` of a Debian rootfs then costs
about what `tar -x` of it costs (scripts/bench_dockee.py), where the pure-Python extractor
(layers._Extractor) costs up to twice as much on a fast disk.

How it stays safe: tar reads only what this module forwards, one entry at a time, after
the entry passed the same rules as layers._Extractor, decided here from the archive alone
(the destination starts empty, so the archive is the only source of what exists):
  - names: layers.layer_path (no absolute names, no ".." components);
  - no entry below a path that is, or ever was, a symlink in this layer, or below a
    non-directory (so no write can pass through a symlink, whatever tar does with links);
  - relative symlink targets stay inside; hardlink targets are earlier non-directory
    entries, reached through real directories only.
Headers are forwarded byte for byte as the strict reader (tarstream) parsed them; global
pax headers are never forwarded, and refused when they would rename later entries.
Whiteouts are not forwarded: they are applied afterwards in overlay form (layers module
doc), as are opaque markers.  tar runs with --numeric-owner (an image's owners are
numbers, not this host's user names) and restores xattrs except trusted.overlay.* (a
layer must not redirect overlay) and security.selinux.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import os
import posixpath
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path

from pyruntime.dockee.tarstream import DIR, LNK, REG, SYM, Entry, TarReader

F_SETPIPE_SZ = 1031  # fcntl.F_SETPIPE_SZ (Linux), absent from Python 3.11's fcntl module
TAR_FLAGS = ["--numeric-owner", "--same-owner", "--same-permissions", "--xattrs", "--xattrs-include=*",
             "--xattrs-exclude=trusted.overlay.*", "--xattrs-exclude=security.selinux"]


@functools.cache
def gnu_tar() -> str | None:
    """The path of GNU tar, or None (then layers uses its own extractor)."""
    path = shutil.which("tar")
    if path is None:
        return None
    try:
        out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return path if "GNU tar" in out else None


class Refused(Exception):
    """An entry that must not be extracted: (entry name, reason)."""

    def __init__(self, entry: str, why: str) -> None:
        super().__init__(f"entry {entry!r}: {why}")


class Checker:
    """The rules above, decided from the archive's own entries, in order."""

    def __init__(self) -> None:
        self.kinds: dict[str, str] = {}  # path -> entry type, for what this layer made
        self.was_symlink: set[str] = set()
        self.good_dirs: set[str] = {""}  # parents already checked (cleared when one changes kind)
        self.whiteouts: dict[str, Entry] = {}  # hidden path -> its whiteout entry
        self.opaque: list[str] = []
        self.size = 0

    def _parents(self, rel: str, entry: str) -> None:
        from pyruntime.dockee.layers import unchecked_parents

        for parent in unchecked_parents(rel, self.good_dirs):
            if parent in self.was_symlink:
                raise Refused(entry, f"parent {parent!r} is a symlink")
            kind = self.kinds.get(parent)
            if kind is not None and kind != DIR:
                raise Refused(entry, f"parent {parent!r} is not a directory")
            self.good_dirs.add(parent)

    def _record(self, rel: str, kind: str) -> None:
        if kind != DIR and rel in self.good_dirs:
            prefix = rel + "/"
            self.good_dirs = {d for d in self.good_dirs if d != rel and not d.startswith(prefix)}
        self.kinds[rel] = kind

    def check(self, e: Entry) -> bool:
        """Raise Refused, or say whether tar gets the entry (False: applied here, or nothing)."""
        from pyruntime.dockee.layers import OPAQUE, WHITEOUT, layer_path, symlink_escapes

        try:
            rel = layer_path(e.name)
        except ValueError as err:
            raise Refused(e.name, str(err)) from None
        base = posixpath.basename(rel)
        if base.startswith(WHITEOUT):
            if base == OPAQUE:
                self._parents(rel, e.name)
                self.opaque.append(posixpath.dirname(rel))
                return False
            hidden = base[len(WHITEOUT):]
            if hidden.startswith(WHITEOUT):
                return False  # aufs meta files, not content
            if hidden in ("", ".", ".."):
                raise Refused(e.name, "bad whiteout name")
            target = posixpath.join(posixpath.dirname(rel), hidden)
            self._parents(target, e.name)
            self.whiteouts[target] = e
            self._record(target, "whiteout")
            return False
        if rel == "":
            return False  # the layer root is ours
        self._parents(rel, e.name)
        self.whiteouts.pop(rel, None)  # a later entry of the same name wins, as in layers
        if e.type == SYM:
            if symlink_escapes(rel, e.linkname):
                raise Refused(e.name, f"symlink target {e.linkname!r} leads outside the layer")
            self.was_symlink.add(rel)
        elif e.type == LNK:
            try:
                target = layer_path(e.linkname)
            except ValueError as err:
                raise Refused(e.name, f"hardlink target: {err}") from None
            if target == "":
                raise Refused(e.name, "hardlink to the layer root")
            self._parents(target, e.name)
            kind = self.kinds.get(target)
            if kind is None or kind == "whiteout":
                raise Refused(e.name, f"hardlink target {e.linkname!r} is not in this layer")
            if kind == DIR:
                raise Refused(e.name, f"hardlink target {e.linkname!r} is a directory")
        elif e.type == REG:
            self.size += e.size
        self._record(rel, e.type)
        return True


def _write_all(fd: int, data: bytes | memoryview) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _apply_whiteouts(dest: Path, checker: Checker) -> None:
    """Whiteouts and opaque markers in overlay form, after tar made everything else."""
    from pyruntime.dockee.layers import OPAQUE_XATTR

    parents: dict[str, os.stat_result | None] = {}

    def parent_dir(rel: str) -> str:
        parent = posixpath.dirname(rel)
        full = os.path.join(dest, parent) if parent else str(dest)
        if parent not in parents:
            try:
                parents[parent] = os.lstat(full)
            except FileNotFoundError:
                os.makedirs(full, 0o755)  # a marker in a directory the layer has no entry for
                parents[parent] = None
        return full

    for target, e in checker.whiteouts.items():
        parent_dir(target)
        full = os.path.join(dest, target)
        with contextlib.suppress(FileNotFoundError):
            if stat.S_ISDIR(os.lstat(full).st_mode):
                shutil.rmtree(full)
            else:
                os.unlink(full)
        os.mknod(full, stat.S_IFCHR, os.makedev(0, 0))
        os.chown(full, e.uid, e.gid, follow_symlinks=False)
        os.utime(full, ns=(e.mtime_ns,) * 2, follow_symlinks=False)
    for parent in checker.opaque:
        full = os.path.join(dest, parent) if parent else str(dest)
        if parent:
            parent_dir(parent + "/x")
        os.setxattr(full, OPAQUE_XATTR, b"y", follow_symlinks=False)
    for parent, st in parents.items():
        if st is not None:  # what tar restored, not the time of our changes
            full = os.path.join(dest, parent) if parent else str(dest)
            os.utime(full, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)


def extract(reader: TarReader, dest: Path, tar: str) -> int:
    """Feed the checked entries of the reader (keep_raw=True) to `tar -x` in dest, closing
    the reader; returns the bytes of regular files.

    Raises Refused for an entry that breaks a rule and RuntimeError when tar fails.
    """
    checker = Checker()
    with tempfile.TemporaryFile() as errors:
        proc = subprocess.Popen([tar, "-x", "-f", "-", "-C", str(dest), *TAR_FLAGS], stdin=subprocess.PIPE,
                                stdout=subprocess.DEVNULL, stderr=errors, close_fds=True)
        assert proc.stdin is not None
        fd = proc.stdin.fileno()
        with contextlib.suppress(OSError):
            fcntl.fcntl(fd, F_SETPIPE_SZ, 1 << 20)  # fewer wake-ups of tar
        complete = False
        try:
            try:
                for e in reader.entries():
                    if not checker.check(e):
                        continue
                    _write_all(fd, e.raw)
                    if e.size:
                        for view in reader.data(e.size):
                            _write_all(fd, view)
                        pad = -e.size % 512
                        if pad:
                            _write_all(fd, bytes(pad))
                _write_all(fd, bytes(1024))  # the end-of-archive blocks
                reader.drain()
                complete = True
            finally:
                reader.close()
        except BrokenPipeError:
            pass  # tar died: its status and message below say why
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        finally:
            with contextlib.suppress(OSError):
                proc.stdin.close()
        status = proc.wait()
        if status != 0 or not complete:
            errors.seek(0)
            lines = [ln for ln in errors.read().decode(errors="replace").splitlines() if ln.strip()]
            raise RuntimeError(f"tar exited {status}: {lines[0] if lines else 'no message'}")
    _apply_whiteouts(dest, checker)
    os.chmod(dest, 0o755)
    return checker.size
