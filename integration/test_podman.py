"""pyruntime under a real podman (through conmon), side by side with runc.

podman runs with private storage and state (--root/--runroot/--tmpdir under a temporary
directory, a private containers.conf via CONTAINERS_CONF for the lock type, network
config dir and event log), the cgroupfs manager and no network.  The busybox image is
built locally (integration/images.py) and brought in with `podman import`.  Every test
runs the same commands with `--runtime runc` and `--runtime <this checkout's pyruntime>`
and expects the same observable results.

Every container of this module gets the cgroup parent /pyrt-podman-<random> (a name no
one else uses); teardown removes exactly what this podman made: its containers and
image (in its private storage), the processes that name its directory (conmon, `podman
container cleanup`), mounts below its directory, and the cgroups of that parent.
Nothing of other podman users (their libpod-* cgroups, /dev/shm/libpod_lock, /run/...)
is looked at.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from harness import CGROUP_ROOT, PYRUNTIME, remove_tool_leftovers, run_captured, wait_gone
from images import write_layer_tar

PYRUNTIME_BIN = PYRUNTIME  # this checkout's launcher (or PYRUNTIME_BIN), never /usr/local/bin's
RUNTIMES = {"runc": shutil.which("runc") or "runc", "pyruntime": PYRUNTIME_BIN}
IMAGE = "pyruntime-test/busybox:1"
# one cgroup parent per test run: containers are <parent>/libpod-<id>, conmon <parent>/conmon
CGROUP_PARENT = f"pyrt-podman-{uuid.uuid4().hex[:10]}"
# the hard limits of this machine are below podman's defaults
RUN_FLAGS = ["--pull", "never", "--network", "none", "--cgroup-parent", f"/{CGROUP_PARENT}",
             "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"]

pytestmark = pytest.mark.skipif(
    shutil.which("podman") is None or shutil.which("conmon") is None or shutil.which("runc") is None
    or not os.access(PYRUNTIME_BIN, os.X_OK),
    reason=f"needs podman, conmon, runc and {PYRUNTIME_BIN}")


class Podman:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.conf = tmp / "containers.conf"
        self.conf.write_text("\n".join([
            "[network]",
            f'network_config_dir = "{tmp}/net"',
            "[engine]",
            f'tmp_dir = "{tmp}/tmp"',
            'lock_type = "file"',  # not the shared /dev/shm/libpod_lock
            'cgroup_manager = "cgroupfs"',
            'events_logger = "file"',
            f'events_logfile_path = "{tmp}/events.log"',
            f'volume_path = "{tmp}/volumes"',
            "",
        ]))
        self.env = {**os.environ, "CONTAINERS_CONF": str(self.conf)}

    def argv(self, runtime: str) -> list[str]:
        t = self.tmp
        return ["podman", "--root", f"{t}/root", "--runroot", f"{t}/runroot", "--tmpdir", f"{t}/tmp",
                "--cgroup-manager", "cgroupfs", "--events-backend", "file", "--runtime", runtime]

    def __call__(self, runtime: str, *args: str, timeout: float = 60, input: str | None = None,
                 check: bool = False) -> subprocess.CompletedProcess[str]:
        # files, not pipes: conmon may keep inherited descriptors open
        return run_captured([*self.argv(runtime), *args], timeout=timeout, input=input, check=check,
                            env=self.env)

    def script(self, runtime: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """Run podman on a pty made by script(1), as from an interactive terminal."""
        line = " ".join(_quote(a) for a in [*self.argv(runtime), *args])
        return subprocess.run(["script", "-qec", line, "/dev/null"], capture_output=True, text=True,
                              timeout=timeout, env=self.env, stdin=subprocess.DEVNULL)

    def inspect(self, runtime: str, cid: str) -> dict[str, Any]:
        p = self(runtime, "inspect", "--type", "container", cid, check=True)
        doc: dict[str, Any] = json.loads(p.stdout)[0]
        return doc

    def cleanup(self) -> list[str]:
        # private --root/--runroot: `-a` means the containers and images of this podman only
        problems = []
        ids = self(PYRUNTIME_BIN, "ps", "-a", "-q", "--no-trunc").stdout.split()
        for binary in RUNTIMES.values():
            self(binary, "rm", "-a", "-f", "-t", "0", timeout=120)
        self(PYRUNTIME_BIN, "rmi", "-a", "-f", timeout=60)
        # conmon and its exit command (`podman ... container cleanup`) name our directory
        left = wait_gone(str(self.tmp), timeout=15)
        if left:
            problems.append(f"conmon/podman processes still running (killed): {left}")
        # the runtimes' state of our containers (podman runs them with their default --root)
        for cid in ids:
            for state_root in ("/run/runc", "/run/pyruntime"):
                if os.path.exists(f"{state_root}/{cid}"):
                    problems.append(f"{state_root}/{cid} left behind")
        return problems


def _quote(s: str) -> str:
    return s if re.fullmatch(r"[\w./=:@%+,-]+", s) else "'" + s.replace("'", "'\\''") + "'"


@pytest.fixture(scope="module")
def podman(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Podman]:
    tmp = Path(tempfile.mkdtemp(prefix="pyrt-podman-"))
    pm = Podman(tmp)
    problems: list[str] = []
    try:
        layer = write_layer_tar(tmp_path_factory.mktemp("image") / "busybox-rootfs.tar")
        pm(PYRUNTIME_BIN, "import", "--change", "CMD=sh", str(layer), IMAGE, check=True)
        yield pm
    finally:
        problems += pm.cleanup()
        problems += remove_tool_leftovers(tmp, CGROUP_PARENT)
    assert not problems, problems


def tty_lines(text: str) -> list[str]:
    return [line for line in re.split(r"[\r\n]+", text.replace("^@", "").replace("\0", "")) if line.strip()]


def test_podman_run_foreground(podman: Podman) -> None:
    seen = {}
    for name, binary in RUNTIMES.items():
        a = podman(binary, "run", "--rm", *RUN_FLAGS, IMAGE, "echo", "hi")
        b = podman(binary, "run", "--rm", *RUN_FLAGS, IMAGE, "sh", "-c", "echo out; echo err >&2; exit 3")
        c = podman(binary, "run", "--rm", "-i", *RUN_FLAGS, IMAGE, "sh", "-c", "tr a-z A-Z; echo pid=$$",
                   input="piped\n")
        seen[name] = [(p.returncode, p.stdout, p.stderr) for p in (a, b, c)]
    assert seen["runc"] == [(0, "hi\n", ""), (3, "out\n", "err\n"), (0, "PIPED\npid=1\n", "")]
    assert seen["pyruntime"] == seen["runc"]


def _cgroup_controllers(cid: str) -> list[str]:
    return sorted(d.name for d in CGROUP_ROOT.iterdir()
                  if os.path.ismount(d) and (d / CGROUP_PARENT / f"libpod-{cid}").is_dir())


def _detached(pm: Podman, binary: str) -> dict[str, Any]:
    obs: dict[str, Any] = {}
    p = pm(binary, "run", "-d", *RUN_FLAGS, IMAGE, "sleep", "100")
    cid = p.stdout.strip()
    obs["run"] = (p.returncode, bool(re.fullmatch(r"[0-9a-f]{64}", cid)), p.stderr)
    if p.returncode != 0:
        return obs
    st = pm.inspect(binary, cid)["State"]
    obs["status"] = st["Status"]
    obs["runtime"] = pm.inspect(binary, cid)["OCIRuntime"] == binary
    obs["cgroups"] = _cgroup_controllers(cid)
    pid = st["Pid"]
    obs["pid in memory cgroup"] = str(pid) in (
        CGROUP_ROOT / "memory" / CGROUP_PARENT / f"libpod-{cid}" / "cgroup.procs").read_text()

    e = pm(binary, "exec", cid, "cat", "/etc/hostname")
    obs["exec hostname"] = (e.returncode, e.stdout == cid[:12], e.stderr)
    e = pm(binary, "exec", cid, "sh", "-c", "echo in; tr '\\0' ' ' < /proc/1/cmdline; echo; exit 6")
    obs["exec exit"] = (e.returncode, e.stdout, e.stderr)
    e = pm(binary, "exec", "-i", cid, "cat", input="via stdin\n")
    obs["exec -i"] = (e.returncode, e.stdout, e.stderr)
    t = pm.script(binary, "exec", "-t", cid, "sh", "-c", "tty; exit 2")
    obs["exec -t"] = (t.returncode, tty_lines(t.stdout))

    p = pm(binary, "pause", cid)
    obs["pause"] = (p.returncode, p.stdout.strip() == cid, p.stderr, pm.inspect(binary, cid)["State"]["Status"])
    p = pm(binary, "unpause", cid)
    obs["unpause"] = (p.returncode, p.stdout.strip() == cid, p.stderr, pm.inspect(binary, cid)["State"]["Status"])

    p = pm(binary, "stop", "-t", "1", cid)
    # the warning "StopSignal SIGTERM failed to stop container NAME ..." names the container
    obs["stop"] = (p.returncode, p.stdout.strip() == cid, "resorting to SIGKILL" in p.stderr)
    st = pm.inspect(binary, cid)["State"]
    obs["stopped"] = (st["Status"], st["ExitCode"])
    p = pm(binary, "rm", cid)
    obs["rm"] = (p.returncode, p.stdout.strip() == cid, p.stderr)
    obs["gone"] = cid not in pm(binary, "ps", "-a", "-q", "--no-trunc").stdout.split()
    obs["cgroups after rm"] = _cgroup_controllers(cid)
    return obs


def test_podman_detached_exec_pause_stop_rm(podman: Podman) -> None:
    runc = _detached(podman, RUNTIMES["runc"])
    pyrt = _detached(podman, RUNTIMES["pyruntime"])
    assert runc["run"] == (0, True, "") and runc["status"] == "running" and runc["runtime"]
    assert runc["exec hostname"] == (0, True, "")
    assert runc["exec exit"] == (6, "in\nsleep 100 \n", "")
    assert runc["exec -i"] == (0, "via stdin\n", "")
    assert runc["exec -t"] == (2, ["/dev/pts/0"])
    assert runc["pause"][3] == "paused" and runc["unpause"][3] == "running"
    assert runc["stopped"] == ("exited", 137) and runc["gone"] and not runc["cgroups after rm"]
    for k in runc:
        assert pyrt.get(k) == runc[k], f"{k}: pyruntime {pyrt.get(k)!r} != runc {runc[k]!r}"


def test_podman_run_tty(podman: Podman) -> None:
    if shutil.which("script") is None:
        pytest.skip("needs script(1)")
    seen = {}
    for name, binary in RUNTIMES.items():
        p = podman.script(binary, "run", "--rm", "-t", *RUN_FLAGS, IMAGE,
                          "sh", "-c", "tty; test -t 0 && echo stdin-tty; ls -l /dev/console | cut -c1-10; exit 3")
        seen[name] = (p.returncode, tty_lines(p.stdout))
    assert seen["runc"] == (3, ["/dev/pts/0", "stdin-tty", "crw--w----"])
    assert seen["pyruntime"] == seen["runc"]


def test_podman_resource_limits_in_cgroups(podman: Podman) -> None:
    files = ["memory/memory.limit_in_bytes", "pids/pids.max", "cpu/cpu.shares"]
    seen = {}
    for name, binary in RUNTIMES.items():
        p = podman(binary, "run", "--rm", "--memory", "64m", "--pids-limit", "50", "--cpu-shares", "512",
                   *RUN_FLAGS, IMAGE, "cat", *(f"/sys/fs/cgroup/{f}" for f in files))
        seen[name] = (p.returncode, p.stdout.split(), p.stderr)
    assert seen["runc"] == (0, ["67108864", "50", "512"], "")
    assert seen["pyruntime"] == seen["runc"]


def test_podman_default_seccomp_and_capabilities(podman: Podman) -> None:
    show = "grep -E '^(Seccomp|NoNewPrivs|CapEff|CapBnd):' /proc/self/status"
    seen = {}
    for name, binary in RUNTIMES.items():
        confined = podman(binary, "run", "--rm", *RUN_FLAGS, IMAGE, "sh", "-c", show)
        unconfined = podman(binary, "run", "--rm", "--security-opt", "seccomp=unconfined", *RUN_FLAGS, IMAGE,
                            "grep", "^Seccomp:", "/proc/self/status")
        seen[name] = [(confined.returncode, confined.stdout.split("\n")),
                      (unconfined.returncode, unconfined.stdout.split())]
    assert "Seccomp:\t2" in seen["runc"][0][1], seen["runc"]
    assert seen["runc"][1] == (0, ["Seccomp:", "0"])
    assert seen["pyruntime"] == seen["runc"]


# podman writes linux.devices[].fileMode with the file type bits (S_IFCHR|0600 = 8576);
# runc masks them off, and so must we (the "device" and "privileged" cases).

OPTION_CASES = [
    pytest.param(["--user", "65534:65534", "--workdir", "/tmp", "-e", "FOO=bar"],
                 "id; pwd; echo $FOO; grep -E '^Cap(Prm|Eff)' /proc/self/status", id="user-workdir-env"),
    pytest.param(["--cap-drop", "all", "--cap-add", "NET_RAW"], "grep -E '^Cap' /proc/self/status", id="caps"),
    pytest.param(["--read-only"], "touch /x 2>/dev/null || echo ro; touch /tmp/y && echo tmp-rw; "
                 "grep ' / ' /proc/mounts | cut -d' ' -f4 | cut -d, -f1", id="read-only"),
    pytest.param(["--tmpfs", "/scratch:size=1m,mode=1777"],
                 "grep ' /scratch ' /proc/mounts | cut -d' ' -f3,4; stat -c %a /scratch", id="tmpfs"),
    pytest.param(["-v", "@VOL:/data:ro"], "cat /data/f; touch /data/g 2>/dev/null || echo ro", id="volume-ro"),
    pytest.param(["--hostname", "h1"], "hostname; cat /etc/hostname; echo", id="hostname"),
    pytest.param(["--sysctl", "net.ipv4.ip_forward=1", "--sysctl", "kernel.msgmax=9000"],
                 "cat /proc/sys/net/ipv4/ip_forward /proc/sys/kernel/msgmax", id="sysctl"),
    pytest.param(["--oom-score-adj", "300", "--security-opt", "no-new-privileges"],
                 "cat /proc/self/oom_score_adj; grep NoNewPrivs /proc/self/status", id="oom-nnp"),
    pytest.param(["--uidmap", "0:100000:65536", "--gidmap", "0:100000:65536"],
                 "id; cat /proc/self/uid_map; ls -ln /bin/busybox | cut -c1-40", id="userns"),
    pytest.param(["--shm-size", "16m"], "df -k /dev/shm | tail -1 | awk '{print $2}'", id="shm-size"),
    pytest.param(["--pid", "host", "--ipc", "host", "--uts", "host"],
                 "test -d /proc/1 && test \"$$\" -gt 1 && echo host-pid; hostname | grep -qv '^[0-9a-f]\\{12\\}$' "
                 "&& echo host-uts", id="host-namespaces"),
    pytest.param(["--device", "/dev/fuse"], "ls -l /dev/fuse | cut -c1-10; head -c0 /dev/fuse && echo open",
                 id="device"),
    pytest.param(["--privileged"], "grep -E '^(CapEff|Seccomp):' /proc/self/status; "
                 "test -e /dev/fuse -a -e /dev/zero && echo host-devices", id="privileged"),
]


@pytest.mark.parametrize(("flags", "script"), OPTION_CASES)
def test_podman_run_options(podman: Podman, flags: list[str], script: str) -> None:
    if "/dev/fuse" in flags + [script] and not os.path.exists("/dev/fuse"):
        pytest.skip("no /dev/fuse")
    vol = podman.tmp / "vol"
    vol.mkdir(exist_ok=True)
    (vol / "f").write_text("from the host\n")
    flags = [f.replace("@VOL", str(vol)) for f in flags]
    # sysctls land in the namespaces of whoever runs podman should the runtime lose the
    # container's own: give it throwaway ones, never the host's
    wrap = ["unshare", "--ipc", "--net", "--uts"] if "--sysctl" in flags else []
    seen = {}
    for name, binary in RUNTIMES.items():
        p = run_captured([*wrap, *podman.argv(binary), "run", "--rm", *RUN_FLAGS, *flags, IMAGE,
                          "sh", "-c", script], timeout=120, env=podman.env)
        seen[name] = (p.returncode, p.stdout, p.stderr)
    assert seen["runc"][0] == 0, seen["runc"]
    assert seen["pyruntime"] == seen["runc"]
