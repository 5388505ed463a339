"""dockee-shim's container verbs typed as a user types them, with pyruntime and with runc.

Each runtime gets a private store (--root) and a private runtime state dir (--runtime-root)
under tmp, shared by this module's tests; every test removes the containers it made and checks
that nothing of them is left: no record, no overlay mount, no runtime state, no cgroup.
"""

from __future__ import annotations

import contextlib
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
from netfix import remove_store_networks

DOCKEE = shutil.which("dockee-shim") or "/usr/local/bin/dockee-shim"
RUNTIMES = ["pyruntime", "runc"]


class Dockee:
    def __init__(self, runtime: str, root: Path, runtime_root: Path) -> None:
        self.runtime = runtime
        self.root = root
        self.runtime_root = runtime_root

    def argv(self, *args: str) -> list[str]:
        return [DOCKEE, "--root", str(self.root), "--runtime", self.runtime, "--runtime-root",
                str(self.runtime_root), *args]

    def __call__(self, *args: str, timeout: float = 60, input: str | None = None,
                 check: bool = False) -> subprocess.CompletedProcess[str]:
        # files, not pipes: a detached container's monitor must not hold our pipes open
        with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
            p = subprocess.run(self.argv(*args), stdout=out, stderr=err, text=True, timeout=timeout,
                               input=input, stdin=None if input is not None else subprocess.DEVNULL)
            out.seek(0)
            err.seek(0)
            p.stdout, p.stderr = out.read(), err.read()
        if check and p.returncode != 0:
            raise AssertionError(f"{' '.join(args)} -> {p.returncode}\n{p.stdout}\n{p.stderr}")
        return p

    def ids(self) -> set[str]:
        return set(self("ps", "-aq", "--no-trunc", check=True).stdout.split())

    def inspect(self, ref: str) -> dict[str, Any]:
        doc: dict[str, Any] = json.loads(self("inspect", ref, check=True).stdout)[0]
        return doc


def own_cgroup(controller: str) -> Path:
    """Our cgroup in a v1 controller's hierarchy, or ("unified") in the hybrid cgroup2 tree."""
    with open("/proc/self/cgroup") as f:
        for line in f:
            _, ctrls, path = line.rstrip("\n").split(":", 2)
            if controller in ctrls.split(",") or (controller == "unified" and ctrls == ""):
                return Path("/sys/fs/cgroup") / controller / path.lstrip("/")
    return Path("/sys/fs/cgroup") / controller


CGROUP_TREES = ("memory", "pids", "cpu", "cpuacct", "cpuset", "freezer", "devices", "blkio", "unified")


def leftovers(d: Dockee, cid: str) -> list[str]:
    """What is left of a removed container anywhere a user could find it."""
    found = []
    if (d.root / "containers" / cid).exists():
        found.append("container dir")
    with open("/proc/self/mountinfo") as f:
        if cid in f.read():
            found.append("mount")
    if (d.runtime_root / cid).exists():
        found.append("runtime state")
    for ctrl in CGROUP_TREES:
        if (own_cgroup(ctrl) / f"dockee-{cid[:12]}").exists():
            found.append(f"{ctrl} cgroup")
    return found


@pytest.fixture(scope="module", params=RUNTIMES)
def store(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dockee]:
    runtime = request.param
    if shutil.which(runtime) is None:
        pytest.skip(f"{runtime} not installed")
    base = tmp_path_factory.mktemp(f"dockee-{runtime}")
    d = Dockee(runtime, base / "store", base / "rt")
    yield d
    tear_down_store(d, base)


def tear_down_store(d: Dockee, base: Path) -> None:
    """Remove every container and network of the store under `base`, and whatever is mounted there."""
    for cid in d.ids():
        d("rm", "-f", cid)
    d("network", "rm", "dockee0")  # the default network's bridge and nft table, made on first use
    remove_store_networks(base / "store")  # whatever rm left: nothing of the store stays on the host
    with open("/proc/self/mountinfo") as f:
        for line in f:
            mp = line.split()[4]
            if mp.startswith(str(base)):
                subprocess.run(["umount", "-l", mp], check=False)


@pytest.fixture
def dk(store: Dockee) -> Iterator[Dockee]:
    """The module's store; the containers this test made are force-removed and must leave nothing."""
    before = store.ids()
    yield store
    made = store.ids() - before
    for cid in made:
        store("rm", "-f", cid)
    for cid in made:
        assert leftovers(store, cid) == [], cid


def made_by(dk: Dockee, before: set[str]) -> str:
    (cid,) = dk.ids() - before
    return cid


# ---- run ------------------------------------------------------------------------------------

def test_run_rm_prints_and_exits_with_the_commands_status(dk: Dockee) -> None:
    before = dk.ids()
    p = dk("run", "--rm", "--net", "none", "busybox", "sh", "-c", "echo hello; echo oops >&2; exit 3")
    assert (p.returncode, p.stdout, p.stderr) == (3, "hello\n", "oops\n")
    p = dk("run", "--rm", "busybox", "cat", "/proc/1/comm")  # the default network too
    assert (p.returncode, p.stdout) == (0, "cat\n"), p.stderr
    assert dk.ids() == before
    p = dk("run", "--rm", "--net", "none", "busybox", "nosuchcommand")
    assert p.returncode == 127 and "nosuchcommand" in p.stderr and len(p.stderr.splitlines()) == 1
    p = dk("run", "--rm", "--net", "none", "busybox", "/etc/passwd")
    assert p.returncode == 126 and "permission denied" in p.stderr
    assert dk.ids() == before  # --rm also when the command could not start


def test_detached_logs_follow_stop_rm(dk: Dockee) -> None:
    name = f"web-{uuid.uuid4().hex[:6]}"
    p = dk("run", "-d", "--name", name, "--net", "none", "busybox", "sh", "-c",
           "i=0; while true; do echo line $i; i=$((i+1)); sleep 0.1; done")
    cid = p.stdout.strip()
    assert p.returncode == 0 and re.fullmatch(r"[0-9a-f]{64}", cid), p.stderr
    with tempfile.TemporaryFile("w+") as out:
        follower = subprocess.Popen([*dk.argv("logs", "-f", name)], stdout=out, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL)
        time.sleep(0.5)
        rows = dk("ps", check=True).stdout.splitlines()
        assert rows[0].split()[:3] == ["CONTAINER", "ID", "IMAGE"]
        assert any(r.startswith(cid[:12]) and " Up " in r and r.endswith(name) for r in rows)
        assert dk("stop", "-t", "1", name, check=True).stdout.strip() == name
        follower.wait(timeout=20)  # -f ends by itself when the container stops
        out.seek(0)
        followed = out.read().splitlines()
    logs = dk("logs", name, check=True).stdout.splitlines()
    assert followed == logs and logs[:3] == ["line 0", "line 1", "line 2"] and len(logs) >= 5
    assert dk("logs", "--tail", "2", name).stdout.splitlines() == logs[-2:]
    ps = [r for r in dk("ps", "-a").stdout.splitlines() if r.endswith(name)]
    assert re.search(r"Exited \(137\) (Less than a second|\d+ seconds?) ago", ps[0]), ps
    assert name not in dk("ps").stdout
    state = dk.inspect(name)["State"]
    assert (state["Status"], state["ExitCode"], state["Running"]) == ("exited", 137, False)
    assert dk("rm", name, check=True).stdout.strip() == name
    assert dk("inspect", name).returncode != 0
    assert leftovers(dk, cid) == []


def test_exec_sees_the_containers_processes(dk: Dockee) -> None:
    cid = dk("run", "-d", "--net", "none", "busybox", "sleep", "1000", check=True).stdout.strip()
    p = dk("exec", cid[:10], "ps", "-o", "pid,args")
    assert p.returncode == 0 and re.search(r"^\s*1 sleep 1000$", p.stdout, re.M), p.stdout
    p = dk("exec", "-e", "GREETING=hi", "-w", "/tmp", cid, "sh", "-c", "echo $GREETING $(pwd); exit 5")
    assert (p.returncode, p.stdout) == (5, "hi /tmp\n")
    assert dk("exec", "-u", "nobody", cid, "id", "-u").stdout.strip() == "65534"
    assert dk("exec", "-i", cid, "cat", input="piped\n").stdout == "piped\n"
    assert dk("exec", cid, "nosuchcommand").returncode == 127  # docker's codes, as for run
    assert dk("exec", cid, "/etc/passwd").returncode == 126
    top = dk("top", cid, check=True).stdout
    assert "sleep 1000" in top and "PID" in top
    assert dk("rm", cid).returncode != 0  # running: refused without -f
    assert dk("rm", "-f", cid, check=True).returncode == 0
    assert leftovers(dk, cid) == []


def test_volumes_reach_the_host_and_ro_refuses(dk: Dockee, tmp_path: Path) -> None:
    host = tmp_path / "host"
    host.mkdir()
    p = dk("run", "--rm", "--net", "none", "-v", f"{host}:/data", "busybox", "sh", "-c", "echo written > /data/f")
    assert p.returncode == 0 and (host / "f").read_text() == "written\n"
    p = dk("run", "--rm", "--net", "none", "-v", f"{host}:/data:ro", "busybox", "sh", "-c", "echo x > /data/g")
    assert p.returncode != 0 and "Read-only file system" in p.stderr and not (host / "g").exists()
    vol = f"v{uuid.uuid4().hex[:8]}"
    dk("run", "--rm", "--net", "none", "-v", f"{vol}:/v", "busybox", "sh", "-c", "echo kept > /v/k", check=True)
    assert dk("run", "--rm", "--net", "none", "-v", f"{vol}:/v", "busybox", "cat", "/v/k").stdout == "kept\n"
    assert vol in dk("volume", "ls", "-q").stdout.split()
    dk("volume", "rm", vol, check=True)
    assert vol not in dk("volume", "ls", "-q").stdout.split()


def test_commit_then_run_shows_the_change(dk: Dockee) -> None:
    name = f"c-{uuid.uuid4().hex[:6]}"
    tag = f"committed-{uuid.uuid4().hex[:6]}:v1"
    dk("run", "--name", name, "--net", "none", "busybox", "sh", "-c", "echo hello > /etc/marker; rm /bin/vi",
       check=True)
    p = dk("commit", name, tag, check=True)
    assert re.fullmatch(r"sha256:[0-9a-f]{64}\n", p.stdout)
    p = dk("run", "--rm", "--net", "none", tag, "sh", "-c", "cat /etc/marker; ls /bin/vi || echo gone")
    assert p.stdout.splitlines() == ["hello", "gone"], p.stderr
    dk("rm", name, check=True)
    dk("rmi", tag, check=True)


def test_memory_limit_kills_a_hog(dk: Dockee) -> None:
    name = f"hog-{uuid.uuid4().hex[:6]}"
    p = dk("run", "--name", name, "--net", "none", "-m", "16m", "busybox", "sh", "-c",
           "x=$(head -c 200000000 /dev/zero | tr '\\0' a); echo survived")
    assert p.returncode == 137 and "survived" not in p.stdout
    state = dk.inspect(name)["State"]
    assert (state["ExitCode"], state["OOMKilled"]) == (137, True)
    dk("rm", name, check=True)


def test_cpus_holds_a_busy_loop_near_half_a_cpu(dk: Dockee) -> None:
    cid = dk("run", "-d", "--net", "none", "--cpus", "0.5", "-m", "64m", "busybox", "sh", "-c", "while :; do :; done",
             check=True).stdout.strip()
    pid = dk.inspect(cid)["State"]["Pid"]
    with open(f"/proc/{pid}/cgroup") as f:
        rows = [line.rstrip("\n").split(":", 2) for line in f]
    cpuacct = next(Path("/sys/fs/cgroup/cpuacct") / r[2].lstrip("/") for r in rows if "cpuacct" in r[1].split(","))
    cpu = next(Path("/sys/fs/cgroup/cpu") / r[2].lstrip("/") for r in rows if "cpu" in r[1].split(","))
    assert (cpu / "cpu.cfs_quota_us").read_text().strip() == "50000"

    def sample() -> tuple[int, float, dict[str, int]]:
        stat = dict(line.split() for line in (cpu / "cpu.stat").read_text().splitlines())
        return int((cpuacct / "cpuacct.usage").read_text()), time.monotonic(), {k: int(v) for k, v in stat.items()}
    time.sleep(0.5)
    (a, t0, s0), _ = sample(), time.sleep(3)
    b, t1, s1 = sample()
    cpus = (b - a) / 1e9 / (t1 - t0)
    periods = s1["nr_periods"] - s0["nr_periods"]
    throttled = s1["nr_throttled"] - s0["nr_throttled"]
    assert cpus <= 0.55, cpus
    # In each throttled period the loop used its whole quota; a period it was not throttled in means
    # a busy host starved it. On a quiet machine (all periods throttled) this is 0.45 <= cpus.
    assert periods > 20 and cpus >= 0.45 * throttled / periods, (cpus, throttled, periods)
    row = next(r for r in dk("stats", "--no-stream", cid, check=True).stdout.splitlines() if r.startswith(cid[:12]))
    pct = float(re.search(r"([\d.]+)%", row).group(1))  # type: ignore[union-attr]
    assert 0 < pct <= 60 and "/ 64.0MiB" in row, row  # a delta of two samples, not the lifetime average
    dk("rm", "-f", cid, check=True)


def test_tty_through_tmux(dk: Dockee, tmp_path: Path) -> None:
    if shutil.which("tmux") is None:
        pytest.skip("tmux not installed")
    session = f"dk{uuid.uuid4().hex[:8]}"
    result = tmp_path / "exit"
    name = f"tty-{uuid.uuid4().hex[:6]}"
    cmd = " ".join(dk.argv("run", "-it", "--rm", "--name", name, "--net", "none", "busybox", "sh"))
    subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", "100", "-y", "30",
                    f"{cmd}; echo $? > {result}; sleep 30"], check=True)

    def screen() -> str:
        return subprocess.run(["tmux", "capture-pane", "-p", "-t", session], capture_output=True,
                              text=True).stdout

    def until(text: str, timeout: float = 15) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            s = screen()
            if text in s:
                return s
            time.sleep(0.1)
        raise AssertionError(f"{text!r} never appeared:\n{screen()}")

    def keys(*k: str) -> None:
        subprocess.run(["tmux", "send-keys", "-t", session, *k], check=True)
    try:
        until("/ #")
        keys("stty size", "Enter")
        until("30 100")
        subprocess.run(["tmux", "resize-window", "-t", session, "-x", "80", "-y", "24"], check=True)
        time.sleep(0.3)
        keys("stty size", "Enter")
        until("24 80")
        keys("sleep 100; echo not-interrupted", "Enter")
        time.sleep(0.5)
        keys("C-c")
        keys("echo after-int", "Enter")
        s = until("after-int\n")
        assert "not-interrupted" not in [line.strip() for line in s.splitlines()]
        keys("exit 7", "Enter")
        deadline = time.monotonic() + 15
        while not result.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert result.read_text().strip() == "7"
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], check=False)


def test_a_stopped_container_starts_again(dk: Dockee) -> None:
    name = f"again-{uuid.uuid4().hex[:6]}"
    p = dk("run", "--name", name, "--net", "none", "busybox", "sh", "-c", "echo ran; exit 4")
    assert (p.returncode, p.stdout) == (4, "ran\n")
    p = dk("start", "-a", name)
    assert (p.returncode, p.stdout) == (4, "ran\n")
    assert dk("logs", name).stdout == "ran\nran\n"
    dk("rm", name, check=True)
    cid = dk("run", "-d", "--net", "none", "busybox", "sh", "-c", "echo $$ > /tmp/pid; sleep 1000",
             check=True).stdout.strip()
    dk("stop", "-t", "0", cid, check=True)
    dk("start", cid, check=True)
    assert dk.inspect(cid)["State"]["Status"] == "running"
    assert dk("exec", cid, "cat", "/tmp/pid").stdout == "1\n"  # the upper layer survived the restart
    dk("restart", "-t", "0", cid, check=True)
    assert dk.inspect(cid)["State"]["Running"] is True
    dk("rm", "-f", cid, check=True)


def test_monitor_killed_then_ps_and_rm_f(dk: Dockee) -> None:
    cid = dk("run", "-d", "--net", "none", "busybox", "sleep", "1000", check=True).stdout.strip()
    conmon = int((dk.root / "containers" / cid / "conmon.pid").read_text())
    os.kill(conmon, signal.SIGKILL)
    time.sleep(0.2)
    row = next(r for r in dk("ps", "-a").stdout.splitlines() if r.startswith(cid[:12]))
    assert " Up " in row  # the container outlives its monitor, and ps says so
    os.kill(dk.inspect(cid)["State"]["Pid"], signal.SIGKILL)
    deadline = time.monotonic() + 10
    while True:  # the orphan is reaped by whoever inherits it: poll
        row = next(r for r in dk("ps", "-a").stdout.splitlines() if r.startswith(cid[:12]))
        if "Exited" in row or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert "Exited" in row
    dk("rm", "-f", cid, check=True)
    assert leftovers(dk, cid) == []


def test_after_a_reboot_ps_shows_exited_and_start_works(dk: Dockee) -> None:
    cid = dk("run", "-d", "--net", "none", "busybox", "sleep", "1000", check=True).stdout.strip()
    cdir = dk.root / "containers" / cid
    # a reboot: every process gone, the runtime's state dir (a tmpfs) and the mounts gone
    os.kill(int((cdir / "conmon.pid").read_text()), signal.SIGKILL)
    pid = dk.inspect(cid)["State"]["Pid"]
    os.kill(pid, signal.SIGKILL)
    while os.path.exists(f"/proc/{pid}"):
        time.sleep(0.02)
    shutil.rmtree(dk.runtime_root / cid)
    subprocess.run(["umount", str(cdir / "merged")], check=True)
    for ctrl in CGROUP_TREES:  # a reboot empties /sys/fs/cgroup too
        with contextlib.suppress(OSError):
            (own_cgroup(ctrl) / f"dockee-{cid[:12]}").rmdir()
    row = next(r for r in dk("ps", "-a").stdout.splitlines() if r.startswith(cid[:12]))
    assert "Exited" in row
    dk("start", cid, check=True)
    assert dk("exec", cid, "echo", "alive").stdout == "alive\n"
    dk("rm", "-f", cid, check=True)


@pytest.mark.parametrize("args", [
    ["-m", "10x", "busybox", "true"],
    ["--cpus", "-1", "busybox", "true"],
    ["-v", "/nonexistent-dockee-src:/x", "busybox", "true"],
    ["nosuchimage-dockee", "true"],
    ["--user", "nosuchuser", "busybox", "true"],
    ["--cap-add", "CAP_FLY", "busybox", "true"],
], ids=["memory", "cpus", "volume-source", "image", "user", "cap"])
def test_bad_input_leaves_nothing(dk: Dockee, args: list[str]) -> None:
    before = dk.ids()
    containers = sorted(os.listdir(dk.root / "containers")) if (dk.root / "containers").exists() else []
    p = dk("run", "--rm", "--net", "none", *args)
    assert p.returncode == 125 and len(p.stderr.strip().splitlines()) == 1, p.stderr
    assert "Traceback" not in p.stderr
    assert dk.ids() == before
    assert (sorted(os.listdir(dk.root / "containers")) if (dk.root / "containers").exists() else []) == containers


def test_taken_name_and_unknown_container(dk: Dockee) -> None:
    name = f"taken-{uuid.uuid4().hex[:6]}"
    dk("create", "--name", name, "--net", "none", "busybox", "true", check=True)
    before = dk.ids()
    p = dk("run", "--name", name, "--net", "none", "busybox", "true")
    assert p.returncode == 125 and "already in use" in p.stderr and dk.ids() == before
    for verb in (["logs"], ["stop"], ["rm"], ["exec"], ["inspect"]):
        p = dk(*verb, "nosuch-container-x", *(["true"] if verb == ["exec"] else []))
        assert p.returncode != 0 and "nosuch-container-x" in p.stderr and len(p.stderr.splitlines()) == 1


def test_the_seeds_command_lines(dk: Dockee) -> None:
    p = dk("run", "--rm", "--net", "none", "--image", "busybox", "-m", "10m", "-cpuset", "0", "-cpu", "20",
           "/bin/sh -c 'cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us /sys/fs/cgroup/cpuset/cpuset.cpus'")
    assert p.stdout.split() == ["20000", "0"], p.stderr
    p = dk("run", "-d", "--net", "none", "--image", "busybox", "/bin/ps")
    assert re.fullmatch(r"[0-9a-f]{64}\n", p.stdout)
    p = dk("run", "-idt", "--net", "none", "--memory", "50m", "--cpus", "0.5", "--memory-swap", "1024m",
           "busybox", "ps", "ef")
    assert p.returncode == 0 and re.fullmatch(r"[0-9a-f]{64}\n", p.stdout)
    p = dk("run", "--rm", "--net", "none", "-k", "-m", "16m", "busybox", "cat",
           "/sys/fs/cgroup/memory/memory.oom_control")
    assert "oom_kill_disable 1" in p.stdout
    p = dk("run", "--rm", "--net", "none", "--it", "--image", "busybox", "/bin/echo a b")
    assert p.returncode == 0 and p.stdout.strip() == "a b"


def test_create_start_pause_wait_and_concurrent_names(dk: Dockee) -> None:
    name = f"cw-{uuid.uuid4().hex[:6]}"
    cid = dk("create", "--name", name, "--net", "none", "busybox", "sh", "-c",
             "until [ -e /tmp/go ]; do sleep 0.05; done; exit 9", check=True).stdout.strip()
    assert dk.inspect(name)["State"]["Status"] == "created"
    assert any(r.startswith(cid[:12]) and "Created" in r for r in dk("ps", "-a").stdout.splitlines())
    dk("start", name, check=True)
    dk("pause", name, check=True)
    assert dk.inspect(name)["State"]["Status"] == "paused"
    dk("unpause", name, check=True)
    dk("exec", name, "touch", "/tmp/go", check=True)
    assert dk("wait", name, check=True).stdout == "9\n"
    dk("rm", name, check=True)
    # four runs racing for one name: exactly one gets it, the others leave nothing
    same = f"same-{uuid.uuid4().hex[:6]}"
    procs = [subprocess.Popen(dk.argv("run", "-d", "--name", same, "--net", "none", "busybox", "sleep", "100"),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
             for _ in range(4)]
    results = [(p.wait(timeout=60), p.stderr.read()) for p in procs]  # type: ignore[union-attr]
    for p in procs:
        p.stdout.close()  # type: ignore[union-attr]
        p.stderr.close()  # type: ignore[union-attr]
    assert sorted(rc for rc, _ in results) == [0, 125, 125, 125], results
    assert all("already in use" in err for rc, err in results if rc)
    assert [r for r in dk("ps", "-a").stdout.splitlines() if r.endswith(same)] != []
    dk("rm", "-f", same, check=True)


def test_run_flags_reach_the_container(dk: Dockee, tmp_path: Path) -> None:
    env_file = tmp_path / "env"
    env_file.write_text("# a comment\nFROMFILE=yes\n")
    p = dk("run", "--rm", "--net", "host", "--read-only", "--pids-limit", "20", "--hostname", "hh", "-w", "/tmp",
           "-u", "nobody", "--env-file", str(env_file), "-e", "X=1", "--cap-drop", "ALL", "--cap-add",
           "NET_BIND_SERVICE", "--entrypoint", "/bin/sh", "busybox", "-c",
           "echo $(hostname) $(pwd) $(id -u) $FROMFILE $X $(cat /sys/fs/cgroup/pids/pids.max);"
           "grep CapBnd /proc/self/status; touch /x 2>&1; echo $(ls /sys/class/net)")
    lines = p.stdout.splitlines()
    assert p.returncode == 0, p.stderr
    assert lines[0] == "hh /tmp 65534 yes 1 20"
    assert lines[1].split() == ["CapBnd:", "0000000000000400"]  # CAP_NET_BIND_SERVICE only
    assert "Read-only file system" in lines[2]
    # --net host: the host's interfaces (others' tests may add or remove some meanwhile)
    ours = set(lines[3].split()) - {"lo"}
    assert ours and ours & set(os.listdir("/sys/class/net")), lines[3]
    p = dk("run", "--rm", "--net", "none", "busybox", "sh", "-c",
           "grep -c : /proc/net/dev; grep Seccomp: /proc/self/status")
    assert p.stdout.split() == ["1", "Seccomp:", "2"]  # lo only; podman's seccomp profile
    p = dk("run", "--rm", "--privileged", "--net", "none", "busybox", "grep", "Seccomp:", "/proc/self/status")
    assert p.returncode == 0 and p.stdout.split() == ["Seccomp:", "0"], p.stderr


def test_cli_killed_at_any_moment_then_ps_and_rm_f(dk: Dockee) -> None:
    before = dk.ids()
    for delay in (0.05, 0.15, 0.25, 0.4):
        p = subprocess.Popen(dk.argv("run", "--net", "none", "busybox", "sleep", "100"), stdin=subprocess.DEVNULL,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(delay)
        p.kill()
        p.wait()
    time.sleep(0.3)
    rows = {r.split()[0]: r for r in dk("ps", "-a", check=True).stdout.splitlines()[1:]}
    made = dk.ids() - before
    for cid in made:
        row = rows[cid[:12]]
        state = dk.inspect(cid)["State"]
        # whatever the moment, ps and inspect agree with the runtime: running means a live process
        if state["Running"]:
            assert " Up " in row and os.path.exists(f"/proc/{state['Pid']}")
        else:
            assert "Created" in row or "Exited" in row
    for cid in made:
        dk("rm", "-f", cid, check=True)
        assert leftovers(dk, cid) == []
    assert dk.ids() == before
    assert not list((dk.root / "containers").glob(".new-*")) or dk("container", "prune", "-f").returncode == 0


def test_long_lines_come_back_whole_in_logs(dk: Dockee) -> None:
    name = f"long-{uuid.uuid4().hex[:6]}"
    p = dk("run", "--name", name, "--net", "none", "busybox", "sh", "-c",
           "head -c 30000 /dev/zero | tr '\\0' x; echo; echo end")
    assert p.stdout == "x" * 30000 + "\nend\n"
    assert dk("logs", name).stdout == p.stdout  # conmon wrote it in 8 KiB partial chunks
    assert dk("logs", "--tail", "1", name).stdout == "end\n"
    dk("rm", name, check=True)


def test_rm_f_after_the_runtime_lost_the_container(dk: Dockee) -> None:
    """The runtime's state dir gone under a running container (a runtime killed midway, a wiped
    --root): rm -f still kills nothing it should not, and leaves no mount and no cgroup."""
    cid = dk("run", "-d", "--net", "none", "busybox", "sleep", "1000", check=True).stdout.strip()
    pid = dk.inspect(cid)["State"]["Pid"]
    os.kill(pid, signal.SIGKILL)
    while os.path.exists(f"/proc/{pid}"):
        time.sleep(0.02)
    shutil.rmtree(dk.runtime_root / cid)
    assert (own_cgroup("memory") / f"dockee-{cid[:12]}").exists()  # the runtime can no longer remove it
    dk("rm", "-f", cid, check=True)
    assert leftovers(dk, cid) == []
