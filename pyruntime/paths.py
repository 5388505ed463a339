"""Resolving container paths without ever leaving the container's root.

This module owns `open_in_root`, the one way the runtime turns a path taken from the
config or from the image into something it mounts on, creates, or writes to.  The image
is untrusted: any component may be a symlink (absolute, full of `..`, a /proc magic
link), so the kernel is never asked to follow one.  Each component is opened with
O_PATH|O_NOFOLLOW relative to the previous one, symlinks are read and re-resolved
*lexically* inside the root, and `..` pops a component we opened ourselves instead of
asking the kernel for the parent.  The caller gets an O_PATH fd and acts on
`fd_path(fd)`, so a mount lands exactly on the inode that was checked (the runc
CVE-2021-30465 class of races has no path left to swap).
"""

from __future__ import annotations

import errno
import os
import stat

from .syscalls.linux import PROC_SUPER_MAGIC

TYPE_CHECKING = False  # typing costs milliseconds of every create: names for checkers only
if TYPE_CHECKING:
    from typing import Literal, Protocol

    CreateKind = Literal["dir", "file"]

    class StatfsSyscalls(Protocol):
        def fstatfs_type(self, fd: int) -> int: ...

MAX_SYMLINK_HOPS = 40  # what the kernel allows (MAXSYMLINKS) before ELOOP

_OPEN_FLAGS = os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC

def fd_path(fd: int) -> str:
    """The magic link naming exactly the file behind `fd`, usable as a mount source/target."""
    return f"/proc/self/fd/{fd}"


def open_procfs(sys: StatfsSyscalls, proc: str = "/proc") -> int:
    """An O_PATH fd on `proc` once it is known to be a real procfs.

    `fd_path` names are only as trustworthy as the /proc they go through: a /proc that is
    a symlink, a plain directory of the image or a tmpfs dressed up with "self/fd/N"
    symlinks would redirect every mount made through them.
    """
    fd = os.open(proc, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        fs_type = sys.fstatfs_type(fd)
    except BaseException:
        os.close(fd)
        raise
    if fs_type != PROC_SUPER_MAGIC:
        os.close(fd)
        raise OSError(errno.EINVAL, f"not a procfs (filesystem type {fs_type:#x})", proc)
    return fd


def _components(path: str) -> list[str]:
    """Components of `path`, reversed so that the next one is `.pop()`-ed off the end."""
    return [c for c in reversed(path.split("/")) if c and c != "."]


def open_in_root(root_fd: int, path: str, *, create: CreateKind | None = None,
                 mode: int = 0o755, follow_last: bool = True) -> int:
    """Open `path` as seen from inside the directory `root_fd`; return a new O_PATH fd.

    Absolute symlink targets restart at the root and `..` never climbs above it, so the
    result is always inside the root whatever the tree holds.  Missing components raise
    FileNotFoundError unless `create` is given: then missing intermediate components are
    made as directories (mode `mode`) and a missing last component as `create` says.
    With `create`, an existing last component must have the matching kind ("dir": a
    directory, else ENOTDIR; "file": not a directory, else EISDIR).  With
    `follow_last=False` a symlink as the last component is refused with ELOOP.
    """
    if create not in (None, "dir", "file"):
        raise ValueError(f"create must be None, 'dir' or 'file', not {create!r}")
    remaining = _components(path)
    # fds of the components resolved so far below the root; the root fd is the caller's
    opened: list[int] = []
    last_mode = stat.S_IFDIR
    hops = 0
    retries = 0  # creations of the current component; reset once it opens
    try:
        while remaining:
            name = remaining.pop()
            if name == "..":
                if opened:
                    os.close(opened.pop())
                last_mode = stat.S_IFDIR
                continue
            parent = opened[-1] if opened else root_fd
            is_last = not remaining
            try:
                fd = os.open(name, _OPEN_FLAGS, dir_fd=parent)
            except FileNotFoundError:
                if create is None:
                    raise
                # mkdirat/O_EXCL never follow a symlink, so whatever appears under this
                # name is re-examined by the lookup below.  The cap only guards against a
                # name that keeps vanishing (nothing in the container runs yet).
                retries += 1
                if retries > MAX_SYMLINK_HOPS:
                    raise OSError(errno.ELOOP, "path keeps disappearing while created", path)
                _create(parent, name, create if is_last else "dir", mode)
                remaining.append(name)
                continue
            retries = 0
            st_mode = os.fstat(fd).st_mode
            if stat.S_ISLNK(st_mode):
                try:
                    if is_last and not follow_last:
                        raise OSError(errno.ELOOP, "last component is a symlink", path)
                    hops += 1
                    if hops > MAX_SYMLINK_HOPS:
                        raise OSError(errno.ELOOP, "too many levels of symbolic links", path)
                    # readlinkat(fd, "") reads the very link we opened, not a re-looked-up name
                    target = os.readlink("", dir_fd=fd)
                finally:
                    os.close(fd)
                if target.startswith("/"):
                    while opened:
                        os.close(opened.pop())
                remaining.extend(_components(target))
                continue
            if remaining and not stat.S_ISDIR(st_mode):
                os.close(fd)
                raise OSError(errno.ENOTDIR, "not a directory", path)
            opened.append(fd)
            last_mode = st_mode
        if create == "dir" and not stat.S_ISDIR(last_mode):
            raise OSError(errno.ENOTDIR, "not a directory", path)
        if create == "file" and stat.S_ISDIR(last_mode):
            raise OSError(errno.EISDIR, "is a directory", path)
        return opened.pop() if opened else os.dup(root_fd)
    finally:
        for fd in opened:
            os.close(fd)


def _create(parent_fd: int, name: str, kind: CreateKind, mode: int) -> None:
    """Create `name` in `parent_fd`; losing a race to an existing entry is fine."""
    try:
        if kind == "dir":
            os.mkdir(name, mode, dir_fd=parent_fd)
        else:
            fd = os.open(name, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC,
                         mode, dir_fd=parent_fd)
            os.close(fd)
    except FileExistsError:
        pass


def is_inside(root: str, path: str) -> bool:
    """Whether the normalized absolute `path` is `root` or below it (both host paths)."""
    root = os.path.normpath(root)
    path = os.path.normpath(path)
    return path == root or path.startswith(root.rstrip("/") + "/")
