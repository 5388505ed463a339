"""The OCI lifecycle on the real kernel, checked from inside the container."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

from harness import wait_until

from conftest import Runtime, base_config

NAMESPACES = ("pid", "mnt", "net", "uts", "ipc", "cgroup")


def test_run_shows_isolation(pyrt: Runtime, runc: Runtime) -> None:
    script = ("echo pid=$$; hostname; id -u; cat /proc/1/comm; "
              "for n in " + " ".join(NAMESPACES) + "; do readlink /proc/self/ns/$n; done; "
              "stat -c %d:%i /")
    cfg = base_config(["sh", "-c", script])
    cfg["hostname"] = "box1"
    cfg["linux"]["namespaces"].append({"type": "cgroup"})
    host_ns = [os.readlink(f"/proc/self/ns/{n}") for n in NAMESPACES]
    seen = {}
    for rt in (pyrt, runc):
        b = rt.bundle(cfg)
        p = rt("run", "--bundle", str(b), rt.new_id())
        assert p.returncode == 0, p.stderr
        lines = p.stdout.splitlines()
        assert lines[:4] == ["pid=1", "box1", "0", "sh"], (rt.binary, lines)
        # every namespace is a new one, none the host's (same type, other inode)
        for n, mine, host in zip(NAMESPACES, lines[4:10], host_ns, strict=True):
            assert mine.startswith(f"{n}:[") and mine != host, (rt.binary, n, mine, host)
        # the root is the bundle's rootfs
        rootfs = os.stat(b / "rootfs")
        assert lines[10] == f"{rootfs.st_dev}:{rootfs.st_ino}", (rt.binary, lines[10])
        seen[rt.binary] = (p.returncode, lines[:4], p.stderr)
    assert seen[pyrt.binary] == seen[runc.binary]


def test_run_exit_code_and_signal(pyrt: Runtime) -> None:
    assert pyrt.run(base_config(["sh", "-c", "exit 7"])).returncode == 7
    # pid 1 ignores its own SIGKILL; the runtime's kill comes from outside the namespace
    b = pyrt.bundle(base_config(["sleep", "100"]))
    cid = pyrt.new_id()
    fg = subprocess.Popen([pyrt.binary, "--root", str(pyrt.root), "run", "--bundle", str(b), cid])
    assert wait_until(lambda: pyrt("state", cid).returncode == 0 and pyrt.state(cid)["status"] == "running")
    pyrt("kill", cid, "9", check=True)
    assert fg.wait(30) == 137
    assert pyrt("state", cid).returncode != 0, "foreground run deletes the container"


def test_lifecycle_verbs(pyrt: Runtime, tmp_path: Path) -> None:
    b = pyrt.bundle(base_config(["sleep", "100"]))
    cid = pyrt.new_id()
    pidfile = tmp_path / "pid"
    pyrt("create", "--bundle", str(b), "--pid-file", str(pidfile), cid, check=True)
    pid_text = pidfile.read_text()
    assert pid_text.isdigit(), "pid file: decimal, no newline"
    st = pyrt.state(cid)
    assert st["status"] == "created" and st["pid"] == int(pid_text) and st["bundle"] == str(b)
    # the container process is waiting on the fifo: not yet exec'd
    assert "sleep" not in Path(f"/proc/{pid_text}/cmdline").read_text()
    dup = pyrt("create", "--bundle", str(b), cid)
    assert dup.returncode != 0 and "exists" in dup.stderr
    pyrt("start", cid, check=True)
    assert pyrt.state(cid)["status"] == "running"
    time.sleep(0.1)
    assert Path(f"/proc/{pid_text}/cmdline").read_text().startswith("sleep")
    listed = pyrt("list", "--format", "json", check=True)
    assert [c["id"] for c in json.loads(listed.stdout)] == [cid]
    assert pyrt("list", "-q", check=True).stdout == f"{cid}\n"
    busy = pyrt("delete", cid)
    assert busy.returncode != 0 and "not stopped" in busy.stderr
    pyrt("kill", cid, "KILL", check=True)
    st = pyrt.wait_status(cid, "stopped")
    assert st["pid"] == 0
    again = pyrt("kill", cid, "KILL")
    assert again.returncode != 0 and "container not running" in again.stderr
    pyrt("delete", cid, check=True)
    gone = pyrt("state", cid)
    assert gone.returncode != 0 and "container does not exist" in gone.stderr
    assert not (pyrt.root / cid).exists()


def test_delete_created_container(pyrt: Runtime) -> None:
    b = pyrt.bundle(base_config(["true"]))
    cid = pyrt.new_id()
    pyrt("create", "--bundle", str(b), cid, check=True)
    pid = pyrt.state(cid)["pid"]
    pyrt("delete", cid, check=True)
    assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2]


def test_two_creates_one_winner(pyrt: Runtime) -> None:
    b = pyrt.bundle(base_config(["sleep", "10"]))
    cid = pyrt.new_id()
    cmd = [pyrt.binary, "--root", str(pyrt.root), "create", "--bundle", str(b), cid]
    procs = [subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True) for _ in range(4)]
    codes = [p.wait(60) for p in procs]
    assert codes.count(0) == 1, [p.stderr.read() for p in procs if p.stderr]


def test_start_with_dead_init_does_not_hang(pyrt: Runtime) -> None:
    b = pyrt.bundle(base_config(["true"]))
    cid = pyrt.new_id()
    pyrt("create", "--bundle", str(b), cid, check=True)
    os.kill(pyrt.state(cid)["pid"], signal.SIGKILL)
    time.sleep(0.1)
    p = pyrt("start", cid, timeout=10)
    assert p.returncode != 0


def test_delete_force_after_runtime_killed_mid_create(pyrt: Runtime) -> None:
    cfg = base_config(["true"])
    # a createRuntime hook that never returns keeps `create` busy after it made everything;
    # its unique duration lets the test kill exactly that orphan afterwards
    marker = f"{int(time.time()) % 1000 + 300}.{os.getpid()}"
    cfg["hooks"] = {"createRuntime": [{"path": "/bin/sleep", "args": ["sleep", marker]}]}
    b = pyrt.bundle(cfg)
    cid = pyrt.new_id()
    proc = subprocess.Popen([pyrt.binary, "--root", str(pyrt.root), "create", "--bundle", str(b), cid])
    try:
        _kill_mid_create(pyrt, cid, proc)
    finally:
        subprocess.run(["pkill", "-f", f"sleep {marker}"], check=False)


def _kill_mid_create(pyrt: Runtime, cid: str, proc: subprocess.Popen[bytes]) -> None:
    wait_until(lambda: (pyrt.root / cid / "state.json").exists() and json.loads(
        (pyrt.root / cid / "state.json").read_text()).get("pid"))
    time.sleep(0.2)
    proc.kill()
    proc.wait()
    cg = json.loads((pyrt.root / cid / "state.json").read_text())["cgroup"]
    pyrt("delete", "--force", cid, check=True)
    assert not (pyrt.root / cid).exists()
    for path in cg.get("paths", {}).values():
        assert not Path(path).exists(), path


def test_bad_inputs_one_line_no_leftovers(pyrt: Runtime) -> None:
    cases = []
    cfg = base_config(["nonexistent-binary"])
    cases.append((cfg, "executable file not found"))
    cfg = base_config()
    cfg["linux"]["namespaces"].append({"type": "bogus"})
    cases.append((cfg, "linux.namespaces"))
    cfg = base_config()
    cfg["root"]["path"] = "missing-rootfs"
    cases.append((cfg, "root.path"))
    cfg = base_config()
    cfg["mounts"].append({"destination": "/mnt", "type": "bind", "source": "/nonexistent/src",
                          "options": ["bind"]})
    cases.append((cfg, "/nonexistent/src"))
    for cfg, needle in cases:
        b = pyrt.bundle(cfg)
        cid = pyrt.new_id()
        p = pyrt("create", "--bundle", str(b), cid)
        assert p.returncode != 0
        assert needle in p.stderr, p.stderr
        assert len(p.stderr.strip().splitlines()) == 1, p.stderr
        assert "Traceback" not in p.stderr
        assert not (pyrt.root / cid).exists()
    (b / "config.json").write_text("{broken")
    p = pyrt("create", "--bundle", str(b), pyrt.new_id())
    assert p.returncode != 0 and "config.json" in p.stderr and len(p.stderr.splitlines()) == 1


def test_paused_created_container_and_kill_of_a_paused_one(pyrt: Runtime) -> None:
    b = pyrt.bundle(base_config(["sleep", "100"]))
    cid = pyrt.new_id()
    pyrt("create", "--bundle", str(b), cid, check=True)
    pyrt("pause", cid, check=True)
    assert pyrt.state(cid)["status"] == "paused"
    pyrt("resume", cid, check=True)
    assert pyrt.state(cid)["status"] == "created"
    pyrt("start", cid, check=True)
    pyrt("pause", cid, check=True)
    pyrt("kill", cid, "KILL", check=True)
    pyrt.wait_status(cid, "stopped")  # SIGKILL reaches a frozen container
    pyrt("delete", cid, check=True)


def test_concurrent_starts_one_wins_none_hang(pyrt: Runtime) -> None:
    b = pyrt.bundle(base_config(["sleep", "100"]))
    cid = pyrt.new_id()
    pyrt("create", "--bundle", str(b), cid, check=True)
    cmd = [pyrt.binary, "--root", str(pyrt.root), "start", cid]
    procs = [subprocess.Popen(cmd, stderr=subprocess.DEVNULL) for _ in range(4)]
    codes = [p.wait(20) for p in procs]
    assert codes.count(0) == 1, codes


def _traced_launcher(tmp: Path) -> str:
    """The launcher under test, plus a note (in $PYRT_CLI_TRACE) of which parser ran:
    "click" when the click CLI was imported by the time the command exited, else "fast"."""
    text = Path(pyrt_binary()).read_text()
    hook = ("import atexit, os\n"
            "_pid = os.getpid()\n"
            "def _note():\n"
            "    if os.getpid() == _pid and os.environ.get('PYRT_CLI_TRACE'):\n"
            "        with open(os.environ['PYRT_CLI_TRACE'], 'a') as f:\n"
            "            f.write(('click' if 'pyruntime.cli' in sys.modules else 'fast') + '\\n')\n"
            "atexit.register(_note)\n")
    marker = "from pyruntime.main import main"
    assert marker in text, text
    out = tmp / "traced-pyruntime"
    out.write_text(text.replace(marker, hook + marker))
    out.chmod(0o755)
    return str(out)


def pyrt_binary() -> str:
    from harness import PYRUNTIME

    return PYRUNTIME


def _hot_verbs(rt: Runtime, cid: str, bundle: Path, run_bundle: Path,
               env: dict[str, str]) -> list[tuple[int, str, str]]:
    """Every hot verb, with and without errors; output with the run-specific values out."""
    def call(*args: str) -> tuple[int, str, str]:
        p = rt(*args, env=env)
        out = p.stdout
        if out.startswith("{"):
            doc = json.loads(out)
            doc.pop("pid", None)
            doc.pop("created", None)
            out = json.dumps(doc, sort_keys=True)
        return p.returncode, out, p.stderr

    seen = [call("create", "--bundle", str(bundle), cid), call("create", "--bundle", str(bundle), cid),
            call("state", cid), call("start", cid), call("start", cid), call("state", cid),
            call("delete", cid), call("kill", cid, "KILL")]
    rt.wait_status(cid, "stopped")
    seen += [call("state", cid), call("kill", cid, "KILL"), call("delete", cid), call("state", cid),
             call("delete", cid), call("delete", "--force", cid), call("kill", cid),
             call("run", "--bundle", str(run_bundle), cid), call("delete", cid)]
    return seen


def test_click_path_matches_the_fast_path(pyrt: Runtime, tmp_path: Path) -> None:
    """The hot verbs have a hand-written argv parser; the click CLI defines the same verbs
    and must behave the same (PYRUNTIME_SLOW_CLI forces it): the same exit status, output
    and error for each, and the trace shows which parser really ran."""
    traced = Runtime(_traced_launcher(tmp_path), pyrt.root, tmp_path)
    b = pyrt.bundle(base_config(["sleep", "100"]))
    run_bundle = pyrt.bundle(base_config(["sh", "-c", "echo out; echo err >&2; exit 3"]))
    cid = pyrt.new_id()
    results = {}
    for mode in ("fast", "click"):
        trace = tmp_path / f"trace-{mode}"
        env = {**os.environ, "PYRT_CLI_TRACE": str(trace)}
        if mode == "click":
            env["PYRUNTIME_SLOW_CLI"] = "1"
        else:
            env.pop("PYRUNTIME_SLOW_CLI", None)
        results[mode] = _hot_verbs(traced, cid, b, run_bundle, env)
        ran = trace.read_text().split()
        assert set(ran) == {mode}, (mode, ran)
    fast, click = results["fast"], results["click"]
    assert fast[0][0] == 0 and fast[1][0] != 0 and fast[-2] == (3, "out\n", "err\n"), fast
    for i, (a, b_) in enumerate(zip(fast, click, strict=True)):
        assert a == b_, f"call {i}: fast {a!r} != click {b_!r}"
