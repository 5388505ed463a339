"""`run`: create + start; in the foreground, wait for init and exit with its status.

Like runc, the foreground runtime makes itself a child subreaper before creating, so the
container's init (a grandchild) is re-parented to it and can be waited for, and it
forwards the signals it receives to init.  Without a terminal, the container's stdio is
pipes that the runtime copies (stdio.py), never the caller's own descriptors.
"""

from __future__ import annotations

# _signal, not signal (enums), and no contextlib or typing: `run` is a hot verb
import _signal as signal
import os

from . import trace
from .errors import RuntimeErr
from .state import is_alive
from .syscalls.linux import PR_SET_CHILD_SUBREAPER

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1,
             signal.SIGUSR2, signal.SIGWINCH, signal.SIGCONT, signal.SIGTSTP)


def run_container(rt: Any, cid: str, opts: Any, detach: bool, keep: bool) -> int:
    if detach:
        rt.create(cid, opts)
        _start_or_destroy(rt, cid)
        return 0
    rt.sys.prctl(PR_SET_CHILD_SUBREAPER, 1)
    opts.keep_console = True
    from .stdio import Pipes

    pipes = Pipes()  # (with a terminal, init puts the pty over them and they go unused)
    opts.stdio = pipes.child
    try:
        st, master = rt.create(cid, opts)
    except BaseException:
        pipes.close()
        raise
    copying = not (st.config.get("process") or {}).get("terminal")
    try:
        if not copying:
            pipes.close()
        with forwarding_signals(st.pid):
            _start_or_destroy(rt, cid)
            if copying:
                pipes.copy_until_exit(st.pid)
            code = attend(st.pid, master, lambda: is_alive(st))
            trace.mark("container")
            return code
    finally:
        # also when the terminal proxy or our own stdout fails: a foreground container
        # does not outlive its `run`
        if not keep:
            try:
                rt.delete(cid, force=True)
            except RuntimeErr as e:
                rt.warn(str(e))
        if copying:
            pipes.drain()  # as runc: the container is gone, its last output still to copy
        pipes.close()


class forwarding_signals:  # noqa: N801 (used as `with forwarding_signals(pid):`)
    """While in the foreground, the signals we get are the container process's."""

    def __init__(self, pid: int) -> None:
        self.pid = pid

    def _forward(self, signum: int, _frame: Any) -> None:
        try:
            os.kill(self.pid, signum)
        except ProcessLookupError:
            pass

    def __enter__(self) -> None:
        for sig in FORWARDED:
            signal.signal(sig, self._forward)

    def __exit__(self, *_exc: object) -> None:
        for sig in FORWARDED:
            signal.signal(sig, signal.SIG_DFL)


def attend(pid: int, master: int | None, alive: Callable[[], bool]) -> int:
    """Proxy the pty (if we hold its master), then reap until `pid` exits; its status."""
    if master is not None:
        from .console import proxy

        proxy(master, alive)
        os.close(master)
    return wait_child(pid)


def _start_or_destroy(rt: Any, cid: str) -> None:
    try:
        rt.start(cid)
    except BaseException:
        try:
            rt.delete(cid, force=True)
        except RuntimeErr:
            pass
        raise


def wait_child(pid: int) -> int:
    """Reap children until `pid` exits; 128+N when it died of signal N (as a shell reports)."""
    while True:
        try:
            done, status = os.waitpid(-1, 0)
        except InterruptedError:
            continue
        except ChildProcessError:
            return 255
        if done == pid:
            if os.WIFSIGNALED(status):
                return 128 + os.WTERMSIG(status)
            return os.WEXITSTATUS(status)
