"""pyruntime under a real containerd, side by side with runc.

A private containerd (own root, state, socket and config under a temporary directory)
runs for this module.  A busybox image built locally (integration/images.py) is imported
with `ctr images import`; every test runs the same commands with the runc shim's
BinaryName pointing at runc and at pyruntime (`ctr run --runc-binary`), and expects the
same observable results from both.  "pyruntime" is this checkout's launcher (or
PYRUNTIME_BIN), never whatever /usr/local/bin/pyruntime points at.

The namespace is unique to the test run (pyrt-<random>): the tasks' cgroups are
/<namespace>/<id> in each hierarchy, the runc shim's state /run/containerd/runc/<namespace>;
teardown removes those and what lies under the private directory, nothing else.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from harness import CGROUP_ROOT, PYRUNTIME, remove_tool_leftovers, run_captured, wait_gone
from images import write_oci_archive

PYRUNTIME_BIN = PYRUNTIME
IMAGE = "pyruntime-test/busybox:1"
# the shim's default BinaryName is "runc"; ours is given by path, as an operator would
RUNTIMES = {"runc": "runc", "pyruntime": PYRUNTIME_BIN}
RUNC_ROOT = Path("/run/containerd/runc")  # the runc shim's default runtime --root (+ /<ns>)

pytestmark = pytest.mark.skipif(
    shutil.which("containerd") is None or shutil.which("ctr") is None or shutil.which("runc") is None
    or not os.access(PYRUNTIME_BIN, os.X_OK),
    reason=f"needs containerd, ctr, runc and {PYRUNTIME_BIN}")


class Containerd:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.sock = tmp / "c.sock"
        self.ns = f"pyrt-{uuid.uuid4().hex[:8]}"
        self.log = tmp / "containerd.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def config(self) -> str:
        t = self.tmp
        disabled = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.aufs",
                    "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
                    "io.containerd.snapshotter.v1.devmapper"]
        return "\n".join([
            "version = 2",
            f'root = "{t}/root"',
            f'state = "{t}/state"',
            f"disabled_plugins = {json.dumps(disabled)}",
            "[grpc]",
            f'  address = "{self.sock}"',
            "[ttrpc]",
            f'  address = "{self.sock}.ttrpc"',
            '[plugins."io.containerd.internal.v1.opt"]',
            f'  path = "{t}/opt"',
            "",
        ])

    def start(self) -> None:
        cfg = self.tmp / "config.toml"
        cfg.write_text(self.config())
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(["containerd", "--config", str(cfg), "--log-level", "debug"],
                                         stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"containerd exited {self.proc.returncode}:\n{self.log_tail()}")
            if self.sock.exists() and self.ctr("version", ns=False, timeout=10).returncode == 0:
                return
            time.sleep(0.1)
        raise RuntimeError(f"containerd did not come up:\n{self.log_tail()}")

    def log_tail(self, n: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def ctr(self, *args: str, ns: bool = True, timeout: float = 60,
            check: bool = False) -> subprocess.CompletedProcess[str]:
        # files, not pipes: a detached task's shim may hold inherited pipes open
        return run_captured(["ctr", "-a", str(self.sock), *(["-n", self.ns] if ns else []), *args],
                            timeout=timeout, check=check)

    def new_id(self, what: str) -> str:
        return f"{what}-{uuid.uuid4().hex[:8]}"

    def tasks(self) -> dict[str, tuple[int, str]]:
        """`ctr task ls`: id -> (pid, STATUS)."""
        out = self.ctr("task", "ls", check=True).stdout.splitlines()[1:]
        return {f[0]: (int(f[1]), f[2]) for f in (line.split() for line in out) if len(f) == 3}

    def wait_status(self, cid: str, want: str, timeout: float = 20) -> str:
        deadline = time.monotonic() + timeout
        status = ""
        while time.monotonic() < deadline:
            status = self.tasks().get(cid, (0, "<none>"))[1]
            if status == want:
                break
            time.sleep(0.05)
        return status

    def stop(self) -> list[str]:
        """Remove what the tests left in our namespace, stop containerd and its shims."""
        problems: list[str] = []
        if self.proc is not None and self.proc.poll() is None:
            for cid in self.tasks():
                self.ctr("task", "kill", "-a", "-s", "SIGKILL", cid, timeout=20)
            for cid in self.tasks():
                self.wait_status(cid, "STOPPED", timeout=10)
                self.ctr("task", "delete", "-f", cid, timeout=20)
            for cid in self.ctr("containers", "ls", "-q").stdout.split():
                self.ctr("containers", "rm", cid, timeout=20)
            self.ctr("images", "rm", "--sync", IMAGE, timeout=20)
            rm_ns = self.ctr("namespaces", "rm", self.ns, ns=False, timeout=20)
            if rm_ns.returncode != 0:
                problems.append(f"namespace {self.ns} not empty: {rm_ns.stderr.strip()}")
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        shims = wait_gone(f"-address {self.sock}", timeout=5)
        if shims:
            problems.append(f"shims still running after containerd stopped (killed): {shims}")
        return problems


@pytest.fixture(scope="module")
def containerd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Containerd]:
    # short: the socket path must fit in sun_path
    tmp = Path(tempfile.mkdtemp(prefix="pyrt-ctd-"))
    tmp.chmod(0o711)  # a user-namespaced root must reach the bundle's rootfs below it
    c = Containerd(tmp)
    problems: list[str] = []
    try:
        c.start()
        archive = write_oci_archive(tmp_path_factory.mktemp("image") / "busybox-oci.tar", IMAGE)
        c.ctr("images", "import", str(archive), check=True)
        yield c
    finally:
        problems += c.stop()
        problems += remove_tool_leftovers(tmp, c.ns, [RUNC_ROOT / c.ns])
    assert not problems, problems


def _strip(text: str) -> str:
    """ctr's logrus lines carry a timestamp: keep level and message."""
    return re.sub(r'time="[^"]*" ', "", text)


def tty_lines(text: str) -> list[str]:
    """Output that went through two ptys (the container's, then script's): \r\r\n line
    ends, and ctr writes a NUL first (echoed as ^@)."""
    text = text.replace("^@", "").replace("\0", "")
    return [line for line in re.split(r"[\r\n]+", text) if line.strip()]


def test_ctr_run_foreground_output_and_exit_codes(containerd: Containerd) -> None:
    seen: dict[str, Any] = {}
    for name, binary in RUNTIMES.items():
        runs = []
        for runtime_args, argv in [
            ([], ["echo", "hi"]),
            (["--runtime", "io.containerd.runc.v2"], ["sh", "-c", "echo out; echo err >&2; exit 3"]),
            ([], ["sh", "-c", "cat /proc/self/status | grep -E '^(Seccomp|NoNewPrivs|CapEff):'; id"]),
        ]:
            cid = containerd.new_id(f"fg-{name}")
            p = containerd.ctr("run", *runtime_args, "--runc-binary", binary, "--rm", IMAGE, cid, *argv)
            runs.append((p.returncode, p.stdout, _strip(p.stderr)))
            assert cid not in containerd.ctr("containers", "ls", "-q").stdout.split(), "--rm removes it"
        seen[name] = runs
    assert seen["runc"][0] == (0, "hi\n", "")
    assert seen["runc"][1] == (3, "out\n", "err\n")
    assert seen["pyruntime"] == seen["runc"]


def test_ctr_runc_binary_is_really_used(containerd: Containerd) -> None:
    """Negative control: a BinaryName that does not exist makes the run fail."""
    cid = containerd.new_id("nobin")
    p = containerd.ctr("run", "--runc-binary", "/nonexistent/pyruntime", "--rm", IMAGE, cid, "true")
    assert p.returncode != 0 and "/nonexistent/pyruntime" in p.stderr, p
    containerd.ctr("containers", "rm", cid)


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def _lifecycle(c: Containerd, name: str, binary: str) -> dict[str, Any]:
    """run -d, exec, ps, pause/resume, kill, delete, rm: what ctr and the host show."""
    obs: dict[str, Any] = {}
    cid = c.new_id(f"d-{name}")
    runtime_root = RUNC_ROOT / c.ns
    p = c.ctr("run", "-d", "--runc-binary", binary, "--memory-limit", str(64 << 20), "--cpu-shares", "512",
              IMAGE, cid, "sleep", "100")
    obs["run"] = (p.returncode, p.stdout, _strip(p.stderr))
    pid, obs["status"] = c.tasks().get(cid, (0, "<none>"))
    obs["limits"] = [_read(CGROUP_ROOT / "memory" / c.ns / cid / "memory.limit_in_bytes"),
                     _read(CGROUP_ROOT / "cpu" / c.ns / cid / "cpu.shares")]

    # the shim drove *this* binary: its state under the shim's --root names the task's pid
    st = subprocess.run([binary, "--root", str(runtime_root), "state", cid], capture_output=True, text=True)
    state = json.loads(st.stdout) if st.returncode == 0 else {}
    obs["runtime state"] = (st.returncode, state.get("status"), state.get("pid") == pid, st.stderr)
    obs["cgroup controllers"] = sorted(d.name for d in CGROUP_ROOT.iterdir() if (d / c.ns / cid).is_dir())
    obs["pid in cgroup"] = str(pid) in (CGROUP_ROOT / "pids" / c.ns / cid / "cgroup.procs").read_text() \
        if (CGROUP_ROOT / "pids" / c.ns / cid).is_dir() else None

    e = c.ctr("task", "exec", "--exec-id", "x", cid, "sh", "-c",
              "echo exec; tr '\\0' ' ' < /proc/1/cmdline; echo; exit 5")
    obs["exec"] = (e.returncode, e.stdout, _strip(e.stderr))
    ps = c.ctr("task", "ps", cid)
    obs["ps"] = (ps.returncode, len(ps.stdout.splitlines()) - 1, str(pid) in ps.stdout)

    p = c.ctr("task", "pause", cid)
    obs["pause"] = (p.returncode, _strip(p.stderr), c.wait_status(cid, "PAUSED"))
    freezer = CGROUP_ROOT / "freezer" / c.ns / cid / "freezer.state"
    obs["freezer"] = freezer.read_text().strip() if freezer.exists() else None
    p = c.ctr("task", "resume", cid)
    obs["resume"] = (p.returncode, _strip(p.stderr), c.wait_status(cid, "RUNNING"))
    e = c.ctr("task", "exec", "--exec-id", "y", cid, "echo", "after resume")
    obs["exec after resume"] = (e.returncode, e.stdout)

    p = c.ctr("task", "kill", "-s", "SIGKILL", cid)
    obs["kill"] = (p.returncode, _strip(p.stderr), c.wait_status(cid, "STOPPED"))
    p = c.ctr("task", "delete", cid)
    obs["delete"] = (p.returncode, p.stdout, "exit code 137" in p.stderr)
    obs["task gone"] = cid not in c.tasks()
    st = subprocess.run([binary, "--root", str(runtime_root), "state", cid], capture_output=True, text=True)
    obs["runtime state after delete"] = st.returncode != 0
    obs["cgroup after delete"] = sorted(d.name for d in CGROUP_ROOT.iterdir() if (d / c.ns / cid).exists())
    p = c.ctr("containers", "rm", cid)
    obs["rm"] = (p.returncode, p.stdout, p.stderr)
    obs["container gone"] = cid not in c.ctr("containers", "ls", "-q").stdout.split()
    return obs


def test_ctr_detached_exec_pause_resume_kill_delete(containerd: Containerd) -> None:
    runc = _lifecycle(containerd, "runc", RUNTIMES["runc"])
    pyrt = _lifecycle(containerd, "pyruntime", RUNTIMES["pyruntime"])
    assert runc["status"] == "RUNNING" and runc["runtime state"][:3] == (0, "running", True)
    assert runc["limits"] == [str(64 << 20), "512"]
    assert runc["exec"] == (5, "exec\nsleep 100 \n", "")
    assert runc["pause"][2] == "PAUSED" and runc["resume"][2] == "RUNNING"
    assert runc["kill"][2] == "STOPPED" and runc["delete"][0] == 0
    assert runc["container gone"] and not runc["cgroup after delete"]
    assert runc["pid in cgroup"] is True and runc["freezer"] == "FROZEN"
    for k in runc:
        assert pyrt[k] == runc[k], f"{k}: pyruntime {pyrt[k]!r} != runc {runc[k]!r}"


def test_ctr_run_and_exec_tty(containerd: Containerd) -> None:
    if shutil.which("script") is None:
        pytest.skip("needs script(1)")
    ctr = f"ctr -a {containerd.sock} -n {containerd.ns}"

    def script(cmd: str) -> tuple[int, list[str]]:
        p = subprocess.run(["script", "-qec", cmd, "/dev/null"], capture_output=True, text=True, timeout=60,
                           stdin=subprocess.DEVNULL)
        return p.returncode, tty_lines(p.stdout)

    seen = {}
    for name, binary in RUNTIMES.items():
        cid = containerd.new_id(f"tty-{name}")
        run = script(f"{ctr} run -t --rm --runc-binary {binary} {IMAGE} {cid} "
                     "sh -c 'tty; test -t 0 && echo stdin-tty; exit 4'")
        cid = containerd.new_id(f"ttyx-{name}")
        containerd.ctr("run", "-d", "--runc-binary", binary, IMAGE, cid, "sleep", "100", check=True)
        # ctr resizes the pty right after the exec started: a process gone by then makes
        # ctr log "cannot resize a stopped container", whatever the runtime
        exe = script(f"{ctr} task exec -t --exec-id t {cid} sh -c 'tty; sleep 0.5; exit 7'")
        containerd.ctr("task", "kill", "-s", "SIGKILL", cid)
        containerd.wait_status(cid, "STOPPED")
        containerd.ctr("task", "delete", cid)
        containerd.ctr("containers", "rm", cid)
        seen[name] = (run, exe)
    assert seen["runc"] == ((4, ["/dev/pts/0", "stdin-tty"]), (7, ["/dev/pts/0"]))
    assert seen["pyruntime"] == seen["runc"]


OPTION_CASES = [
    pytest.param(["--privileged"], "grep -E '^(CapEff|Seccomp|NoNewPrivs):' /proc/self/status; "
                 "test -e /dev/fuse -a -e /dev/zero && echo host-devices", id="privileged"),
    pytest.param(["--read-only"], "touch /x 2>/dev/null || echo ro; grep ' / ' /proc/mounts | cut -d' ' -f4 | "
                 "cut -d, -f1", id="read-only"),
    pytest.param(["--mount", "type=bind,src=@VOL,dst=/data,options=rbind:ro"],
                 "cat /data/f; touch /data/g 2>/dev/null || echo ro", id="bind-mount-ro"),
    pytest.param(["--seccomp"], "grep Seccomp: /proc/self/status", id="seccomp"),
    pytest.param(["--cap-drop", "CAP_CHOWN", "--cap-add", "CAP_SYS_ADMIN"], "grep -E '^Cap' /proc/self/status",
                 id="capabilities"),
    pytest.param(["--uidmap", "0:200000:65536", "--gidmap", "0:200000:65536"],
                 "id; cat /proc/self/uid_map /proc/self/gid_map; ls -ln /bin/busybox | cut -c1-40", id="userns"),
    pytest.param(["--no-pivot"], "ls /; cut -d' ' -f4,5 /proc/self/mountinfo | head -1", id="no-pivot"),
    pytest.param(["--device", "/dev/fuse"], "ls -l /dev/fuse | cut -c1-10; head -c0 /dev/fuse && echo open",
                 id="device"),
    pytest.param(["--env", "A=1", "--cwd", "/tmp", "--allow-new-privs"],
                 "echo $A; pwd; grep NoNewPrivs /proc/self/status", id="env-cwd-newprivs"),
    pytest.param(["--net-host"], "test $(ls /sys/class/net | wc -l) -gt 1 && echo host-net", id="net-host"),
]


@pytest.mark.parametrize(("flags", "script"), OPTION_CASES)
def test_ctr_run_options(containerd: Containerd, flags: list[str], script: str) -> None:
    if "/dev/fuse" in flags + [script] and not os.path.exists("/dev/fuse"):
        pytest.skip("no /dev/fuse")
    vol = containerd.tmp / "vol"
    vol.mkdir(exist_ok=True)
    (vol / "f").write_text("from the host\n")
    flags = [f.replace("@VOL", str(vol)) for f in flags]
    seen = {}
    for name, binary in RUNTIMES.items():
        cid = containerd.new_id(f"opt-{name}")
        p = containerd.ctr("run", "--rm", "--runc-binary", binary, *flags, IMAGE, cid, "sh", "-c", script,
                           timeout=120)
        seen[name] = (p.returncode, p.stdout, _strip(p.stderr))
    assert seen["runc"][0] == 0, seen["runc"]
    assert seen["pyruntime"] == seen["runc"]


# `ctr run --null-io` gives `create` stdio that is /dev/null opened O_RDONLY; runc re-opens
# /dev/null read-write over such fds in init, and so must we (echo would fail with EBADF).
def test_ctr_run_null_io(containerd: Containerd) -> None:
    seen = {}
    for name, binary in RUNTIMES.items():
        cid = containerd.new_id(f"null-{name}")
        p = containerd.ctr("run", "--rm", "--null-io", "--runc-binary", binary, IMAGE, cid,
                           "sh", "-c", "echo to-nowhere && echo again >&2")
        seen[name] = (p.returncode, p.stdout, p.stderr)
    assert seen["runc"] == (0, "", "")
    assert seen["pyruntime"] == seen["runc"]
