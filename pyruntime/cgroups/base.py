"""The Manager interface every cgroup mode implements, and what v1 and v2 share.

A Manager is built from facts alone (mode, mount points, directories) so its
`record()` can be saved in the container state *before* anything is created;
`manager_from_record` rebuilds it later for delete/kill/pause/events.

Resources become a plan: a list of `Write`s computed by the pure
`v1.plan`/`v2.plan` from parsed resources and a few `Facts` read from the
cgroup beforehand. `run_writes` executes a plan.
"""

from __future__ import annotations

import errno
import os

from pyruntime.cgroups.fs import REAL, CgroupFS, read_procs, write_checked, write_failed
from pyruntime.errors import CgroupError
from pyruntime.record import dataclass

# Every verb imports this package: the modules below (typing, abc, signal's enums) cost
# milliseconds at import and matter only to type checkers.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from typing import Any

    from pyruntime.cgroups.resources import Resources

RECORD_VERSION = 1
#: signal.SIGKILL, the same number on every Linux architecture; `signal` builds enums.
SIGKILL = 9


def parse_resources(raw: Mapping[str, Any]) -> Resources:
    # Imported on use: resources.py builds a dozen dataclasses (~8 ms), and
    # the verbs that never set limits (state, kill, delete) need none of them.
    from pyruntime.cgroups.resources import parse

    return parse(raw)


class Write:
    """One control-file write of a plan. A plain slotted class: a create builds a dozen,
    and the generic record __init__ costs more than the write itself."""

    __slots__ = ("controller", "file", "value", "field", "retry_later")

    def __init__(
        self, controller: str, file: str, value: str, field: str = "", retry_later: bool = False
    ) -> None:
        self.controller = controller
        self.file = file
        self.value = value
        #: The linux.resources field this serves, for error messages.
        self.field = field
        #: The kernel may refuse (EINVAL) until a later write in the same plan lands,
        #: e.g. cpu.max.burst above the current quota; then it is retried once at the end.
        self.retry_later = retry_later

    def _key(self) -> tuple[str, str, str, str, bool]:
        return (self.controller, self.file, self.value, self.field, self.retry_later)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Write) and self._key() == other._key()

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return "Write(%r, %r, %r, %r, %r)" % self._key()


@dataclass(frozen=True)
class Facts:
    """What the plan functions need to know about the live cgroup."""

    #: Controllers usable here: mounted (v1) or in cgroup.controllers (v2).
    controllers: frozenset[str]
    #: Control files present in the container's directories; None = assume all.
    files: frozenset[str] | None = None
    #: v1: current memory.memsw.limit_in_bytes, which orders the memory writes.
    memsw_limit: int | None = None
    #: Current memory usage, for memory.checkBeforeUpdate.
    memory_usage: int | None = None
    #: v1: current devices.list lines; device writes are skipped when unchanged.
    devices_list: tuple[str, ...] | None = None

    def has_file(self, name: str) -> bool:
        return self.files is None or name in self.files


def run_writes(fs: CgroupFS, writes: list[Write], dir_for: Callable[[str], str]) -> None:
    deferred: list[Write] = []
    for w in writes:
        path = os.path.join(dir_for(w.controller), w.file)
        if w.retry_later:
            try:
                fs.write(path, w.value)
            except OSError as e:
                if e.errno != errno.EINVAL:
                    raise write_failed(path, w.value, w.field, e) from e
                deferred.append(w)
            continue
        write_checked(fs, path, w.value, w.field)
    for w in deferred:
        write_checked(fs, os.path.join(dir_for(w.controller), w.file), w.value, w.field)


def check_pid(pid: int) -> None:
    # 0 would move the writer itself: the runtime would land in the container.
    if pid == 0 or pid < -1:
        raise CgroupError(f"cannot move pid {pid} into a cgroup")


def _below(d: str, mount: str) -> bool:
    """`d` strictly below `mount`, both already normalised."""
    return d.startswith(mount.rstrip("/") + "/") and d != mount


class Manager:
    """One container's cgroups. Directories are fixed at construction.

    Paths are absolute `str`s (os.PathLike accepted); the modes implement the
    methods that raise NotImplementedError here (no abc: it costs import time).
    """

    def __init__(
        self,
        container_id: str,
        mode: str,
        paths: Mapping[str, str | os.PathLike[str]],
        mounts: Mapping[str, str | os.PathLike[str]],
        fs: CgroupFS = REAL,
    ) -> None:
        norm = os.path.normpath
        own = {key: norm(os.fspath(d)) for key, d in paths.items()}
        where: dict[str, str] = {}
        for key, d in own.items():
            mount = mounts.get(key)
            if mount is None or not _below(d, norm(os.fspath(mount))):
                # A record pointing at a hierarchy root (or outside it, `..` included)
                # must never reach destroy(), which removes whole sub-trees.
                raise CgroupError(f"cgroup {key} directory {d} is not below its mount {mount}")
            where[key] = norm(os.fspath(mount))
        self.container_id = container_id
        self.mode = mode
        self._paths = own
        self._mounts = where
        self.fs = fs

    def record(self) -> dict[str, Any]:
        """JSON-able facts to rebuild this manager; computed, never created."""
        return {
            "version": RECORD_VERSION,
            "id": self.container_id,
            "mode": self.mode,
            "paths": dict(sorted(self._paths.items())),
            "mounts": dict(sorted(self._mounts.items())),
        }

    def paths(self) -> dict[str, str]:
        return dict(sorted(self._paths.items()))

    def _unique_dirs(self) -> list[tuple[str, str]]:
        """(key, dir) once per directory: co-mounted controllers share one."""
        seen: set[str] = set()
        out = []
        for key in sorted(self._paths):
            d = self._paths[key]
            if d not in seen:
                seen.add(d)
                out.append((key, d))
        return out

    def pids(self) -> list[int]:
        """Every pid in the container's cgroups and their sub-cgroups, in any hierarchy."""
        found: set[int] = set()
        for _, d in self._unique_dirs():
            found.update(read_procs(self.fs, d))
        return sorted(found)

    def exists(self) -> bool:
        return any(self.fs.is_dir(d) for _, d in self._unique_dirs())

    def _signal_each(self, sig: int) -> None:
        for pid in self.pids():
            try:
                self.fs.kill(pid, sig)
            except ProcessLookupError:
                pass
            except OSError as e:
                raise CgroupError(f"kill pid {pid}: {e.strerror or e}") from e

    def _signal_all_frozen(self, sig: int) -> None:
        """Freeze, signal every pid, thaw: nothing can fork past the loop meanwhile.

        A cgroup that was already paused stays paused unless the signal is
        SIGKILL, which needs the tasks thawed to die.
        """
        try:
            was_frozen = self.is_frozen()
            self.freeze()
            frozen = True
        except CgroupError:
            # No usable freezer: signal anyway and, for SIGKILL, sweep until
            # nothing new appears, catching children forked meanwhile.
            was_frozen, frozen = False, False
        self._signal_each(sig)
        if not frozen and sig == SIGKILL:
            for _ in range(10):
                if not self.pids():
                    break
                self._signal_each(sig)
        if frozen and (sig == SIGKILL or not was_frozen):
            self.thaw()

    def apply(self, pid: int) -> None:
        """Create the directories (only in mounted hierarchies) and move `pid` in.

        Idempotent, so it also serves exec's join. pid -1 only creates.
        """
        raise NotImplementedError

    def set(self, resources: Mapping[str, Any]) -> None:
        """Write raw linux.resources JSON; used at create and on update."""
        raise NotImplementedError

    def check(self, resources: Mapping[str, Any]) -> None:
        """Raise CgroupError for resources this mode cannot apply; no side effects."""
        raise NotImplementedError

    def unenforced(self, resources: Mapping[str, Any]) -> list[str]:
        """Fields `set` accepts but cannot enforce here, for the CLI to warn about."""
        raise NotImplementedError

    def freeze(self) -> None:
        raise NotImplementedError

    def thaw(self) -> None:
        raise NotImplementedError

    def is_frozen(self) -> bool:
        raise NotImplementedError

    def kill_all(self, sig: int) -> None:
        raise NotImplementedError

    def stats(self) -> dict[str, Any]:
        """runc's `events --stats` event: {"type": "stats", "id": ..., "data": {...}}."""
        raise NotImplementedError

    def oom_kill_count(self) -> int:
        raise NotImplementedError

    def destroy(self) -> None:
        """Remove every directory, sub-cgroups first; missing ones are fine."""
        raise NotImplementedError
