"""The OCI lifecycle on the real kernel, checked from inside the container."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

from conftest import Runtime, base_config


def test_run_shows_isolation(pyrt: Runtime) -> None:
    cfg = base_config(["sh", "-c", "echo pid=$$; hostname; ls /; id -u; cat /proc/1/comm; true"])
    cfg["hostname"] = "box1"
    p = pyrt.run(cfg)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.split("\n")
    assert lines[0] == "pid=1"
    assert lines[1] == "box1"
    assert "bin" in p.stdout and "proc" in p.stdout
    assert lines[-3] == "0" and lines[-2] == "sh"


def test_run_exit_code_and_signal(pyrt: Runtime) -> None:
    assert pyrt.run(base_config(["sh", "-c", "exit 7"])).returncode == 7
    # pid 1 ignores its own SIGKILL; the runtime's kill comes from outside the namespace
    b = pyrt.bundle(base_config(["sleep", "100"]))
    cid = pyrt.new_id()
    fg = subprocess.Popen([pyrt.binary, "--root", str(pyrt.root), "run", "--bundle", str(b), cid])
    for _ in range(200):
        if pyrt("state", cid).returncode == 0 and pyrt.state(cid)["status"] == "running":
            break
        time.sleep(0.02)
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
    for _ in range(100):
        if pyrt.state(cid)["status"] == "stopped":
            break
        time.sleep(0.02)
    st = pyrt.state(cid)
    assert st["status"] == "stopped" and st["pid"] == 0
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
    for _ in range(200):
        if (pyrt.root / cid / "state.json").exists() and json.loads(
                (pyrt.root / cid / "state.json").read_text()).get("pid"):
            break
        time.sleep(0.02)
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
    for _ in range(100):
        if pyrt.state(cid)["status"] == "stopped":
            break
        time.sleep(0.05)
    assert pyrt.state(cid)["status"] == "stopped", "SIGKILL reaches a frozen container"
    pyrt("delete", cid, check=True)


def test_concurrent_starts_one_wins_none_hang(pyrt: Runtime) -> None:
    b = pyrt.bundle(base_config(["sleep", "100"]))
    cid = pyrt.new_id()
    pyrt("create", "--bundle", str(b), cid, check=True)
    cmd = [pyrt.binary, "--root", str(pyrt.root), "start", cid]
    procs = [subprocess.Popen(cmd, stderr=subprocess.DEVNULL) for _ in range(4)]
    codes = [p.wait(20) for p in procs]
    assert codes.count(0) == 1, codes


def test_click_path_matches_the_fast_path(pyrt: Runtime) -> None:
    """The hot verbs have a hand-written argv parser; the click CLI defines the same verbs
    and must behave the same (PYRUNTIME_SLOW_CLI forces it)."""
    env = {**os.environ, "PYRUNTIME_SLOW_CLI": "1"}
    b = pyrt.bundle(base_config(["sleep", "100"]))
    cid = pyrt.new_id()
    pyrt("create", "--bundle", str(b), cid, check=True, env=env)
    pyrt("start", cid, check=True, env=env)
    st = json.loads(pyrt("state", cid, check=True, env=env).stdout)
    assert st["status"] == "running" and st["id"] == cid
    pyrt("kill", cid, "KILL", check=True, env=env)
    for _ in range(100):
        if pyrt.state(cid)["status"] == "stopped":
            break
        time.sleep(0.02)
    pyrt("delete", cid, check=True, env=env)
    gone = pyrt("state", cid, env=env)
    assert gone.returncode != 0 and "container does not exist" in gone.stderr
