"""linux.seccomp through the pyruntime CLI: what a user of `pyruntime run` sees.

Unlike test_seccomp_kernel.py (filters loaded in forked children of pytest), every test
here runs a busybox container with `linux.seccomp` in its config.json, so the filter is
compiled, loaded and handed to a notify agent by the runtime itself, at the point in init
where it really happens: before the user switch and the capability drop when
process.noNewPrivileges is false (loading needs CAP_SYS_ADMIN then), and just before execve
when it is true.

Checked against broken builds (a copy of the repo with its launcher pointed at the copy,
this file run from there):
- init._load_seccomp returning at once (the filter is never loaded) and seccomp.features
  saying {"enabled": false}: every test but the shell session failed (swapoff reached
  the kernel, mkdir succeeded, the container without execve in its allow-list ran, the
  agent never got a connection, features had no actions).
- seccomp._add_rules dropping the names that contain a digit (getdents64, wait4, pipe2,
  prlimit64, ...): the shell session failed ("can't create pipe"; with no_new_privs off
  the runtime's own setrlimit got ENOSYS).
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import select
import socket
import threading
from pathlib import Path
from typing import Any

import pytest
from harness import PODMAN_PROFILE

from conftest import Runtime, base_config
from pyruntime import seccomp
from pyruntime.syscalls import libseccomp as lsc

needs_podman_profile = pytest.mark.skipif(not PODMAN_PROFILE.exists(),
                                          reason="podman's seccomp profile missing")
DEFAULT_CAPS = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
AGENT_TIMEOUT = 20.0


def with_caps(cfg: dict[str, Any], caps: list[str]) -> list[str]:
    cfg["process"]["capabilities"] = {k: list(caps) for k in
                                      ("bounding", "effective", "permitted")}
    return caps


def podman_profile(caps: list[str]) -> dict[str, Any]:
    """podman's default profile for a container holding `caps`, in OCI form."""
    return seccomp.containers_profile_to_oci(json.loads(PODMAN_PROFILE.read_text()), caps=caps)


# --- (1), (2) podman's default profile ---------------------------------------------------


@needs_podman_profile
@pytest.mark.parametrize("nnp", [True, False], ids=["nnp", "no-nnp"])
def test_podman_profile_denies_swapoff_even_with_cap_sys_admin(pyrt: Runtime, runc: Runtime,
                                                               nnp: bool) -> None:
    """CAP_SYS_ADMIN would let swapoff(2) through to the kernel (which then says ENOENT);
    podman's profile answers EPERM before the kernel looks at the path.  runc, given the
    same filter, answers the same."""
    cfg = base_config(["swapoff", "/nonexistent"])
    cfg["process"]["noNewPrivileges"] = nnp
    caps = with_caps(cfg, [*DEFAULT_CAPS, "CAP_SYS_ADMIN"])
    p = pyrt.run(cfg)
    assert p.returncode == 1
    assert "No such file or directory" in p.stderr, p.stderr  # really reached the kernel

    cfg["linux"]["seccomp"] = podman_profile(caps)
    p = pyrt.run(cfg)
    assert p.returncode == 1
    assert "swapoff: /nonexistent: Operation not permitted" in p.stderr, p.stderr
    r = runc.run(cfg)
    assert (r.returncode, r.stdout, r.stderr) == (p.returncode, p.stdout, p.stderr)


@needs_podman_profile
@pytest.mark.parametrize("nnp", [True, False], ids=["nnp", "no-nnp"])
def test_shell_session_works_under_podman_profile(pyrt: Runtime, nnp: bool) -> None:
    script = ("set -e; ls / | wc -l; cat /etc/passwd | grep -c '^root:'; sleep 0.1; "
              "echo abc > /tmp/f; cat /tmp/f | wc -c; mkdir /tmp/d && rmdir /tmp/d; "
              "(echo sub) | cat; echo done")
    cfg = base_config(["sh", "-c", script])
    cfg["process"]["noNewPrivileges"] = nnp
    cfg["linux"]["seccomp"] = podman_profile(DEFAULT_CAPS)
    p = pyrt.run(cfg)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.split()
    assert int(lines[0]) >= 10  # bin, dev, etc, proc, ...
    assert lines[1:] == ["1", "4", "sub", "done"], p.stdout


# --- (3) a default-deny allow-list -----------------------------------------------------

# Found by trial (drop one name at a time from the union of what strace showed, keep the
# drop if `echo hi`, `true` and the denied `mkdir` still behave): the least that busybox
# (static glibc) and the runtime's own last steps need.  execve, rt_sigaction and
# rt_sigprocmask are the runtime's (it resets signal dispositions and the mask, then
# execs); arch_prctl, mmap and mprotect are glibc's start-up; write and exit_group are
# echo's and everyone's exit.
ALLOW_AFTER_LOAD = ["arch_prctl", "execve", "exit_group", "mmap", "mprotect", "rt_sigaction",
                    "rt_sigprocmask", "write"]
# Without no_new_privs the filter is loaded while init is still root with every capability
# (loading needs CAP_SYS_ADMIN then), so it must also allow what init does afterwards: the
# rlimits, cwd (and the getcwd that proves it is inside the container), user, capabilities,
# the lookup of the executable in $PATH (after the cwd and user are set, as runc does)
# and umask, the READY message, the exec fifo.
ALLOW_BEFORE_SETUP = ["capget", "capset", "chdir", "close", "getcwd", "newfstatat", "openat", "prctl",
                      "prlimit64", "sendto", "setresgid", "setresuid", "umask"]
DENIED_ERRNO = errno.EREMOTEIO  # unlikely to come from anywhere else


def allow_list_config(args: list[str], nnp: bool, allow: list[str]) -> dict[str, Any]:
    cfg = base_config(args)
    cfg["process"]["noNewPrivileges"] = nnp
    cfg["linux"]["seccomp"] = {
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": DENIED_ERRNO,
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [{"names": allow, "action": "SCMP_ACT_ALLOW"}],
    }
    return cfg


def minimal_allow(nnp: bool) -> list[str]:
    return ALLOW_AFTER_LOAD if nnp else ALLOW_AFTER_LOAD + ALLOW_BEFORE_SETUP


@pytest.mark.skipif(os.uname().machine != "x86_64", reason="allow-list found on x86_64")
@pytest.mark.parametrize("nnp", [True, False], ids=["nnp", "no-nnp"])
def test_minimal_allow_list(pyrt: Runtime, nnp: bool) -> None:
    allow = minimal_allow(nnp)
    p = pyrt.run(allow_list_config(["echo", "hi"], nnp, allow))
    assert (p.returncode, p.stdout) == (0, "hi\n"), p.stderr
    p = pyrt.run(allow_list_config(["true"], nnp, allow))
    assert p.returncode == 0, p.stderr
    # anything else gets defaultErrnoRet
    p = pyrt.run(allow_list_config(["mkdir", "/tmp/x"], nnp, allow))
    assert p.returncode == 1
    assert f"can't create directory '/tmp/x': {os.strerror(DENIED_ERRNO)}" in p.stderr, p.stderr


@pytest.mark.skipif(os.uname().machine != "x86_64", reason="allow-list found on x86_64")
@pytest.mark.parametrize("nnp", [True, False], ids=["nnp", "no-nnp"])
def test_allow_list_without_execve_fails_cleanly(pyrt: Runtime, nnp: bool) -> None:
    """The filter is really in force before execve: without execve in it the container
    cannot start, and the runtime says so (no hang, no traceback)."""
    allow = [s for s in minimal_allow(nnp) if s != "execve"]
    p = pyrt.run(allow_list_config(["true"], nnp, allow), timeout=30)
    assert p.returncode != 0
    assert os.strerror(DENIED_ERRNO) in p.stderr and "Traceback" not in p.stderr, p.stderr


# --- (4) seccomp notify ----------------------------------------------------------------


class _SeccompData(ctypes.Structure):
    _fields_ = [("nr", ctypes.c_int), ("arch", ctypes.c_uint32),
                ("instruction_pointer", ctypes.c_uint64), ("args", ctypes.c_uint64 * 6)]


class _Notif(ctypes.Structure):
    _fields_ = [("id", ctypes.c_uint64), ("pid", ctypes.c_uint32), ("flags", ctypes.c_uint32),
                ("data", _SeccompData)]


class _NotifResp(ctypes.Structure):
    _fields_ = [("id", ctypes.c_uint64), ("val", ctypes.c_int64), ("error", ctypes.c_int32),
                ("flags", ctypes.c_uint32)]


def answer_one(fd: int, error: int) -> tuple[int, int]:
    """Receive one notification on `fd` and fail the call with `error`; (pid, syscall nr)."""
    lib = ctypes.CDLL(lsc.SONAME, use_errno=True)
    lib.seccomp_notify_alloc.argtypes = [ctypes.POINTER(ctypes.POINTER(_Notif)),
                                         ctypes.POINTER(ctypes.POINTER(_NotifResp))]
    lib.seccomp_notify_receive.argtypes = [ctypes.c_int, ctypes.POINTER(_Notif)]
    lib.seccomp_notify_respond.argtypes = [ctypes.c_int, ctypes.POINTER(_NotifResp)]
    lib.seccomp_notify_free.argtypes = [ctypes.POINTER(_Notif), ctypes.POINTER(_NotifResp)]
    req = ctypes.POINTER(_Notif)()
    resp = ctypes.POINTER(_NotifResp)()
    assert lib.seccomp_notify_alloc(ctypes.byref(req), ctypes.byref(resp)) == 0
    try:
        rc = lib.seccomp_notify_receive(fd, req)
        assert rc == 0, os.strerror(-rc)
        resp.contents.id = req.contents.id
        resp.contents.val = 0
        resp.contents.error = -error
        resp.contents.flags = 0
        rc = lib.seccomp_notify_respond(fd, resp)
        assert rc == 0, os.strerror(-rc)
        return req.contents.pid, req.contents.data.nr
    finally:
        lib.seccomp_notify_free(req, resp)


class Agent:
    """A seccomp agent listening at `path`: takes one connection, keeps the message and
    the notify fd, and optionally answers one notification with `answer` (an errno).
    Whatever happens, the fd is closed when the agent is done, so a notified call in the
    container cannot hang the test (it then fails with ENOSYS)."""

    def __init__(self, path: Path, answer: int | None = None) -> None:
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(str(path))
        self.server.listen(1)
        self.answer = answer
        self.message: dict[str, Any] | None = None
        self.fd_kind: str | None = None
        self.notified: tuple[int, int] | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        fds: list[int] = []
        try:
            ready, _, _ = select.select([self.server], [], [], AGENT_TIMEOUT)
            if not ready:
                return
            conn, _ = self.server.accept()
            with conn:
                conn.settimeout(AGENT_TIMEOUT)
                data, fds, _, _ = socket.recv_fds(conn, 1 << 16, 4)
                while chunk := conn.recv(1 << 16):
                    data += chunk
            self.message = json.loads(data)
            if len(fds) == 1:
                self.fd_kind = os.readlink(f"/proc/self/fd/{fds[0]}")
                if self.answer is not None:
                    pending, _, _ = select.select([fds[0]], [], [], AGENT_TIMEOUT)
                    if pending:
                        self.notified = answer_one(fds[0], self.answer)
        except BaseException as e:  # reported by finish()
            self.error = e
        finally:
            for fd in fds:
                os.close(fd)
            self.server.close()

    def finish(self) -> None:
        self.thread.join(AGENT_TIMEOUT + 5)
        assert not self.thread.is_alive(), "seccomp agent still running"
        if self.error is not None:
            raise self.error


def notify_config(args: list[str], listener: Path, nnp: bool) -> dict[str, Any]:
    cfg = base_config(args)
    cfg["process"]["noNewPrivileges"] = nnp
    cfg["linux"]["seccomp"] = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "listenerPath": str(listener),
        "listenerMetadata": "agent-metadata-42",
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY"}],
    }
    return cfg


@pytest.mark.parametrize("nnp", [True, False], ids=["nnp", "no-nnp"])
def test_notify_listener_gets_fd_and_state(pyrt: Runtime, tmp_path: Path, nnp: bool) -> None:
    listener = tmp_path / "agent.sock"
    agent = Agent(listener)
    cfg = notify_config(["sh", "-c", "echo started"], listener, nnp)  # no mkdir: no notification
    b = pyrt.bundle(cfg)
    cid = pyrt.new_id()
    pidfile = tmp_path / "pid"
    p = pyrt("run", "--pid-file", str(pidfile), "--bundle", str(b), cid, timeout=40)
    agent.finish()
    assert (p.returncode, p.stdout) == (0, "started\n"), p.stderr
    msg = agent.message
    assert msg is not None, "the agent got no message"
    assert agent.fd_kind == "anon_inode:seccomp notify"
    assert msg["ociVersion"] and msg["fds"] == ["seccompFd"]
    assert msg["metadata"] == "agent-metadata-42"
    pid = int(pidfile.read_text())
    assert msg["pid"] == pid
    state = msg["state"]
    assert state["id"] == cid and state["pid"] == pid and state["bundle"] == str(b)
    assert state["status"] in ("creating", "created", "running")
    assert state["ociVersion"]


@pytest.mark.parametrize("nnp", [True, False], ids=["nnp", "no-nnp"])
def test_notify_agent_answers_the_container(pyrt: Runtime, tmp_path: Path, nnp: bool) -> None:
    """The container's mkdir (its process itself, pid 1) waits for the agent, which fails
    it with EDQUOT; the notification names that process by its host pid (the pid file's)."""
    listener = tmp_path / "agent.sock"
    agent = Agent(listener, answer=errno.EDQUOT)
    cfg = notify_config(["mkdir", "/tmp/d"], listener, nnp)
    b = pyrt.bundle(cfg)
    cid = pyrt.new_id()
    pidfile = tmp_path / "pid"
    p = pyrt("run", "--pid-file", str(pidfile), "--bundle", str(b), cid, timeout=40)
    agent.finish()
    assert p.returncode == 1, p.stderr
    assert p.stderr == "mkdir: can't create directory '/tmp/d': Disk quota exceeded\n", p.stderr
    assert not (b / "rootfs" / "tmp" / "d").exists()
    assert agent.notified is not None, "no notification reached the agent"
    notified_pid, nr = agent.notified
    lib = lsc.load_library()
    assert nr in (lib.syscall_resolve_name("mkdir"), lib.syscall_resolve_name("mkdirat"))
    # the agent runs in the host's pid namespace: it sees the container process's host pid
    assert notified_pid == int(pidfile.read_text())


# --- (5) features ------------------------------------------------------------------------


def test_features_report_seccomp(pyrt: Runtime) -> None:
    p = pyrt("features", check=True)
    sc = json.loads(p.stdout)["linux"]["seccomp"]
    assert sc["enabled"] is True
    for action in ("SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS",
                   "SCMP_ACT_TRAP", "SCMP_ACT_TRACE", "SCMP_ACT_LOG", "SCMP_ACT_NOTIFY"):
        assert action in sc["actions"], action
    assert set(sc["operators"]) == {"SCMP_CMP_NE", "SCMP_CMP_LT", "SCMP_CMP_LE", "SCMP_CMP_EQ",
                                    "SCMP_CMP_GE", "SCMP_CMP_GT", "SCMP_CMP_MASKED_EQ"}
    native = {"x86_64": "SCMP_ARCH_X86_64", "aarch64": "SCMP_ARCH_AARCH64"}.get(os.uname().machine)
    if native:
        assert native in sc["archs"]
    assert "SECCOMP_FILTER_FLAG_LOG" in sc.get("knownFlags", [])
    # what features promises, a config may use: a profile with every advertised action
    # (each on a syscall of its own; ALLOW is the default, NOTIFY needs an agent and has
    # the tests above), every operator and this machine's arch compiles and runs, and the
    # rules are in force: the ERRNO ones answer sethostname(2) with their errnoRet
    actions = {"SCMP_ACT_KILL": "kexec_load", "SCMP_ACT_KILL_THREAD": "init_module",
               "SCMP_ACT_KILL_PROCESS": "finit_module", "SCMP_ACT_TRAP": "delete_module",
               "SCMP_ACT_TRACE": "swapon", "SCMP_ACT_LOG": "syslog"}
    assert set(actions) | {"SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_ACT_NOTIFY"} == set(sc["actions"])
    # sethostname to the name it already has: harmless if the filter and the uts namespace failed
    cfg = base_config(["sh", "-c", "echo started; hostname \"$(hostname)\" 2>&1; true"])
    cfg["linux"]["seccomp"] = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": [native] if native else [],
        "syscalls": [{"names": ["sethostname"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.EDQUOT,
                      "args": [{"index": 0, "value": 1, "op": op}]} for op in sc["operators"]]
        + [{"names": [name], "action": action} for action, name in actions.items()],
    }
    r = pyrt.run(cfg)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[0] == "started"
    assert "Disk quota exceeded" in r.stdout, r.stdout
