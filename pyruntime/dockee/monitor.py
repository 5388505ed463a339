"""Driving conmon, the monitor that outlives dockee-shim and watches one container.

conmon (Debian's 2.1.6, as podman and CRI-O run it) creates the container through the
runtime's CLI, holds its stdio or terminal, writes the k8s-file log, records the exit status
(EXIT_DIR/ID, persist/exit) and OOM (`oom` in its cwd and persist dir), and finally runs our
exit command. The handshake (podman libpod/oci_conmon_common.go, conmon src/parent_pipe_fd.c):

    dockee-shim                                 conmon
    socketpairs sync+start (SEQPACKET) ───────► env _OCI_SYNCPIPE/_OCI_STARTPIPE name the fds
    send 1 byte on start ─────────────────────► forks; the parent writes --conmon-pidfile, exits
                                                RUNTIME create --bundle B --pid-file P ID
    recv {"data": PID} | {"data": -1, "message"} ◄─ one JSON line on the sync pipe
    connect BUNDLE/attach (attached runs)       relays: 1 stream byte (2 stdout, 3 stderr) + data
    RUNTIME start ID (the caller)
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import select
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pyruntime.dockee.errors import CommandError, DockeeError
from pyruntime.dockee.runtime import wait_blocking

CONMON = "conmon"
ATTACH_BUF = 8192 + 1


class CreateFailed(DockeeError):
    """The runtime could not create the container; exit code 126/127 when the command is at fault."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.exit_code = command_exit_code(message) or 125


def command_exit_code(message: str) -> int | None:
    """docker's codes for a command that cannot run, from the runtime's own words."""
    if 'exec: "' not in message and "exec:" not in message:
        return None
    if "permission denied" in message or "is a directory" in message:
        return 126
    if "no such file or directory" in message or "not found" in message:
        return 127
    return None


@dataclass
class ConmonSpec:
    cid: str
    name: str
    bundle: Path
    runtime: str  # absolute path of the runtime binary
    runtime_args: list[str]  # global flags for it, e.g. --root DIR
    log_path: Path
    exit_command: list[str]  # argv; [0] absolute
    tty: bool = False
    stdin: bool = False
    log_level: str = "error"
    extra: list[str] = field(default_factory=list)


def conmon_argv(s: ConmonSpec) -> list[str]:
    argv = [CONMON, "--api-version", "1", "-c", s.cid, "-u", s.cid, "-r", s.runtime,
            "-b", str(s.bundle), "-p", str(s.bundle / "pidfile"), "-n", s.name,
            "--exit-dir", str(s.bundle / "exits"), "--full-attach",
            "-l", f"k8s-file:{s.log_path}", "--log-level", s.log_level,
            "--conmon-pidfile", str(s.bundle / "conmon.pid"),
            "--persist-dir", str(s.bundle / "persist"),
            "--no-sync-log"]  # no fsync of the log before the exit file: `run` returns sooner
    if s.tty:
        argv.append("-t")
    if s.stdin:
        argv.append("-i")
    for a in s.runtime_args:
        argv += ["--runtime-arg", a]
    argv += ["--exit-command", s.exit_command[0]]
    for a in s.exit_command[1:]:
        argv += ["--exit-command-arg", a]
    return argv + s.extra


def launch(s: ConmonSpec, timeout: float = 60) -> int:
    """Start conmon and let it create the container; the container's pid, or CreateFailed."""
    for d in ("exits", "persist"):
        (s.bundle / d).mkdir(exist_ok=True)
    for stale in ("attach", "ctl", "winsz", f"exits/{s.cid}", "persist/exit", "persist/oom", "oom"):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(s.bundle / stale)
    sync_p, sync_c = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    start_p, start_c = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    env = dict(os.environ, _OCI_SYNCPIPE=str(sync_c.fileno()), _OCI_STARTPIPE=str(start_c.fileno()))
    try:
        with tempfile.TemporaryFile("w+") as err:
            try:
                proc = subprocess.Popen(conmon_argv(s), cwd=s.bundle, env=env, stdin=subprocess.DEVNULL,
                                        stdout=subprocess.DEVNULL, stderr=err,
                                        pass_fds=(sync_c.fileno(), start_c.fileno()), start_new_session=True)
            except FileNotFoundError:
                raise DockeeError("conmon not found: apt-get install conmon") from None
            sync_c.close()
            start_c.close()
            start_p.send(b"0")
            msg = _read_sync(sync_p, timeout)
            rc = wait_blocking(proc, timeout)  # conmon's parent exits once its child is on its own
            if msg is None:
                err.seek(0)
                detail = err.read().strip().splitlines()
                raise CreateFailed(f"monitor exited ({rc}) before the container was created"
                                   + (f": {detail[-1]}" if detail else ""))
    finally:
        for sk in (sync_p, start_p, sync_c, start_c):
            sk.close()
    pid = msg.get("data")
    if not isinstance(pid, int) or pid <= 0:
        text = str(msg.get("message") or "the runtime failed to create the container").strip()
        text = text.splitlines()[-1] if text else text
        if 'msg="' in text:
            text = text.split('msg="', 1)[1].rsplit('"', 1)[0].replace('\\"', '"')
        raise CreateFailed(text)
    return pid


def _read_sync(sock: socket.socket, timeout: float) -> dict | None:
    deadline = time.monotonic() + timeout
    buf = b""
    while time.monotonic() < deadline:
        r, _, _ = select.select([sock], [], [], max(0.0, deadline - time.monotonic()))
        if not r:
            break
        chunk = sock.recv(65536)
        if not chunk:
            break
        buf += chunk
        for line in buf.splitlines():
            try:
                doc = json.loads(line)
            except ValueError:
                continue
            if isinstance(doc, dict) and "data" in doc:
                return doc
    return None


def connect_attach(bundle: Path) -> socket.socket:
    """Connect to conmon's attach socket; long paths go through an O_PATH fd of the directory."""
    fd = os.open(bundle, os.O_PATH | os.O_DIRECTORY)
    try:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        sock.connect(f"/proc/self/fd/{fd}/attach")
        return sock
    finally:
        os.close(fd)


def resize(bundle: Path, rows: int, cols: int) -> None:
    """conmon's ctl fifo: `1 ROWS COLS\\n` resizes the container's terminal."""
    for _ in range(50):
        try:
            fd = os.open(bundle / "ctl", os.O_WRONLY | os.O_NONBLOCK)
        except OSError as e:
            if e.errno in (errno.ENXIO, errno.ENOENT):
                time.sleep(0.01)
                continue
            return
        try:
            os.write(fd, f"1 {rows} {cols}\n".encode())
        except OSError:
            pass
        finally:
            os.close(fd)
        return


def terminal_size(fd: int = 0) -> tuple[int, int] | None:
    try:
        size = os.get_terminal_size(fd)
    except OSError:
        return None
    return size.lines, size.columns


DETACH_KEYS = b"\x10\x11"  # docker's default escape sequence: ctrl-p ctrl-q


def relay(sock: socket.socket, *, stdin: bool, tty: bool, bundle: Path,
          on_signal: Callable[[int], None] | None = None) -> bool:
    """Copy the container's output to ours, and our stdin to it, until conmon closes the socket.

    With a terminal, ours is put in raw mode (^C travels as a byte to the container's terminal)
    and SIGWINCH resizes the container's terminal. Without one, SIGINT/SIGTERM are forwarded
    through `on_signal` (docker's sig-proxy). With a terminal and stdin, ^P^Q detaches (docker's
    escape sequence): True is returned and the container keeps running.
    """
    import termios
    import tty as ttymod

    in_fd = sys.stdin.fileno() if stdin else -1
    saved = None
    old_handlers: dict[signal.Signals, Any] = {}
    if tty and in_fd >= 0 and os.isatty(in_fd):
        saved = termios.tcgetattr(in_fd)
        ttymod.setraw(in_fd)

        def winch(_sig: int, _frm: object) -> None:
            size = terminal_size(in_fd)
            if size:
                resize(bundle, *size)
        old_handlers[signal.SIGWINCH] = signal.signal(signal.SIGWINCH, winch)
    elif on_signal is not None:
        def forward(sig: int, _frm: object) -> None:
            on_signal(sig)
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            old_handlers[sig] = signal.signal(sig, forward)
    out = sys.stdout.buffer
    err = sys.stderr.buffer
    watch = [sock] + ([in_fd] if in_fd >= 0 else [])
    held = b""  # a ^P that may start the escape sequence
    detach = tty and in_fd >= 0
    try:
        while True:
            try:
                ready, _, _ = select.select(watch, [], [])
            except InterruptedError:
                continue
            if sock in ready:
                try:
                    data = sock.recv(ATTACH_BUF)
                except ConnectionResetError:
                    data = b""
                if not data:
                    break
                stream = out if data[0] != 3 else err
                stream.write(data[1:])
                stream.flush()
            if in_fd >= 0 and in_fd in ready:
                try:
                    chunk = os.read(in_fd, 8192)
                except OSError:
                    chunk = b""
                eof = not chunk
                if detach:
                    chunk, held = held + chunk, b""
                    if DETACH_KEYS in chunk:
                        before = chunk[:chunk.index(DETACH_KEYS)]
                        if before:
                            with contextlib.suppress(OSError):
                                sock.sendall(before)
                        return True
                    if not eof and chunk.endswith(DETACH_KEYS[:1]):
                        chunk, held = chunk[:-1], chunk[-1:]
                if chunk:
                    with contextlib.suppress(OSError):
                        sock.sendall(chunk)
                if eof:
                    watch.remove(in_fd)
                    with contextlib.suppress(OSError):
                        sock.shutdown(socket.SHUT_WR)
    finally:
        if saved is not None:
            termios.tcsetattr(in_fd, termios.TCSADRAIN, saved)
        for sig, h in old_handlers.items():
            signal.signal(sig, h)
    return False


def conmon_alive(bundle: Path) -> bool:
    try:
        pid = int((bundle / "conmon.pid").read_text().strip())
    except (OSError, ValueError):
        return False
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip() == "conmon"
    except OSError:
        return False


def conmon_pid(bundle: Path) -> int | None:
    try:
        return int((bundle / "conmon.pid").read_text().strip())
    except (OSError, ValueError):
        return None


def wait_for_file(path: Path, timeout: float, alive: Callable[[], bool] | None = None) -> bool:
    """Poll for a file conmon writes; stop early when `alive` says nobody will write it."""
    deadline = time.monotonic() + timeout
    delay = 0.005
    while time.monotonic() < deadline:
        if path.exists():
            return True
        if alive is not None and not alive():
            return path.exists()
        time.sleep(delay)
        delay = min(0.05, delay * 1.5)
    return path.exists()


__all__ = ["CommandError", "ConmonSpec", "CreateFailed", "conmon_argv", "launch", "connect_attach", "relay",
           "resize", "terminal_size", "conmon_alive", "conmon_pid", "wait_for_file"]
