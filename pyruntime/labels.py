"""SELinux labels: `linux.mountLabel` and `process.selinuxLabel` get one policy.

Where SELinux is enabled, the process label is written to /proc/thread-self/attr/exec by
init, and the mount label becomes a `context="..."` option of the mounts that take one
(as runc's FormatMountLabel does: not binds, proc, sysfs, cgroup or mqueue).  Where it is
not, either label is a config error (validate.check_selinux), before anything is made:
a container never runs without the confinement it asked for.  runc refuses both too, the
process label in its validator and the mount label when the kernel rejects `context=`.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False  # typing costs milliseconds of every verb: names for checkers only
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

SELINUXFS = "/sys/fs/selinux"
LABEL_FIELDS = (("linux", "mountLabel"), ("process", "selinuxLabel"))
# mount types a context= option does not apply to (or that runc labels otherwise)
_UNLABELLED_TYPES = {"bind", "proc", "sysfs", "cgroup", "cgroup2", "mqueue"}


def selinux_enabled(selinuxfs: str | None = None) -> bool:
    """go-selinux's test, roughly: selinuxfs is mounted (it has an `enforce` file)."""
    return os.path.exists(os.path.join(selinuxfs or SELINUXFS, "enforce"))


def labels_in(doc: Mapping[str, Any]) -> list[str]:
    """The label fields a config (or {"process": process.json}) sets, process first."""
    return [f"{sect}.{key}" for sect, key in LABEL_FIELDS[::-1] if (doc.get(sect) or {}).get(key)]


def with_mount_labels(doc: dict[str, Any]) -> dict[str, Any]:
    """The config init mounts from: linux.mountLabel as a context= option where it applies.
    `doc` itself, what state.json keeps, is not changed."""
    label = (doc.get("linux") or {}).get("mountLabel")
    if not label:
        return doc
    return {**doc, "mounts": [with_mount_label(m, label) for m in doc.get("mounts") or []]}


def with_mount_label(mount: dict[str, Any], label: str) -> dict[str, Any]:
    options = list(mount.get("options") or [])
    if (mount.get("type") in _UNLABELLED_TYPES or any(o in ("bind", "rbind") for o in options)
            or any(o.startswith("context=") for o in options)):
        return mount
    return {**mount, "options": [*options, f'context="{label}"']}
