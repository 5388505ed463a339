"""Runs OCI hooks: the state JSON on stdin, the hook's own env, its timeout."""

from __future__ import annotations

import json
import os
import select
import signal
import time
from collections.abc import Sequence
from typing import Any

from .errors import HookError
from .spec import Hook


def run_hook(hook: Hook, state: dict[str, Any], kind: str, index: int) -> None:
    where = f"hooks.{kind}[{index}]"
    payload = json.dumps(state).encode()
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
            os.execve(hook.path, argv, _env(hook.env))
        except BaseException:
            pass
        os._exit(127)
    os.close(in_r)
    os.close(out_w)
    try:
        _feed(in_w, payload)
        output, code = _wait(pid, out_r, hook.timeout, where)
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


def _feed(fd: int, payload: bytes) -> None:
    try:
        os.write(fd, payload)
    except BrokenPipeError:
        pass  # a hook that does not read its stdin is fine
    finally:
        os.close(fd)


def _wait(pid: int, out_fd: int, timeout: int | None, where: str) -> tuple[bytes, int]:
    deadline = time.monotonic() + timeout if timeout else None
    chunks: list[bytes] = []
    open_pipe = True
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if deadline is not None and time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            raise HookError(f"{where}: timed out after {timeout}s")
        if open_pipe:
            ready, _, _ = select.select([out_fd], [], [], 0.05)
            if ready:
                data = os.read(out_fd, 65536)
                if data:
                    chunks.append(data[-4096:])
                else:
                    open_pipe = False
        else:
            time.sleep(0.005)
    return b"".join(chunks), os.waitstatus_to_exitcode(status)


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
