"""`features`: what this runtime supports, in the runtime-spec features document shape."""

from __future__ import annotations

from . import OCI_VERSION
from .capabilities import known_caps

TYPE_CHECKING = False  # typing costs milliseconds of every verb: names for checkers only
if TYPE_CHECKING:
    from typing import Any

MOUNT_OPTIONS = [
    "async", "atime", "bind", "defaults", "dev", "diratime", "dirsync", "exec", "lazytime",
    "mand", "noatime", "nodev", "nodiratime", "noexec", "nolazytime", "nomand", "norelatime",
    "nostrictatime", "nosuid", "nosymfollow", "private", "rbind", "relatime", "remount", "ro",
    "rprivate", "rshared", "rslave", "runbindable", "rw", "shared", "slave", "strictatime",
    "suid", "symfollow", "sync", "tmpcopyup", "unbindable",
]


def _apparmor_enabled() -> bool:
    try:
        with open("/sys/module/apparmor/parameters/enabled") as f:
            return f.read().strip() == "Y"
    except OSError:
        return False


def _selinux_enabled() -> bool:
    try:
        with open("/proc/self/mounts") as f:
            return any(line.split()[2] == "selinuxfs" for line in f if len(line.split()) > 2)
    except OSError:
        return False


def features() -> dict[str, Any]:
    seccomp: dict[str, Any] = {"enabled": False}
    try:
        from .seccomp import features as seccomp_features

        seccomp = seccomp_features()
    except (OSError, ImportError):
        pass
    return {
        "ociVersionMin": "1.0.0",
        "ociVersionMax": OCI_VERSION,
        "hooks": ["prestart", "createRuntime", "createContainer", "startContainer",
                  "poststart", "poststop"],
        "mountOptions": MOUNT_OPTIONS,
        "linux": {
            "namespaces": ["cgroup", "ipc", "mount", "network", "pid", "time", "user", "uts"],
            "capabilities": known_caps(),
            "cgroup": {"v1": True, "v2": True, "systemd": False, "systemdUser": False,
                       "rdma": True},
            "seccomp": seccomp,
            "apparmor": {"enabled": _apparmor_enabled()},
            "selinux": {"enabled": _selinux_enabled()},
            "intelRdt": {"enabled": False},
            "mountExtensions": {"idmap": {"enabled": False}},
        },
        "annotations": {"org.opencontainers.runc.version": "pyruntime"},
    }
