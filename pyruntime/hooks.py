"""Runs OCI hooks: the state JSON on stdin, the hook's own env, its timeout."""

from __future__ import annotations

import _signal  # signal.py would bring enum: the numbers and signal() are all in _signal
import os
import select
import time

from .errors import HookError
from .fastjson import dumps

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any

    from .spec import Hook


def run_hook(hook: Hook, state: dict[str, Any], kind: str, index: int) -> None:
    where = f"hooks.{kind}[{index}]"
    payload = dumps(state, separators=(", ", ": ")).encode()  # json.dumps(state)
    argv = list(hook.args) or [hook.path]
    in_r, in_w = os.pipe()
    out_r, out_w = os.pipe()
    try:
        pid = os.fork()
    except OSError as e:
        raise HookError(f"{where}: fork: {e.strerror}")
    if pid == 0:  # the hook process
        try:
            os.dup2(in_r, 0)
            os.dup2(out_w, 1)
            os.dup2(out_w, 2)
            os.closerange(3, 65536)
            for sig in range(1, _signal.NSIG):  # CPython's ignored SIGPIPE/SIGXFSZ must not leak
                if sig not in (_signal.SIGKILL, _signal.SIGSTOP):
                    try:
                        _signal.signal(sig, _signal.SIG_DFL)
                    except (OSError, ValueError):
                        pass
            os.execve(hook.path, argv, _env(hook.env))
        except BaseException:
            pass
        os._exit(127)
    os.close(in_r)
    os.close(out_w)
    try:
        output, code = _converse(pid, in_w, payload, out_r, hook.timeout, where)
    finally:
        os.close(out_r)
    if code != 0:
        detail = output.decode(errors="replace").strip().splitlines()
        reason = f"exit status {code}" if code > 0 else f"killed by signal {-code}"
        if code == 127 and not os.path.exists(hook.path):
            reason = f"{hook.path}: no such file or directory"
        tail = f": {detail[-1]}" if detail else ""
        raise HookError(f"{where}: {reason}{tail}")


def _env(env: Sequence[str]) -> dict[str, str]:
    out = {}
    for item in env:
        k, _, v = item.partition("=")
        out[k] = v
    return out


def _converse(pid: int, in_fd: int, payload: bytes, out_fd: int, timeout: int | None,
              where: str) -> tuple[bytes, int]:
    """Feed the state, collect the output, reap the hook; all under the hook's timeout.

    stdin is written as the hook reads it (a large state and a hook that writes before it
    reads must not deadlock), and output still in the pipe when the hook exits is drained.
    """
    deadline = time.monotonic() + timeout if timeout else None
    os.set_blocking(in_fd, False)
    tail = b""
    pending = memoryview(payload)
    reading = True
    status = None
    try:
        while status is None or reading:
            if status is None:
                done, st = os.waitpid(pid, os.WNOHANG)
                if done:
                    status = st
            if deadline is not None and time.monotonic() > deadline and status is None:
                os.kill(pid, _signal.SIGKILL)
                os.waitpid(pid, 0)
                raise HookError(f"{where}: timed out after {timeout}s")
            rlist = [out_fd] if reading else []
            wlist = [in_fd] if in_fd >= 0 and status is None else []
            r, w, _ = select.select(rlist, wlist, [], 0.05 if status is None else 0)
            if w:
                try:
                    pending = pending[os.write(in_fd, pending):]
                except BrokenPipeError:
                    pending = pending[:0]  # a hook that does not read its stdin is fine
                except BlockingIOError:
                    pass
                if not pending:
                    os.close(in_fd)
                    in_fd = -1
            if r:
                data = os.read(out_fd, 65536)
                if data:
                    tail = (tail + data)[-4096:]
                else:
                    reading = False
            elif status is not None:
                reading = False  # exited, and the pipe is empty
    finally:
        if in_fd >= 0:
            os.close(in_fd)
    assert status is not None
    return tail, os.waitstatus_to_exitcode(status)


def run_hooks(hooks: Sequence[Hook], state: dict[str, Any], kind: str) -> None:
    for i, hook in enumerate(hooks):
        run_hook(hook, state, kind, i)


def run_hooks_warn(hooks: Sequence[Hook], state: dict[str, Any], kind: str, warn: Any) -> None:
    """poststart / poststop: a failure is a warning and the remaining hooks still run."""
    for i, hook in enumerate(hooks):
        try:
            run_hook(hook, state, kind, i)
        except HookError as e:
            warn(str(e))
