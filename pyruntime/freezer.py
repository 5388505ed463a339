"""pause and resume on the freezer paths that create recorded, with `os` alone.

The cgroups package (eight modules: layouts, plans, every mode's manager) is still a
millisecond or more of a `pause` that runc does in five; these are the same writes and
checks as the managers' freeze and thaw
(cgroups/v1.py, v2.py): v1's freezer.state, written again until it reads FROZEN (each
write retries the tasks that were busy in the kernel the last time), or cgroup2's
cgroup.freeze, after which cgroup.events says when every task has stopped.  A hybrid
host without a v1 freezer uses the unified directory, as V1Manager does.  exec joins the
container's cgroups through write_control too (runc's EnterPid: one write per directory).
"""

from __future__ import annotations

import errno
import os
import time

from .errors import CgroupError

TIMEOUT = 2.0  # as FREEZE_TIMEOUT in the managers

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any


def _target(record: dict[str, Any], verb: str) -> tuple[str, str]:
    """("v1", freezer dir) or ("v2", unified dir)."""
    paths = record.get("paths") or {}
    if paths.get("freezer"):
        return "v1", paths["freezer"]
    unified = paths.get("unified") or paths.get("")
    if unified:
        return "v2", unified
    raise CgroupError(f"cannot {verb}: the freezer controller is not mounted")


def write_control(path: str, value: str) -> None:
    """One write to a cgroup control file; failures as cgroups.fs.write_checked words them."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
        try:
            os.write(fd, value.encode())
        finally:
            os.close(fd)
    except OSError as e:
        reason = e.strerror or str(e)
        if e.errno == errno.ENOENT:
            reason = "no such control file (controller missing or not supported by this kernel)"
        raise CgroupError(f"{path}: cannot write {value!r}: {reason}") from e


def _read(path: str) -> str:
    # os.read, not open(): no fstat, ioctl, lseek and TextIOWrapper per poll; the
    # control files read here (freezer.state, cgroup.events) are a few bytes.
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            return os.read(fd, 4096).decode("ascii", "replace")
        finally:
            os.close(fd)
    except OSError as e:
        raise CgroupError(f"{path}: cannot read: {e.strerror or e}") from e


def _poll(done: Callable[[], bool]) -> bool:
    """done() with a growing back-off until it holds or TIMEOUT passes (as cgroups.fs.poll)."""
    deadline = time.monotonic() + TIMEOUT
    delay = 0.001
    while True:
        if done():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(delay)
        delay = min(delay * 2, 0.05)


def freeze(record: dict[str, Any]) -> None:
    kind, d = _target(record, "freeze")
    if kind == "v1":
        state = os.path.join(d, "freezer.state")

        def frozen() -> bool:
            write_control(state, "FROZEN")
            return _read(state).strip() == "FROZEN"

        if not _poll(frozen):
            write_control(state, "THAWED")
            raise CgroupError(f"{state}: did not reach FROZEN within {TIMEOUT}s")
        return
    control = os.path.join(d, "cgroup.freeze")
    if not os.path.exists(control):
        raise CgroupError(f"{d}: cannot freeze: no cgroup.freeze (kernel older than 5.2?)")
    write_control(control, "1")
    events = os.path.join(d, "cgroup.events")
    if not _poll(lambda: "frozen 1" in _read(events).splitlines()):
        write_control(control, "0")
        raise CgroupError(f"{d}: did not freeze within {TIMEOUT}s")


def thaw(record: dict[str, Any]) -> None:
    kind, d = _target(record, "thaw")
    if kind == "v1":
        write_control(os.path.join(d, "freezer.state"), "THAWED")
    else:
        write_control(os.path.join(d, "cgroup.freeze"), "0")
