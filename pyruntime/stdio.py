"""The stdio of a foreground `run` or `exec` without a terminal: pipes, as runc gives.

The caller's own descriptors must not reach the container: inside, /proc/self/fd/0..2
would name the caller's files, which the container could reopen by path (write the file
the caller redirected from, chmod the caller's log file) also after the verb returned,
and a terminal on stdin would keep feeding a background process what the user types.
A pipe is only a pipe.  The runtime copies between the pipes and its own stdio, and
returns only once the container has closed its ends, so that no output is lost.  With
--detach nobody stays to copy: the caller's descriptors pass as they are (so does
`create`, whose caller, conmon or containerd's shim, hands over pipes of its own).
"""

from __future__ import annotations

import os
import threading

_CHUNK = 1 << 16


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
        self._ours: list[int] | None = [in_w, out_r, err_r]
        self._drains: list[threading.Thread] = []

    def close_child_ends(self) -> None:
        """Once the container's setup process holds its copies: EOF must come from it alone."""
        if self.child is not None:
            for fd in self.child:
                os.close(fd)
            self.child = None

    def start(self) -> None:
        """Copy our stdin in, and the container's stdout and stderr out, in threads (the
        main thread reaps and forwards signals).  The threads own our ends from here."""
        self.close_child_ends()
        assert self._ours is not None
        in_w, out_r, err_r = self._ours
        self._ours = None
        threading.Thread(target=_feed, args=(0, in_w), daemon=True).start()
        for src, dst in ((out_r, 1), (err_r, 2)):
            t = threading.Thread(target=_drain, args=(src, dst), daemon=True)
            t.start()
            self._drains.append(t)

    def wait(self) -> None:
        """Until every holder in the container (init, and whatever it left running) has
        closed stdout and stderr.  stdin is not waited for: it may never end."""
        for t in self._drains:
            t.join()

    def close(self) -> None:
        """For a verb that failed before `start`."""
        self.close_child_ends()
        if self._ours is not None:
            for fd in self._ours:
                os.close(fd)
            self._ours = None


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _feed(src: int, dst: int) -> None:
    """Our stdin into the container's; its EOF (or the container closing its end) closes
    the pipe, as `io.Copy` then `Close` does in runc."""
    try:
        while True:
            data = os.read(src, _CHUNK)
            if not data:
                break
            _write_all(dst, data)
    except OSError:
        pass  # our stdin is closed or unreadable, or the container stopped reading
    finally:
        os.close(dst)


def _drain(src: int, dst: int) -> None:
    """The container's output to ours until EOF.  If ours fails (a closed pipe), stop and
    close the read end: the container then gets EPIPE, as it would writing to ours."""
    try:
        while True:
            data = os.read(src, _CHUNK)
            if not data:
                break
            _write_all(dst, data)
    except OSError:
        pass
    finally:
        os.close(src)
