"""The stdio of a foreground `run` or `exec` without a terminal: pipes, as runc gives.

The caller's own descriptors must not reach the container: inside, /proc/self/fd/0..2
would name the caller's files, which the container could reopen by path (write the file
the caller redirected from, chmod the caller's log file) also after the verb returned,
and a terminal on stdin would keep feeding a background process what the user types.
A pipe is only a pipe.  The runtime copies between the pipes and its own stdio, and
returns only once the container has closed its ends, so that no output is lost.  With
--detach nobody stays to copy: the caller's descriptors pass as they are (so does
`create`, whose caller, conmon or containerd's shim, hands over pipes of its own).

One poll loop in the main thread does the copying (no threads: `run` stays cheap, and
the signal handlers that forward to the container run between polls).
"""

from __future__ import annotations

import os
import select

_CHUNK = 1 << 16
_IN = select.POLLIN | select.POLLHUP | select.POLLERR | select.POLLNVAL


class Pipes:
    """Three pipes; `child` are the ends the container's process gets as 0, 1 and 2."""

    def __init__(self) -> None:
        ends: list[int] = []
        try:
            for _ in range(3):
                ends.extend(os.pipe2(os.O_CLOEXEC))
        except OSError:
            for fd in ends:
                os.close(fd)
            raise
        in_r, in_w, out_r, out_w, err_r, err_w = ends
        self.child: tuple[int, int, int] | None = (in_r, out_w, err_w)
        self._stdin_w = in_w  # -1 once closed
        self._outputs = {out_r: 1, err_r: 2}  # our read end -> our fd; gone at EOF
        self._feeding = True  # our stdin still read
        self._pending = b""  # read from our stdin, not yet taken by the container

    def close_child_ends(self) -> None:
        """Once the container's setup process holds its copies: EOF must come from it alone."""
        if self.child is not None:
            for fd in self.child:
                os.close(fd)
            self.child = None

    def close(self) -> None:
        self.close_child_ends()
        self._close_stdin()
        for fd in self._outputs:
            os.close(fd)
        self._outputs = {}

    def copy_until_exit(self, pid: int) -> None:
        """Copy both ways until process `pid` (our child or re-parented to us) has exited;
        the caller reaps it."""
        self.close_child_ends()
        os.set_blocking(self._stdin_w, False)
        try:
            pidfd = os.pidfd_open(pid)
        except OSError:
            return  # gone already
        try:
            while self._round(pidfd):
                pass
        finally:
            os.close(pidfd)

    def drain(self) -> None:
        """Copy out until every holder in the container (the process, and whatever it left
        running) has closed stdout and stderr.  stdin is not waited for: it may never end."""
        self.close_child_ends()
        self._close_stdin()
        while self._outputs:
            self._round(-1)

    def _round(self, pidfd: int) -> bool:
        """One poll; False once `pidfd` reports the exit."""
        poller = select.poll()
        for fd in self._outputs:
            poller.register(fd, select.POLLIN)
        if self._stdin_w >= 0:
            if self._pending:
                poller.register(self._stdin_w, select.POLLOUT)
            elif self._feeding:
                poller.register(0, select.POLLIN)
        if pidfd >= 0:
            poller.register(pidfd, select.POLLIN)
        for fd, ev in poller.poll():
            if fd == pidfd:
                return False
            if fd in self._outputs and ev & _IN:
                self._copy_out(fd)
            elif fd == 0 and ev & _IN:
                self._read_stdin()
            elif fd == self._stdin_w:
                self._write_stdin(ev)
        return True

    def _copy_out(self, fd: int) -> None:
        try:
            data = os.read(fd, _CHUNK)
            if data:
                _write_all(self._outputs[fd], data)
                return
        except OSError:
            pass  # our side failed (a closed pipe): stop, so the container gets EPIPE
        os.close(fd)
        del self._outputs[fd]

    def _read_stdin(self) -> None:
        try:
            data = os.read(0, _CHUNK)
        except OSError:
            data = b""
        if data:
            self._pending = data
        else:
            self._feeding = False  # our stdin ended: so does the container's
            self._close_stdin()

    def _write_stdin(self, ev: int) -> None:
        try:
            if ev & select.POLLOUT:
                self._pending = self._pending[os.write(self._stdin_w, self._pending):]
                return
        except BlockingIOError:
            return
        except OSError:
            pass
        self._feeding = False  # the container closed its stdin
        self._close_stdin()

    def _close_stdin(self) -> None:
        if self._stdin_w >= 0:
            os.close(self._stdin_w)
            self._stdin_w = -1
        self._pending = b""


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
