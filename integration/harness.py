"""The one shared harness of the root tests (as crun's tests_utils.py is for crun).

Everything more than one test file needs lives here, once: which binary is under test,
the config every container starts from, the parsers of /proc/<pid>/status and
mountinfo, a status poller, output capture through files, a console-socket receiver,
the host-facts snapshot, and the helpers that remove what containerd and podman leave.

The runtime under test is this checkout's launcher (.venv/bin/pyruntime), or the one
named by PYRUNTIME_BIN: `make mutation` runs the tests against a mutated copy that way.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import stat
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

REPO = Path(__file__).resolve().parent.parent
PYRUNTIME = os.environ.get("PYRUNTIME_BIN") or str(REPO / ".venv" / "bin" / "pyruntime")
PODMAN_PROFILE = Path("/usr/share/containers/seccomp.json")
CGROUP_ROOT = Path("/sys/fs/cgroup")


# --- configs -----------------------------------------------------------------------------


def base_config(args: list[str] | None = None) -> dict[str, Any]:
    """runc's default spec, non-interactive, writable root, a unique relative cgroupsPath
    (so the container's cgroups sit under the test process's own)."""
    from pyruntime.defaults import default_spec

    doc = default_spec()
    doc["process"]["terminal"] = False
    doc["process"]["args"] = args or ["true"]
    doc["root"]["readonly"] = False
    doc["linux"]["cgroupsPath"] = f"pyrt-test-{uuid.uuid4().hex[:10]}"
    return doc


# --- output capture ----------------------------------------------------------------------


def run_captured(cmd: list[str], *, timeout: float = 60, input: str | None = None,
                 check: bool = False, **kw: Any) -> subprocess.CompletedProcess[str]:
    """subprocess.run with stdout/stderr through temporary files, not pipes: a detached
    container (or a shim, or conmon) keeps inherited stdio open long after the command
    returned, and reading a pipe would wait for it."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        if input is None and "stdin" not in kw:
            kw["stdin"] = subprocess.DEVNULL
        p = subprocess.run(cmd, stdout=out, stderr=err, text=True, timeout=timeout, input=input, **kw)
        out.seek(0)
        err.seek(0)
        p.stdout, p.stderr = out.read(), err.read()
    if check and p.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} -> {p.returncode}\n{p.stdout}\n{p.stderr}")
    return p


# --- /proc parsers ------------------------------------------------------------------------


def proc_status(text: str) -> dict[str, str]:
    """The fields of a /proc/<pid>/status text: {"CapEff": "0000000020000420", ...}."""
    out = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key and " " not in key:
            out[key] = value.strip()
    return out


def status_field(text: str, key: str) -> str:
    """One field of a /proc/<pid>/status text (among other output); fails if absent."""
    fields = proc_status(text)
    if key not in fields:
        raise AssertionError(f"{key} not in {text!r}")
    return fields[key]


@dataclass(frozen=True)
class Mount:
    """One line of /proc/<pid>/mountinfo (proc(5))."""

    mount_id: int
    parent_id: int
    root: str
    point: str
    options: tuple[str, ...]
    fstype: str
    source: str
    super_options: tuple[str, ...]

    @property
    def readonly(self) -> bool:
        return "ro" in self.options


def _unescape(field: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as \ooo
    return field.encode().decode("unicode_escape") if "\\" in field else field


def parse_mountinfo(text: str) -> list[Mount]:
    out = []
    for line in text.splitlines():
        head, sep, tail = line.partition(" - ")
        if not sep:
            continue
        f = head.split()
        t = tail.split()
        out.append(Mount(int(f[0]), int(f[1]), _unescape(f[3]), _unescape(f[4]),
                         tuple(f[5].split(",")), t[0], _unescape(t[1]) if len(t) > 1 else "",
                         tuple(t[2].split(",")) if len(t) > 2 else ()))
    return out


def mountinfo_points(text: str) -> dict[str, str]:
    """mount point -> fstype (the last mount on each point wins)."""
    return {m.point: m.fstype for m in parse_mountinfo(text)}


def own_mountinfo() -> list[Mount]:
    with open("/proc/self/mountinfo") as f:
        return parse_mountinfo(f.read())


# --- polling ------------------------------------------------------------------------------


class _HasState(Protocol):
    def state(self, cid: str) -> dict[str, Any]: ...


def wait_until(pred: Callable[[], bool], timeout: float = 20, interval: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if pred():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def wait_status(rt: _HasState, cid: str, want: str, timeout: float = 20) -> dict[str, Any]:
    """Poll `state` until the container has status `want`; fail with the last state."""
    last: dict[str, Any] = {}

    def reached() -> bool:
        nonlocal last
        last = rt.state(cid)
        return last.get("status") == want

    if not wait_until(reached, timeout):
        raise AssertionError(f"{cid} never became {want}: {last}")
    return last


# --- console socket -----------------------------------------------------------------------


class ConsoleReceiver:
    """A --console-socket listener: takes the pty master the runtime sends, reads from it
    until `until` appears (or EOF / the timeout), and keeps what it got."""

    def __init__(self, path: Path, until: bytes = b"END", timeout: float = 15) -> None:
        self.path = path
        self.until = until
        self.timeout = timeout
        self.name: bytes = b""
        self.data: bytes = b""
        self.error: OSError | None = None
        self._srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._srv.bind(str(path))
        self._srv.listen(1)
        self._srv.settimeout(30)
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        try:
            conn, _ = self._srv.accept()
            with conn:
                self.name, fds, _flags, _addr = socket.recv_fds(conn, 1024, 1)
            master = fds[0]
            try:
                deadline = time.monotonic() + self.timeout
                while time.monotonic() < deadline and self.until not in self.data:
                    try:
                        chunk = os.read(master, 4096)
                    except OSError:
                        break
                    if not chunk:
                        break
                    self.data += chunk
            finally:
                os.close(master)
        except OSError as e:
            self.error = e
        finally:
            self._srv.close()

    def join(self, timeout: float = 30) -> str:
        self._thread.join(timeout)
        return self.data.decode(errors="replace")


# --- host facts ---------------------------------------------------------------------------


def sha256(path: str | Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _tree(path: Path) -> list[tuple[str, int, int, str]]:
    out = []
    for dirpath, dirnames, filenames in os.walk(path):
        for name in sorted(dirnames + filenames):
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            digest = sha256(p) if stat.S_ISREG(st.st_mode) else ""
            out.append((os.path.relpath(p, path), st.st_mode, st.st_mtime_ns, digest))
    st = os.stat(path)
    return sorted(out) + [(".", st.st_mode, st.st_mtime_ns, "")]


class HostSnapshot:
    """Host facts no container setup may change, watched only where a test could change
    them: mounts at or below the test's own directories and the few host places an
    escape would aim at (/etc, /proc/sys, /usr, ...), the content of a few /etc files,
    the kernel's core_pattern, and whole scratch directories ("the host side" a test
    plants).  Other mounts and files come and go with other users of the machine."""

    WATCHED = ("/etc", "/proc/sys", "/usr", "/root", "/bin", "/sbin")
    ETC_FILES = ("/etc/passwd", "/etc/shadow", "/etc/group", "/etc/hostname", "/etc/hosts")

    def __init__(self, *own: Path, scratch: Iterable[Path] = ()) -> None:
        self.watched = tuple(str(p) for p in own) + self.WATCHED
        self.scratch = tuple(scratch)
        self.mounts = self._mounts()
        self.etc = self._etc()
        self.dirs = {p: _tree(p) for p in self.scratch}
        self.core_pattern = Path("/proc/sys/kernel/core_pattern").read_text()

    def _mounts(self) -> list[tuple[str, str, str, str]]:
        return sorted((m.point, m.root, ",".join(m.options), m.fstype) for m in own_mountinfo()
                      if any(m.point == w or m.point.startswith(w + "/") for w in self.watched))

    def _etc(self) -> dict[str, str]:
        return {p: sha256(p) for p in self.ETC_FILES if os.path.exists(p)}

    def assert_unchanged(self) -> None:
        assert self._mounts() == self.mounts, "the host's mount table changed where we watch"
        assert self._etc() == self.etc, "a host file in /etc changed"
        for p, tree in self.dirs.items():
            assert _tree(p) == tree, f"host directory {p} changed"
        assert Path("/proc/sys/kernel/core_pattern").read_text() == self.core_pattern


# --- what containerd and podman leave behind ----------------------------------------------
#
# Each of those tools runs with its own state under a temporary directory and puts its
# cgroups under a name unique to the test run; teardown removes exactly those (and the
# processes that name the directory), nothing another user of the machine made.


def mounts_under(prefix: Path) -> list[str]:
    """Mount points at or below `prefix` in our mount namespace, deepest first."""
    found = {m.point for m in own_mountinfo()
             if m.point == str(prefix) or m.point.startswith(str(prefix) + "/")}
    return sorted(found, key=lambda p: p.count("/"), reverse=True)


def pids_matching(needle: str) -> list[int]:
    """Live (non-zombie) processes whose command line contains `needle`."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if needle in cmdline and state != "Z":
            pids.append(int(entry))
    return pids


def _kill(pid: int) -> None:
    try:
        os.kill(pid, 9)
    except ProcessLookupError:
        pass


def wait_gone(needle: str, timeout: float, kill: bool = True) -> list[int]:
    """Wait for processes mentioning `needle` to exit, then SIGKILL what remains."""
    if wait_until(lambda: not pids_matching(needle), timeout, 0.1):
        return []
    left = pids_matching(needle)
    if kill:
        for pid in left:
            _kill(pid)
    return left


def _on_cgroupfs(path: Path) -> bool:
    try:
        rel = path.relative_to(CGROUP_ROOT)
    except ValueError:
        return False
    return bool(rel.parts) and os.path.ismount(CGROUP_ROOT / rel.parts[0])


def rmdir_cgroup(path: Path) -> bool:
    """Remove one cgroup directory (its children first), killing anything still in it.

    /sys/fs/cgroup may also hold plain directories for controllers that are not mounted;
    conmon still makes <parent>/conmon/tasks in them.
    """
    if not path.exists():
        return True
    if not _on_cgroupfs(path):
        shutil.rmtree(path, ignore_errors=True)
        return not path.exists()
    for child in sorted((p for p in path.iterdir() if p.is_dir()), reverse=True):
        rmdir_cgroup(child)
    for _ in range(50):
        try:
            path.rmdir()
            return True
        except FileNotFoundError:
            return True
        except OSError:
            try:
                procs = (path / "cgroup.procs").read_text().split()
            except OSError:
                procs = []
            for pid in procs:
                _kill(int(pid))
            freezer = path / "freezer.state"
            if freezer.exists():
                try:
                    freezer.write_text("THAWED")
                except OSError:
                    pass
            time.sleep(0.05)
    return False


def cgroups_named(name: str) -> list[Path]:
    """Every /sys/fs/cgroup/<hierarchy>/<name> directory (containerd's namespace and our
    podman cgroup parent sit directly below each hierarchy's root)."""
    out = []
    for h in CGROUP_ROOT.iterdir():
        if (h / name).is_dir():
            out.append(h / name)
    return out


def remove_tool_leftovers(tmp: Path, cgroup_name: str,
                          own_paths: Iterable[Path] = ()) -> list[str]:
    """Unmount below `tmp`, remove the cgroups named `cgroup_name` (unique to this run),
    `own_paths` and `tmp`; describe whatever could not be removed."""
    problems: list[str] = []
    for mp in mounts_under(tmp):
        if subprocess.run(["umount", "-l", mp], capture_output=True).returncode != 0:
            problems.append(f"cannot unmount {mp}")
    for cg in cgroups_named(cgroup_name):
        if not rmdir_cgroup(cg):
            problems.append(f"cannot remove cgroup {cg}")
    for p in own_paths:
        shutil.rmtree(p, ignore_errors=True)
        if p.exists():
            problems.append(f"cannot remove {p}")
    shutil.rmtree(tmp, ignore_errors=True)
    if tmp.exists():
        problems.append(f"cannot remove {tmp}")
    return problems
