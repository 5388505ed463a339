"""Where a container's cgroups go: linux.cgroupsPath -> one directory per hierarchy.

Rules (decided here, pure, no filesystem access):
- An absolute cgroupsPath is taken as given below each hierarchy's mount point.
- A relative one goes below this process's *own* cgroup in each hierarchy, as
  runc does, so a runtime started inside a delegated cgroup stays inside it.
- An empty one means the relative path ``<id>`` (below our own cgroup). runc's default is
  ``/<id>`` at the hierarchy root; we stay below our own cgroup instead so that
  nothing (tests included) ever creates next to the system's top-level groups
  unless told to.
- ``..`` that climbs out of the base, or a path naming the base itself, is a
  CgroupError; so is the systemd driver's ``slice:prefix:name`` form.
"""

from __future__ import annotations

import os

from pyruntime.cgroups.detect import UNIFIED, V2
from pyruntime.errors import CgroupError

TYPE_CHECKING = False  # typing and collections.abc cost milliseconds at import
if TYPE_CHECKING:
    from collections.abc import Mapping

    from pyruntime.cgroups.detect import Layout

DEFAULT_PREFIX = ""


def _looks_like_systemd_driver(path: str) -> bool:
    return not path.startswith("/") and path.count(":") == 2


def _components(path: str) -> list[str]:
    """Normalised components; CgroupError if `..` climbs above the start."""
    parts: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                raise CgroupError(f"cgroupsPath {path!r} escapes its parent cgroup")
            parts.pop()
            continue
        parts.append(part)
    return parts


def default_path(container_id: str) -> str:
    if not container_id or "/" in container_id or container_id in (".", ".."):
        raise CgroupError(f"container id {container_id!r} cannot name a cgroup")
    return DEFAULT_PREFIX + container_id


def hierarchy_keys(layout: Layout) -> list[str]:
    """The hierarchies a container joins: v2 -> the unified tree; v1/hybrid -> every
    mounted v1 controller plus name=systemd and (hybrid) the unified tree."""
    if layout.mode == V2:
        return [UNIFIED]
    return sorted(layout.hierarchies)


def resolve(
    cgroups_path: str, container_id: str, layout: Layout, own: Mapping[str, str]
) -> dict[str, str]:
    """{hierarchy key: absolute directory} for the container; no side effects.

    `own` is this process's /proc/self/cgroup as parsed by detect.parse_proc_cgroup.
    """
    if _looks_like_systemd_driver(cgroups_path):
        raise CgroupError(
            f"systemd cgroup driver is not supported: cgroupsPath {cgroups_path!r} "
            "has the slice:prefix:name form; use a cgroupfs path"
        )
    path = cgroups_path or default_path(container_id)
    rel = _components(path)
    if not rel:
        raise CgroupError(f"cgroupsPath {path!r} names the parent cgroup itself, not a new one")
    absolute = path.startswith("/")

    result: dict[str, str] = {}
    for key in hierarchy_keys(layout):
        hier = layout.hierarchies[key]
        if absolute:
            result[key] = os.path.join(hier.mountpoint, *rel)
            continue
        base = own.get(key, "/")
        mount_root = hier.root.rstrip("/")
        if mount_root and base != mount_root and not base.startswith(mount_root + "/"):
            raise CgroupError(
                f"own {key} cgroup {base} is outside the part mounted at {hier.mountpoint}"
            )
        base_rel = _components(base[len(mount_root) :])
        result[key] = os.path.join(hier.mountpoint, *base_rel, *rel)
    return result
