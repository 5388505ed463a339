"""What cgroup hierarchies are mounted, and where this process sits in them.

Works on text (a mountinfo and a /proc/<pid>/cgroup) so tests can pass fakes;
the factory in `pyruntime.cgroups` reads the real files. Only mounts at or
below the cgroup root count, and only hierarchies that are really mounted are
reported: /sys/fs/cgroup may be a tmpfs where a plain mkdir makes junk, not a
cgroup.
"""

from __future__ import annotations

import os

from pyruntime.errors import CgroupError
from pyruntime.record import dataclass

TYPE_CHECKING = False  # typing and collections.abc cost milliseconds at import
if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping

V1 = "v1"
V2 = "v2"
HYBRID = "hybrid"

#: Key of the cgroup2 tree in layouts, paths and records.
UNIFIED = "unified"
#: Key of systemd's named v1 hierarchy (no controller, process tracking only).
SYSTEMD = "name=systemd"

#: Real v1 controllers; other super options (rw, xattr, release_agent=...) are not.
V1_CONTROLLERS = frozenset(
    {
        "blkio",
        "cpu",
        "cpuacct",
        "cpuset",
        "devices",
        "freezer",
        "hugetlb",
        "memory",
        "misc",
        "net_cls",
        "net_prio",
        "perf_event",
        "pids",
        "rdma",
    }
)


@dataclass(frozen=True)
class MountEntry:
    mountpoint: str
    root: str
    fstype: str
    super_options: tuple[str, ...]


@dataclass(frozen=True)
class Hierarchy:
    """One mounted hierarchy: where it is mounted and which of its cgroups is there."""

    mountpoint: str
    #: The hierarchy path visible at the mount point ("/" unless a sub-tree is bound).
    root: str = "/"


@dataclass(frozen=True)
class Layout:
    mode: str
    #: v1 controller name, SYSTEMD or UNIFIED -> its mount.
    hierarchies: Mapping[str, Hierarchy]

    @property
    def v1_controllers(self) -> frozenset[str]:
        return frozenset(k for k in self.hierarchies if k in V1_CONTROLLERS)


_OCTAL = "01234567"


def _unescape(field: str) -> str:
    """mountinfo writes space, tab, newline and backslash as \\ooo (no re: import cost)."""
    if "\\" not in field:
        return field
    out, i, n = [], 0, len(field)
    while i < n:
        c = field[i]
        code = field[i + 1 : i + 4]
        if c == "\\" and len(code) == 3 and all(d in _OCTAL for d in code):
            out.append(chr(int(code, 8)))
            i += 4
        else:
            out.append(c)
            i += 1
    return "".join(out)


def _lines(text: str) -> Iterator[tuple[str, str, str, str]]:
    """(mountpoint, root, fstype, super options) per line, as the kernel escapes them."""
    for line in text.splitlines():
        fields = line.split(" ")
        try:
            sep = fields.index("-", 6)
            yield fields[4], fields[3], fields[sep + 1], fields[sep + 3]
        except (ValueError, IndexError):
            continue


def _entry(mountpoint: str, root: str, fstype: str, super_opts: str) -> MountEntry:
    return MountEntry(
        mountpoint=_unescape(mountpoint),
        root=_unescape(root),
        fstype=fstype,
        super_options=tuple(super_opts.split(",")),
    )


def parse_mountinfo(text: str) -> list[MountEntry]:
    return [_entry(*fields) for fields in _lines(text)]


def _is_at_or_below(path: str, top: str) -> bool:
    return path == top or path.startswith(top.rstrip("/") + "/")


def detect(mountinfo: str, root: str | os.PathLike[str] = "/sys/fs/cgroup") -> Layout:
    """The cgroup mode and mounted hierarchies at or below `root`.

    v2: a cgroup2 is mounted at `root` itself. hybrid: v1 controllers plus a
    cgroup2 somewhere below `root` (usually `unified`). v1: controllers only.
    """
    top = os.path.normpath(os.fspath(root))
    # A later mount on the same mount point hides the earlier one.
    # (Records only for the cgroup lines: every `create` reads the whole mountinfo.)
    by_mountpoint: dict[str, MountEntry] = {}
    for fields in _lines(mountinfo):
        mountpoint = _unescape(fields[0])
        if fields[2] in ("cgroup", "cgroup2") and _is_at_or_below(mountpoint, top):
            by_mountpoint.pop(mountpoint, None)
            by_mountpoint[mountpoint] = _entry(*fields)
        elif mountpoint in by_mountpoint:
            del by_mountpoint[mountpoint]

    at_root = by_mountpoint.get(top)
    if at_root is not None and at_root.fstype == "cgroup2":
        return Layout(V2, {UNIFIED: Hierarchy(top, at_root.root)})

    hierarchies: dict[str, Hierarchy] = {}
    for entry in by_mountpoint.values():
        where = Hierarchy(entry.mountpoint, entry.root)
        if entry.fstype == "cgroup2":
            hierarchies.setdefault(UNIFIED, where)
            continue
        for opt in entry.super_options:
            if opt in V1_CONTROLLERS or opt == SYSTEMD:
                # The same hierarchy bound twice: the first mount point is as good.
                hierarchies.setdefault(opt, where)

    has_v1 = any(k in V1_CONTROLLERS for k in hierarchies)
    if has_v1:
        return Layout(HYBRID if UNIFIED in hierarchies else V1, hierarchies)
    if UNIFIED in hierarchies:
        return Layout(V2, {UNIFIED: hierarchies[UNIFIED]})
    raise CgroupError(f"no cgroup filesystem is mounted at or below {top}")


def parse_proc_cgroup(text: str) -> dict[str, str]:
    """/proc/<pid>/cgroup as {controller or SYSTEMD or UNIFIED: path}."""
    result: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        hier_id, controllers, path = parts
        if hier_id == "0" and controllers == "":
            result[UNIFIED] = path
            continue
        for name in controllers.split(","):
            if name:
                result[name] = path
    return result
