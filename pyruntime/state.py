"""What pyruntime remembers about a container, and the status derived from facts.

`<root>/<id>/state.json` holds facts only (pid, pid start time, bundle, cgroup paths,
the config).  The status is computed each time: a dead pid, or a pid with another start
time, is `stopped`; an existing exec fifo is `created`; a frozen cgroup is `paused`.
"""

from __future__ import annotations

import os

from .errors import ContainerNotExist, CorruptState, RuntimeErr
from .record import asdict, dataclass, field

TYPE_CHECKING = False  # typing and pathlib stay unimported on the `state` path
if TYPE_CHECKING:
    from typing import Any

STATE_FILE = "state.json"
FIFO = "exec.fifo"

CREATING, CREATED, RUNNING, PAUSED, STOPPED = "creating", "created", "running", "paused", "stopped"


def atomic_write(path: str | os.PathLike[str], data: bytes, mode: int = 0o600) -> None:
    """All of `data` at `path` or nothing, also in a directory that someone else can write
    (a --pid-file beside a container's files): the temp name is unpredictable and created
    O_EXCL|O_NOFOLLOW, so a planted name or symlink is never opened, and both names are
    resolved in the one directory held open, so the rename replaces a name, never a target."""
    parent, name = os.path.split(os.path.abspath(path))
    dfd = os.open(parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        tmp = f".{name}.{os.urandom(6).hex()}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                     mode, dir_fd=dfd)
        try:
            # No fsync, as in runc: the rename makes the write atomic for any reader and
            # against a runtime killed midway; state under /run does not outlive a reboot,
            # and a flush to disk cost a millisecond of each create where /run is no tmpfs.
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view):]
            finally:
                os.close(fd)
            os.replace(tmp, name, src_dir_fd=dfd, dst_dir_fd=dfd)
        except BaseException:
            try:
                os.unlink(tmp, dir_fd=dfd)
            except OSError:
                pass
            raise
    finally:
        os.close(dfd)


def atomic_write_json(path: str | os.PathLike[str], doc: Any) -> None:
    from .fastjson import dumps

    atomic_write(path, dumps(doc).encode())


def validate_id(cid: str) -> None:
    ok = cid and cid not in (".", "..") and len(cid) <= 1024
    if not ok or any(not (c.isascii() and (c.isalnum() or c in "_+-.")) for c in cid):
        raise RuntimeErr(f"invalid container id: {cid!r}")


@dataclass
class State:
    id: str
    bundle: str
    rootfs: str
    created: str
    pid: int = 0
    pid_start: int = 0
    annotations: dict[str, str] = field(default_factory=dict)
    cgroup: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    owner: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> State:
        known = set(cls.__record_fields__)  # type: ignore[attr-defined]
        return cls(**{k: v for k, v in doc.items() if k in known})


class Store:
    """The --root directory: one sub-directory per container."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self._root = os.fspath(root)

    @property
    def root(self) -> str:
        return self._root

    def dir(self, cid: str) -> str:
        """The container's state directory (plain strings: pathlib is a dozen milliseconds
        of imports on the hot verbs)."""
        validate_id(cid)
        return os.path.join(self._root, cid)

    path = dir

    def load(self, cid: str) -> State:
        validate_id(cid)
        d = os.path.join(self._root, cid)
        if os.geteuid() != 0:
            _check_owner(d, cid)
        try:
            with open(os.path.join(d, STATE_FILE), "rb") as f:
                raw = f.read()
        except (FileNotFoundError, NotADirectoryError):
            if os.path.isdir(d):
                # a create that was killed before it saved anything: only delete --force applies
                return State(id=cid, bundle="", rootfs="", created="")
            raise ContainerNotExist(cid)
        from .fastjson import loads

        try:
            return State.from_json(loads(raw))
        except (ValueError, TypeError) as e:
            raise CorruptState(f"{os.path.join(d, STATE_FILE)}: corrupt state ({e}); "
                               "`delete --force` removes it")

    def save(self, st: State) -> None:
        atomic_write_json(os.path.join(self.dir(st.id), STATE_FILE), st.to_json())

    def ids(self) -> list[str]:
        try:
            return sorted(e.name for e in os.scandir(self._root)
                          if e.is_dir() and not e.name.startswith("."))
        except FileNotFoundError:
            return []


class Reader:
    """The part of container.Runtime that `list`, `pause` and `resume` use: load a
    container's state and its status."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.store = Store(root)

    def load(self, cid: str) -> tuple[State, str]:
        st = self.store.load(cid)
        return st, status(st, self.store.path(cid))


def _check_owner(d: str, cid: str) -> None:
    """A non-root caller acts only on its own containers, whatever --root it shares with
    other users (their state dirs are 0700 anyway: this says so in one line)."""
    try:
        owner = os.stat(d).st_uid
    except OSError:
        return  # missing: "does not exist" below
    if owner != os.geteuid():
        raise RuntimeErr(f"container {cid}: permission denied (it belongs to another user)")


def remove_state_dir(path: str | os.PathLike[str]) -> None:
    """The state dir is flat (state.json, exec.fifo, temp files): no shutil needed.  A
    create racing us may still add a file: list again until the directory is gone."""
    for attempt in range(100):
        try:
            names = os.listdir(path)
        except FileNotFoundError:
            return
        # the mark of a `delete --force` goes last: a racing create reads it, or finds its
        # state.json gone
        names.sort(key=lambda n: n == DELETING_MARK)
        for name in names:
            try:
                os.unlink(os.path.join(path, name))
            except IsADirectoryError:
                import shutil

                shutil.rmtree(os.path.join(path, name), ignore_errors=True)
            except FileNotFoundError:
                pass
        try:
            os.rmdir(path)
            return
        except FileNotFoundError:
            return
        except OSError as e:
            if e.errno != 39 or attempt == 99:  # ENOTEMPTY: a file came in since the listing
                raise RuntimeErr(f"removing the state directory {path}: {e.strerror}") from e
        import time

        time.sleep(0.001)


# why a create failed: its state dir was removed, or replaced by another create's
GONE, REPLACED, DELETING = "gone", "replaced", "deleting"
DELETING_MARK = ".deleting"


def mark_deleting(path: str) -> None:
    """`delete --force` of a container still being created leaves this for its create."""
    try:
        os.close(os.open(os.path.join(path, DELETING_MARK),
                         os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600))
    except OSError:
        pass  # already gone: create sees that too


def deleted_under_us(path: str, ino: int, saved: bool) -> str:
    """'' while the state dir made by a create (inode `ino`) is still its own and no
    delete has touched it; otherwise what happened.  `saved`: the create wrote its
    state.json once, so a missing one was deleted."""
    try:
        if os.stat(path).st_ino != ino:
            return REPLACED
    except FileNotFoundError:
        return GONE
    except OSError:
        return ""
    if os.path.lexists(os.path.join(path, DELETING_MARK)):
        return DELETING
    if saved and not os.path.lexists(os.path.join(path, STATE_FILE)):
        return DELETING
    return ""


def proc_start_time(pid: int) -> int | None:
    """Field 22 of /proc/<pid>/stat, or None when the pid is gone or a zombie."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    rest = stat[stat.rindex(b")") + 2:].split()
    if rest[0] in (b"Z", b"X"):
        return None
    return int(rest[19])


def is_alive(st: State) -> bool:
    return st.pid > 0 and proc_start_time(st.pid) == st.pid_start


def status(st: State, state_dir: str | os.PathLike[str]) -> str:
    if st.pid <= 0:
        return CREATING  # init not reported yet, or a create killed before it was
    if not is_alive(st):
        return STOPPED
    # frozen first: a created container can be paused too (runc reports it so)
    if st.cgroup and frozen(st.cgroup):
        return PAUSED
    if os.path.exists(os.path.join(state_dir, FIFO)):
        return CREATED
    return RUNNING


def frozen(record: dict[str, Any]) -> bool:
    """The freezer's verdict, read straight from the recorded paths: `state` is the hottest
    verb, and the cgroups package costs more to import than this whole check."""
    paths = record.get("paths") or {}
    try:
        if "freezer" in paths:
            with open(os.path.join(paths["freezer"], "freezer.state")) as f:
                return f.read().strip() == "FROZEN"
        unified = paths.get("unified") or paths.get("")
        if unified:
            with open(os.path.join(unified, "cgroup.events")) as f:
                return "frozen 1" in f.read().splitlines()
    except OSError:
        pass
    return False


def oci_state(st: State, stat: str) -> dict[str, Any]:
    """The runtime-spec state document (what `state` prints and hooks read on stdin)."""
    from . import OCI_VERSION

    # runc's key order: callers (and runc's own tests) match the serialised text
    return {
        "ociVersion": OCI_VERSION,
        "id": st.id,
        "pid": st.pid if stat != STOPPED else 0,
        "status": stat,
        "bundle": st.bundle,
        "rootfs": st.rootfs,
        "created": st.created,
        "owner": st.owner,
        "annotations": st.annotations,
    }
