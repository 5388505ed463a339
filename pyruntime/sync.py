"""Messages between `pyruntime create` (parent), the stage-1 child and the container's init.

Transport: a SOCK_SEQPACKET socketpair, one JSON object per packet, fds by SCM_RIGHTS.

    parent                         stage-1 child                   init
    fork ─────────────────────────►
                                   imports init, seccomp BPF,
    apply cgroups to child pid     capabilities, libc (meanwhile)
    GO ───────────────────────────►
                                   non-dumpable, join ns by path,
                                   unshare(user)
      ◄──────────────────────────── USERNS (only with a new user namespace)
    write uid_map / gid_map
    USERNS_DONE ──────────────────►
                                   unshare(other ns), time offsets
      ◄──────────────────────────── MOUNT_SOURCES (user ns + bind mounts)
    helper: setns(child's mnt ns),
    opens bind sources as host root
    SOURCES {paths} [fds] ────────►
                                   fork ───────────────────────────►
      ◄──────────────────────────── INIT_PID {pid}; then _exit(0)
    reap child, oomScoreAdj                                         mounts, devices
      ◄──────────────────────────────────────────────────────────── HOOKS (only with
    prestart + createRuntime hooks                                  hooks or a seccomp
    HOOKS_DONE {state} ────────────────────────────────────────────► agent: plan.py)
                                                                   createContainer hooks,
                                                                   pivot_root, console,
                                                                   process setup
      ◄──────────────────────────────────────────────────────────── CONSOLE [fd] (terminal)
      ◄──────────────────────────────────────────────────────────── READY
    save state, exit                                               block on exec.fifo

Without a user namespace (and not for exec) stage 1 does not wait for GO: it makes the
namespaces and forks init while the parent attaches it; the parent then attaches init too
(INIT_PID tells it the pid) and sends GO to init, which has built its rootfs meanwhile and
waits for GO before the hooks (before the rootfs with a new cgroup namespace, which it makes
after GO).  plan.namespaces_before_go() decides for both sides.

Any side may send ERROR {msg} instead; the receiver raises it.
"""

from __future__ import annotations

# _socket and fastjson, not socket.py and json: those bring selectors, enum, re and typing,
# milliseconds of every create and exec before the first message is sent (and not array:
# it imports collections.abc, 4 ms; fds travel as native ints packed by hand)
import _socket
import sys

from .errors import ChildError
from .fastjson import dumps, loads

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

GO = "go"
USERNS = "userns"
USERNS_DONE = "userns_done"
INIT_PID = "init_pid"
MOUNT_SOURCES = "mount_sources"
SOURCES = "sources"
HOOKS = "hooks"
HOOKS_DONE = "hooks_done"
CONSOLE = "console"
READY = "ready"
ERROR = "error"

# EOF on the channel: the other side exited (create's words: it is init that went away)
PEER_GONE = "container init exited unexpectedly"
_MAX = 1 << 20
_MAX_FDS = 253  # SCM_MAX_FD: one message can carry every bind source


class UnexpectedMessage(ChildError):
    def __init__(self, expected: str, received: str) -> None:
        super().__init__(f"sync: expected {expected}, received {received}")


class Channel:
    def __init__(self, sock: _socket.socket) -> None:
        self.sock = sock

    @classmethod
    def pair(cls) -> tuple[Channel, Channel]:
        a, b = _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_SEQPACKET)
        return cls(a), cls(b)

    def fileno(self) -> int:
        return self.sock.fileno()

    def close(self) -> None:
        self.sock.close()

    def send(self, kind: str, fds: list[int] | None = None, **data: Any) -> None:
        payload = dumps({"type": kind, **data}).encode()
        if fds:
            self.sock.sendmsg([payload], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, pack_fds(fds))])
        else:
            self.sock.send(payload)

    def error(self, msg: str) -> None:
        self.send(ERROR, msg=msg)

    def recv(self) -> tuple[dict[str, Any], list[int]]:
        try:
            msg, fds, flags = _recv_fds(self.sock)
        except ConnectionResetError:
            # the other side sent its last words (an ERROR) and exited with a message of
            # ours unread (GO to an init that failed first): the kernel reports that reset
            # before the words, which are still queued
            msg, fds, flags = _recv_after_reset(self.sock)
        if not msg:
            raise ChildError(PEER_GONE)
        if flags & (_socket.MSG_TRUNC | _socket.MSG_CTRUNC):
            for fd in fds:
                _close(fd)
            raise ChildError("sync: message or its fds truncated")
        doc = loads(msg)
        if doc.get("type") == ERROR:
            for fd in fds:
                _close(fd)
            raise ChildError(doc.get("msg", "unknown error"))
        return doc, list(fds)

    def pending_error(self) -> ChildError | None:
        """The ERROR the other side already sent, if any (without waiting): when our own
        step failed because the child had failed first, its words are the ones to show."""
        try:
            msg, fds, _flags = _recv_fds(self.sock, _socket.MSG_DONTWAIT)
        except ConnectionResetError:
            msg, fds, _flags = _recv_after_reset(self.sock)
        except OSError:
            return None
        for fd in fds:
            _close(fd)
        try:
            doc = loads(msg) if msg else {}
        except ValueError:
            return None
        return ChildError(doc.get("msg", "unknown error")) if doc.get("type") == ERROR else None

    def wait_for(self, expected: str) -> dict[str, Any]:
        doc, fds = self.recv()
        if doc["type"] != expected:
            for fd in fds:
                _close(fd)
            raise UnexpectedMessage(expected, doc["type"])
        doc["_fds"] = fds
        return doc


_INT = 4  # SCM_RIGHTS carries C ints


def pack_fds(fds: list[int]) -> bytes:
    return b"".join(fd.to_bytes(_INT, sys.byteorder, signed=True) for fd in fds)


def unpack_fds(data: bytes) -> list[int]:
    return [int.from_bytes(data[i:i + _INT], sys.byteorder, signed=True)
            for i in range(0, len(data) - _INT + 1, _INT)]


def _recv_fds(sock: _socket.socket, recv_flags: int = 0) -> tuple[bytes, list[int], int]:
    """One packet, the fds passed with it and the message flags (socket.recv_fds, on
    _socket); `recv_flags` are recvmsg's (MSG_DONTWAIT)."""
    msg, ancdata, flags, _addr = sock.recvmsg(_MAX, _socket.CMSG_LEN(_MAX_FDS * _INT),
                                              recv_flags)
    fds: list[int] = []
    for level, kind, data in ancdata:
        if level == _socket.SOL_SOCKET and kind == _socket.SCM_RIGHTS:
            fds.extend(unpack_fds(data))
    return msg, fds, flags


def _recv_after_reset(sock: _socket.socket) -> tuple[bytes, list[int], int]:
    """What the peer queued before it went (the reset itself is reported once)."""
    try:
        return _recv_fds(sock, _socket.MSG_DONTWAIT)
    except OSError:
        return b"", [], 0


def _close(fd: int) -> None:
    import os

    try:
        os.close(fd)
    except OSError:
        pass
