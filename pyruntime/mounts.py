"""The container's mount table: root propagation, the config's mounts, pivot_root, then the
masked and read-only paths, the read-only root and sysctls.

Runs in init, which has already unshared its mount namespace.  Call order:
`prepare_rootfs` (host paths still visible; it also creates /dev nodes and the console
through `devices`), `pivot_root`, `write_sysctl`, `finalize_rootfs`.

Every destination comes from the config or the untrusted image, so it is resolved with
`paths.open_in_root` and mounted on through `/proc/self/fd/N`: the kernel mounts on the
inode we checked, never on wherever a symlink in the image points (CVE-2021-30465,
CVE-2019-16884 class).  After a mount, the fd we hold still names the directory *under*
the new mount, so anything that acts on the new mount (remount, propagation) re-resolves
the destination first.  Everything is imported at module top: after pivot_root the
host's filesystem, and so its Python library, is gone.
"""

from __future__ import annotations

import errno
import os
import posixpath
import stat

from . import devices
from .errors import ConfigError, RuntimeErr, wrap
from .paths import fd_path, is_inside, open_in_root, open_procfs
from .record import dataclass
from .spec import Mount, Spec
from .syscalls.linux import (
    LINUX,
    MNT_DETACH,
    MS_BIND,
    MS_DIRSYNC,
    MS_LAZYTIME,
    MS_MANDLOCK,
    MS_MOVE,
    MS_NOATIME,
    MS_NODEV,
    MS_NODIRATIME,
    MS_NOEXEC,
    MS_NOSUID,
    MS_NOSYMFOLLOW,
    MS_PRIVATE,
    MS_RDONLY,
    MS_REC,
    MS_RELATIME,
    MS_REMOUNT,
    MS_SHARED,
    MS_SILENT,
    MS_SLAVE,
    MS_STRICTATIME,
    MS_SYNCHRONOUS,
    MS_UNBINDABLE,
    PROC_SUPER_MAGIC,
)

HOST_CGROUP_ROOT = "/sys/fs/cgroup"
MOUNTINFO = "/proc/self/mountinfo"

_O_DIR_PATH = os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC


class MountError(RuntimeErr):
    """Building the container's mount table failed; the message names the mount."""


TYPE_CHECKING = False  # typing costs milliseconds of every create: names for checkers only
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping
    from typing import Protocol

    class MountSyscalls(Protocol):
        """The part of LinuxSyscalls (and FakeSyscalls) this module uses."""

        def mount(self, source: str | None, target: str, fstype: str | None, flags: int = 0,
                  data: str | None = None) -> None: ...

        def umount2(self, target: str, flags: int = 0) -> None: ...

        def pivot_root(self, new_root: str, put_old: str) -> None: ...

        def fstatfs_type(self, fd: int) -> int: ...


# --- mount options (pure) --------------------------------------------------------

# option -> (clears the flag?, flag)
_FLAG_OPTIONS: dict[str, tuple[bool, int]] = {
    "defaults": (False, 0),
    "ro": (False, MS_RDONLY), "rw": (True, MS_RDONLY),
    "nosuid": (False, MS_NOSUID), "suid": (True, MS_NOSUID),
    "nodev": (False, MS_NODEV), "dev": (True, MS_NODEV),
    "noexec": (False, MS_NOEXEC), "exec": (True, MS_NOEXEC),
    "sync": (False, MS_SYNCHRONOUS), "async": (True, MS_SYNCHRONOUS),
    "dirsync": (False, MS_DIRSYNC),
    "remount": (False, MS_REMOUNT),
    "mand": (False, MS_MANDLOCK), "nomand": (True, MS_MANDLOCK),
    "noatime": (False, MS_NOATIME), "atime": (True, MS_NOATIME),
    "nodiratime": (False, MS_NODIRATIME), "diratime": (True, MS_NODIRATIME),
    "relatime": (False, MS_RELATIME), "norelatime": (True, MS_RELATIME),
    "strictatime": (False, MS_STRICTATIME), "nostrictatime": (True, MS_STRICTATIME),
    "lazytime": (False, MS_LAZYTIME), "nolazytime": (True, MS_LAZYTIME),
    "nosymfollow": (False, MS_NOSYMFOLLOW), "symfollow": (True, MS_NOSYMFOLLOW),
    "silent": (False, MS_SILENT), "loud": (True, MS_SILENT),
    "bind": (False, MS_BIND), "rbind": (False, MS_BIND | MS_REC),
}

PROPAGATION_FLAGS: dict[str, int] = {
    "private": MS_PRIVATE, "rprivate": MS_PRIVATE | MS_REC,
    "shared": MS_SHARED, "rshared": MS_SHARED | MS_REC,
    "slave": MS_SLAVE, "rslave": MS_SLAVE | MS_REC,
    "unbindable": MS_UNBINDABLE, "runbindable": MS_UNBINDABLE | MS_REC,
}

_IGNORED_OPTIONS = frozenset({"tmpcopyup", "notmpcopyup"})

# Options that need mount_setattr(2) or idmapped mounts, which this runtime lacks; better a
# clear error than a mount that silently ignores them (or an EINVAL from the fs data).
_UNSUPPORTED_OPTIONS = frozenset({
    "idmap", "ridmap",
    "rro", "rrw", "rnosuid", "rsuid", "rnodev", "rdev", "rnoexec", "rexec",
    "rnoatime", "ratime", "rnodiratime", "rdiratime", "rrelatime", "rnorelatime",
    "rstrictatime", "rnostrictatime", "rnosymfollow", "rsymfollow",
})

ATIME_FLAGS = MS_NOATIME | MS_NODIRATIME | MS_RELATIME | MS_STRICTATIME


@dataclass(frozen=True)
class MountOptions:
    """A mount's `options` split the way mount(2) wants them."""

    flags: int = 0  # MS_* to pass to mount(2)
    cleared: int = 0  # MS_* flags an option turned off explicitly (rw, suid, atime, ...)
    propagation: tuple[int, ...] = ()  # applied one by one after the mount, in order
    data: str = ""  # filesystem-specific options, comma-joined

    @property
    def is_bind(self) -> bool:
        return bool(self.flags & MS_BIND)

    @property
    def sets_atime(self) -> bool:
        return bool((self.flags | self.cleared) & ATIME_FLAGS)


def parse_mount_options(options: Iterable[str], *, where: str = "options") -> MountOptions:
    """Turn OCI mount options into flags, propagation changes and a data string."""
    flags = cleared = 0
    propagation: list[int] = []
    data: list[str] = []
    for opt in options:
        if opt in _FLAG_OPTIONS:
            clear, flag = _FLAG_OPTIONS[opt]
            if clear:
                flags &= ~flag
                cleared |= flag
            else:
                flags |= flag
                cleared &= ~flag
        elif opt in PROPAGATION_FLAGS:
            propagation.append(PROPAGATION_FLAGS[opt])
        elif opt in _IGNORED_OPTIONS:
            continue
        elif opt in _UNSUPPORTED_OPTIONS or opt.split("=", 1)[0] in ("idmap", "ridmap"):
            raise ConfigError(where, f"mount option {opt!r} is not supported")
        else:
            data.append(opt)
    return MountOptions(flags, cleared, tuple(propagation), ",".join(data))


_ROOT_PROPAGATION = {"": MS_SLAVE | MS_REC, **PROPAGATION_FLAGS}


def root_propagation_flags(value: str) -> int:
    """linux.rootfsPropagation as MS_* flags; unset means rslave, as runc does."""
    try:
        return _ROOT_PROPAGATION[value]
    except KeyError:
        raise ConfigError("linux.rootfsPropagation", f"unknown propagation {value!r}")


# --- /proc/self/mountinfo (pure) -------------------------------------------------


@dataclass(frozen=True)
class MountInfo:
    mount_id: int
    parent_id: int
    root: str
    mountpoint: str
    options: tuple[str, ...]
    optional: tuple[str, ...]  # "shared:N", "master:N", ...
    fstype: str
    source: str
    super_options: tuple[str, ...]


def _unescape(field: str) -> str:
    # the kernel writes space, tab, newline and backslash in paths as \ooo
    if "\\" not in field:
        return field
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and i + 4 <= len(field) and field[i + 1:i + 4].isdigit():
            out.append(chr(int(field[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def parse_mountinfo(text: str) -> list[MountInfo]:
    mounts = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 10 or "-" not in fields[6:]:
            continue
        sep = fields.index("-", 6)
        mounts.append(MountInfo(
            mount_id=int(fields[0]), parent_id=int(fields[1]), root=_unescape(fields[3]),
            mountpoint=_unescape(fields[4]), options=tuple(fields[5].split(",")),
            optional=tuple(fields[6:sep]), fstype=fields[sep + 1],
            source=_unescape(fields[sep + 2]),
            super_options=tuple(fields[sep + 3].split(",")) if len(fields) > sep + 3 else (),
        ))
    return mounts


# cgroup v1 superblock options that are not controllers
_CGROUP1_FLAGS = frozenset({"rw", "ro", "xattr", "noprefix", "clone_children", "cpuset_v2_mode",
                            "favordynmods", "none"})


@dataclass(frozen=True)
class CgroupHierarchy:
    mountpoint: str  # on the host, e.g. /sys/fs/cgroup/cpu,cpuacct
    fstype: str  # "cgroup" or "cgroup2"
    data: str  # mount data selecting the hierarchy, e.g. "cpu,cpuacct", "name=systemd"

    @property
    def name(self) -> str:
        """Directory under the cgroup root: "cpu,cpuacct", "systemd", "unified"."""
        return posixpath.basename(self.mountpoint)


def host_cgroup_layout(mounts: Iterable[MountInfo], root: str = HOST_CGROUP_ROOT,
                       ) -> tuple[str, list[CgroupHierarchy]]:
    """("v2", []) for a unified host, else ("v1", the hierarchies mounted below root)."""
    mounts = list(mounts)
    at_root = [m for m in mounts if m.mountpoint == root]
    if at_root and at_root[-1].fstype == "cgroup2":
        return "v2", []
    hierarchies = []
    for m in mounts:
        if posixpath.dirname(m.mountpoint) != root or m.fstype not in ("cgroup", "cgroup2"):
            continue
        if m.fstype == "cgroup2":
            data = ""
        else:
            data = ",".join(o for o in m.super_options
                            if o not in _CGROUP1_FLAGS and ("=" not in o or o.startswith("name=")))
        hierarchies.append(CgroupHierarchy(m.mountpoint, m.fstype, data))
    return "v1", hierarchies


def cgroup_bind_dirs(cgroup_paths: Mapping[str, str], hierarchies: Iterable[CgroupHierarchy],
                     ) -> dict[str, str]:
    """v1 without a cgroup namespace: directory under the mount's destination -> the
    container's host cgroup directory to bind there.

    The directory is named after the host hierarchy holding the path, so the keys "cpu"
    and "cpuacct" of a co-mounted hierarchy give one "cpu,cpuacct"; a path outside every
    known hierarchy is named after its key ("name=systemd" -> "systemd").
    """
    hierarchies = list(hierarchies)
    out: dict[str, str] = {}
    for key, path in sorted(cgroup_paths.items()):
        holder = next((h for h in hierarchies if is_inside(h.mountpoint, path)), None)
        name = holder.name if holder else key.removeprefix("name=")
        if name in ("", ".", "..") or "/" in name:
            raise MountError(f"cannot place cgroup {key!r} ({path}) under the cgroup mount")
        out.setdefault(name, path)
    return out


# --- before pivot_root ------------------------------------------------------------


# what a user namespace's root may mount, and on what condition (the kernel's FS_USERNS_MOUNT
# filesystems; anything else needs the host's root)
_USERNS_MOUNT_NEEDS = {
    "sysfs": ("network", "bind /sys instead (rbind), as `spec --rootless` writes"),
    "proc": ("pid", ""),
    "mqueue": ("ipc", ""),
    "cgroup2": ("cgroup", ""),
}
_USERNS_MOUNTABLE = {"tmpfs", "devpts", "overlay", "fuse", "ramfs", "binfmt_misc", "bind", "none"}


def userns_mount_hint(fstype: str, spec: Spec) -> str:
    """Why a user namespace could not make this mount, in words a user can act on."""
    need = _USERNS_MOUNT_NEEDS.get(fstype)
    if need is not None:
        ns, alt = need
        own = spec.linux.namespace(ns)
        if own is None or own.path:
            return (f"a user namespace mounts {fstype} only with a {ns} namespace of its own"
                    + (f"; {alt}" if alt else ""))
        return f"the kernel refused {fstype} in this user namespace (a locked or masked mount over it)"
    if fstype in _USERNS_MOUNTABLE:
        return "the source is not reachable or its mount flags are locked in a user namespace"
    return f"{fstype} can only be mounted by the host's root, not from a user namespace"


def _caller_in_userns() -> bool:
    from .rootless import in_user_namespace

    return in_user_namespace()


def prepare_rootfs(spec: Spec, rootfs: str, *, sys: MountSyscalls = LINUX,
                   cgroup_paths: Mapping[str, str] | None = None, console_path: str | None = None,
                   new_cgroupns: bool = False, mountinfo: str = MOUNTINFO) -> None:
    """Make `rootfs` a mount point below a non-shared parent, mount `spec.mounts` into it in
    order, then create /dev nodes and the console (see `devices.create_devices`).

    `cgroup_paths` (only used for a `cgroup` mount without a cgroup namespace) is the
    cgroup manager's `paths()`: controller ("memory", "cpu", "name=systemd", "unified")
    -> the container's cgroup directory on the host.  Those directories are bind-mounted
    (see `cgroup_bind_dirs`); with a cgroup namespace the cgroup filesystems are mounted.
    """
    rootfs = os.path.realpath(rootfs)
    propagation = root_propagation_flags(spec.linux.rootfs_propagation)
    # every mount below goes through /proc/self/fd/N, so this must be the kernel's procfs
    os.close(_open_procfs(sys, "/proc"))
    try:
        # rslave by default: our mounts must never propagate back to the host
        sys.mount(None, "/", None, propagation)
        # pivot_root refuses a new root whose parent mount is shared; only an explicit
        # shared rootfsPropagation can leave it shared at this point
        _make_parent_mount_private(sys, rootfs, mountinfo)
        sys.mount(rootfs, rootfs, None, MS_BIND | MS_REC)
    except OSError as e:
        raise MountError(wrap(f"preparing rootfs {rootfs}", e)) from e

    # opened after the self-bind so that resolution walks the new mount, the future root
    root_fd = os.open(rootfs, _O_DIR_PATH)
    try:
        host: _HostCgroups = _HostCgroups(mountinfo)
        for i, m in enumerate(spec.mounts):
            where = f"mounts[{i}]"
            opts = parse_mount_options(m.options, where=f"{where}.options")
            try:
                if m.type == "bind" or opts.is_bind:
                    _bind_mount(sys, root_fd, m, opts)
                elif m.type == "cgroup":
                    _mount_cgroup(sys, root_fd, m, opts, new_cgroupns, cgroup_paths or {}, host)
                else:
                    _mount_filesystem(sys, root_fd, m, opts)
            except MountError as e:
                raise MountError(f"{where} on {m.destination}: {e}") from e
            except OSError as e:
                what = m.type or "bind"
                if e.errno == errno.EPERM and spec.linux.namespace("user") is not None:
                    raise MountError(f"{where} ({what}) on {m.destination}: {os.strerror(e.errno)}: "
                                     f"{userns_mount_hint(what, spec)}") from e
                raise MountError(wrap(f"{where} ({what}) on {m.destination}", e)) from e
    finally:
        os.close(root_fd)
    # also in a user namespace made by our caller (rootless podman's): mknod is refused there
    in_userns = spec.linux.namespace("user") is not None or _caller_in_userns()
    devices.create_devices(spec, rootfs, sys=sys, in_userns=in_userns, console_path=console_path)


class _HostCgroups:
    """The host's cgroup layout, read from mountinfo only if a cgroup mount needs it."""

    def __init__(self, mountinfo: str) -> None:
        self._path = mountinfo
        self._layout: tuple[str, list[CgroupHierarchy]] | None = None

    def layout(self) -> tuple[str, list[CgroupHierarchy]]:
        if self._layout is None:
            with open(self._path) as f:
                self._layout = host_cgroup_layout(parse_mountinfo(f.read()))
        return self._layout


def _make_parent_mount_private(sys: MountSyscalls, rootfs: str, mountinfo: str) -> None:
    with open(mountinfo) as f:
        mounts = parse_mountinfo(f.read())
    parent: MountInfo | None = None
    for m in mounts:
        # ">=": of mounts stacked on one path, the later line is the one on top
        if is_inside(m.mountpoint, rootfs) and (
                parent is None or len(m.mountpoint) >= len(parent.mountpoint)):
            parent = m
    if parent is not None and any(o.startswith("shared:") for o in parent.optional):
        sys.mount(None, parent.mountpoint, None, MS_PRIVATE)


def _with_target(root_fd: int, dest: str, action: Callable[[int], None]) -> None:
    """Re-resolve `dest` (now the root of the mount just made there) and act on it."""
    fd = open_in_root(root_fd, dest)
    try:
        action(fd)
    finally:
        os.close(fd)


def _apply_propagation(sys: MountSyscalls, root_fd: int, dest: str, flags: Iterable[int]) -> None:
    flags = tuple(flags)

    def apply(fd: int) -> None:
        for flag in flags:
            sys.mount(None, fd_path(fd), None, flag)

    if flags:
        _with_target(root_fd, dest, apply)


_LOCKABLE = ((os.ST_RDONLY, MS_RDONLY), (os.ST_NOSUID, MS_NOSUID), (os.ST_NODEV, MS_NODEV),
             (os.ST_NOEXEC, MS_NOEXEC))
_ATIME_ST = ((os.ST_NOATIME, MS_NOATIME), (os.ST_NODIRATIME, MS_NODIRATIME),
             (os.ST_RELATIME, MS_RELATIME))


def mount_flags_of(st_flag: int, *, with_atime: bool = True) -> int:
    """statvfs f_flag -> the MS_* flags a remount must repeat (some may be locked)."""
    pairs = _LOCKABLE + _ATIME_ST if with_atime else _LOCKABLE
    return sum(ms for st, ms in pairs if st_flag & st)


def _remount(sys: MountSyscalls, fd: int, flags: int, *, keep_atime: bool = True,
             target: str | None = None) -> None:
    """MS_REMOUNT the mount whose root is `fd` (named `target` if given); on EPERM (flags
    locked by a user namespace or a less privileged mount) retry keeping the mount's
    current flags."""
    target = target or fd_path(fd)
    try:
        sys.mount(None, target, None, MS_REMOUNT | flags)
    except OSError as e:
        if e.errno != errno.EPERM:
            raise
        locked = mount_flags_of(os.fstatvfs(fd).f_flag, with_atime=keep_atime)
        if flags | locked == flags:
            raise
        sys.mount(None, target, None, MS_REMOUNT | flags | locked)


# Bind sources opened before the process entered a user namespace, where the mapped root
# may no longer be allowed to reach them (runc passes such "mount fds" the same way).
_PREOPENED: dict[str, int] = {}


def bind_sources(spec: Spec) -> list[str]:
    return [m.source for m in spec.mounts
            if (m.type == "bind" or "bind" in m.options or "rbind" in m.options) and m.source]


def preopen(sources: Iterable[str]) -> dict[str, int]:
    """O_PATH fds of the sources that can be opened now; the others fail later, in context."""
    out = {}
    for source in sources:
        try:
            out[source] = os.open(source, os.O_PATH | os.O_CLOEXEC)
        except OSError:
            pass
    _PREOPENED.update(out)
    return out


def adopt(fds: Mapping[str, int]) -> None:
    _PREOPENED.update(fds)


def close_preopened() -> None:
    """The bind sources point into the host: once mounted, no fd of theirs may remain."""
    while _PREOPENED:
        _source, fd = _PREOPENED.popitem()
        try:
            os.close(fd)
        except OSError:
            pass


def _open_source(source: str) -> int:
    if not source:
        raise MountError("bind mount without a source")
    pre = _PREOPENED.get(source)
    if pre is not None:
        return os.dup(pre)
    try:
        return os.open(source, os.O_PATH | os.O_CLOEXEC)
    except FileNotFoundError:
        raise MountError(f"bind source {source} does not exist")


def _bind_mount(sys: MountSyscalls, root_fd: int, m: Mount, opts: MountOptions) -> None:
    src_fd = _open_source(m.source)
    try:
        src_is_dir = stat.S_ISDIR(os.fstat(src_fd).st_mode)
        dest_fd = open_in_root(root_fd, m.destination, create="dir" if src_is_dir else "file")
        try:
            # the source by fd too: what we stat-ed is what gets mounted
            sys.mount(fd_path(src_fd), fd_path(dest_fd), None, MS_BIND | (opts.flags & MS_REC))
        finally:
            os.close(dest_fd)
    finally:
        os.close(src_fd)
    # a bind ignores every flag but MS_REC; ro, nosuid, ... need a remount of the new mount
    extra = opts.flags & ~(MS_BIND | MS_REC | MS_REMOUNT)
    if extra:
        _with_target(root_fd, m.destination,
                     lambda fd: _remount(sys, fd, MS_BIND | extra, keep_atime=not opts.sets_atime))
    _apply_propagation(sys, root_fd, m.destination, opts.propagation)


def _mount_filesystem(sys: MountSyscalls, root_fd: int, m: Mount, opts: MountOptions) -> None:
    # proc and sysfs must sit on a real directory of the image: a symlink there is how an
    # image redirects writes to /proc files meant for the container (CVE-2019-16884 class)
    strict = m.type in ("proc", "sysfs")
    try:
        dest_fd = open_in_root(root_fd, m.destination, create="dir", follow_last=not strict)
    except OSError as e:
        if strict and e.errno in (errno.ELOOP, errno.ENOTDIR):
            raise MountError(f"{m.type} must be mounted on ordinary directory, "
                             f"and {m.destination} is a symlink or not a directory")
        raise
    flags = opts.flags
    if m.type == "tmpfs" and posixpath.normpath(m.destination) == "/dev" and flags & MS_RDONLY:
        # /dev is filled in (devpts, shm, device nodes) after this mount: read-only later
        flags &= ~MS_RDONLY
        _READONLY_LATER.append((m.destination, flags))
    try:
        sys.mount(m.source or m.type, fd_path(dest_fd), m.type or None, flags,
                  opts.data or None)
    finally:
        os.close(dest_fd)
    _apply_propagation(sys, root_fd, m.destination, opts.propagation)


# (destination, flags) of tmpfs mounts made read-write that prepare_rootfs remounts read-only
_READONLY_LATER: list[tuple[str, int]] = []


def _mount_cgroup(sys: MountSyscalls, root_fd: int, m: Mount, opts: MountOptions,
                  new_cgroupns: bool, cgroup_paths: Mapping[str, str], host: _HostCgroups) -> None:
    dest = m.destination
    mode, hierarchies = host.layout()
    if mode == "v2":
        own = cgroup_paths.get("unified") or cgroup_paths.get("") or next(
            iter(cgroup_paths.values()), None)
        if new_cgroupns or own is None:
            _mount_filesystem(sys, root_fd, Mount(dest, "cgroup2", "cgroup2", m.options), opts)
        else:
            # no cgroup namespace: show only the container's own subtree, not the host's
            _bind_mount(sys, root_fd, Mount(dest, "bind", own, m.options),
                        parse_mount_options((*m.options, "rbind")))
        return
    if new_cgroupns:
        subs = [Mount(posixpath.join(dest, h.name), h.fstype, h.fstype, ()) for h in hierarchies]
        datas = {posixpath.join(dest, h.name): h.data for h in hierarchies}
    else:
        subs = [Mount(posixpath.join(dest, name), "bind", path, ())
                for name, path in cgroup_bind_dirs(cgroup_paths, hierarchies).items()]
        datas = {}

    # v1: a tmpfs holding one directory per hierarchy, read-only at the end if asked
    tmpfs_flags = opts.flags & ~MS_RDONLY
    _mount_filesystem(sys, root_fd, Mount(dest, "tmpfs", "tmpfs", ()),
                      MountOptions(flags=tmpfs_flags, data="mode=755"))
    for sub in subs:
        if sub.type == "bind":
            _bind_mount(sys, root_fd, sub, MountOptions(
                flags=opts.flags | MS_BIND | MS_REC, cleared=opts.cleared))
        else:
            _mount_filesystem(sys, root_fd, sub, MountOptions(flags=opts.flags,
                                                              data=datas[sub.destination]))

    def finish(fd: int) -> None:
        # comounted controllers ("cpu,cpuacct") are also reachable by each name, as on the host
        for sub in subs:
            name = posixpath.basename(sub.destination)
            for part in name.split(","):
                if part != name:
                    try:
                        os.symlink(name, part, dir_fd=fd)
                    except FileExistsError:
                        pass
        if opts.flags & MS_RDONLY:
            _remount(sys, fd, MS_BIND | tmpfs_flags | MS_RDONLY, keep_atime=not opts.sets_atime)

    _with_target(root_fd, dest, finish)
    _apply_propagation(sys, root_fd, dest, opts.propagation)


# --- pivot_root -------------------------------------------------------------------


def pivot_root(rootfs: str, *, sys: MountSyscalls = LINUX, no_pivot: bool = False) -> None:
    """Make `rootfs` the root and drop every trace of the old root from this namespace.

    pivot_root(".", ".") stacks the old root on top of the new one, which we then detach
    from inside: no put_old directory is needed in the image.  `no_pivot` (for a rootfs on
    the initramfs, where pivot_root is impossible) moves the mount to / and chroots.
    """
    try:
        if no_pivot:
            _hide_host_proc_and_sys(sys, rootfs)
            os.chdir(rootfs)
            sys.mount(rootfs, "/", None, MS_MOVE)
            os.chroot(".")
        else:
            old_fd = os.open("/", os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)
            try:
                new_fd = os.open(rootfs, os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)
                try:
                    os.fchdir(new_fd)
                    sys.pivot_root(".", ".")
                finally:
                    os.close(new_fd)
                os.fchdir(old_fd)
                # the old root may still be a peer of the host's; as a slave, detaching it
                # cannot propagate an unmount to the host
                sys.mount(None, ".", None, MS_SLAVE | MS_REC)
                sys.umount2(".", MNT_DETACH)
            finally:
                os.close(old_fd)
        os.chdir("/")
    except OSError as e:
        raise MountError(wrap(f"pivot_root to {rootfs}", e)) from e


def _hide_host_proc_and_sys(sys: MountSyscalls, rootfs: str) -> None:
    """Without pivot_root the host's mounts stay in this namespace under the chroot.  A fully
    visible host procfs or sysfs there would let a process that unshares a user namespace
    mount a fresh, unmasked /proc (the kernel allows it when one is fully visible), so cover
    each one with an empty read-only tmpfs, as runc does."""
    with open("/proc/self/mountinfo") as f:
        mounts = parse_mountinfo(f.read())
    for m in sorted(mounts, key=lambda m: len(m.mountpoint), reverse=True):
        if m.fstype in ("proc", "sysfs") and not is_inside(rootfs, m.mountpoint):
            try:
                sys.mount("tmpfs", m.mountpoint, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
                          "size=0")
            except OSError:
                try:
                    sys.umount2(m.mountpoint, MNT_DETACH)
                except OSError:
                    pass


# --- after pivot_root -------------------------------------------------------------


def _open_procfs(sys: MountSyscalls, proc: str) -> int:
    try:
        return open_procfs(sys, proc)
    except OSError as e:
        raise MountError(wrap(f"checking {proc}", e)) from e


def _remount_readonly_later(sys: MountSyscalls, root: str) -> None:
    """A read-only /dev tmpfs becomes read-only only now: devpts, shm, device nodes and the
    console were made in it first."""
    while _READONLY_LATER:
        dest, flags = _READONLY_LATER.pop()
        root_fd = os.open(root, _O_DIR_PATH)

        def remount_ro(fd: int, flags: int = flags) -> None:
            _remount(sys, fd, flags | MS_RDONLY)

        try:
            _with_target(root_fd, dest, remount_ro)
        except OSError as e:
            raise MountError(wrap(f"remounting {dest} read-only", e)) from e
        finally:
            os.close(root_fd)


def finalize_rootfs(spec: Spec, *, sys: MountSyscalls = LINUX, root: str = "/") -> None:
    """After pivot_root: root propagation, readonlyPaths, maskedPaths, then root.readonly.

    `root` is "/" in init; tests point it at a directory.  Paths that do not exist in the
    container are skipped, as the runtime spec asks.
    """
    prop_name = spec.linux.rootfs_propagation
    propagation = root_propagation_flags(prop_name)
    try:
        # done here, not before pivot_root: on the old root it would also reach the
        # host's mounts.  Private needs nothing more, the parent was made private already.
        if prop_name and not propagation & MS_PRIVATE:
            sys.mount(None, root, None, propagation)
    except OSError as e:
        raise MountError(wrap(f"linux.rootfsPropagation {prop_name}", e)) from e
    _remount_readonly_later(sys, root)
    lx = spec.linux
    if lx.readonly_paths or lx.masked_paths:
        os.close(_open_procfs(sys, posixpath.join(root, "proc")))
        root_fd = os.open(root, _O_DIR_PATH)
        try:
            for path in lx.readonly_paths:
                try:
                    _readonly_path(sys, root_fd, path)
                except OSError as e:
                    raise MountError(wrap(f"linux.readonlyPaths {path}", e)) from e
            null = _NullDevice(root_fd)
            try:
                for path in lx.masked_paths:
                    try:
                        _mask_path(sys, root_fd, path, null)
                    except OSError as e:
                        raise MountError(wrap(f"linux.maskedPaths {path}", e)) from e
            finally:
                null.close()
        finally:
            os.close(root_fd)
    if spec.root_readonly:
        root_fd = os.open(root, _O_DIR_PATH)
        try:
            # by name: "/" cannot be swapped, and this must work without a /proc mount
            _remount(sys, root_fd, MS_BIND | MS_RDONLY, target=root)
        except OSError as e:
            raise MountError(wrap("root.readonly", e)) from e
        finally:
            os.close(root_fd)


def _open_existing(root_fd: int, path: str) -> int | None:
    try:
        return open_in_root(root_fd, path)
    except (FileNotFoundError, NotADirectoryError):
        return None


def _readonly_path(sys: MountSyscalls, root_fd: int, path: str) -> None:
    fd = _open_existing(root_fd, path)
    if fd is None:
        return
    try:
        sys.mount(fd_path(fd), fd_path(fd), None, MS_BIND | MS_REC)
    finally:
        os.close(fd)

    def make_ro(fd: int) -> None:
        # repeat nosuid/nodev/noexec: a bind remount that omits them would clear them
        keep = mount_flags_of(os.fstatvfs(fd).f_flag, with_atime=False) & ~MS_RDONLY
        _remount(sys, fd, MS_BIND | MS_RDONLY | keep)

    _with_target(root_fd, path, make_ro)


class _NullDevice:
    """The container's /dev/null, opened (and checked) once for all masked files."""

    def __init__(self, root_fd: int) -> None:
        self._root_fd = root_fd
        self._fd: int | None = None

    def path(self) -> str:
        if self._fd is None:
            fd = open_in_root(self._root_fd, "/dev/null")
            st = os.fstat(fd)
            # the image or a racing container process could make /dev/null a symlink to
            # a procfs file, turning "mask" into "expose writable" (CVE-2025-31133 class)
            if not stat.S_ISCHR(st.st_mode) or st.st_rdev != os.makedev(1, 3):
                os.close(fd)
                raise MountError("/dev/null in the container is not the null device (1:3)")
            self._fd = fd
        return fd_path(self._fd)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _mask_path(sys: MountSyscalls, root_fd: int, path: str, null: _NullDevice) -> None:
    fd = _open_existing(root_fd, path)
    if fd is None:
        return
    try:
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            sys.mount("tmpfs", fd_path(fd), "tmpfs", MS_RDONLY, None)
        else:
            sys.mount(null.path(), fd_path(fd), None, MS_BIND)
    finally:
        os.close(fd)


# --- sysctl -----------------------------------------------------------------------


def sysctl_relpath(key: str) -> str:
    """The path of `key` below /proc/sys, sysctl(8) style: dots separate components, unless
    the key uses slashes, in which case dots are literal ("net/ipv4/conf/eth0.100/...")."""
    path = key if "/" in key else key.replace(".", "/")
    parts = path.strip("/").split("/")
    if not key or any(p in ("", ".", "..") for p in parts):
        raise ConfigError(f"linux.sysctl.{key}", "not a sysctl name")
    return "/".join(parts)


def _mount_id(fd: int) -> int:
    with open(f"/proc/self/fdinfo/{fd}") as f:
        for line in f:
            if line.startswith("mnt_id:"):
                return int(line.split()[1])
    raise OSError(errno.ENOENT, "no mnt_id in fdinfo", f"/proc/self/fdinfo/{fd}")


def write_sysctl(sysctl: Mapping[str, str], *, sys: MountSyscalls = LINUX,
                 proc: str = "/proc") -> None:
    """Write each sysctl to /proc/sys (call after pivot_root, before finalize_rootfs makes
    /proc/sys read-only).  The file must be on procfs, inside /proc/sys and on the same
    mount as /proc/sys: something mounted over it would get the write (CVE-2025-52881)."""
    if not sysctl:
        return
    relpaths = {key: sysctl_relpath(key) for key in sysctl}
    proc_fd = _open_procfs(sys, proc)
    try:
        sys_fd = os.open("sys", _O_DIR_PATH | os.O_NOFOLLOW, dir_fd=proc_fd)
    except OSError as e:
        raise MountError(wrap(f"opening {proc}/sys", e)) from e
    finally:
        os.close(proc_fd)
    try:
        sys_mnt = _mount_id(sys_fd)
        for key, value in sysctl.items():
            try:
                _write_one(sys, sys_fd, sys_mnt, relpaths[key], value)
            except OSError as e:
                raise MountError(wrap(f"linux.sysctl.{key}", e)) from e
    finally:
        os.close(sys_fd)


def _write_one(sys: MountSyscalls, sys_fd: int, sys_mnt: int, rel: str, value: str) -> None:
    # /proc/sys is the root of the resolution, so no symlink or ".." can leave it
    fd = open_in_root(sys_fd, rel)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EISDIR, "not a sysctl file", rel)
        if sys.fstatfs_type(fd) != PROC_SUPER_MAGIC or _mount_id(fd) != sys_mnt:
            raise OSError(errno.EXDEV, "something is mounted over it", rel)
        wfd = os.open(fd_path(fd), os.O_WRONLY | os.O_CLOEXEC)
        try:
            os.write(wfd, value.encode())
        finally:
            os.close(wfd)
    finally:
        os.close(fd)
