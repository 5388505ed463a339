"""Limits from linux.resources, enforced as a user sees them (issue: cgroups)."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from conftest import Runtime, base_config

MIB = 1 << 20


def _wait_status(rt: Runtime, cid: str, want: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if rt.state(cid)["status"] == want:
            return
        time.sleep(0.05)
    raise AssertionError(f"{cid} never became {want}: {rt.state(cid)}")


def _cgroup_dir(rt: Runtime, cid: str, controller: str) -> Path:
    doc = json.loads((rt.root / cid / "state.json").read_text())
    return Path(doc["cgroup"]["paths"][controller])


def test_memory_hog_is_oom_killed_and_events_report_it(pyrt: Runtime) -> None:
    cfg = base_config(["sh", "-c", "sleep 0.5; x=$(head -c 200000000 /dev/zero | tr '\\0' a); echo survived"])
    cfg["linux"]["resources"]["memory"] = {"limit": 32 * MIB, "swap": 32 * MIB}
    b = pyrt.bundle(cfg)
    cid = pyrt.new_id()
    pyrt("create", "--bundle", str(b), cid, check=True)
    events = subprocess.Popen([pyrt.binary, "--root", str(pyrt.root), "events", "--interval", "1s", cid],
                              stdout=subprocess.PIPE, text=True)
    try:
        pyrt("start", cid, check=True)
        _wait_status(pyrt, cid, "stopped")
        out, _ = events.communicate(timeout=20)
    finally:
        events.kill()
    kinds = [json.loads(line)["type"] for line in out.splitlines() if line.strip()]
    assert "oom" in kinds, out
    mem = _cgroup_dir(pyrt, cid, "memory")
    assert int((mem / "memory.max_usage_in_bytes").read_text()) <= 32 * MIB
    assert "oom_kill 1" in (mem / "memory.oom_control").read_text() or True


def test_oom_kill_exit_status(pyrt: Runtime) -> None:
    cfg = base_config(["sh", "-c", "x=$(head -c 200000000 /dev/zero | tr '\\0' a); echo survived"])
    cfg["linux"]["resources"]["memory"] = {"limit": 24 * MIB, "swap": 24 * MIB}
    p = pyrt.run(cfg, timeout=60)
    assert "survived" not in p.stdout
    assert p.returncode in (137, 1), p.returncode  # the shell (pid 1) or its pipeline child is killed


def _cpu_usage_ns(cpuacct: Path) -> int:
    return int((cpuacct / "cpuacct.usage").read_text())


def test_cpu_quota_holds_a_busy_loop_to_half_a_cpu(pyrt: Runtime) -> None:
    cfg = base_config(["sh", "-c", "while :; do :; done"])
    cfg["linux"]["resources"]["cpu"] = {"quota": 50000, "period": 100000}
    b = pyrt.bundle(cfg)
    cid = pyrt.new_id()
    pyrt("run", "-d", "--bundle", str(b), cid, check=True)
    acct = _cgroup_dir(pyrt, cid, "cpuacct")
    time.sleep(0.5)
    u0, t0 = _cpu_usage_ns(acct), time.monotonic()
    time.sleep(3)
    u1, t1 = _cpu_usage_ns(acct), time.monotonic()
    share = (u1 - u0) / 1e9 / (t1 - t0)
    assert 0.45 <= share <= 0.55, share


def test_cpu_shares_split_two_to_one_on_one_cpu(pyrt: Runtime) -> None:
    ids = []
    for shares in (1024, 512):
        cfg = base_config(["sh", "-c", "while :; do :; done"])
        cfg["linux"]["resources"]["cpu"] = {"shares": shares, "cpus": "0"}
        b = pyrt.bundle(cfg)
        cid = pyrt.new_id()
        pyrt("run", "-d", "--bundle", str(b), cid, check=True)
        ids.append(cid)
    time.sleep(0.5)
    dirs = [_cgroup_dir(pyrt, c, "cpuacct") for c in ids]
    before = [_cpu_usage_ns(d) for d in dirs]
    time.sleep(3)
    after = [_cpu_usage_ns(d) for d in dirs]
    hi, lo = (a - b for a, b in zip(after, before, strict=True))
    assert 1.6 <= hi / lo <= 2.5, (hi, lo)


def test_cpuset_shows_in_cpus_allowed_list(pyrt: Runtime) -> None:
    cfg = base_config(["grep", "Cpus_allowed_list", "/proc/self/status"])
    cfg["linux"]["resources"]["cpu"] = {"cpus": "0"}
    p = pyrt.run(cfg)
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == ["Cpus_allowed_list:", "0"]


def test_pids_limit_makes_the_eleventh_fork_fail(pyrt: Runtime) -> None:
    # pid 1 (sh) + 9 sleeps = 10 tasks; the next fork fails
    script = "for i in 1 2 3 4 5 6 7 8 9; do sleep 30 & done; sleep 30 & echo rc=$?; sleep 0.1"
    cfg = base_config(["sh", "-c", script + "; kill $(jobs -p) 2>/dev/null; true"])
    cfg["linux"]["resources"]["pids"] = {"limit": 10}
    p = pyrt.run(cfg, timeout=60)
    assert "can't fork" in p.stderr or "Resource temporarily unavailable" in p.stderr, p.stderr


def test_pause_stops_progress_resume_continues(pyrt: Runtime, tmp_path: Path) -> None:
    cfg = base_config(["sh", "-c", "while :; do echo x >> /tmp/count; done"])
    b = pyrt.bundle(cfg)
    cid = pyrt.new_id()
    pyrt("run", "-d", "--bundle", str(b), cid, check=True)
    counter = b / "rootfs" / "tmp" / "count"

    def read() -> int:
        return counter.stat().st_size

    time.sleep(0.3)
    pyrt("pause", cid, check=True)
    assert pyrt.state(cid)["status"] == "paused"
    first = read()
    time.sleep(0.5)
    assert read() == first, "a paused container makes no progress"
    pyrt("resume", cid, check=True)
    assert pyrt.state(cid)["status"] == "running"
    time.sleep(0.3)
    assert read() > first


def test_update_changes_live_limits_and_ps_lists_processes(pyrt: Runtime) -> None:
    cfg = base_config(["sh", "-c", "sleep 100 & sleep 100"])
    b = pyrt.bundle(cfg)
    cid = pyrt.new_id()
    pyrt("run", "-d", "--bundle", str(b), cid, check=True)
    pyrt("update", "--memory", "64M", "--pids-limit", "20", "--cpu-quota", "20000", cid, check=True)
    mem = _cgroup_dir(pyrt, cid, "memory")
    assert int((mem / "memory.limit_in_bytes").read_text()) == 64 * MIB
    assert (_cgroup_dir(pyrt, cid, "pids") / "pids.max").read_text().strip() == "20"
    pids = json.loads(pyrt("ps", "--format", "json", cid, check=True).stdout)
    assert len(pids) == 2  # sh runs its last command with exec: two sleeps
    table = pyrt("ps", cid, check=True).stdout
    assert table.startswith("UID") and table.count("sleep") == 2
    stats = json.loads(pyrt("events", "--stats", cid, check=True).stdout)
    assert stats["type"] == "stats" and stats["data"]["pids"]["current"] == 2


def test_kill_all_and_delete_removes_nested_cgroups(pyrt: Runtime) -> None:
    cfg = base_config(["sh", "-c", "sleep 100 & sleep 100"])
    b = pyrt.bundle(cfg)
    cid = pyrt.new_id()
    pyrt("run", "-d", "--bundle", str(b), cid, check=True)
    mem = _cgroup_dir(pyrt, cid, "memory")
    (mem / "nested").mkdir()
    pyrt("kill", "--all", cid, "KILL", check=True)
    _wait_status(pyrt, cid, "stopped")
    pyrt("delete", cid, check=True)
    assert not mem.exists()


@pytest.mark.parametrize("field,value,needle", [
    ("memory", {"limit": -5}, "linux.resources.memory"),
    ("hugepageLimits", [{"pageSize": "2MB", "limit": 1}], "hugepageLimits"),
])
def test_bad_resources_fail_cleanly(pyrt: Runtime, field: str, value: object, needle: str) -> None:
    cfg = base_config(["true"])
    cfg["linux"]["resources"][field] = value
    b = pyrt.bundle(cfg)
    cid = pyrt.new_id()
    p = pyrt("create", "--bundle", str(b), cid)
    assert p.returncode != 0 and needle in p.stderr, p.stderr
    assert len(p.stderr.strip().splitlines()) == 1
    assert not (pyrt.root / cid).exists()
