"""cgroups managers on fake v1/hybrid and v2 trees in tmp_path (no root).

`FakeKernel` plays the kernel's part: control files appear on mkdir, rmdir
refuses groups with tasks or children, cgroup.freeze updates cgroup.events,
cgroup.kill empties the tree, signals are recorded, and time is virtual.
"""

from __future__ import annotations

import errno
import json
import os
import signal
from pathlib import Path

import pytest

from pyruntime.cgroups import manager_from_record, new_manager
from pyruntime.cgroups.base import Manager
from pyruntime.cgroups.fs import CgroupFS
from pyruntime.cgroups.v1 import V1Manager
from pyruntime.cgroups.v2 import V2Manager
from pyruntime.errors import CgroupError

V1_FILES: dict[str, dict[str, str]] = {
    "cpu": {
        "cpu.shares": "1024",
        "cpu.cfs_period_us": "100000",
        "cpu.cfs_quota_us": "-1",
        "cpu.cfs_burst_us": "0",
        "cpu.idle": "0",
        "cpu.stat": "nr_periods 10\nnr_throttled 2\nthrottled_time 5000\n",
    },
    "cpuacct": {
        "cpuacct.usage": "123456",
        "cpuacct.usage_percpu": "100000 23456 \n",
        "cpuacct.usage_sys": "1000",
        "cpuacct.usage_user": "2000",
        "cpuacct.stat": "user 1\nsystem 2\n",
    },
    "cpuset": {"cpuset.cpus": "", "cpuset.mems": ""},
    "memory": {
        "memory.limit_in_bytes": "9223372036854771712",
        "memory.memsw.limit_in_bytes": "9223372036854771712",
        "memory.soft_limit_in_bytes": "9223372036854771712",
        "memory.usage_in_bytes": "4096",
        "memory.max_usage_in_bytes": "8192",
        "memory.failcnt": "0",
        "memory.memsw.usage_in_bytes": "4096",
        "memory.swappiness": "60",
        "memory.oom_control": "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n",
        "memory.stat": "cache 100\nrss 200\n",
    },
    "devices": {"devices.allow": "", "devices.deny": "", "devices.list": "a *:* rwm\n"},
    "freezer": {"freezer.state": "THAWED"},
    "pids": {"pids.max": "max", "pids.current": "0"},
    "blkio": {
        "blkio.bfq.weight": "100",
        "blkio.throttle.read_bps_device": "",
        "blkio.throttle.io_serviced_recursive": "8:0 Read 3\n8:0 Write 4\nTotal 7\n",
        "blkio.throttle.io_service_bytes_recursive": "8:0 Read 4096\n8:0 Write 0\nTotal 4096\n",
    },
    "name=systemd": {},
}

V2_CORE = ("cgroup.procs", "cgroup.freeze", "cgroup.kill", "cgroup.subtree_control")
V2_FILES: dict[str, dict[str, str]] = {
    "cpu": {"cpu.weight": "100", "cpu.max": "max 100000", "cpu.max.burst": "0", "cpu.idle": "0"},
    "memory": {
        "memory.max": "max",
        "memory.low": "0",
        "memory.swap.max": "max",
        "memory.current": "8192",
        "memory.swap.current": "0",
        "memory.events": "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n",
        "memory.stat": "anon 100\nfile 300\n",
    },
    "pids": {"pids.max": "max", "pids.current": "1"},
    "io": {
        "io.weight": "default 100",
        "io.max": "",
        "io.stat": "8:0 rbytes=10 wbytes=20 rios=1 wios=2\n",
    },
}


class FakeKernel(CgroupFS):
    """A cgroup filesystem simulated with plain files under tmp_path."""

    def __init__(self, v1_mounts: dict[Path, list[str]], v2_mounts: list[Path]) -> None:
        self.v1_mounts = v1_mounts
        self.v2_mounts = v2_mounts
        self.root = os.path.commonpath([str(m.parent) for m in [*v1_mounts, *v2_mounts]])
        self.writes: list[tuple[str, str]] = []
        self.signals: list[tuple[int, int]] = []
        self.fail: dict[tuple[str, str], list[int]] = {}
        self.clock = 0.0
        self.on_sleep: list = []
        self.reads: list[str] = []
        self.listed: list[str] = []
        self.mkdirs: list[str] = []
        for mount, controllers in v1_mounts.items():
            mount.mkdir(parents=True)
            self._populate_v1(mount, controllers)
            if "cpuset" in controllers:
                (mount / "cpuset.cpus").write_text("0-3\n")
                (mount / "cpuset.mems").write_text("0\n")
        for mount in v2_mounts:
            mount.mkdir(parents=True)
            (mount / "cgroup.controllers").write_text("cpu io memory pids\n")
            for name in ("cgroup.procs", "cgroup.subtree_control"):
                (mount / name).write_text("")

    # -- tree shape --------------------------------------------------------

    def _tree(self, path: Path) -> tuple[str, Path, list[str]]:
        for mount, controllers in self.v1_mounts.items():
            if mount in path.parents or mount == path:
                return "v1", mount, controllers
        for mount in self.v2_mounts:
            if mount in path.parents or mount == path:
                return "v2", mount, []
        raise AssertionError(f"{path} is in no fake hierarchy")

    def _populate_v1(self, d: Path, controllers: list[str]) -> None:
        for name in ("cgroup.procs", "tasks"):
            (d / name).write_text("")
        for controller in controllers:
            for name, text in V1_FILES[controller].items():
                (d / name).write_text(text)

    def _populate_v2(self, d: Path) -> None:
        enabled = (d.parent / "cgroup.subtree_control").read_text().split()
        (d / "cgroup.controllers").write_text(" ".join(enabled) + "\n")
        (d / "cgroup.events").write_text("populated 0\nfrozen 0\n")
        for name in V2_CORE:
            (d / name).write_text("")
        for controller in enabled:
            for name, text in V2_FILES[controller].items():
                (d / name).write_text(text)

    # -- CgroupFS ----------------------------------------------------------

    # The managers pass str paths; the fake works with Path for brevity.

    def mkdir(self, path: str | Path) -> None:
        path = Path(path)
        self.mkdirs.append(os.path.relpath(path, self.root))
        if not path.parent.is_dir():  # as the kernel: ENOENT, e.g. below an unmounted hierarchy
            raise FileNotFoundError(errno.ENOENT, "No such file or directory", str(path))
        kind, _, controllers = self._tree(path)
        os.mkdir(path)
        if kind == "v1":
            self._populate_v1(path, controllers)
        else:
            self._populate_v2(path)

    def rmdir(self, path: str | Path) -> None:
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(errno.ENOENT, "No such file or directory", str(path))
        if any(p.is_dir() for p in path.iterdir()):
            raise OSError(errno.EBUSY, "Device or resource busy", str(path))
        if (path / "cgroup.procs").read_text().split():
            raise OSError(errno.EBUSY, "Device or resource busy", str(path))
        for p in path.iterdir():
            p.unlink()
        path.rmdir()

    def write(self, path: str | Path, value: str) -> None:
        path = Path(path)
        failures = self.fail.get((path.name, value))
        if failures:
            code = failures.pop(0)
            raise OSError(code, os.strerror(code), str(path))
        if not path.is_file():
            raise FileNotFoundError(errno.ENOENT, "No such file or directory", str(path))
        self.writes.append((path.name, value))
        name = path.name
        if name == "cgroup.procs":
            with open(path, "a") as f:
                f.write(value + "\n")
        elif name == "cgroup.freeze":
            state = "1" if value.strip() == "1" else "0"
            path.write_text(state)
            (path.parent / "cgroup.events").write_text(f"populated 0\nfrozen {state}\n")
        elif name == "cgroup.kill":
            for d in [path.parent, *[p for p in path.parent.rglob("*") if p.is_dir()]]:
                for pid in (d / "cgroup.procs").read_text().split():
                    self.signals.append((int(pid), signal.SIGKILL))
                (d / "cgroup.procs").write_text("")
        elif name == "cgroup.subtree_control":
            enabled = set(path.read_text().split())
            enabled.add(value.lstrip("+"))
            path.write_text(" ".join(sorted(enabled)))
        elif name in ("devices.allow", "devices.deny"):
            with open(path, "a") as f:
                f.write(value + "\n")
        else:
            path.write_text(value)

    def read(self, path: str) -> str:
        self.reads.append(os.path.relpath(path, self.root))
        return super().read(path)

    def listdir(self, path: str) -> list[str]:
        self.listed.append(os.path.relpath(path, self.root))
        return super().listdir(path)

    def kill(self, pid: int, sig: int) -> None:
        self.signals.append((pid, sig))

    def monotonic(self) -> float:
        return self.clock

    def sleep(self, seconds: float) -> None:
        self.clock += seconds
        for hook in self.on_sleep:
            hook()


def mountinfo_line(n: int, mount: Path, fstype: str, opts: str) -> str:
    return f"{n} 1 0:{n} / {mount} rw,relatime - {fstype} {fstype} rw,{opts}\n"


@pytest.fixture
def v2_setup(tmp_path: Path) -> tuple[Path, FakeKernel, str]:
    root = tmp_path / "cg2"
    kernel = FakeKernel({}, [root])
    return root, kernel, mountinfo_line(30, root, "cgroup2", "nsdelegate")


HYBRID_LAYOUT = {
    "cpu,cpuacct": ["cpu", "cpuacct"],
    "cpuset": ["cpuset"],
    "memory": ["memory"],
    "devices": ["devices"],
    "freezer": ["freezer"],
    "pids": ["pids"],
    "blkio": ["blkio"],
    "systemd": ["name=systemd"],
}


@pytest.fixture
def hybrid_setup(tmp_path: Path) -> tuple[Path, FakeKernel, str]:
    root = tmp_path / "cg"
    v1_mounts = {root / name: controllers for name, controllers in HYBRID_LAYOUT.items()}
    kernel = FakeKernel(v1_mounts, [root / "unified"])
    mountinfo = mountinfo_line(20, root, "tmpfs", "mode=755")
    for n, (name, controllers) in enumerate(HYBRID_LAYOUT.items(), 30):
        mountinfo += mountinfo_line(n, root / name, "cgroup", ",".join(controllers))
    mountinfo += mountinfo_line(50, root / "unified", "cgroup2", "nsdelegate")
    return root, kernel, mountinfo


SELF = "4:memory:/user/me\n1:cpu,cpuacct:/\n0::/\n"


def test_record_is_pure_and_round_trips(hybrid_setup: tuple[Path, FakeKernel, str]) -> None:
    root, kernel, mountinfo = hybrid_setup
    before = sorted(str(p) for p in root.rglob("*") if p.is_dir())
    mgr = new_manager("ctr", "c1", root=root, mountinfo=mountinfo, self_cgroup=SELF, fs=kernel)
    record = mgr.record()
    assert sorted(str(p) for p in root.rglob("*") if p.is_dir()) == before
    assert kernel.writes == []
    assert record["mode"] == "hybrid"
    assert record["paths"]["memory"] == str(root / "memory/user/me/ctr")
    assert record["paths"]["cpu"] == record["paths"]["cpuacct"] == str(root / "cpu,cpuacct/ctr")
    assert record["paths"]["unified"] == str(root / "unified/ctr")
    assert record["paths"]["name=systemd"] == str(root / "systemd/ctr")
    again = manager_from_record(json.loads(json.dumps(record)), fs=kernel)
    assert isinstance(again, V1Manager)
    assert again.record() == record
    assert not mgr.exists()


@pytest.mark.parametrize(
    "mutate",
    [
        lambda r: r.update(version=99),
        lambda r: r.update(mode="v3"),
        lambda r: r["paths"].update(memory="relative/path"),
        lambda r: r["paths"].update(memory=r["mounts"]["memory"]),
        lambda r: r["paths"].update(memory="/etc"),
        # `..` climbing out of the mount: destroy() would remove a sibling tree
        lambda r: r["paths"].update(memory=r["mounts"]["memory"] + "/x/../../elsewhere"),
        lambda r: r["paths"].update(memory=r["mounts"]["memory"] + "/x/.."),
        lambda r: r.update(id=None),
    ],
)
def test_bad_records_rejected(hybrid_setup: tuple[Path, FakeKernel, str], mutate) -> None:
    root, kernel, mountinfo = hybrid_setup
    record = new_manager("ctr", "c1", root=root, mountinfo=mountinfo, self_cgroup=SELF).record()
    mutate(record)
    with pytest.raises(CgroupError):
        manager_from_record(record)


def test_hybrid_lifecycle(hybrid_setup: tuple[Path, FakeKernel, str]) -> None:
    root, kernel, mountinfo = hybrid_setup
    mgr = new_manager("ctr", "c1", root=root, mountinfo=mountinfo, self_cgroup=SELF, fs=kernel)
    mgr.apply(4242)
    paths = {k: Path(v) for k, v in mgr.paths().items()}
    for d in paths.values():
        assert (d / "cgroup.procs").read_text().split() == ["4242"]
    # a fresh cpuset got the parent's cpus and mems before the task moved in
    assert (paths["cpuset"] / "cpuset.cpus").read_text() == "0-3"
    assert (paths["cpuset"] / "cpuset.mems").read_text() == "0"
    assert kernel.writes.index(("cpuset.cpus", "0-3")) < kernel.writes.index(
        ("cgroup.procs", "4242")
    )
    # co-mounted cpu,cpuacct joined once
    assert kernel.writes.count(("cgroup.procs", "4242")) == len(set(paths.values()))

    mgr.set(
        {
            "memory": {"limit": 100 << 20, "swap": 200 << 20},
            "pids": {"limit": 32},
            "cpu": {"shares": 512, "quota": 20000, "period": 100000},
            "devices": [
                {"allow": False, "access": "rwm"},
                {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
            ],
        }
    )
    assert (paths["memory"] / "memory.limit_in_bytes").read_text() == str(100 << 20)
    assert (paths["memory"] / "memory.memsw.limit_in_bytes").read_text() == str(200 << 20)
    assert (paths["pids"] / "pids.max").read_text() == "32"
    assert (paths["cpu"] / "cpu.cfs_quota_us").read_text() == "20000"
    assert (paths["devices"] / "devices.deny").read_text() == "a\n"  # written once
    assert (paths["devices"] / "devices.allow").read_text() == "c 1:3 rwm\n"
    assert mgr.unenforced({"memory": {"kernel": 5}}) == ["linux.resources.memory.kernel"]

    with pytest.raises(CgroupError, match=r"hugepageLimits\[0\]: the hugetlb controller"):
        mgr.set({"hugepageLimits": [{"pageSize": "2MB", "limit": 1}]})
    with pytest.raises(CgroupError, match="cgroup v2"):
        mgr.check({"unified": {"memory.high": "1"}})

    mgr.freeze()
    assert mgr.is_frozen()
    assert (paths["freezer"] / "freezer.state").read_text() == "FROZEN"
    mgr.thaw()
    assert not mgr.is_frozen()

    (paths["pids"] / "sub").mkdir()
    (paths["pids"] / "sub" / "cgroup.procs").write_text("4243\n")
    assert mgr.pids() == [4242, 4243]

    mgr.kill_all(signal.SIGTERM)
    assert sorted(kernel.signals) == [(4242, signal.SIGTERM), (4243, signal.SIGTERM)]
    assert ("freezer.state", "FROZEN") in kernel.writes
    assert (paths["freezer"] / "freezer.state").read_text() == "THAWED"

    # SIGKILL in hybrid goes through the unified tree's cgroup.kill; what is
    # only in a v1 group is swept by signalling.
    kernel.signals.clear()
    mgr.kill_all(signal.SIGKILL)
    assert ("cgroup.kill", "1") in kernel.writes
    assert (4242, signal.SIGKILL) in kernel.signals
    assert (4243, signal.SIGKILL) in kernel.signals

    for d in set(paths.values()):
        for p in [d, *[q for q in d.rglob("*") if q.is_dir()]]:
            (p / "cgroup.procs").write_text("")
    mgr.destroy()
    assert not mgr.exists()
    assert not any(p.exists() for p in paths.values())
    # the hierarchies themselves and the parents we did not make are untouched
    assert (root / "memory" / "user" / "me").is_dir()
    mgr.destroy()  # missing is fine


def test_v1_paused_container_stays_paused_on_sigterm(
    hybrid_setup: tuple[Path, FakeKernel, str],
) -> None:
    root, kernel, mountinfo = hybrid_setup
    mgr = new_manager("ctr", "c1", root=root, mountinfo=mountinfo, self_cgroup=SELF, fs=kernel)
    mgr.apply(77)
    mgr.freeze()
    mgr.kill_all(signal.SIGTERM)
    assert mgr.is_frozen()
    mgr.kill_all(signal.SIGHUP + 0)
    assert mgr.is_frozen()


def test_v1_freeze_timeout_thaws_and_reports(hybrid_setup: tuple[Path, FakeKernel, str]) -> None:
    root, kernel, mountinfo = hybrid_setup
    mgr = new_manager("ctr", "c1", root=root, mountinfo=mountinfo, self_cgroup=SELF, fs=kernel)
    mgr.apply(77)
    state = Path(mgr.paths()["freezer"]) / "freezer.state"
    original_write = kernel.write

    def stuck(path: str, value: str) -> None:
        original_write(path, value)
        if Path(path) == state and value == "FROZEN":
            state.write_text("FREEZING")

    kernel.write = stuck  # type: ignore[method-assign]
    with pytest.raises(CgroupError, match="did not reach FROZEN"):
        mgr.freeze()
    assert state.read_text() == "THAWED"


def test_v1_memory_order_uses_current_memsw(hybrid_setup: tuple[Path, FakeKernel, str]) -> None:
    root, kernel, mountinfo = hybrid_setup
    mgr = new_manager("ctr", "c1", root=root, mountinfo=mountinfo, self_cgroup=SELF, fs=kernel)
    mgr.apply(-1)
    mem = Path(mgr.paths()["memory"])
    (mem / "memory.memsw.limit_in_bytes").write_text("1000\n")
    kernel.writes.clear()
    mgr.set({"memory": {"limit": 1500, "swap": 3000}})
    assert kernel.writes == [
        ("memory.memsw.limit_in_bytes", "3000"),
        ("memory.limit_in_bytes", "1500"),
    ]
    kernel.writes.clear()
    mgr.set({"memory": {"limit": 500, "swap": 600}})
    assert kernel.writes == [
        ("memory.limit_in_bytes", "500"),
        ("memory.memsw.limit_in_bytes", "600"),
    ]


def test_v1_unchanged_devices_not_rewritten(hybrid_setup: tuple[Path, FakeKernel, str]) -> None:
    root, kernel, mountinfo = hybrid_setup
    mgr = new_manager("ctr", "c1", root=root, mountinfo=mountinfo, self_cgroup=SELF, fs=kernel)
    mgr.apply(-1)
    (Path(mgr.paths()["devices"]) / "devices.list").write_text("c 1:3 rwm\n")
    kernel.writes.clear()
    rules = [{"allow": False}, {"allow": True, "type": "c", "major": 1, "minor": 3}]
    mgr.set({"devices": rules, "pids": {"limit": 5}})
    assert kernel.writes == [("pids.max", "5")]


def test_v1_fresh_cpuset_levels_get_the_parent_values_read_once(
    hybrid_setup: tuple[Path, FakeKernel, str],
) -> None:
    root, kernel, mountinfo = hybrid_setup
    (root / "cpuset" / "keep").mkdir()
    (root / "cpuset" / "keep" / "cpuset.cpus").write_text("1\n")
    (root / "cpuset" / "keep" / "cpuset.mems").write_text("0\n")
    mgr = new_manager("keep/a/b", "c1", root=root, mountinfo=mountinfo, self_cgroup=SELF, fs=kernel)
    mgr.apply(-1)
    cpuset = root / "cpuset" / "keep"
    # the existing level keeps its narrower cpus, and the new levels below inherit them
    assert (cpuset / "cpuset.cpus").read_text() == "1\n"
    assert (cpuset / "a" / "cpuset.cpus").read_text() == "1"
    assert (cpuset / "a" / "b" / "cpuset.cpus").read_text() == "1"
    assert (cpuset / "a" / "b" / "cpuset.mems").read_text() == "0"
    # only the existing level is read: the levels mkdir just made are known to be empty
    assert [r for r in kernel.reads if r.startswith("cpuset/")] == [
        "cpuset/keep/cpuset.cpus", "cpuset/keep/cpuset.mems"
    ]


def test_v1_mkdir_starts_at_the_leaf(hybrid_setup: tuple[Path, FakeKernel, str]) -> None:
    """Below an existing cgroup (the usual prefix/<id>) one mkdir per hierarchy; a missing
    parent is made on the way back down."""
    root, kernel, mountinfo = hybrid_setup
    first = new_manager("pre/a", "a", root=root, mountinfo=mountinfo, self_cgroup=SELF, fs=kernel)
    first.apply(-1)
    assert kernel.mkdirs.count("pids/pre/a") == 2 and kernel.mkdirs.count("pids/pre") == 1
    kernel.mkdirs.clear()
    second = new_manager("pre/b", "b", root=root, mountinfo=mountinfo, self_cgroup=SELF, fs=kernel)
    second.apply(-1)
    assert sorted(kernel.mkdirs) == sorted(
        os.path.relpath(d, kernel.root) for d in set(second.paths().values())
    )
    assert (root / "cpuset" / "pre" / "b" / "cpuset.cpus").read_text() == "0-3"


def test_hybrid_unified_tree_only_tracks(hybrid_setup: tuple[Path, FakeKernel, str]) -> None:
    """Hybrid sets no limit in the cgroup2 tree: no controller is enabled on the way."""
    root, kernel, mountinfo = hybrid_setup
    mgr = new_manager("a/b", "c1", root=root, mountinfo=mountinfo, self_cgroup=SELF, fs=kernel)
    mgr.apply(42)
    assert (root / "unified" / "a" / "b" / "cgroup.procs").read_text().split() == ["42"]
    assert not any(name == "cgroup.subtree_control" for name, _ in kernel.writes)


def test_v1_set_lists_only_the_directories_the_plan_asks_about(
    hybrid_setup: tuple[Path, FakeKernel, str],
) -> None:
    root, kernel, mountinfo = hybrid_setup
    mgr = new_manager("ctr", "c1", root=root, mountinfo=mountinfo, self_cgroup=SELF, fs=kernel)
    mgr.apply(-1)
    mgr.set({"pids": {"limit": 5}, "devices": [{"allow": False}]})
    assert kernel.listed == []
    mgr.set({"memory": {"limit": 1 << 20}})
    assert kernel.listed == ["memory/user/me/ctr"]


def test_v1_stats_shape(hybrid_setup: tuple[Path, FakeKernel, str]) -> None:
    root, kernel, mountinfo = hybrid_setup
    mgr = new_manager("ctr", "c1", root=root, mountinfo=mountinfo, self_cgroup=SELF, fs=kernel)
    with pytest.raises(CgroupError, match="do not exist"):
        mgr.stats()
    mgr.apply(-1)
    mem = Path(mgr.paths()["memory"])
    (mem / "memory.oom_control").write_text("oom_kill_disable 0\nunder_oom 0\noom_kill 2\n")
    (Path(mgr.paths()["pids"]) / "pids.current").write_text("3\n")
    event = mgr.stats()
    assert event["type"] == "stats" and event["id"] == "c1"
    data = event["data"]
    assert data["cpu"]["usage"] == {
        "total": 123456,
        "percpu": [100000, 23456],
        "kernel": 1000,
        "user": 2000,
    }
    assert data["cpu"]["throttling"] == {
        "periods": 10,
        "throttledPeriods": 2,
        "throttledTime": 5000,
    }
    assert data["memory"]["usage"] == {
        "limit": 9223372036854771712,
        "usage": 4096,
        "max": 8192,
        "failcnt": 0,
    }
    assert data["memory"]["cache"] == 100
    assert data["memory"]["raw"] == {"cache": 100, "rss": 200}
    assert data["memory"]["kernel"] == {"limit": 0, "failcnt": 0}
    assert data["pids"] == {"current": 3}
    assert data["blkio"]["ioServiceBytesRecursive"] == [
        {"major": 8, "op": "Read", "value": 4096},
        {"major": 8, "op": "Write"},
    ]
    assert data["cpuset"]["cpus"] == [0, 1, 2, 3]
    assert data["hugetlb"] == {}
    assert mgr.oom_kill_count() == 2
    json.dumps(event)


def test_v1_destroy_waits_for_exiting_tasks(hybrid_setup: tuple[Path, FakeKernel, str]) -> None:
    root, kernel, mountinfo = hybrid_setup
    mgr = new_manager("ctr", "c1", root=root, mountinfo=mountinfo, self_cgroup=SELF, fs=kernel)
    mgr.apply(99)
    sleeps = []

    def reap() -> None:
        sleeps.append(kernel.clock)
        if len(sleeps) == 3:
            for d in mgr.paths().values():
                (Path(d) / "cgroup.procs").write_text("")

    kernel.on_sleep.append(reap)
    mgr.destroy()
    assert not mgr.exists()
    assert len(sleeps) >= 3


def test_v1_destroy_gives_up_on_live_tasks(hybrid_setup: tuple[Path, FakeKernel, str]) -> None:
    root, kernel, mountinfo = hybrid_setup
    mgr = new_manager("ctr", "c1", root=root, mountinfo=mountinfo, self_cgroup=SELF, fs=kernel)
    mgr.apply(99)
    with pytest.raises(CgroupError, match="remove cgroup"):
        mgr.destroy()
    assert kernel.clock >= 2.0


def test_set_before_apply(
    hybrid_setup: tuple[Path, FakeKernel, str], v2_setup: tuple[Path, FakeKernel, str]
) -> None:
    for root, kernel, mountinfo in (hybrid_setup, v2_setup):
        mgr = new_manager("x", "c", root=root, mountinfo=mountinfo, self_cgroup=SELF, fs=kernel)
        with pytest.raises(CgroupError, match="apply must come first"):
            mgr.set({"pids": {"limit": 1}})


def test_apply_refuses_pid_zero(hybrid_setup: tuple[Path, FakeKernel, str]) -> None:
    root, kernel, mountinfo = hybrid_setup
    mgr = new_manager("ctr", "c1", root=root, mountinfo=mountinfo, self_cgroup=SELF, fs=kernel)
    with pytest.raises(CgroupError):
        mgr.apply(0)
    assert not mgr.exists()


def test_apply_never_creates_a_missing_hierarchy(
    hybrid_setup: tuple[Path, FakeKernel, str],
) -> None:
    root, kernel, mountinfo = hybrid_setup
    mountinfo += mountinfo_line(60, root / "hugetlb", "cgroup", "hugetlb")
    mgr = new_manager("ctr", "c1", root=root, mountinfo=mountinfo, self_cgroup=SELF, fs=kernel)
    with pytest.raises(CgroupError, match="not mounted"):
        mgr.apply(-1)
    assert not (root / "hugetlb").exists()


# -- v2 --------------------------------------------------------------------


def test_v2_lifecycle(v2_setup: tuple[Path, FakeKernel, str]) -> None:
    root, kernel, mountinfo = v2_setup
    mgr = new_manager("a/b", "c2", root=root, mountinfo=mountinfo, self_cgroup="0::/\n", fs=kernel)
    assert isinstance(mgr, V2Manager)
    assert mgr.paths() == {"unified": str(root / "a" / "b")}
    mgr.apply(555)
    d = root / "a" / "b"
    assert (d / "cgroup.procs").read_text().split() == ["555"]
    # controllers offered down the chain so the leaf has them
    assert (root / "cgroup.subtree_control").read_text().split() == ["cpu", "io", "memory", "pids"]
    assert (root / "a" / "cgroup.subtree_control").read_text().split() == [
        "cpu",
        "io",
        "memory",
        "pids",
    ]
    assert (d / "cgroup.subtree_control").read_text() == ""
    assert (d / "memory.max").exists()

    mgr.set(
        {
            "memory": {"limit": 1 << 20, "swap": 3 << 20},
            "pids": {"limit": -1},
            "cpu": {"shares": 1024, "quota": 50000, "period": 100000},
            "devices": [{"allow": False, "access": "rwm"}],
            "unified": {"memory.low": "4096"},
        }
    )
    assert (d / "memory.max").read_text() == str(1 << 20)
    assert (d / "memory.swap.max").read_text() == str(2 << 20)
    assert (d / "pids.max").read_text() == "max"
    assert (d / "cpu.weight").read_text() == "39"
    assert (d / "cpu.max").read_text() == "50000 100000"
    assert (d / "memory.low").read_text() == "4096"
    assert mgr.unenforced({"devices": [{"allow": False}]}) == ["linux.resources.devices"]

    mgr.freeze()
    assert mgr.is_frozen()
    mgr.thaw()
    assert not mgr.is_frozen()

    (d / "sub").mkdir()
    (d / "sub" / "cgroup.procs").write_text("556\n")
    assert mgr.pids() == [555, 556]

    mgr.kill_all(signal.SIGTERM)
    assert sorted(kernel.signals) == [(555, signal.SIGTERM), (556, signal.SIGTERM)]
    assert ("cgroup.freeze", "1") in kernel.writes
    assert not mgr.is_frozen()

    kernel.signals.clear()
    mgr.kill_all(signal.SIGKILL)
    assert ("cgroup.kill", "1") in kernel.writes
    assert sorted(kernel.signals) == [(555, signal.SIGKILL), (556, signal.SIGKILL)]
    assert mgr.pids() == []

    event = mgr.stats()
    assert event["data"]["memory"]["usage"] == {
        "limit": 1 << 20,
        "usage": 8192,
        "failcnt": 3,
    }
    assert event["data"]["blkio"]["ioServicedRecursive"] == [
        {"major": 8, "op": "Read", "value": 1},
        {"major": 8, "op": "Write", "value": 2},
    ]
    assert event["data"]["pids"] == {"current": 1}
    assert mgr.oom_kill_count() == 1

    rebuilt = manager_from_record(mgr.record(), fs=kernel)
    rebuilt.destroy()
    assert not mgr.exists()
    assert (root / "a").is_dir()


def test_v2_retries_writes_that_wait_on_a_later_one(
    v2_setup: tuple[Path, FakeKernel, str],
) -> None:
    root, kernel, mountinfo = v2_setup
    mgr = new_manager("x", "c", root=root, mountinfo=mountinfo, self_cgroup="0::/\n", fs=kernel)
    mgr.apply(-1)
    kernel.fail[("cpu.max.burst", "30000")] = [errno.EINVAL]
    kernel.writes.clear()
    mgr.set({"cpu": {"quota": 50000, "burst": 30000}})
    assert kernel.writes == [("cpu.max", "50000"), ("cpu.max.burst", "30000")]


def test_v2_write_errors_name_file_and_field(v2_setup: tuple[Path, FakeKernel, str]) -> None:
    root, kernel, mountinfo = v2_setup
    mgr = new_manager("x", "c", root=root, mountinfo=mountinfo, self_cgroup="0::/\n", fs=kernel)
    mgr.apply(-1)
    kernel.fail[("pids.max", "5")] = [errno.EINVAL]
    with pytest.raises(CgroupError) as info:
        mgr.set({"pids": {"limit": 5}})
    assert str(info.value) == (
        f"{root / 'x' / 'pids.max'}: cannot write '5' for linux.resources.pids.limit: "
        "Invalid argument"
    )
    kernel.fail[("cpu.max.burst", "1")] = [errno.EINVAL, errno.EINVAL]
    with pytest.raises(CgroupError, match="cpu.max.burst"):
        mgr.set({"cpu": {"burst": 1}})


def test_v2_missing_controller_in_leaf(v2_setup: tuple[Path, FakeKernel, str]) -> None:
    root, kernel, mountinfo = v2_setup
    # a parent that keeps memory to itself: the leaf never gets memory.*
    (root / "cgroup.controllers").write_text("pids\n")
    mgr = new_manager("x", "c", root=root, mountinfo=mountinfo, self_cgroup="0::/\n", fs=kernel)
    mgr.apply(-1)
    with pytest.raises(CgroupError, match=r"memory\.limit: the memory controller is not enabled"):
        mgr.set({"memory": {"limit": 1 << 20}})
    mgr.set({"pids": {"limit": 3}})


def test_v2_relative_path_under_own_cgroup(v2_setup: tuple[Path, FakeKernel, str]) -> None:
    root, kernel, mountinfo = v2_setup
    (root / "runtime.slice").mkdir()
    mgr = new_manager(
        "", "c9", root=root, mountinfo=mountinfo, self_cgroup="0::/runtime.slice\n", fs=kernel
    )
    assert mgr.paths() == {"unified": str(root / "runtime.slice" / "c9")}


def test_manager_base_implements_nothing() -> None:
    # a plain base class (abc costs import time): a mode that forgets a method fails loudly
    with pytest.raises(NotImplementedError):
        Manager("x", "v2", {}, {}).apply(1)
