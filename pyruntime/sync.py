"""Messages between `pyruntime create` (parent), the stage-1 child and the container's init.

Transport: a SOCK_SEQPACKET socketpair, one JSON object per packet, fds by SCM_RIGHTS.

    parent                         stage-1 child                   init
    fork ─────────────────────────►
    apply cgroups to child pid
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
      ◄──────────────────────────────────────────────────────────── HOOKS
    prestart + createRuntime hooks
    HOOKS_DONE {state} ────────────────────────────────────────────►
                                                                   createContainer hooks,
                                                                   pivot_root, console,
                                                                   process setup
      ◄──────────────────────────────────────────────────────────── CONSOLE [fd] (terminal)
      ◄──────────────────────────────────────────────────────────── READY
    save state, exit                                               block on exec.fifo

Any side may send ERROR {msg} instead; the receiver raises it.
"""

from __future__ import annotations

import array
import json
import socket
from typing import Any

from .errors import ChildError

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
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    @classmethod
    def pair(cls) -> tuple[Channel, Channel]:
        a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        return cls(a), cls(b)

    def fileno(self) -> int:
        return self.sock.fileno()

    def close(self) -> None:
        self.sock.close()

    def send(self, kind: str, fds: list[int] | None = None, **data: Any) -> None:
        payload = json.dumps({"type": kind, **data}).encode()
        if fds:
            self.sock.sendmsg([payload], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))])
        else:
            self.sock.send(payload)

    def error(self, msg: str) -> None:
        self.send(ERROR, msg=msg)

    def recv(self) -> tuple[dict[str, Any], list[int]]:
        msg, fds, flags, _addr = socket.recv_fds(self.sock, _MAX, _MAX_FDS)
        if not msg:
            raise ChildError(PEER_GONE)
        if flags & (socket.MSG_TRUNC | socket.MSG_CTRUNC):
            for fd in fds:
                _close(fd)
            raise ChildError("sync: message or its fds truncated")
        doc = json.loads(msg)
        if doc.get("type") == ERROR:
            for fd in fds:
                _close(fd)
            raise ChildError(doc.get("msg", "unknown error"))
        return doc, list(fds)

    def wait_for(self, expected: str) -> dict[str, Any]:
        doc, fds = self.recv()
        if doc["type"] != expected:
            for fd in fds:
                _close(fd)
            raise UnexpectedMessage(expected, doc["type"])
        doc["_fds"] = fds
        return doc


def _close(fd: int) -> None:
    import os

    try:
        os.close(fd)
    except OSError:
        pass
