"""Unit tests for the pure helpers of scripts/bench.py (no root, no runtime is run)."""

from __future__ import annotations

import importlib.util
import json
import platform
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

BENCH_PATH = Path(__file__).resolve().parents[1] / "scripts" / "bench.py"
PODMAN_PROFILE = Path("/usr/share/containers/seccomp.json")


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("pyruntime_bench", BENCH_PATH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up here
    spec.loader.exec_module(module)
    return module


bench = _load()
MIB = 1 << 20
KIB = 1 << 10


def test_percentile_and_median() -> None:
    values = [float(v) for v in range(10, 0, -1)]
    assert bench.percentile(values, 0.9) == pytest.approx(9.1)
    assert bench.percentile(values, 0.0) == 1.0
    assert bench.percentile(values, 1.0) == 10.0
    assert bench.percentile([7.0], 0.9) == 7.0
    assert bench.median([3.0, 1.0, 2.0, 10.0]) == 2.5
    with pytest.raises(ValueError):
        bench.percentile([], 0.5)


def test_parse_vmrss() -> None:
    text = "Name:\trunc:[2:INIT]\nVmPeak:\t  12000 kB\nVmRSS:\t    9544 kB\nThreads:\t5\n"
    assert bench.parse_vmrss_kb(text) == 9544
    with pytest.raises(ValueError):
        bench.parse_vmrss_kb("Name:\tkthreadd\nThreads:\t1\n")


@pytest.mark.parametrize("threshold, expected", [
    (int(3.3 * MIB), 3 * MIB + 512 * KIB),
    (2 * MIB, 2 * MIB),
    (0, 1 * MIB),
    (64 * MIB, 64 * MIB),
    (64 * MIB + 1, None),
])
def test_search_min_limit(threshold: int, expected: int | None) -> None:
    probes: list[int] = []

    def works(limit: int) -> bool:
        assert limit % (256 * KIB) == 0 and MIB <= limit <= 64 * MIB
        probes.append(limit)
        return limit >= threshold

    assert bench.search_min_limit(works) == expected
    assert len(probes) <= 10  # 253 candidates: two ends and a binary search


MOUNTINFO_HYBRID = """\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
36 31 0:33 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
"""
CGROUP_HYBRID = """\
9:name=systemd:/
4:memory:/process_api/abc
2:cpu,cpuacct:/
0::/user.slice
"""


def test_cgroup_dirs_v1_hybrid() -> None:
    dirs = bench.cgroup_dirs(MOUNTINFO_HYBRID, CGROUP_HYBRID, "pfx")
    assert dirs == [
        Path("/sys/fs/cgroup/cpu/pfx"),
        Path("/sys/fs/cgroup/memory/process_api/abc/pfx"),
        Path("/sys/fs/cgroup/cpu,cpuacct/pfx"),
        Path("/sys/fs/cgroup/systemd/pfx"),
        Path("/sys/fs/cgroup/unified/user.slice/pfx"),
    ]


def test_cgroup_dirs_v2_with_namespaced_root() -> None:
    mountinfo = "30 23 0:26 /ctr /sys/fs/cgroup rw - cgroup2 cgroup2 rw,nsdelegate\n"
    dirs = bench.cgroup_dirs(mountinfo, "0::/ctr/bench.scope\n", "pfx")
    assert dirs == [Path("/sys/fs/cgroup/bench.scope/pfx")]


@pytest.mark.skipif(not PODMAN_PROFILE.is_file(), reason="no podman seccomp profile")
def test_convert_podman_profile() -> None:
    profile = json.loads(PODMAN_PROFILE.read_text())
    caps = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
    converted = bench.convert_seccomp(profile, caps)[0]
    assert converted["defaultAction"] == profile["defaultAction"]
    json.dumps(converted)

    def actions(doc: dict[str, Any], name: str) -> set[str]:
        return {r["action"] for r in doc["syscalls"] if name in r["names"]}

    # unconditional rules come through whole
    plain = [r for r in profile["syscalls"] if not r.get("includes") and not r.get("excludes")
             and not r.get("args")]
    for rule in plain:
        for name in rule["names"]:
            assert rule["action"] in actions(converted, name), name
    # capability-gated rules follow the caps: without CAP_SYS_ADMIN/CAP_SYS_MODULE the
    # profile's ERRNO variant is in, its ALLOW variant is not; with them, the other way round
    for name in ("bpf", "init_module", "chroot"):
        assert actions(converted, name) == {"SCMP_ACT_ERRNO"}, name
    more = bench.convert_seccomp(profile, caps + ["CAP_SYS_ADMIN", "CAP_SYS_MODULE", "CAP_SYS_CHROOT"])[0]
    for name in ("bpf", "init_module", "chroot"):
        assert actions(more, name) == {"SCMP_ACT_ALLOW"}, name
    # arch-gated rules follow the machine
    if platform.machine() == "x86_64":
        assert actions(converted, "arch_prctl") == {"SCMP_ACT_ALLOW"}
        assert not actions(converted, "s390_runtime_instr")


def test_table_and_targets() -> None:
    results = {
        "pyruntime": {"run_median_ms": 40.0, "cycle_median_ms": 150.0, "state_median_ms": 16.0,
                      "seccomp_extra_ms": -1.0, "list_create_total_s": 2.5},
        "runc": {"run_median_ms": 50.0, "cycle_median_ms": 100.0, "state_median_ms": 8.0,
                 "seccomp_extra_ms": 2.0, "list_create_total_s": 5.0},
    }
    table = bench.format_table(results, 100)
    lines = table.splitlines()
    assert lines[0].split(" | ")[0].strip() == "metric"
    run_line = next(line for line in lines if line.startswith("run true, median"))
    assert [c.strip() for c in run_line.split(" | ")[1:]] == ["40.0", "50.0", "0.80"]
    assert any(line.startswith("create 100 containers, total [s]") for line in lines)
    extra = next(line for line in lines if line.startswith("seccomp extra"))
    assert extra.rstrip().endswith("-")  # no ratio of a negative difference
    assert not any(line.startswith("run true, p90") for line in lines)  # unmeasured: left out

    verdicts = bench.target_verdicts(results)
    assert verdicts["run_median_ms"]["met"] is True
    assert verdicts["cycle_median_ms"]["met"] is False
    assert verdicts["state_median_ms"] == {"ratio": 2.0, "target": 2.0, "met": True}
    text = bench.format_targets(verdicts)
    assert "run" in text and "MISSED" in text and "met" in text
    assert bench.target_verdicts({"runc": results["runc"]})["run_median_ms"]["met"] is None


def test_parse_args_defaults() -> None:
    args = bench.parse_args([])
    assert (args.iterations, args.state_iterations, args.list, args.list_count) == (
        20, 50, True, 100)
    assert args.seccomp_iterations == 10
    args = bench.parse_args(["--no-list", "--iterations", "4", "--json", "x.json"])
    assert args.list is False and args.seccomp_iterations == 3 and args.json == Path("x.json")


def test_phases_from_trace_moves_imports_out_and_names_teardown() -> None:
    # spawned at 0; marks at 10 ms (interp), 14 ms (cli, 3 ms of it imports), 20 ms
    # (container), 25 ms (state: a foreground run's delete); reaped at 27 ms
    ms = 1_000_000
    line = (f"123 interp={10 * ms}:0 cli={14 * ms}:{3 * ms} container={20 * ms}:{3 * ms} "
            f"state={25 * ms}:{4 * ms}\n")
    phases = bench.phases_from_trace(line, 0, 27 * ms)
    assert phases == pytest.approx({"interp": 10.0, "imports": 4.0, "cli": 1.0, "container": 6.0,
                                    "teardown": 4.0, "exit": 2.0})
    assert bench.phases_from_trace("", 0, 1) is None
    out = bench.format_breakdown({"run": [phases]}, {"runc": {"run": 20.0}, "pyruntime": {"run": 27.0}})
    assert out.splitlines()[1].split()[:5] == ["verb", "runc", "pyrt", "interp", "imports"]
    assert out.splitlines()[2].split()[:4] == ["run", "20.0", "27.0", "10.0"]
