"""Capability sets for the container process (capset, prctl and ambient via pyruntime.syscalls)."""

from __future__ import annotations

from .errors import ConfigError
from .spec import Capabilities

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

CAP_NUMBERS = {
    "CAP_CHOWN": 0, "CAP_DAC_OVERRIDE": 1, "CAP_DAC_READ_SEARCH": 2, "CAP_FOWNER": 3,
    "CAP_FSETID": 4, "CAP_KILL": 5, "CAP_SETGID": 6, "CAP_SETUID": 7, "CAP_SETPCAP": 8,
    "CAP_LINUX_IMMUTABLE": 9, "CAP_NET_BIND_SERVICE": 10, "CAP_NET_BROADCAST": 11,
    "CAP_NET_ADMIN": 12, "CAP_NET_RAW": 13, "CAP_IPC_LOCK": 14, "CAP_IPC_OWNER": 15,
    "CAP_SYS_MODULE": 16, "CAP_SYS_RAWIO": 17, "CAP_SYS_CHROOT": 18, "CAP_SYS_PTRACE": 19,
    "CAP_SYS_PACCT": 20, "CAP_SYS_ADMIN": 21, "CAP_SYS_BOOT": 22, "CAP_SYS_NICE": 23,
    "CAP_SYS_RESOURCE": 24, "CAP_SYS_TIME": 25, "CAP_SYS_TTY_CONFIG": 26, "CAP_MKNOD": 27,
    "CAP_LEASE": 28, "CAP_AUDIT_WRITE": 29, "CAP_AUDIT_CONTROL": 30, "CAP_SETFCAP": 31,
    "CAP_MAC_OVERRIDE": 32, "CAP_MAC_ADMIN": 33, "CAP_SYSLOG": 34, "CAP_WAKE_ALARM": 35,
    "CAP_BLOCK_SUSPEND": 36, "CAP_AUDIT_READ": 37, "CAP_PERFMON": 38, "CAP_BPF": 39,
    "CAP_CHECKPOINT_RESTORE": 40,
}


def last_cap() -> int:
    try:
        with open("/proc/sys/kernel/cap_last_cap") as f:
            return int(f.read())
    except OSError:
        return max(CAP_NUMBERS.values())


def known_caps() -> list[str]:
    top = last_cap()
    return [name for name, n in CAP_NUMBERS.items() if n <= top]


def to_numbers(names: tuple[str, ...] | None, where: str) -> set[int]:
    """Cap names to numbers; names this kernel does not know are skipped, as runc does."""
    out = set()
    top = last_cap()
    for i, name in enumerate(names or ()):
        n = CAP_NUMBERS.get(name.upper())
        if n is None:
            raise ConfigError(f"{where}[{i}]", f"unknown capability {name!r}")
        if n <= top:
            out.add(n)
    return out


class CapabilityPlan:
    """The five sets, resolved up front so that applying them needs no lookups."""

    def __init__(self, caps: Capabilities | None, where: str = "process.capabilities") -> None:
        # No capabilities object means no capabilities at all, as in runc: five empty sets.
        c = caps or Capabilities()
        self.bounding = to_numbers(c.bounding, f"{where}.bounding")
        self.effective = to_numbers(c.effective, f"{where}.effective")
        self.permitted = to_numbers(c.permitted, f"{where}.permitted")
        self.inheritable = to_numbers(c.inheritable, f"{where}.inheritable")
        self.ambient = to_numbers(c.ambient, f"{where}.ambient")
        self.all = set(range(last_cap() + 1))

    def drop_bounding(self, sys: Any = None) -> None:
        """Before changing user: dropping from the bounding set needs CAP_SETPCAP."""
        if sys is None:
            from .syscalls.linux import LINUX as sys
        for cap in sorted(self.all - self.bounding):
            sys.capbset_drop(cap)

    def apply(self, sys: Any) -> None:
        """After changing user (with keepcaps set): make the sets exactly what was asked."""
        sys.capset(_mask(self.effective & self.permitted), _mask(self.permitted),
                   _mask(self.inheritable))
        sys.ambient_clear()
        for cap in sorted(self.ambient & self.permitted & self.inheritable):
            sys.ambient_raise(cap)


def _mask(caps: set[int]) -> int:
    return sum(1 << cap for cap in caps)
