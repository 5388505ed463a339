"""pyruntime.seccomp on the real kernel: filters loaded in forked children, as init does it.

Each test compiles in the parent (as the runtime does before pivot_root), forks, and lets
the child set no_new_privs, load and report through its exit status.  A child never
returns into pytest: its whole body is guarded and it always ends in os._exit.
"""

from __future__ import annotations

import errno
import json
import os
import select
import signal
import socket
import subprocess
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import prctl
import pytest
from harness import PODMAN_PROFILE

from pyruntime import seccomp
from pyruntime.syscalls import libseccomp as lsc

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root"),
]

CHILD_TIMEOUT = 20.0


class Child:
    """A forked child running body() with no_new_privs set; its return value is the status.

    A traceback in the child comes back over a pipe and fails the test with its text.
    """

    def __init__(self, body: Callable[[], int]) -> None:
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            status = 125
            try:
                os.close(r)
                prctl.set_no_new_privs(1)
                status = body()
            except BaseException:
                os.write(w, traceback.format_exc().encode())
            finally:
                os._exit(status)
        os.close(w)
        self.pid = pid
        self._report = r

    def wait(self, timeout: float = CHILD_TIMEOUT) -> int:
        """The exit status (negative: killed by that signal).  A child still alive after
        `timeout` is killed: a hung filter must fail the test, not hang the suite."""
        deadline = time.monotonic() + timeout
        while True:
            done, status = os.waitpid(self.pid, os.WNOHANG)
            if done:
                break
            if time.monotonic() > deadline:
                os.kill(self.pid, signal.SIGKILL)
                os.waitpid(self.pid, 0)
                os.close(self._report)
                pytest.fail(f"child {self.pid} hung")
            time.sleep(0.01)
        with os.fdopen(self._report, "rb") as f:
            report = f.read().decode()
        assert not report, f"child failed:\n{report}"
        return os.waitstatus_to_exitcode(status)


def run_child(body: Callable[[], int]) -> int:
    return Child(body).wait()


def test_errno_rule_blocks_mkdir(tmp_path: Path) -> None:
    filt = seccomp.compile_filter({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"},
                     {"names": ["rmdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.EROFS}],
    })
    (tmp_path / "present").mkdir()

    def body() -> int:
        assert filt.load() is None
        try:
            os.mkdir(tmp_path / "blocked")
        except PermissionError as e:
            assert e.errno == errno.EPERM, e
        else:
            return 1
        try:
            os.rmdir(tmp_path / "present")
        except OSError as e:
            assert e.errno == errno.EROFS, e
        else:
            return 2
        return 0

    with filt:
        assert run_child(body) == 0
    assert not (tmp_path / "blocked").exists()
    assert (tmp_path / "present").is_dir()
    os.mkdir(tmp_path / "parent-unaffected")


def test_kill_process_action() -> None:
    filt = seccomp.compile_filter({"defaultAction": "SCMP_ACT_ALLOW",
                        "syscalls": [{"names": ["getppid"], "action": "SCMP_ACT_KILL_PROCESS"}]})

    def body() -> int:
        filt.load()
        os.getppid()
        return 0

    with filt:
        assert run_child(body) == -signal.SIGSYS


def swapoff_message() -> str:
    proc = subprocess.run(["swapoff", "/nonexistent"], capture_output=True, text=True,
                          check=False)
    return proc.stderr


@pytest.mark.skipif(not PODMAN_PROFILE.exists(), reason="podman's seccomp profile missing")
def test_podman_profile_blocks_swapoff(tmp_path: Path) -> None:
    assert "No such file or directory" in swapoff_message()
    doc = seccomp.containers_profile_to_oci(json.loads(PODMAN_PROFILE.read_text()))
    filt = seccomp.compile_filter(doc)
    out = tmp_path / "stderr"

    def body() -> int:
        filt.load()
        out.write_text(swapoff_message())
        os.mkdir(tmp_path / "allowed")  # the profile still lets ordinary work through
        return 0

    with filt:
        assert run_child(body) == 0
    # util-linux words EPERM from swapoff(2) as "Not superuser."; we are root
    assert "Not superuser" in out.read_text()
    assert (tmp_path / "allowed").is_dir()


def test_supported_flags_load(tmp_path: Path) -> None:
    flags = seccomp.supported_flags(lsc.load_library())
    assert "SECCOMP_FILTER_FLAG_LOG" in flags and "SECCOMP_FILTER_FLAG_SPEC_ALLOW" in flags
    filt = seccomp.compile_filter({"defaultAction": "SCMP_ACT_ALLOW", "flags": flags,
                        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_LOG"}]})

    def body() -> int:
        filt.load()
        os.mkdir(tmp_path / "logged")  # SCMP_ACT_LOG lets it through
        return 0

    with filt:
        assert run_child(body) == 0
    assert (tmp_path / "logged").is_dir()


def test_notify_fd_reaches_the_listener(tmp_path: Path) -> None:
    """The agent gets the filter's listener: the child's notified syscall makes that fd
    readable, and when the agent closes it without answering the call fails with ENOSYS."""
    path = str(tmp_path / "agent.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(1)
    filt = seccomp.compile_filter({"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": path,
                        "listenerMetadata": "agent-meta",
                        "syscalls": [{"names": ["getpgid"], "action": "SCMP_ACT_NOTIFY"}]})
    assert filt.uses_notify
    state = {"ociVersion": "1.2.0", "id": "c-notify", "status": "creating", "pid": 0,
             "bundle": str(tmp_path)}

    def body() -> int:
        sock = seccomp.connect_listener(path)  # as before pivot_root
        payload = seccomp.encode_listener_state({**state, "pid": os.getpid()}, "agent-meta")
        fd = filt.load()
        assert fd is not None
        seccomp.send_listener_fd(sock, fd, payload)
        os.close(fd)
        try:
            os.getpgid(0)
        except OSError as e:
            # blocked until the agent hung up without a reply
            return 0 if e.errno == errno.ENOSYS else 3
        return 4

    child = Child(body)
    fds: list[int] = []
    try:
        ready, _, _ = select.select([server], [], [], CHILD_TIMEOUT)
        assert ready, "the child never connected"
        conn, _ = server.accept()
        with conn:
            data, fds, _, _ = socket.recv_fds(conn, 1 << 16, 4)
            while chunk := conn.recv(1 << 16):
                data += chunk
        assert len(fds) == 1
        assert os.readlink(f"/proc/self/fd/{fds[0]}") == "anon_inode:seccomp notify"
        message = json.loads(data)
        assert message["fds"] == ["seccompFd"]
        assert message["pid"] == child.pid and message["state"]["pid"] == child.pid
        assert message["metadata"] == "agent-meta"
        assert message["state"]["id"] == "c-notify"
        pending, _, _ = select.select([fds[0]], [], [], CHILD_TIMEOUT)
        assert pending, "no notification arrived on the received fd"
    finally:
        for fd in fds:
            os.close(fd)  # unblocks the child's pending call
        status = child.wait()
        server.close()
        filt.release()
    assert status == 0
