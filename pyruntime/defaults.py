"""The default config.json that `pyruntime spec` writes (the same container runc spec gives)."""

from __future__ import annotations

import os

from . import OCI_VERSION

TYPE_CHECKING = False  # typing costs milliseconds of every verb: names for checkers only
if TYPE_CHECKING:
    from typing import Any

_CAPS = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]


def default_spec(rootless: bool = False) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "ociVersion": OCI_VERSION,
        "process": {
            "terminal": True,
            "user": {"uid": 0, "gid": 0},
            "args": ["sh"],
            "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"],
            "cwd": "/",
            "capabilities": {k: list(_CAPS) for k in ("bounding", "effective", "permitted", "ambient")},
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": True,
        },
        "root": {"path": "rootfs", "readonly": True},
        "hostname": "pyruntime",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
             "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
             "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs",
             "options": ["nosuid", "noexec", "nodev", "ro"]},
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
             "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]},
        ],
        "linux": {
            "resources": {"devices": [{"allow": False, "access": "rwm"}]},
            "namespaces": [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount")],
            "maskedPaths": ["/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys",
                            "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
                            "/proc/sched_debug", "/sys/firmware", "/proc/scsi"],
            "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"],
        },
    }
    if rootless:
        to_rootless(doc, os.geteuid(), os.getegid())
    return doc


def to_rootless(doc: dict[str, Any], uid: int, gid: int) -> None:
    """runc's ToRootless: a user namespace mapping the caller to root and no network
    namespace (a user may not configure one), /sys bound from the host (sysfs cannot be
    mounted without a network namespace of one's own), no uid=/gid= mount options (those
    ids are not mapped), and no cgroup resources (nothing to enforce them with)."""
    lx = doc["linux"]
    lx["namespaces"] = [ns for ns in lx["namespaces"] if ns["type"] not in ("network", "user")]
    lx["namespaces"].append({"type": "user"})
    lx["uidMappings"] = [{"containerID": 0, "hostID": uid, "size": 1}]
    lx["gidMappings"] = [{"containerID": 0, "hostID": gid, "size": 1}]
    mounts = []
    for m in doc["mounts"]:
        if os.path.normpath(m["destination"]) == "/sys":
            mounts.append({"destination": "/sys", "type": "none", "source": "/sys",
                           "options": ["rbind", "nosuid", "noexec", "nodev", "ro"]})
            continue
        if "options" in m:
            m = {**m, "options": [o for o in m["options"] if not o.startswith(("uid=", "gid="))]}
        mounts.append(m)
    doc["mounts"] = mounts
    lx.pop("resources", None)


# Devices every container may use whatever its config says, as runc grants them: mknod of
# anything (the node is useless without an allow rule), the standard character devices,
# pty slaves, ptmx and tun.
_ALWAYS_ALLOWED_DEVICES = [
    ("c", None, None, "m"), ("b", None, None, "m"),
    ("c", 1, 3, "rwm"), ("c", 1, 8, "rwm"), ("c", 1, 7, "rwm"), ("c", 5, 0, "rwm"),
    ("c", 1, 5, "rwm"), ("c", 1, 9, "rwm"), ("c", 136, None, "rwm"), ("c", 5, 2, "rwm"),
    ("c", 10, 200, "rwm"),
]


def effective_resources(resources: dict[str, Any]) -> dict[str, Any]:
    """linux.resources plus the device rules runc adds after the config's own (so they win
    over a leading deny-all).  linux.devices entries are not allowed implicitly: a config
    that creates /dev/kmsg but denies it gets a node it cannot open, as with runc."""
    if "devices" not in resources:
        return resources
    rules = list(resources["devices"])
    for typ, major, minor, access in _ALWAYS_ALLOWED_DEVICES:
        rule: dict[str, Any] = {"allow": True, "type": typ, "access": access}
        if major is not None:
            rule["major"] = major
        if minor is not None:
            rule["minor"] = minor
        rules.append(rule)
    return {**resources, "devices": rules}
