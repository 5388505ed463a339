"""cgroups, pure parts: detection, path rules, resource parsing, v1/v2 write plans."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest

from pyruntime.cgroups import detect, paths, v1, v2
from pyruntime.cgroups.base import Facts
from pyruntime.cgroups.resources import DeviceRule, parse
from pyruntime.errors import CgroupError

# -- mountinfo fixtures ----------------------------------------------------

HYBRID_MOUNTINFO = """\
22 1 8:1 / / rw,relatime - ext4 /dev/sda1 rw
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
36 31 0:33 / /sys/fs/cgroup/devices rw,relatime - cgroup cgroup rw,devices
37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
38 31 0:35 / /sys/fs/cgroup/blkio rw,relatime - cgroup cgroup rw,blkio
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
"""

V1_MOUNTINFO = """\
25 1 8:1 / / rw - ext4 /dev/sda1 rw
30 25 0:26 / /sys/fs/cgroup ro,nosuid shared:9 - tmpfs tmpfs ro,mode=755
31 30 0:27 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,xattr,release_agent=/sd,name=systemd
34 30 0:30 / /sys/fs/cgroup/cpu,cpuacct rw shared:13 - cgroup cgroup rw,cpu,cpuacct
35 30 0:31 / /sys/fs/cgroup/memory rw shared:14 - cgroup cgroup rw,memory
36 30 0:32 / /sys/fs/cgroup/pids rw shared:15 - cgroup cgroup rw,pids
37 30 0:33 / /sys/fs/cgroup/net_cls,net_prio rw shared:16 - cgroup cgroup rw,net_cls,net_prio
"""

V2_MOUNTINFO = """\
25 1 8:1 / / rw - ext4 /dev/sda1 rw
30 25 0:26 / /sys/fs/cgroup rw,nosuid shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
31 25 0:27 / /proc rw - proc proc rw
"""

SELF_CGROUP = """\
9:name=systemd:/
8:pids:/
7:blkio:/
6:freezer:/
5:devices:/
4:memory:/process_api/abc
3:cpuset:/
2:cpuacct:/
1:cpu:/
0::/
"""


def test_detect_hybrid_lists_only_mounted_hierarchies() -> None:
    layout = detect.detect(HYBRID_MOUNTINFO, Path("/sys/fs/cgroup"))
    assert layout.mode == detect.HYBRID
    assert set(layout.hierarchies) == {
        "cpu",
        "cpuacct",
        "cpuset",
        "memory",
        "devices",
        "freezer",
        "blkio",
        "pids",
        detect.SYSTEMD,
        detect.UNIFIED,
    }
    assert "hugetlb" not in layout.hierarchies
    assert layout.hierarchies["unified"].mountpoint == "/sys/fs/cgroup/unified"


def test_detect_v1_comounted_and_named() -> None:
    layout = detect.detect(V1_MOUNTINFO)
    assert layout.mode == detect.V1
    assert layout.hierarchies["cpu"] == layout.hierarchies["cpuacct"]
    assert layout.hierarchies["cpu"].mountpoint == "/sys/fs/cgroup/cpu,cpuacct"
    assert layout.hierarchies["net_prio"].mountpoint == "/sys/fs/cgroup/net_cls,net_prio"
    assert detect.SYSTEMD in layout.hierarchies
    # xattr and release_agent are options, not controllers
    assert layout.v1_controllers == {"cpu", "cpuacct", "memory", "pids", "net_cls", "net_prio"}


def test_detect_v2() -> None:
    layout = detect.detect(V2_MOUNTINFO)
    assert layout.mode == detect.V2
    assert dict(layout.hierarchies) == {
        "unified": detect.Hierarchy("/sys/fs/cgroup", "/"),
    }


def test_detect_unified_subtree_as_v2_root() -> None:
    layout = detect.detect(HYBRID_MOUNTINFO, Path("/sys/fs/cgroup/unified"))
    assert layout.mode == detect.V2
    assert layout.hierarchies["unified"].mountpoint == "/sys/fs/cgroup/unified"


def test_detect_nothing_mounted() -> None:
    with pytest.raises(CgroupError, match="no cgroup filesystem"):
        detect.detect("25 1 8:1 / / rw - ext4 /dev/sda1 rw\n")


def test_detect_ignores_mounts_outside_root_and_unescapes() -> None:
    text = (
        "40 31 0:37 / /elsewhere/memory rw - cgroup cgroup rw,memory\n"
        "41 31 0:38 / /srv/cg\\040root/pids rw - cgroup cgroup rw,pids\n"
    )
    layout = detect.detect(text, Path("/srv/cg root"))
    assert layout.mode == detect.V1
    assert set(layout.hierarchies) == {"pids"}
    assert layout.hierarchies["pids"].mountpoint == "/srv/cg root/pids"


def test_detect_later_mount_hides_earlier() -> None:
    text = (
        "32 31 0:29 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n"
        "50 32 0:40 / /sys/fs/cgroup/memory rw - tmpfs tmpfs rw\n"
        "33 31 0:30 / /sys/fs/cgroup/pids rw - cgroup cgroup rw,pids\n"
    )
    assert set(detect.detect(text).hierarchies) == {"pids"}


def test_parse_proc_cgroup() -> None:
    own = detect.parse_proc_cgroup(SELF_CGROUP + "10:cpu,cpuacct:/a:b\n")
    assert own["memory"] == "/process_api/abc"
    assert own["name=systemd"] == "/"
    assert own["unified"] == "/"
    assert own["cpuacct"] == "/a:b"


# -- paths -----------------------------------------------------------------

HYBRID = detect.detect(HYBRID_MOUNTINFO)
OWN = detect.parse_proc_cgroup(SELF_CGROUP)


def test_relative_path_goes_under_own_cgroup() -> None:
    result = paths.resolve("ctr/x", "id1", HYBRID, OWN)
    assert result["memory"] == "/sys/fs/cgroup/memory/process_api/abc/ctr/x"
    assert result["pids"] == "/sys/fs/cgroup/pids/ctr/x"
    assert result["unified"] == "/sys/fs/cgroup/unified/ctr/x"
    assert result["name=systemd"] == "/sys/fs/cgroup/systemd/ctr/x"


def test_absolute_path_taken_as_given() -> None:
    result = paths.resolve("/machine/ctr", "id1", HYBRID, OWN)
    assert result["memory"] == "/sys/fs/cgroup/memory/machine/ctr"


def test_empty_path_defaults_below_own_cgroup() -> None:
    result = paths.resolve("", "id1", HYBRID, OWN)
    assert result["memory"] == "/sys/fs/cgroup/memory/process_api/abc/id1"
    assert result["cpu"] == "/sys/fs/cgroup/cpu/id1"


def test_v2_has_one_path() -> None:
    layout = detect.detect(V2_MOUNTINFO)
    result = paths.resolve("", "c", layout, {"unified": "/user.slice/x.scope"})
    assert result == {"unified": "/sys/fs/cgroup/user.slice/x.scope/c"}


@pytest.mark.parametrize("bad", ["../x", "a/../../x", "/../x", ".", "/", "a/.."])
def test_escaping_or_empty_paths_rejected(bad: str) -> None:
    with pytest.raises(CgroupError):
        paths.resolve(bad, "c", HYBRID, OWN)


def test_dotdot_inside_path_is_fine() -> None:
    assert paths.resolve("a/../b", "c", HYBRID, OWN)["pids"] == "/sys/fs/cgroup/pids/b"


def test_systemd_driver_rejected() -> None:
    with pytest.raises(CgroupError, match="systemd cgroup driver is not supported"):
        paths.resolve("system.slice:pyruntime:abc", "abc", HYBRID, OWN)


def test_bad_container_id_for_default() -> None:
    with pytest.raises(CgroupError):
        paths.resolve("", "a/b", HYBRID, OWN)


def test_own_cgroup_outside_mounted_subtree() -> None:
    text = "32 31 0:29 /lxc/c1 /sys/fs/cgroup/pids rw - cgroup cgroup rw,pids\n"
    layout = detect.detect(text)
    assert paths.resolve("x", "c", layout, {"pids": "/lxc/c1/sub"})["pids"] == "/sys/fs/cgroup/pids/sub/x"
    with pytest.raises(CgroupError, match="outside"):
        paths.resolve("x", "c", layout, {"pids": "/other"})


# -- resources -------------------------------------------------------------

FULL: dict[str, Any] = {
    "memory": {
        "limit": 536870912,
        "reservation": 268435456,
        "swap": 1073741824,
        "kernel": 1,
        "kernelTCP": 2,
        "swappiness": 10,
        "disableOOMKiller": True,
    },
    "cpu": {
        "shares": 1024,
        "quota": 50000,
        "period": 100000,
        "burst": 10000,
        "realtimeRuntime": 950000,
        "realtimePeriod": 1000000,
        "cpus": "0-1",
        "mems": "0",
        "idle": 0,
    },
    "pids": {"limit": 100},
    "blockIO": {
        "weight": 500,
        "weightDevice": [{"major": 8, "minor": 0, "weight": 300}],
        "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1048576}],
        "throttleWriteIOPSDevice": [{"major": 8, "minor": 16, "rate": 100}],
    },
    "devices": [
        {"allow": False, "access": "rwm"},
        {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
        {"allow": True, "type": "c", "major": 136, "access": "rw"},
    ],
}


def test_parse_full() -> None:
    res = parse(FULL)
    assert res.memory is not None and res.memory.limit == 536870912
    assert res.memory.disable_oom_killer is True
    assert res.cpu is not None and res.cpu.realtime_period == 1000000
    assert res.pids_limit == 100
    assert res.block_io is not None and res.block_io.weight_device[0].weight == 300
    assert res.devices is not None and res.devices[2] == DeviceRule(True, "c", 136, None, "rw")


def test_parse_zero_means_unset_and_absent_devices() -> None:
    res = parse({"memory": {"limit": 0, "swap": 0}, "cpu": {"shares": 0, "quota": 0}})
    assert res.memory is not None and res.memory.limit is None and res.memory.swap is None
    assert res.cpu is not None and res.cpu.shares is None and res.cpu.quota is None
    assert res.devices is None
    assert parse({"devices": []}).devices == ()


@pytest.mark.parametrize(
    "raw, field",
    [
        ({"memory": {"limit": "1G"}}, "memory.limit"),
        ({"memory": {"limit": True}}, "memory.limit"),
        ({"memory": {"swappiness": 101}}, "memory.swappiness"),
        ({"cpu": {"cpus": "0-a"}}, "cpu.cpus"),
        ({"cpu": {"idle": 2}}, "cpu.idle"),
        ({"pids": {"limit": 1.5}}, "pids.limit"),
        ({"hugepageLimits": [{"pageSize": "2M", "limit": 1}]}, "hugepageLimits[0].pageSize"),
        ({"hugepageLimits": [{"pageSize": "../x", "limit": 1}]}, "hugepageLimits[0].pageSize"),
        ({"devices": [{"allow": True, "type": "x"}]}, "devices[0].type"),
        ({"devices": [{"type": "c"}]}, "devices[0]"),
        ({"unified": {"../memory.max": "1"}}, "unified.../memory.max"),
        ({"unified": {"cgroup.procs": "1"}}, "unified.cgroup.procs"),
        ({"unified": {"memory.high": 5}}, "unified.memory.high"),
        ({"blockIO": {"throttleReadBpsDevice": [{"major": 8, "rate": 1}]}}, "blockIO."),
        ({"network": {"priorities": [{"name": "eth 0", "priority": 1}]}}, "network.priorities"),
        ({"memory": "lots"}, "memory"),
    ],
)
def test_parse_errors_name_the_field(raw: dict, field: str) -> None:
    with pytest.raises(CgroupError, match="^" + re.escape(f"linux.resources.{field}")):
        parse(raw)


def test_parse_rejects_newline_smuggling() -> None:
    with pytest.raises(CgroupError, match="single line"):
        parse({"cpu": {"cpus": "0\n1"}})


def test_parse_device_wildcards_and_access_order() -> None:
    rules = parse({"devices": [{"allow": True, "major": -1, "minor": 5, "access": "mr"}]}).devices
    assert rules is not None
    (rule,) = rules
    assert rule == DeviceRule(True, "a", None, 5, "rm")


# -- v1 plan ---------------------------------------------------------------

V1_ALL = frozenset(
    {"cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "blkio", "pids", "hugetlb"}
)
V1_FILES = frozenset(
    {
        "cpu.cfs_burst_us",
        "cpu.idle",
        "cpu.rt_period_us",
        "cpu.rt_runtime_us",
        "memory.memsw.limit_in_bytes",
        "blkio.bfq.weight",
        "blkio.bfq.weight_device",
        "hugetlb.2MB.limit_in_bytes",
    }
)


def triples(writes: list) -> list[tuple[str, str, str]]:
    return [(w.controller, w.file, w.value) for w in writes]


def test_v1_plan_full_fixture() -> None:
    facts = Facts(V1_ALL, V1_FILES, memsw_limit=9223372036854771712)
    assert triples(v1.plan(parse(FULL), facts)) == [
        ("cpuset", "cpuset.cpus", "0-1"),
        ("cpuset", "cpuset.mems", "0"),
        ("cpu", "cpu.shares", "1024"),
        ("cpu", "cpu.cfs_period_us", "100000"),
        ("cpu", "cpu.cfs_burst_us", "10000"),
        ("cpu", "cpu.cfs_quota_us", "50000"),
        ("cpu", "cpu.rt_period_us", "1000000"),
        ("cpu", "cpu.rt_runtime_us", "950000"),
        ("cpu", "cpu.idle", "0"),
        ("memory", "memory.limit_in_bytes", "536870912"),
        ("memory", "memory.memsw.limit_in_bytes", "1073741824"),
        ("memory", "memory.soft_limit_in_bytes", "268435456"),
        ("memory", "memory.swappiness", "10"),
        ("memory", "memory.oom_control", "1"),
        ("pids", "pids.max", "100"),
        ("blkio", "blkio.bfq.weight", "500"),
        ("blkio", "blkio.bfq.weight_device", "8:0 300"),
        ("blkio", "blkio.throttle.read_bps_device", "8:0 1048576"),
        ("blkio", "blkio.throttle.write_iops_device", "8:16 100"),
        # the rules start with a deny-all: it is written once
        ("devices", "devices.deny", "a"),
        ("devices", "devices.allow", "c 1:3 rwm"),
        ("devices", "devices.allow", "c 136:* rw"),
    ]


def test_v1_memory_swap_order_follows_current_memsw() -> None:
    res = parse({"memory": {"limit": 200, "swap": 400}})
    raising = v1.plan(res, Facts(V1_ALL, V1_FILES, memsw_limit=300))
    assert [w.file for w in raising] == ["memory.memsw.limit_in_bytes", "memory.limit_in_bytes"]
    lowering = v1.plan(res, Facts(V1_ALL, V1_FILES, memsw_limit=500))
    assert [w.file for w in lowering] == ["memory.limit_in_bytes", "memory.memsw.limit_in_bytes"]
    unlimited = v1.plan(parse({"memory": {"limit": 200, "swap": -1}}), Facts(V1_ALL, V1_FILES))
    assert [w.file for w in unlimited] == [
        "memory.memsw.limit_in_bytes",
        "memory.limit_in_bytes",
    ]


def test_v1_unlimited_memory_also_lifts_memsw() -> None:
    writes = v1.plan(parse({"memory": {"limit": -1}}), Facts(V1_ALL, V1_FILES))
    assert triples(writes) == [
        ("memory", "memory.memsw.limit_in_bytes", "-1"),
        ("memory", "memory.limit_in_bytes", "-1"),
    ]
    no_swap_accounting = Facts(V1_ALL, V1_FILES - {"memory.memsw.limit_in_bytes"})
    assert triples(v1.plan(parse({"memory": {"limit": -1}}), no_swap_accounting)) == [
        ("memory", "memory.limit_in_bytes", "-1")
    ]
    with pytest.raises(CgroupError, match=r"memory\.swap: swap accounting"):
        v1.plan(parse({"memory": {"limit": 5, "swap": 10}}), no_swap_accounting)


@pytest.mark.parametrize("limit, swap", [(200, 100), (-1, 100)])
def test_v1_swap_below_limit_rejected(limit: int, swap: int) -> None:
    with pytest.raises(CgroupError, match=r"memory\.swap: memory\+swap"):
        v1.plan(parse({"memory": {"limit": limit, "swap": swap}}), Facts(V1_ALL, V1_FILES))


def test_v1_check_before_update() -> None:
    res = parse({"memory": {"limit": 100, "checkBeforeUpdate": True}})
    with pytest.raises(CgroupError, match="below the current usage"):
        v1.plan(res, Facts(V1_ALL, V1_FILES, memory_usage=200))
    assert v1.plan(res, Facts(V1_ALL, V1_FILES, memory_usage=50))


def test_v1_blkio_prefers_cfq_weight_and_rejects_missing() -> None:
    res = parse({"blockIO": {"weight": 100}})
    assert triples(v1.plan(res, Facts(V1_ALL, V1_FILES | {"blkio.weight"})))[0][1] == (
        "blkio.weight"
    )
    with pytest.raises(CgroupError, match=r"blockIO\.weight: .*no blkio\.weight"):
        v1.plan(res, Facts(V1_ALL, frozenset()))
    with pytest.raises(CgroupError, match=r"blockIO\.leafWeight"):
        v1.plan(parse({"blockIO": {"leafWeight": 100}}), Facts(V1_ALL, V1_FILES))


def test_v1_pids_unlimited() -> None:
    for limit in (-1, 0):
        assert triples(v1.plan(parse({"pids": {"limit": limit}}), Facts(V1_ALL))) == [
            ("pids", "pids.max", "max")
        ]


def test_v1_unmounted_controllers_named() -> None:
    no_hugetlb = V1_ALL - {"hugetlb"}
    with pytest.raises(CgroupError, match=r"hugepageLimits\[0\]: the hugetlb controller"):
        v1.plan(parse({"hugepageLimits": [{"pageSize": "2MB", "limit": 1}]}), Facts(no_hugetlb))
    with pytest.raises(CgroupError, match=r"network\.classID: the net_cls controller"):
        v1.plan(parse({"network": {"classID": 1}}), Facts(V1_ALL))
    with pytest.raises(CgroupError, match=r"rdma\.mlx5_0: the rdma controller"):
        v1.plan(parse({"rdma": {"mlx5_0": {"hcaHandles": 2}}}), Facts(V1_ALL))
    with pytest.raises(CgroupError, match=r"unified: invalid configuration: cgroup v2"):
        v1.plan(parse({"unified": {"memory.high": "1"}}), Facts(V1_ALL))


def test_v1_hugetlb_and_network_when_mounted() -> None:
    facts = Facts(V1_ALL | {"net_cls", "net_prio", "rdma"}, V1_FILES)
    raw = {
        "hugepageLimits": [{"pageSize": "2MB", "limit": 4194304}],
        "network": {"classID": 1048577, "priorities": [{"name": "eth0", "priority": 5}]},
        "rdma": {"mlx5_0": {"hcaHandles": 2, "hcaObjects": 100}},
    }
    assert triples(v1.plan(parse(raw), facts)) == [
        ("hugetlb", "hugetlb.2MB.limit_in_bytes", "4194304"),
        ("net_cls", "net_cls.classid", "1048577"),
        ("net_prio", "net_prio.ifpriomap", "eth0 5"),
        ("rdma", "rdma.max", "mlx5_0 hca_handle=2 hca_object=100"),
    ]
    with pytest.raises(CgroupError, match="page size 1GB is not supported"):
        v1.plan(parse({"hugepageLimits": [{"pageSize": "1GB", "limit": 1}]}), facts)


def test_v1_missing_optional_cpu_files() -> None:
    facts = Facts(V1_ALL, frozenset())
    with pytest.raises(CgroupError, match=r"cpu\.burst: .*cpu\.cfs_burst_us"):
        v1.plan(parse({"cpu": {"burst": 5}}), facts)
    with pytest.raises(CgroupError, match=r"cpu\.realtimePeriod"):
        v1.plan(parse({"cpu": {"realtimePeriod": 5}}), facts)
    # zero burst / idle on a kernel without them asks for nothing
    assert v1.plan(parse({"cpu": {"burst": 0, "idle": 0}}), facts) == []


def test_v1_retry_flags() -> None:
    writes = v1.plan(parse({"cpu": {"period": 1000, "quota": 2000, "burst": 1}}), Facts(V1_ALL))
    assert {w.file: w.retry_later for w in writes} == {
        "cpu.cfs_period_us": True,
        "cpu.cfs_burst_us": True,
        "cpu.cfs_quota_us": False,
    }


def test_kernel_device_rules_split_partial_all_rules() -> None:
    assert v1.kernel_device_rules(DeviceRule(True)) == [(True, "a")]
    # "a 1:3 r" would mean "everything" to the kernel
    assert v1.kernel_device_rules(DeviceRule(True, "a", 1, 3, "r")) == [
        (True, "c 1:3 r"),
        (True, "b 1:3 r"),
    ]
    assert v1.kernel_device_rules(DeviceRule(False, "a", None, None, "m")) == [
        (False, "c *:* m"),
        (False, "b *:* m"),
    ]
    assert v1.kernel_device_rules(DeviceRule(True, "u", 4, 1, "rw")) == [(True, "c 4:1 rw")]
    assert v1.kernel_device_rules(DeviceRule(True, "p", None, None, "rwm")) == []


def test_expected_device_list_emulates_the_kernel() -> None:
    rules = parse(
        {
            "devices": [
                {"allow": False, "access": "rwm"},
                {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rw"},
                {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "m"},
                {"allow": True, "type": "c", "major": 5, "minor": 0, "access": "rwm"},
                {"allow": False, "type": "c", "major": 5, "minor": 0, "access": "w"},
                {"allow": True, "type": "b", "major": 8, "access": "r"},
                {"allow": False, "type": "b", "major": 8, "access": "r"},
            ]
        }
    ).devices
    assert rules is not None
    assert v1.expected_device_list(rules) == ("c 1:3 rwm", "c 5:0 rm")
    allow_all = parse({"devices": [{"allow": True}]}).devices
    assert allow_all is not None
    assert v1.expected_device_list(allow_all) == ("a *:* rwm",)
    assert v1.expected_device_list(()) == ()


def test_v1_device_writes_skipped_when_unchanged() -> None:
    res = parse(FULL)
    assert res.devices is not None
    current = v1.expected_device_list(res.devices)
    assert current == ("c 1:3 rwm", "c 136:* rw")
    writes = v1.plan(res, Facts(V1_ALL, V1_FILES, devices_list=current))
    assert not [w for w in writes if w.controller == "devices"]
    changed = Facts(V1_ALL, V1_FILES, devices_list=("a *:* rwm",))
    assert [w for w in v1.plan(res, changed) if w.controller == "devices"]


def test_v1_unenforced() -> None:
    assert v1.unenforced(parse(FULL)) == [
        "linux.resources.memory.kernel",
        "linux.resources.memory.kernelTCP",
    ]


# -- v2 plan ---------------------------------------------------------------

V2_ALL = frozenset({"cpu", "cpuset", "io", "memory", "pids", "hugetlb", "rdma"})
V2_FILES = frozenset({"cpu.max.burst", "cpu.idle", "memory.swap.max", "hugetlb.2MB.max"})


def test_v2_plan_full_fixture() -> None:
    raw = {k: v for k, v in FULL.items() if k != "cpu"}
    raw["cpu"] = {k: v for k, v in FULL["cpu"].items() if not k.startswith("realtime")}
    raw["hugepageLimits"] = [{"pageSize": "2MB", "limit": 4194304}]
    raw["unified"] = {"memory.high": "400000000", "pids.max": "50"}
    raw["rdma"] = {"mlx5_0": {"hcaObjects": 7}}
    assert triples(v2.plan(parse(raw), Facts(V2_ALL, V2_FILES))) == [
        ("cpuset", "cpuset.cpus", "0-1"),
        ("cpuset", "cpuset.mems", "0"),
        ("cpu", "cpu.weight", "39"),
        ("cpu", "cpu.max.burst", "10000"),
        ("cpu", "cpu.max", "50000 100000"),
        ("cpu", "cpu.idle", "0"),
        ("memory", "memory.max", "536870912"),
        ("memory", "memory.swap.max", "536870912"),
        ("memory", "memory.low", "268435456"),
        ("pids", "pids.max", "100"),
        ("io", "io.weight", "default 4950"),
        ("io", "io.weight", "8:0 2930"),
        ("io", "io.max", "8:0 rbps=1048576"),
        ("io", "io.max", "8:16 wiops=100"),
        ("hugetlb", "hugetlb.2MB.max", "4194304"),
        ("rdma", "rdma.max", "mlx5_0 hca_object=7"),
        ("memory", "memory.high", "400000000"),
        ("pids", "pids.max", "50"),
    ]


def test_v2_io_bfq_takes_weights_as_is() -> None:
    raw = {"blockIO": {"weight": 500, "weightDevice": [{"major": 8, "minor": 0, "weight": 30}]}}
    facts = Facts(V2_ALL, V2_FILES | {"io.bfq.weight"})
    assert triples(v2.plan(parse(raw), facts)) == [
        ("io", "io.bfq.weight", "500"),
        ("io", "io.bfq.weight", "8:0 30"),
    ]


@pytest.mark.parametrize(
    "shares, weight", [(2, 1), (1, 1), (1024, 39), (262144, 10000), (10**6, 10000)]
)
def test_shares_to_weight(shares: int, weight: int) -> None:
    assert v2.shares_to_weight(shares) == weight


@pytest.mark.parametrize(
    "cpu, value",
    [
        ({"quota": 20000}, "20000"),
        ({"period": 50000}, "max 50000"),
        ({"quota": -1, "period": 100000}, "max 100000"),
        ({"quota": 1000, "period": 10000}, "1000 10000"),
    ],
)
def test_v2_cpu_max(cpu: dict, value: str) -> None:
    assert triples(v2.plan(parse({"cpu": cpu}), Facts(V2_ALL))) == [("cpu", "cpu.max", value)]


@pytest.mark.parametrize(
    "limit, swap, expected",
    [(None, None, None), (-1, None, "max"), (100, -1, "max"), (100, 300, "200"), (100, 100, "0")],
)
def test_swap_max(limit: int | None, swap: int | None, expected: str | None) -> None:
    assert v2.swap_max(limit, swap) == expected


@pytest.mark.parametrize("limit, swap", [(None, 100), (-1, 100), (200, 100)])
def test_swap_max_rejects(limit: int | None, swap: int) -> None:
    with pytest.raises(CgroupError, match=r"memory\.swap"):
        v2.swap_max(limit, swap)


def test_v2_swap_without_swap_accounting() -> None:
    facts = Facts(V2_ALL, frozenset())
    assert triples(v2.plan(parse({"memory": {"limit": -1}}), facts)) == [
        ("memory", "memory.max", "max")
    ]
    with pytest.raises(CgroupError, match="swap accounting"):
        v2.plan(parse({"memory": {"limit": 10, "swap": 20}}), facts)


def test_v2_ignores_devices_and_names_them() -> None:
    res = parse(FULL)
    assert not [w for w in v2.plan(parse({"devices": FULL["devices"]}), Facts(V2_ALL))]
    assert v2.unenforced(res) == [
        "linux.resources.devices",
        "linux.resources.memory.disableOOMKiller",
        "linux.resources.memory.swappiness",
        "linux.resources.memory.kernel",
        "linux.resources.memory.kernelTCP",
    ]
    assert v2.unenforced(parse({"devices": []})) == []


def test_v2_refusals_name_fields() -> None:
    with pytest.raises(CgroupError, match=r"cpu\.realtimeRuntime: .*cgroup v2"):
        v2.plan(parse({"cpu": {"realtimeRuntime": 5}}), Facts(V2_ALL))
    with pytest.raises(CgroupError, match=r"network\.classID"):
        v2.plan(parse({"network": {"classID": 5}}), Facts(V2_ALL))
    with pytest.raises(CgroupError, match=r"memory\.limit: the memory controller is not enabled"):
        v2.plan(parse({"memory": {"limit": 5}}), Facts(frozenset({"pids"})))
    with pytest.raises(CgroupError, match=r"unified\.misc\.max: the misc controller"):
        v2.plan(parse({"unified": {"misc.max": "x 1"}}), Facts(V2_ALL))
    with pytest.raises(CgroupError, match=r"hugepageLimits\[0\]: the hugetlb"):
        v2.plan(
            parse({"hugepageLimits": [{"pageSize": "2MB", "limit": 1}]}),
            Facts(V2_ALL - {"hugetlb"}),
        )


def test_read_procs_skips_a_cgroup_removed_while_read(tmp_path: Path) -> None:
    """Reading cgroup.procs of a cgroup being removed fails with ENODEV after open worked;
    read_procs skips it as it skips one already gone (a delete racing a create's cleanup)."""
    import errno

    from pyruntime.cgroups.fs import CgroupFS, read_procs

    (tmp_path / "gone").mkdir()
    (tmp_path / "cgroup.procs").write_text("12\n")
    (tmp_path / "gone" / "cgroup.procs").write_text("")

    class Vanishing(CgroupFS):
        def read(self, path: str) -> str:
            if os.path.basename(os.path.dirname(path)) == "gone":
                raise OSError(errno.ENODEV, "No such device")
            return super().read(path)

    assert read_procs(Vanishing(), str(tmp_path)) == [12]


def test_the_package_imports_no_heavy_module() -> None:
    """create, exec, kill, delete and update import this package (resources.py included,
    for any config with linux.resources): pathlib, re, typing, enum, json, signal, ... each
    cost milliseconds of every call. Checked as the launcher runs (-I -S), no timing."""
    import subprocess
    import sys

    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); before = set(sys.modules)\n"
        "from pyruntime.cgroups import detect, manager_from_record, new_manager, resources, v1\n"
        "from pyruntime.cgroups.base import Facts\n"
        "import pyruntime.freezer\n"
        "layout = detect.detect(sys.argv[2])\n"
        "res = resources.parse({'devices': [{'allow': False}], 'cpu': {'cpus': '0-1'},"
        " 'hugepageLimits': [{'pageSize': '2MB', 'limit': 0}], 'unified': {},"
        " 'network': {'priorities': [{'name': 'eth0', 'priority': 1}]}})\n"
        "v1.plan(res, Facts(frozenset(detect.V1_CONTROLLERS)))\n"
        "print(' '.join(sorted(set(sys.modules) - before)))\n"
    )
    root = str(Path(__file__).resolve().parents[1])
    out = subprocess.run(
        [sys.executable, "-I", "-S", "-c", code, root, HYBRID_MOUNTINFO],
        capture_output=True, text=True, check=True,
    ).stdout.split()
    heavy = {"pathlib", "re", "typing", "enum", "json", "socket", "urllib", "ipaddress",
             "dataclasses", "functools", "collections", "contextlib", "signal", "fnmatch",
             "warnings", "abc", "operator", "types", "weakref"}
    assert [m for m in out if m.split(".")[0] in heavy] == []


def test_remove_tree_takes_a_leaf_with_one_rmdir_and_walks_only_when_busy(
    tmp_path: Path,
) -> None:
    from pyruntime.cgroups.fs import CgroupFS, remove_tree

    class Recording(CgroupFS):
        def __init__(self) -> None:
            self.calls: list[str] = []

        def rmdir(self, path: str) -> None:
            self.calls.append("rmdir " + os.path.relpath(path, tmp_path))
            super().rmdir(path)

        def subdirs(self, path: str) -> list[str]:
            self.calls.append("list " + os.path.relpath(path, tmp_path))
            return super().subdirs(path)

    (tmp_path / "leaf").mkdir()
    fs = Recording()
    remove_tree(fs, str(tmp_path / "leaf"))
    assert fs.calls == ["rmdir leaf"] and not (tmp_path / "leaf").exists()
    (tmp_path / "top" / "sub").mkdir(parents=True)
    fs.calls.clear()
    remove_tree(fs, str(tmp_path / "top"))  # ENOTEMPTY on the plain filesystem, EBUSY on cgroupfs
    assert fs.calls[0] == "rmdir top" and "rmdir top/sub" in fs.calls
    assert not (tmp_path / "top").exists()
    remove_tree(fs, str(tmp_path / "top"))  # gone already: fine
