"""The one client of the OCI runtime's command line (pyruntime, runc, or any runc-compatible binary).

Every verb of dockee-shim that touches a container's processes goes through here; nothing
imports the runtime's code. Failures become one-line RuntimeFailure errors carrying the
runtime's own last message.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import threading
from typing import Any

from pyruntime.dockee.errors import DockeeError


class RuntimeFailure(DockeeError):
    """The runtime refused or failed; the message is its own last line."""


def last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    if not lines:
        return ""
    line = lines[-1]
    # runc's logrus format: time=... level=error msg="..."
    if 'msg="' in line:
        line = line.split('msg="', 1)[1].rsplit('"', 1)[0].replace('\\"', '"')
    return line


def wait_blocking(proc: subprocess.Popen[Any], timeout: float) -> int | None:
    """Popen.wait(timeout) polls with sleeps (up to 50 ms late); a blocking wait with a killer timer
    returns the moment the child exits. None when the timer had to kill it."""
    fired = threading.Event()

    def kill() -> None:
        fired.set()
        proc.kill()
    timer = threading.Timer(timeout, kill)
    timer.daemon = True
    timer.start()
    try:
        rc = proc.wait()
    finally:
        timer.cancel()
    return None if fired.is_set() else rc


class OCIRuntime:
    def __init__(self, binary: str, root: str | None = None) -> None:
        found = shutil.which(binary)
        if found is None:
            raise DockeeError(f"--runtime: {binary!r} not found")
        self.binary = os.path.abspath(found)
        self.root = root

    @property
    def global_args(self) -> list[str]:
        return ["--root", self.root] if self.root else []

    def argv(self, *args: str) -> list[str]:
        return [self.binary, *self.global_args, *args]

    def call(self, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        # output through files, not pipes: a runtime may leave children holding inherited fds
        with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
            proc = subprocess.Popen(self.argv(*args), stdin=subprocess.DEVNULL, stdout=out, stderr=err, text=True)
            rc = wait_blocking(proc, timeout)
            if rc is None:
                raise RuntimeFailure(f"runtime {args[0]}: timed out after {timeout:.0f}s")
            out.seek(0)
            err.seek(0)
            p = subprocess.CompletedProcess(proc.args, rc, out.read(), err.read())
        if check and p.returncode != 0:
            msg = last_line(p.stderr) or last_line(p.stdout) or f"exit status {p.returncode}"
            raise RuntimeFailure(f"runtime {args[0]}: {msg}")
        return p

    def state(self, cid: str) -> dict[str, Any] | None:
        """The runtime's view, or None when it does not know the container (e.g. after a reboot)."""
        p = self.call("state", cid, check=False, timeout=30)
        if p.returncode != 0:
            return None
        try:
            doc = json.loads(p.stdout)
        except ValueError:
            return None
        return doc if isinstance(doc, dict) else None

    def states(self) -> dict[str, dict[str, Any]] | None:
        """Every container this runtime knows under its root, in one call (None if it cannot say)."""
        p = self.call("list", "--format", "json", check=False, timeout=30)
        if p.returncode != 0:
            return None
        try:
            docs = json.loads(p.stdout or "null") or []
        except ValueError:
            return None
        if not isinstance(docs, list):
            return None
        return {d["id"]: d for d in docs if isinstance(d, dict) and "id" in d}

    def start(self, cid: str) -> None:
        self.call("start", cid)

    def kill(self, cid: str, signal: str = "TERM", all_processes: bool = False) -> None:
        self.call("kill", *(["--all"] if all_processes else []), cid, signal)

    def delete(self, cid: str, force: bool = False) -> bool:
        """Best effort: True when the runtime no longer knows the container."""
        p = self.call("delete", *(["--force"] if force else []), cid, check=False, timeout=60)
        return p.returncode == 0 or self.state(cid) is None

    def pause(self, cid: str) -> None:
        self.call("pause", cid)

    def resume(self, cid: str) -> None:
        self.call("resume", cid)

    def pids(self, cid: str) -> list[int]:
        p = self.call("ps", "--format", "json", cid)
        try:
            return [int(x) for x in json.loads(p.stdout or "[]")]
        except (ValueError, TypeError):
            raise RuntimeFailure(f"runtime ps: unexpected output {p.stdout[:80]!r}") from None

    def stats(self, cid: str) -> dict[str, Any]:
        p = self.call("events", "--stats", cid, timeout=30)
        for line in p.stdout.splitlines():
            try:
                doc = json.loads(line)
            except ValueError:
                continue
            if isinstance(doc, dict) and doc.get("type") == "stats":
                return doc.get("data") or {}
        raise RuntimeFailure("runtime events --stats: no stats in its output")

    def exec_argv(self, cid: str, args: list[str], *, tty: bool = False, detach: bool = False,
                  env: list[str] | None = None, cwd: str | None = None, user: str | None = None) -> list[str]:
        opts: list[str] = []
        if tty:
            opts.append("--tty")
        if detach:
            opts.append("--detach")
        for e in env or []:
            opts += ["--env", e]
        if cwd:
            opts += ["--cwd", cwd]
        if user:
            opts += ["--user", user]
        return self.argv("exec", *opts, cid, *args)
