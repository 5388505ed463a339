"""Limits from linux.resources, enforced as a user sees them (issue: cgroups).

Where runc shows the same thing (an exit status, a count of processes), the test runs the
same config under runc too and compares; the mutations in integration/mutations/ named
oom-*, pids-*, update-* and kill-all-* show that these tests fail without the limit.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest
from harness import wait_status, wait_until

from conftest import Runtime, base_config

MIB = 1 << 20


def _wait_status(rt: Runtime, cid: str, want: str, timeout: float = 20) -> None:
    wait_status(rt, cid, want, timeout)


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
    # the kernel counts the kills in this cgroup (memory.oom_control: "oom_kill N")
    control = dict(line.split() for line in (mem / "memory.oom_control").read_text().splitlines())
    assert int(control["oom_kill"]) >= 1, control


def test_oom_kill_exit_status(pyrt: Runtime, runc: Runtime) -> None:
    # pid 1 itself grows (a builtin loop, no child the OOM killer could pick instead)
    cfg = base_config(["sh", "-c", "x=aaaaaaaa; while :; do x=$x$x; done; echo survived"])
    cfg["linux"]["resources"]["memory"] = {"limit": 24 * MIB, "swap": 24 * MIB}
    seen = {}
    for rt in (pyrt, runc):
        cfg["linux"]["cgroupsPath"] = base_config()["linux"]["cgroupsPath"]
        p = rt.run(cfg, timeout=60)
        seen[rt.binary] = (p.returncode, p.stdout, p.stderr)
    # killed by SIGKILL: 128 + 9, and not a word from the runtime
    assert seen[runc.binary] == (137, "", ""), seen
    assert seen[pyrt.binary] == seen[runc.binary], seen


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
    # the quota is a ceiling: never above half a CPU.  Below it the share depends on what
    # else the machine runs (other tests, other users), so only "it ran" is required there
    assert 0.05 <= share <= 0.55, share


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


# 12 forks are tried, each success counted; a non-interactive busybox sh exits (status 2,
# "can't fork") at the first fork that fails, which ends the container and its sleeps.
PIDS_SCRIPT = "for i in 1 2 3 4 5 6 7 8 9 10 11 12; do sleep 30 & echo forked=$i; done; echo all-forked"


def test_pids_limit_makes_the_eleventh_fork_fail(pyrt: Runtime, runc: Runtime) -> None:
    cfg = base_config(["sh", "-c", PIDS_SCRIPT])
    cfg["linux"]["resources"]["pids"] = {"limit": 10}
    seen = {}
    for rt in (pyrt, runc):
        cfg["linux"]["cgroupsPath"] = base_config()["linux"]["cgroupsPath"]
        p = rt.run(cfg, timeout=60)
        seen[rt.binary] = (p.returncode, p.stdout, "can't fork" in p.stderr)
    # pid 1 (sh) + exactly 9 sleeps are the 10 allowed tasks; the 10th fork failed
    forked = "".join(f"forked={i}\n" for i in range(1, 10))
    assert seen[pyrt.binary] == (2, forked, True), seen
    assert seen[pyrt.binary] == seen[runc.binary], seen


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
    cpu = _cgroup_dir(pyrt, cid, "cpu")
    assert (cpu / "cpu.cfs_quota_us").read_text().strip() == "-1"
    pyrt("update", "--memory", "64M", "--pids-limit", "20", "--cpu-quota", "20000", cid, check=True)
    mem = _cgroup_dir(pyrt, cid, "memory")
    assert int((mem / "memory.limit_in_bytes").read_text()) == 64 * MIB
    assert (_cgroup_dir(pyrt, cid, "pids") / "pids.max").read_text().strip() == "20"
    assert (cpu / "cpu.cfs_quota_us").read_text().strip() == "20000"
    pids = json.loads(pyrt("ps", "--format", "json", cid, check=True).stdout)
    assert len(pids) == 2  # sh runs its last command with exec: two sleeps
    table = pyrt("ps", cid, check=True).stdout
    assert table.startswith("UID") and table.count("sleep") == 2
    stats = json.loads(pyrt("events", "--stats", cid, check=True).stdout)
    assert stats["type"] == "stats" and stats["data"]["pids"]["current"] == 2


def _kill_all_term(rt: Runtime) -> tuple[str, int, str, list[int]]:
    """pid 1 (the exec'd last sleep, no handler) ignores a TERM from outside its pid
    namespace, the other sleep does not: only --all reaches it."""
    b = rt.bundle(base_config(["sh", "-c", "sleep 100 & sleep 100"]))
    cid = rt.new_id()
    rt("run", "-d", "--bundle", str(b), cid, check=True)
    init = rt.state(cid)["pid"]

    def procs() -> list[int]:
        return sorted(json.loads(rt("ps", "--format", "json", cid, check=True).stdout))

    assert wait_until(lambda: len(procs()) == 2), procs()
    rt("kill", "--all", cid, "TERM", check=True)
    wait_until(lambda: len(procs()) == 1, timeout=5)
    left = procs()
    return cid, init, rt.state(cid)["status"], [p for p in left if p != init]


def test_kill_all_and_delete_removes_nested_cgroups(pyrt: Runtime, runc: Runtime) -> None:
    _cid, _init, status, others = _kill_all_term(runc)
    assert (status, others) == ("running", []), "runc: the other process died, init did not"
    cid, init, status, others = _kill_all_term(pyrt)
    assert (status, others) == ("running", []), f"pyruntime: {status}, still alive: {others}"
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
