"""Container cgroups: pick the manager for this host's mode, or rebuild a saved one.

    mgr = new_manager(spec.linux.cgroups_path, cid)   # no side effects yet
    state["cgroups"] = mgr.record()                   # save before creating
    mgr.apply(pid); mgr.set(spec.linux.resources)
    ...
    manager_from_record(state["cgroups"]).destroy()

Modes: v2 (cgroup2 at the root), v1, and hybrid (v1 controllers plus a
cgroup2 tree, usually at <root>/unified). Hybrid uses the v1 controllers and
also joins the same path in the unified tree and name=systemd. See
`paths` for where a cgroupsPath lands; the systemd driver is not supported.
"""

from __future__ import annotations

import os

from pyruntime.cgroups.base import RECORD_VERSION, Manager
from pyruntime.cgroups.detect import HYBRID, UNIFIED, V1, V2, parse_proc_cgroup
from pyruntime.cgroups.detect import detect as detect_layout
from pyruntime.cgroups.fs import REAL, CgroupFS
from pyruntime.cgroups.paths import resolve
from pyruntime.errors import CgroupError

TYPE_CHECKING = False  # typing and collections.abc cost milliseconds at import
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

__all__ = ["Manager", "new_manager", "manager_from_record", "CgroupError"]


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as f:
            return f.read()
    except OSError as e:
        raise CgroupError(f"{path}: {e.strerror or e}") from e


def new_manager(
    cgroups_path: str,
    container_id: str,
    *,
    root: str | os.PathLike[str] = "/sys/fs/cgroup",
    mountinfo: str | None = None,
    self_cgroup: str | None = None,
    fs: CgroupFS = REAL,
) -> Manager:
    """The manager for a new container. Reads mountinfo and /proc/self/cgroup
    (unless given) but creates nothing."""
    if mountinfo is None:
        mountinfo = _read("/proc/self/mountinfo")
    if self_cgroup is None:
        self_cgroup = _read("/proc/self/cgroup")
    layout = detect_layout(mountinfo, root)
    paths = resolve(cgroups_path, container_id, layout, parse_proc_cgroup(self_cgroup))
    mounts = {key: layout.hierarchies[key].mountpoint for key in paths}
    return _build(container_id, layout.mode, paths, mounts, fs)


def _build(
    container_id: str, mode: str, paths: dict[str, str], mounts: dict[str, str], fs: CgroupFS
) -> Manager:
    # Each mode's module is imported on use: a v2 host never loads v1's (hybrid needs both).
    if mode == V2:
        from pyruntime.cgroups.v2 import V2Manager

        return V2Manager(container_id, paths, mounts, fs)
    from pyruntime.cgroups.v1 import V1Manager

    return V1Manager(container_id, mode, paths, mounts, fs)


def _str_map(record: Mapping[str, Any], key: str) -> dict[str, str]:
    value = record.get(key)
    # A record is JSON: a dict, never another Mapping (no collections.abc at import).
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) and v.startswith("/") for k, v in value.items()
    ):
        raise CgroupError(f"cgroup record: {key!r} must map names to absolute paths")
    return dict(value)


def manager_from_record(record: Mapping[str, Any], *, fs: CgroupFS = REAL) -> Manager:
    """Rebuild the manager saved by `Manager.record()`; touches nothing."""
    if not isinstance(record, dict) or record.get("version") != RECORD_VERSION:
        raise CgroupError(f"cgroup record: unsupported version {record.get('version')!r}")
    mode = record.get("mode")
    container_id = record.get("id")
    if not isinstance(container_id, str):
        raise CgroupError("cgroup record: 'id' must be a string")
    paths = _str_map(record, "paths")
    mounts = _str_map(record, "mounts")
    if mode == V1 and UNIFIED in paths:
        raise CgroupError("cgroup record: a v1 record cannot hold a unified path")
    if mode in (V1, V2, HYBRID):
        return _build(container_id, mode, paths, mounts, fs)
    raise CgroupError(f"cgroup record: unknown mode {mode!r}")
