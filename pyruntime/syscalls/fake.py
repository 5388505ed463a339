"""A recording stand-in for LinuxSyscalls, for unit tests that run without root."""

from __future__ import annotations

import errno
from typing import Any


class FakeSyscalls:
    """Records every call as (name, args); `fail[name] = errno` makes that call raise."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...]]] = []
        self.fail: dict[str, int] = {}
        self.fs_type = 0x9FA0

    def _record(self, name: str, *args: Any) -> None:
        self.calls.append((name, args))
        if name in self.fail:
            code = self.fail[name]
            raise OSError(code, f"{name}: {errno.errorcode.get(code, code)}")

    def names(self) -> list[str]:
        return [n for n, _ in self.calls]

    def unshare(self, flags: int) -> None:
        self._record("unshare", flags)

    def setns(self, fd: int, nstype: int = 0) -> None:
        self._record("setns", fd, nstype)

    def mount(self, source: str | None, target: str, fstype: str | None, flags: int = 0,
              data: str | None = None) -> None:
        self._record("mount", source, target, fstype, flags, data)

    def umount2(self, target: str, flags: int = 0) -> None:
        self._record("umount2", target, flags)

    def pivot_root(self, new_root: str, put_old: str) -> None:
        self._record("pivot_root", new_root, put_old)

    def sethostname(self, name: str) -> None:
        self._record("sethostname", name)

    def setdomainname(self, name: str) -> None:
        self._record("setdomainname", name)

    def prctl(self, option: int, a2: int = 0, a3: int = 0, a4: int = 0, a5: int = 0) -> int:
        self._record("prctl", option, a2, a3, a4, a5)
        return 0

    def personality(self, persona: int) -> None:
        self._record("personality", persona)

    def pidfd_open(self, pid: int) -> int:
        self._record("pidfd_open", pid)
        return -1

    def pidfd_send_signal(self, pidfd: int, sig: int) -> None:
        self._record("pidfd_send_signal", pidfd, sig)

    def join_session_keyring(self, name: str | None) -> None:
        self._record("join_session_keyring", name)

    def default_signal(self, sig: int) -> None:
        self._record("default_signal", sig)

    def capset(self, effective: int, permitted: int, inheritable: int) -> None:
        self._record("capset", effective, permitted, inheritable)

    def capbset_drop(self, cap: int) -> None:
        self._record("capbset_drop", cap)

    def ambient_raise(self, cap: int) -> None:
        self._record("ambient_raise", cap)

    def ambient_clear(self) -> None:
        self._record("ambient_clear")

    def preload(self) -> None:
        pass  # nothing to load

    def link_up(self, name: str) -> None:
        self._record("link_up", name)

    def fstatfs_type(self, fd: int) -> int:
        self._record("fstatfs_type", fd)
        return self.fs_type
