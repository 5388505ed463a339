"""The container's /dev: default device nodes, `linux.devices`, the /dev symlinks, /dev/console.

Runs in init before pivot_root, after the config's mounts (so a /dev tmpfs is in place).
Every path is resolved with `paths.open_in_root` inside the rootfs, so an image whose
/dev (or anything below it) is a symlink cannot make us create or mount a node on the
host.  In a user namespace mknod of devices is refused by the kernel, so, like runc,
we bind-mount the host's node onto an empty file instead.
"""

from __future__ import annotations

import errno
import os
import posixpath
import stat

from .errors import ConfigError, RuntimeErr, wrap
from .paths import fd_path, is_inside, open_in_root, open_procfs
from .spec import Device, Spec
from .syscalls.linux import LINUX, MS_BIND


class DeviceError(RuntimeErr):
    """A device node, /dev symlink or the console could not be set up in the rootfs."""


TYPE_CHECKING = False  # typing costs milliseconds of every create: names for checkers only
if TYPE_CHECKING:
    from typing import Protocol

    class DeviceSyscalls(Protocol):
        def mount(self, source: str | None, target: str, fstype: str | None, flags: int = 0,
                  data: str | None = None) -> None: ...

        def fstatfs_type(self, fd: int) -> int: ...


DEFAULT_DEVICES: tuple[Device, ...] = (
    Device("c", "/dev/null", 1, 3, 0o666, 0, 0),
    Device("c", "/dev/zero", 1, 5, 0o666, 0, 0),
    Device("c", "/dev/full", 1, 7, 0o666, 0, 0),
    Device("c", "/dev/random", 1, 8, 0o666, 0, 0),
    Device("c", "/dev/urandom", 1, 9, 0o666, 0, 0),
    Device("c", "/dev/tty", 5, 0, 0o666, 0, 0),
)

# (name in /dev, link target); /dev/core is added only where the host has /proc/kcore
DEV_SYMLINKS: tuple[tuple[str, str], ...] = (
    ("fd", "/proc/self/fd"),
    ("stdin", "/proc/self/fd/0"),
    ("stdout", "/proc/self/fd/1"),
    ("stderr", "/proc/self/fd/2"),
)

_FILE_TYPES = {"c": stat.S_IFCHR, "u": stat.S_IFCHR, "b": stat.S_IFBLK, "p": stat.S_IFIFO}

# Unix98 pty slaves live on majors 136..143 (UNIX98_PTY_SLAVE_MAJOR + UNIX98_PTY_MAJOR_COUNT)
_PTY_SLAVE_MAJORS = range(136, 144)


def _abs(path: str) -> str:
    # normpath keeps a leading "//" (POSIX leaves it implementation-defined); we do not
    return posixpath.normpath("/" + path.lstrip("/"))


def needs_dev_setup(spec: Spec) -> bool:
    """False when the config bind-mounts something (the host's /dev) onto /dev."""
    for m in spec.mounts:
        if _abs(m.destination) != "/dev":
            continue
        if m.type == "bind" or "bind" in m.options or "rbind" in m.options:
            return False
    return True


def create_devices(spec: Spec, rootfs: str, *, sys: DeviceSyscalls = LINUX, in_userns: bool = False,
                   console_path: str | None = None) -> None:
    """Populate <rootfs>/dev (unless /dev is a host bind) and mount the console on /dev/console.

    `console_path`: see `mount_console`.
    """
    _check_procfs(sys)
    root_fd = os.open(rootfs, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        if needs_dev_setup(spec):
            configured = {_abs(d.path) for d in spec.linux.devices}
            defaults = [d for d in DEFAULT_DEVICES if d.path not in configured]
            for i, dev in enumerate(spec.linux.devices):
                _check_device(dev, f"linux.devices[{i}]")
            for dev in (*defaults, *spec.linux.devices):
                try:
                    _create_device(sys, root_fd, dev, in_userns)
                except OSError as e:
                    raise DeviceError(wrap(f"creating device {dev.path}", e)) from e
            try:
                _create_dev_symlinks(root_fd)
            except OSError as e:
                raise DeviceError(wrap("creating /dev symlinks", e)) from e
        if console_path is not None:
            _mount_console_at(sys, root_fd, os.path.realpath(rootfs), console_path)
    finally:
        os.close(root_fd)


def mount_console(root: str, console_path: str, *, sys: DeviceSyscalls = LINUX) -> None:
    """Bind-mount the pty slave `console_path` onto <root>/dev/console.

    Before pivot_root `root` is the rootfs and `console_path` a slave of the container's
    devpts as seen from the host (<rootfs>/dev/pts/N) or a host path; after pivot_root
    `root` is "/" and `console_path` e.g. /dev/pts/0.  A path inside `root` is resolved
    inside it, so an image whose /dev/pts is a symlink cannot hand over a host node
    (CVE-2025-52565 class); the source must be a pty slave, and /dev/console must not be
    a symlink or a directory.
    """
    _check_procfs(sys)
    root_fd = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        _mount_console_at(sys, root_fd, os.path.realpath(root), console_path)
    finally:
        os.close(root_fd)


def _check_procfs(sys: DeviceSyscalls) -> None:
    try:
        os.close(open_procfs(sys, "/proc"))
    except OSError as e:
        raise DeviceError(wrap("checking /proc", e)) from e


def _mount_console_at(sys: DeviceSyscalls, root_fd: int, root: str, console_path: str) -> None:
    try:
        _mount_console(sys, root_fd, root, console_path)
    except OSError as e:
        raise DeviceError(wrap(f"mounting console {console_path} on /dev/console", e)) from e


def _check_device(dev: Device, where: str) -> None:
    if dev.type not in _FILE_TYPES:
        raise ConfigError(f"{where}.type", f"unknown device type {dev.type!r}")
    if posixpath.basename(_abs(dev.path)) in ("", ".."):
        raise ConfigError(f"{where}.path", f"not a device path: {dev.path!r}")


def _create_device(sys: DeviceSyscalls, root_fd: int, dev: Device, in_userns: bool) -> None:
    parent_path, name = posixpath.split(_abs(dev.path))
    file_type = _FILE_TYPES[dev.type]
    perm = (0o666 if dev.file_mode is None else dev.file_mode) & 0o7777
    parent_fd = open_in_root(root_fd, parent_path, create="dir")
    try:
        if in_userns and file_type != stat.S_IFIFO:
            _bind_host_device(sys, parent_fd, name, dev.path, file_type)
            return
        try:
            os.mknod(name, file_type | perm, os.makedev(dev.major, dev.minor), dir_fd=parent_fd)
        except FileExistsError:
            return  # the image (or an earlier entry) already has it; leave it as it is
        node_fd = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent_fd)
        try:
            # chmod/chown through the magic link act on the node we just made, and set
            # the exact mode whatever the umask did to mknod's
            os.chmod(fd_path(node_fd), perm)
            os.chown(fd_path(node_fd), dev.uid or 0, dev.gid or 0)
        finally:
            os.close(node_fd)
    finally:
        os.close(parent_fd)


def _bind_host_device(sys: DeviceSyscalls, parent_fd: int, name: str, host_path: str,
                      file_type: int) -> None:
    src_fd = os.open(host_path, os.O_PATH | os.O_CLOEXEC)
    try:
        if stat.S_IFMT(os.fstat(src_fd).st_mode) != file_type:
            raise OSError(errno.ENODEV, "host path is not a device of that type", host_path)
        dst_fd = _open_mount_file(parent_fd, name, 0o000)
        try:
            sys.mount(fd_path(src_fd), fd_path(dst_fd), None, MS_BIND)
        finally:
            os.close(dst_fd)
    finally:
        os.close(src_fd)


def _open_mount_file(parent_fd: int, name: str, mode: int) -> int:
    """An O_PATH fd on `name` in parent_fd (an empty file is made if missing) that is
    neither a symlink nor a directory, to bind-mount a node onto."""
    try:
        os.close(os.open(name, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC,
                         mode, dir_fd=parent_fd))
    except FileExistsError:
        pass
    fd = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent_fd)
    st_mode = os.fstat(fd).st_mode
    if stat.S_ISLNK(st_mode) or stat.S_ISDIR(st_mode):
        os.close(fd)
        raise OSError(errno.EEXIST, "exists as a symlink or directory", name)
    return fd


def _create_dev_symlinks(root_fd: int) -> None:
    dev_fd = open_in_root(root_fd, "/dev", create="dir")
    try:
        links = list(DEV_SYMLINKS)
        if os.path.exists("/proc/kcore"):
            links.append(("core", "/proc/kcore"))
        for name, target in links:
            try:
                os.symlink(target, name, dir_fd=dev_fd)
            except FileExistsError:
                pass
        # /dev/ptmx must be the devpts instance of the container, whatever the image had
        try:
            os.unlink("ptmx", dir_fd=dev_fd)
        except FileNotFoundError:
            pass
        os.symlink("pts/ptmx", "ptmx", dir_fd=dev_fd)
    finally:
        os.close(dev_fd)


def _mount_console(sys: DeviceSyscalls, root_fd: int, rootfs: str, console_path: str) -> None:
    console = os.path.normpath(console_path)
    if is_inside(rootfs, console):
        # the container's devpts: resolve inside the root so that a /dev/pts symlink in the
        # image cannot hand us a host node (CVE-2025-52565 class)
        src_fd = open_in_root(root_fd, os.path.relpath(console, rootfs))
    else:
        src_fd = os.open(console, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        st = os.fstat(src_fd)
        if not stat.S_ISCHR(st.st_mode) or os.major(st.st_rdev) not in _PTY_SLAVE_MAJORS:
            raise OSError(errno.ENOTTY, "not a pty slave", console_path)
        dev_fd = open_in_root(root_fd, "/dev", create="dir")
        try:
            dst_fd = _open_mount_file(dev_fd, "console", 0o600)
        finally:
            os.close(dev_fd)
        try:
            sys.mount(fd_path(src_fd), fd_path(dst_fd), None, MS_BIND)
        finally:
            os.close(dst_fd)
    finally:
        os.close(src_fd)
