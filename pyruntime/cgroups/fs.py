"""The one seam between the cgroup managers and the kernel's cgroup filesystems.

Every read, write, mkdir, rmdir, signal and wait the managers do goes through a
`CgroupFS`, so unit tests can hand them a fake tree in `tmp_path` that behaves
like the kernel (control files appear on mkdir, rmdir refuses busy groups).

Paths are plain `str` (os.path.join), never pathlib: this package is on the path
of every `create`, and pathlib alone (with re, fnmatch, urllib) costs more to
import than runc's whole `state`.
"""

from __future__ import annotations

import errno
import os
import time

from pyruntime.errors import CgroupError

TYPE_CHECKING = False  # typing and collections.abc cost milliseconds at import
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from typing import NoReturn

join = os.path.join

#: Where resource fields live in config.json, for error messages.
FIELD_PREFIX = "linux.resources"


class CgroupFS:
    """Plain file operations with the cgroupfs rules built in."""

    def read(self, path: str) -> str:
        # os.read, not open(): the io stack adds an fstat, an ioctl, an lseek and a
        # TextIOWrapper per file, and create reads a dozen control files.
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            data = os.read(fd, 65536)
            if data:
                chunks = [data]
                while data:
                    data = os.read(fd, 65536)
                    chunks.append(data)
                data = b"".join(chunks)
        finally:
            os.close(fd)
        return data.decode("ascii", "replace")

    def write(self, path: str, value: str) -> None:
        # No O_CREAT: a misspelt control file must fail (ENOENT), never become
        # a regular file, which it would on the tmpfs under /sys/fs/cgroup.
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
        try:
            os.write(fd, value.encode())
        finally:
            os.close(fd)

    def mkdir(self, path: str) -> None:
        os.mkdir(path, 0o755)

    def rmdir(self, path: str) -> None:
        os.rmdir(path)

    def exists(self, path: str) -> bool:
        return os.path.exists(path)

    def is_dir(self, path: str) -> bool:
        return os.path.isdir(path)

    def listdir(self, path: str) -> list[str]:
        return os.listdir(path)

    def subdirs(self, path: str) -> list[str]:
        with os.scandir(path) as it:
            return [e.name for e in it if e.is_dir(follow_symlinks=False)]

    def kill(self, pid: int, sig: int) -> None:
        os.kill(pid, sig)

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


REAL = CgroupFS()


def read_or(fs: CgroupFS, path: str, default: str | None = None) -> str | None:
    """The file's text, or `default` when it does not exist (optional control files), or
    its cgroup is being removed: then open succeeds and read fails with ENODEV, which a
    `delete --force` racing a failing create's cleanup met as a bare "No such device"."""
    try:
        return fs.read(path)
    except FileNotFoundError:
        return default
    except OSError as e:
        if e.errno != errno.ENODEV:
            raise
        return default


def read_checked(fs: CgroupFS, path: str) -> str:
    try:
        return fs.read(path)
    except OSError as e:
        raise CgroupError(f"{path}: {e.strerror or e}") from e


def write_checked(fs: CgroupFS, path: str, value: str, field: str = "") -> None:
    """Write one value; failures become '<file>: <reason>' naming the OCI field."""
    try:
        fs.write(path, value)
    except OSError as e:
        raise write_failed(path, value, field, e) from e


def write_failed(path: str, value: str, field: str, err: OSError) -> CgroupError:
    reason = err.strerror or str(err)
    if err.errno == errno.ENOENT:
        reason = "no such control file (controller missing or not supported by this kernel)"
    what = f" for {FIELD_PREFIX}.{field}" if field else ""
    return CgroupError(f"{path}: cannot write {value!r}{what}: {reason}")


def make_levels(
    fs: CgroupFS,
    mount: str,
    d: str,
    unmounted: str,
    before: Callable[[str], None] | None = None,
) -> list[tuple[str, bool]]:
    """Create `d` below `mount`: (level, whether this call made it) for every level.

    Without `before`, the leaf is tried first and the walk climbs only while a parent
    is missing: most containers go below a cgroup that exists (the caller's own, or a
    prefix such as containerd's namespace), so that is one mkdir per hierarchy instead
    of one per level. `before(parent)` (v2 enables controllers there) needs the walk
    from the top down. A missing mount is found when a mkdir right below it fails,
    not by a stat ahead of it, and reported as "<mount>: <unmounted>".
    """
    levels = []
    cur = mount
    for part in relative_parts(mount, d):
        cur = join(cur, part)
        levels.append(cur)
    made = [False] * len(levels)
    if before is None:
        # climb from the leaf to the first level that exists (or is made) ...
        top = len(levels) - 1
        while top >= 0:
            try:
                fs.mkdir(levels[top])
                made[top] = True
                break
            except FileExistsError:
                break
            except OSError as e:
                if e.errno != errno.ENOENT or top == 0:
                    _mkdir_failed(fs, mount, levels[top], unmounted, e)
                top -= 1
        first = top + 1  # ... then come down from there
    else:
        first = 0
    for i in range(first, len(levels)):
        if before is not None:
            before(levels[i - 1] if i else mount)
        try:
            fs.mkdir(levels[i])
            made[i] = True
        except FileExistsError:
            pass
        except OSError as e:
            _mkdir_failed(fs, mount, levels[i], unmounted, e)
    return list(zip(levels, made, strict=True))


def _mkdir_failed(fs: CgroupFS, mount: str, d: str, unmounted: str, e: OSError) -> NoReturn:
    if e.errno == errno.ENOENT and os.path.dirname(d) == mount and not fs.is_dir(mount):
        raise CgroupError(f"{mount}: {unmounted}") from e
    raise CgroupError(f"{d}: create cgroup: {e.strerror or e}") from e


def relative_parts(mount: str, d: str) -> list[str]:
    """The components of `d` below `mount` (Path.relative_to(...).parts, for str)."""
    top = mount.rstrip("/") + "/"
    if not d.startswith(top):
        raise CgroupError(f"{d} is not below {mount}")
    return [p for p in d[len(top) :].split("/") if p]


def flat_keyed(text: str) -> dict[str, int]:
    """'key value' lines (memory.stat, cpu.stat, *.events) -> {key: int}."""
    out = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2:
            try:
                out[parts[0]] = int(parts[1])
            except ValueError:
                continue
    return out


def walk_dirs_bottom_up(fs: CgroupFS, top: str | os.PathLike[str]) -> Iterator[str]:
    """`top` and every sub-cgroup below it, children before parents."""
    top = os.fspath(top)
    try:
        names = fs.subdirs(top)
    except FileNotFoundError:
        return
    for name in sorted(names):
        yield from walk_dirs_bottom_up(fs, join(top, name))
    yield top


def read_procs(fs: CgroupFS, top: str | os.PathLike[str]) -> list[int]:
    """Pids in `top` and all its sub-cgroups; a group vanishing meanwhile is skipped."""
    pids: list[int] = []
    for d in walk_dirs_bottom_up(fs, top):
        text = read_or(fs, join(d, "cgroup.procs"), "") or ""
        pids.extend(int(line) for line in text.split())
    return pids


def poll(
    fs: CgroupFS, done: Callable[[], bool], timeout: float, first_delay: float = 0.001
) -> bool:
    """Call `done()` with a growing back-off until it is true or `timeout` passes."""
    deadline = fs.monotonic() + timeout
    delay = first_delay
    while True:
        if done():
            return True
        if fs.monotonic() >= deadline:
            return False
        fs.sleep(delay)
        delay = min(delay * 2, 0.05)


def remove_tree(fs: CgroupFS, top: str | os.PathLike[str], timeout: float = 2.0) -> None:
    """rmdir `top` and its sub-cgroups depth-first, retrying while processes exit.

    A cgroup with live tasks answers EBUSY until the last task is reaped, which
    takes a moment after SIGKILL; anything already gone counts as removed.
    """
    top = os.fspath(top)
    last: OSError | None = None
    # The usual case, a leaf whose tasks are gone, takes one rmdir and no directory
    # listing; sub-cgroups or tasks still exiting answer EBUSY and take the walk below.
    try:
        fs.rmdir(top)
        return
    except FileNotFoundError:
        return
    except OSError as e:
        if e.errno not in (errno.EBUSY, errno.ENOTEMPTY, errno.EAGAIN):
            raise CgroupError(f"{top}: remove cgroup: {e.strerror or e}") from e

    def attempt() -> bool:
        nonlocal last
        for d in walk_dirs_bottom_up(fs, top):
            try:
                fs.rmdir(d)
            except FileNotFoundError:
                continue
            except OSError as e:
                if e.errno not in (errno.EBUSY, errno.ENOTEMPTY, errno.EAGAIN):
                    raise CgroupError(f"{d}: remove cgroup: {e.strerror or e}") from e
                last = e
                return False
        return True

    if not poll(fs, attempt, timeout, first_delay=0.005):
        reason = last.strerror if last is not None and last.strerror else "busy"
        raise CgroupError(f"{top}: remove cgroup: {reason} (processes still inside?)")
