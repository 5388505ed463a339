"""Root tests on the real kernel for mounts, devices and pivot_root.

Each test builds a busybox rootfs, then a forked child unshares a mount and a pid
namespace and forks again: the grandchild is pid 1 there, like our init.  It runs
prepare_rootfs / pivot_root / write_sysctl / finalize_rootfs, looks around from inside
and reports a JSON dict over a pipe.  The namespace dies with it, so the host needs no
cleanup beyond the tmp dirs; every test also checks that the host's mount table and
/etc did not change.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import stat
import subprocess
import traceback
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from harness import HostSnapshot, own_mountinfo

from pyruntime.devices import DeviceError, mount_console
from pyruntime.mounts import finalize_rootfs, pivot_root, prepare_rootfs, write_sysctl
from pyruntime.spec import Spec, parse_spec
from pyruntime.syscalls.linux import (
    CLONE_NEWCGROUP,
    CLONE_NEWIPC,
    CLONE_NEWNS,
    CLONE_NEWPID,
    LINUX,
)

BUSYBOX = "/bin/busybox"
APPLETS = ("sh", "ls", "cat", "mount")

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root"),
    pytest.mark.skipif(not os.path.exists(BUSYBOX), reason="needs busybox-static"),
]

MASKED_PATHS = ["/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware",
                "/proc/scsi"]
# a masked procfs file this kernel has (/proc/kcore needs CONFIG_PROC_KCORE)
MASKED_FILE = next((p for p in ("/proc/kcore", "/proc/keys", "/proc/timer_list")
                    if os.path.exists(p)), "/proc/keys")
READONLY_PATHS = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]


def rootfs_config() -> dict[str, Any]:
    """For the in-process setup (not harness.base_config, the CLI containers' config):
    runc spec's default mounts, masked and readonly paths (no cgroup mount)."""
    return {
        "ociVersion": "1.2.0",
        "root": {"path": "rootfs"},
        "process": {"args": ["sh"], "cwd": "/"},
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
             "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
             "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs",
             "options": ["nosuid", "noexec", "nodev", "ro"]},
        ],
        "linux": {
            "namespaces": [{"type": "pid"}, {"type": "mount"}],
            "maskedPaths": list(MASKED_PATHS),
            "readonlyPaths": list(READONLY_PATHS),
        },
    }


def make_rootfs(base: Path) -> Path:
    root = base / "rootfs"
    for d in ("bin", "proc", "sys", "dev", "etc", "tmp", "mnt"):
        (root / d).mkdir(parents=True)
    shutil.copy2(BUSYBOX, root / "bin" / "busybox")
    for applet in APPLETS:
        os.symlink("busybox", root / "bin" / applet)
    (root / "I_AM_ROOTFS").write_text("yes")
    return root


@pytest.fixture
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # "pyrt" in the path so that a leaked mount is easy to grep for in the host's mountinfo
    return tmp_path_factory.mktemp("pyrt")


# --- running a body as pid 1 of fresh namespaces -----------------------------------

def _write_all(fd: int, data: bytes) -> None:
    while data:
        data = data[os.write(fd, data):]


def _report(w: int, body: Callable[[], dict[str, Any]]) -> None:
    """Grandchild: run body, send its result (or the error) as JSON, and never return."""
    try:
        try:
            out: dict[str, Any] = {"ok": True, "value": body()}
        except BaseException as e:
            out = {"ok": False, "type": type(e).__name__, "error": str(e),
                   "trace": traceback.format_exc()}
        _write_all(w, json.dumps(out).encode())
    finally:
        os._exit(0)


def run_as_init(body: Callable[[], dict[str, Any]], *, flags: int = 0) -> dict[str, Any]:
    """Run body in a grandchild that is pid 1 of new pid+mount namespaces (+ `flags`)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 2
        try:
            os.close(r)
            LINUX.unshare(CLONE_NEWNS | CLONE_NEWPID | flags)
            init = os.fork()
            if init == 0:
                _report(w, body)
            _, status = os.waitpid(init, 0)
            code = 0 if os.waitstatus_to_exitcode(status) == 0 else 1
        except BaseException:
            _write_all(w, json.dumps({"ok": False, "type": "setup", "error": "setup failed",
                                      "trace": traceback.format_exc()}).encode())
        finally:
            os._exit(code)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        data = f.read()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, data
    return json.loads(data)


@pytest.fixture
def host(base: Path) -> HostSnapshot:
    # the mounts below this test's own directory and the host places an escape aims at
    return HostSnapshot(base)


def _errno_of(fn: Callable[[], object]) -> str:
    try:
        fn()
    except OSError as e:
        return errno.errorcode.get(e.errno or 0, str(e.errno))
    return "ok"


def _container_mounts() -> dict[str, str]:
    """mountpoint -> fstype, from inside."""
    return {m.point: m.fstype for m in own_mountinfo()}


# --- tests ----------------------------------------------------------------------

def test_default_rootfs_from_inside(base: Path, host: HostSnapshot):
    root = make_rootfs(base)
    hostdir = base / "hostdir"
    hostdir.mkdir()
    (hostdir / "marker").write_text("from the host")
    cfg = rootfs_config()
    cfg["root"]["readonly"] = True
    cfg["mounts"].append({"destination": "/mnt/ro", "type": "bind", "source": str(hostdir),
                          "options": ["rbind", "ro", "nosuid"]})
    cfg["linux"]["namespaces"].append({"type": "ipc"})
    cfg["linux"]["sysctl"] = {"kernel.shm_rmid_forced": "1"}
    spec = parse_spec(cfg)
    with open("/proc/sys/kernel/shm_rmid_forced") as f:
        host_rmid = f.read()

    def body() -> dict[str, Any]:
        prepare_rootfs(spec, str(root))
        pivot_root(str(root))
        write_sysctl(spec.linux.sysctl)
        finalize_rootfs(spec)
        null = os.stat("/dev/null")
        with open(MASKED_FILE, "rb") as f:
            kcore = f.read(64)
        with open("/mnt/ro/marker") as f:
            marker = f.read()
        with open("/proc/sys/kernel/shm_rmid_forced") as f:
            rmid = f.read().strip()
        ls = subprocess.run(["/bin/ls", "/"], capture_output=True, text=True, check=True)
        return {
            "listing": sorted(os.listdir("/")),
            "busybox_ls": sorted(ls.stdout.split()),
            "proc_self": os.readlink("/proc/self"),
            "kcore": kcore.decode(),
            "proc_sys_write": _errno_of(lambda: os.open("/proc/sys/kernel/hostname", os.O_WRONLY)),
            "sysrq_write": _errno_of(lambda: os.open("/proc/sysrq-trigger", os.O_WRONLY)),
            "ro_bind_write": _errno_of(lambda: os.open("/mnt/ro/new", os.O_WRONLY | os.O_CREAT)),
            "ro_bind_nosuid": bool(os.statvfs("/mnt/ro").f_flag & os.ST_NOSUID),
            "marker": marker,
            "root_write": _errno_of(lambda: os.open("/newfile", os.O_WRONLY | os.O_CREAT)),
            "dev_write": _errno_of(lambda: os.close(os.open("/dev/shm/x",
                                                            os.O_WRONLY | os.O_CREAT))),
            "sys_ro": bool(os.statvfs("/sys").f_flag & os.ST_RDONLY),
            "firmware": os.listdir("/sys/firmware"),
            "null": [stat.S_ISCHR(null.st_mode), os.major(null.st_rdev), os.minor(null.st_rdev),
                     stat.S_IMODE(null.st_mode)],
            "ptmx": os.readlink("/dev/ptmx"),
            "pts_ptmx": os.path.exists("/dev/pts/ptmx"),
            "stdout_link": os.readlink("/dev/stdout"),
            "rmid": rmid,
            "mounts": _container_mounts(),
        }

    res = run_as_init(body, flags=CLONE_NEWIPC)
    assert res["ok"], res.get("trace")
    v = res["value"]
    assert v["listing"] == sorted(os.listdir(root))
    assert "I_AM_ROOTFS" in v["listing"] and v["busybox_ls"] == v["listing"]
    assert v["proc_self"] == "1"
    assert v["kcore"] == ""
    assert v["proc_sys_write"] == "EROFS"
    assert v["sysrq_write"] == ("EROFS" if os.path.exists("/proc/sysrq-trigger") else "ENOENT")
    assert v["ro_bind_write"] == "EROFS" and v["ro_bind_nosuid"]
    assert v["marker"] == "from the host"
    assert v["root_write"] == "EROFS"
    assert v["dev_write"] == "ok"
    assert v["sys_ro"] and v["firmware"] == []
    assert v["null"] == [True, 1, 3, 0o666]
    assert v["ptmx"] == "pts/ptmx" and v["pts_ptmx"]
    assert v["stdout_link"] == "/proc/self/fd/1"
    assert v["rmid"] == "1"
    mounts = v["mounts"]
    assert mounts["/"] != "proc" and mounts["/proc"] == "proc" and mounts["/dev"] == "tmpfs"
    assert mounts["/dev/pts"] == "devpts" and mounts["/dev/mqueue"] == "mqueue"
    assert mounts["/sys"] == "sysfs"
    assert mounts[MASKED_FILE] == "tmpfs"  # /dev/null of the /dev tmpfs bound over it
    # nothing of the old root is left in the container's mount table
    assert all(mp == "/" or mp.startswith(("/proc", "/dev", "/sys", "/mnt/ro")) for mp in mounts)
    with open("/proc/sys/kernel/shm_rmid_forced") as f:
        assert f.read() == host_rmid  # the write went to the container's ipc namespace
    host.assert_unchanged()
    assert not (hostdir / "new").exists()


def test_symlinked_destinations_stay_inside(base: Path, host: HostSnapshot):
    root = make_rootfs(base)
    os.rmdir(root / "etc")
    os.mkdir(root / "etc")
    os.symlink("/../../etc", root / "evil")
    os.symlink("/proc/self/root/etc", root / "evil2")
    hostdir = base / "hostdir"
    hostdir.mkdir()
    (hostdir / "marker").write_text("bound")
    cfg = rootfs_config()
    cfg["linux"] = {"maskedPaths": ["/evil/.." + MASKED_FILE], "readonlyPaths": ["/evil2/sub"]}
    cfg["mounts"] = [
        {"destination": "/proc", "type": "proc", "source": "proc"},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["mode=755"]},
        {"destination": "/evil", "type": "tmpfs", "source": "tmpfs", "options": ["size=1m"]},
        {"destination": "/evil2/sub", "type": "bind", "source": str(hostdir),
         "options": ["rbind"]},
    ]
    spec = parse_spec(cfg)

    def body() -> dict[str, Any]:
        prepare_rootfs(spec, str(root))
        pivot_root(str(root))
        finalize_rootfs(spec)
        with open("/etc/sub/marker") as f:
            marker = f.read()
        with open(MASKED_FILE, "rb") as f:
            kcore = f.read(16)
        return {"mounts": _container_mounts(), "marker": marker, "kcore": kcore.decode(),
                "sub_write": _errno_of(lambda: os.open("/etc/sub/x", os.O_WRONLY | os.O_CREAT))}

    res = run_as_init(body)
    assert res["ok"], res.get("trace")
    v = res["value"]
    assert v["mounts"]["/etc"] == "tmpfs"
    assert "/etc/sub" in v["mounts"] and v["marker"] == "bound"
    assert v["kcore"] == "" and v["sub_write"] == "EROFS"
    host.assert_unchanged()
    assert os.listdir(root / "etc") == []  # the tmpfs lived in the namespace only


@pytest.mark.parametrize("target", ["/../../etc", "/proc/self/root/etc", "../tmp"])
def test_proc_on_a_symlink_is_refused(base: Path, host: HostSnapshot, target: str):
    root = make_rootfs(base)
    os.rmdir(root / "proc")
    os.symlink(target, root / "proc")
    spec = parse_spec(rootfs_config())

    def body() -> dict[str, Any]:
        prepare_rootfs(spec, str(root))
        return {}

    res = run_as_init(body)
    assert not res["ok"] and res["type"] == "MountError"
    assert "mounts[0] on /proc: proc must be mounted on ordinary directory" in res["error"]
    host.assert_unchanged()


def test_bad_mounts_name_the_entry(base: Path, host: HostSnapshot):
    root = make_rootfs(base)
    for extra, expected in [
        ({"destination": "/x", "type": "nosuchfs", "source": "x"}, "mounts[6] (nosuchfs) on /x"),
        ({"destination": "/x", "type": "bind", "source": str(base / "missing"),
          "options": ["bind"]}, "mounts[6] on /x: bind source"),
    ]:
        cfg = rootfs_config()
        cfg["mounts"].append(extra)
        spec = parse_spec(cfg)

        def body(spec: Spec = spec) -> dict[str, Any]:
            prepare_rootfs(spec, str(root))
            return {}

        res = run_as_init(body)
        assert not res["ok"] and res["type"] == "MountError", res
        assert expected in res["error"]
    host.assert_unchanged()


def test_no_pivot_moves_the_root(base: Path, host: HostSnapshot):
    root = make_rootfs(base)
    spec = parse_spec(rootfs_config())

    def body() -> dict[str, Any]:
        prepare_rootfs(spec, str(root))
        pivot_root(str(root), no_pivot=True)
        finalize_rootfs(spec)
        return {"listing": sorted(os.listdir("/")), "proc_self": os.readlink("/proc/self"),
                "proc_sys_write": _errno_of(lambda: os.open("/proc/sys/kernel/hostname",
                                                            os.O_WRONLY))}

    res = run_as_init(body)
    assert res["ok"], res.get("trace")
    assert res["value"] == {"listing": sorted(os.listdir(root)), "proc_self": "1",
                            "proc_sys_write": "EROFS"}
    host.assert_unchanged()


def _host_cgroup_mode() -> str:
    fstype = {m.point: m.fstype for m in own_mountinfo()}.get("/sys/fs/cgroup")
    return "none" if fstype is None else "v2" if fstype == "cgroup2" else "v1"


CGROUP_MOUNT = {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
                "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}


def _own_cgroup(controller: str) -> str:
    """This process's cgroup path in a v1 hierarchy ("" for v2's unified one)."""
    with open("/proc/self/cgroup") as f:
        for line in f:
            _n, ctrls, path = line.rstrip("\n").split(":", 2)
            if controller in ctrls.split(",") or (controller == "" and ctrls == ""):
                return path
    raise AssertionError(f"no {controller!r} line in /proc/self/cgroup")


# what a child cgroup is given, so that the container can tell it from the hierarchy root
CHILD_LIMITS = {"memory": ("memory.limit_in_bytes", str(123 << 20)), "pids": ("pids.max", "77"),
                "cpu": ("cpu.shares", "333")}


@pytest.fixture
def child_cgroups(tmp_path: Path) -> Iterator[tuple[str, dict[str, str], str]]:
    """Fresh cgroups below this process's own (the container's, as the cgroup manager
    would make them), each with a sub-cgroup named `inner` and, in v1, a limit of its own."""
    mode = _host_cgroup_mode()
    if mode == "none":
        pytest.skip("no cgroup filesystem on /sys/fs/cgroup")
    name = f"pyrt-test-{uuid.uuid4().hex[:10]}"
    inner = f"inner-{uuid.uuid4().hex[:6]}"
    if mode == "v2":
        hierarchies = {"unified": ("/sys/fs/cgroup", "")}
    else:
        hierarchies = {c: (f"/sys/fs/cgroup/{c}", c) for c in ("memory", "cpu", "pids")
                       if os.path.ismount(f"/sys/fs/cgroup/{c}")}
        hierarchies["name=systemd"] = ("/sys/fs/cgroup/systemd", "name=systemd")
    made: list[Path] = []
    paths: dict[str, str] = {}
    try:
        for key, (mount, ctrl) in hierarchies.items():
            d = Path(mount + _own_cgroup(ctrl)) / name
            d.mkdir()
            made.append(d)
            (d / inner).mkdir()
            made.append(d / inner)
            if key in CHILD_LIMITS:
                file, value = CHILD_LIMITS[key]
                (d / file).write_text(value)
            paths[key] = str(d)
        yield mode, paths, inner
    finally:
        for d in reversed(made):
            d.rmdir()


@pytest.mark.parametrize("new_cgroupns", [True, False])
def test_cgroup_mount(base: Path, host: HostSnapshot, new_cgroupns: bool,
                      child_cgroups: tuple[str, dict[str, str], str]):
    mode, cgroup_paths, inner = child_cgroups
    root = make_rootfs(base)
    cfg = rootfs_config()
    cfg["mounts"].append(CGROUP_MOUNT)
    spec = parse_spec(cfg)
    # keyed like the cgroup manager's paths()
    probe = "cgroup.procs" if mode == "v2" else "memory/memory.limit_in_bytes"
    seen_files = {"unified": ""} if mode == "v2" else {k: f"{k}/{f}" for k, (f, _v) in CHILD_LIMITS.items()}

    def body() -> dict[str, Any]:
        prepare_rootfs(spec, str(root), new_cgroupns=new_cgroupns, cgroup_paths=cgroup_paths)
        pivot_root(str(root))
        finalize_rootfs(spec)
        with open("/proc/self/cgroup") as f:
            own = f.read()
        limits = {}
        for key, rel in seen_files.items():
            if rel and not new_cgroupns:
                with open(f"/sys/fs/cgroup/{rel}") as f:
                    limits[key] = f.read().strip()
        inner_seen = {key: os.path.isdir(f"/sys/fs/cgroup/{'' if mode == 'v2' else key + '/'}{inner}")
                      for key in (["unified"] if mode == "v2" else ["memory", "cpu", "pids"])}
        return {"listing": sorted(os.listdir("/sys/fs/cgroup")), "limits": limits, "inner": inner_seen,
                "probe": os.path.exists(f"/sys/fs/cgroup/{probe}"),
                "write": _errno_of(lambda: os.mkdir(f"/sys/fs/cgroup/{probe.split('/')[0]}/x")),
                "tmpfs_write": _errno_of(lambda: os.mkdir("/sys/fs/cgroup/y")),
                "own": own, "mounts": _container_mounts()}

    res = run_as_init(body, flags=CLONE_NEWCGROUP if new_cgroupns else 0)
    assert res["ok"], res.get("trace")
    v = res["value"]
    assert v["probe"] and v["write"] == "EROFS" and v["tmpfs_write"] == "EROFS"
    if mode == "v1":
        assert "memory" in v["listing"]
        if not new_cgroupns:
            assert {"memory", "systemd"} <= set(v["listing"])
            assert v["mounts"]["/sys/fs/cgroup/systemd"] == "cgroup"
        if new_cgroupns:
            hierarchies = {n for n in os.listdir("/sys/fs/cgroup")
                           if os.path.ismount(f"/sys/fs/cgroup/{n}")}
            assert hierarchies <= set(v["listing"])
            assert v["mounts"]["/sys/fs/cgroup/memory"] == "cgroup"
            # in its own cgroup namespace every path is its root
            assert all(line.endswith(":/") for line in v["own"].splitlines())
    if not new_cgroupns:
        # the container's own cgroup, not the hierarchy root: its sub-cgroup and limits show
        assert all(v["inner"].values()), v["inner"]
        if mode == "v1":
            assert v["limits"] == {k: val for k, (_f, val) in CHILD_LIMITS.items()}, v["limits"]
    host.assert_unchanged()


def test_console_bind(base: Path, host: HostSnapshot):
    root = make_rootfs(base)
    spec = parse_spec(rootfs_config())
    master, slave = os.openpty()
    slave_rdev = os.fstat(slave).st_rdev

    def body() -> dict[str, Any]:
        prepare_rootfs(spec, str(root), console_path=os.ttyname(slave))
        pivot_root(str(root))
        finalize_rootfs(spec)
        st = os.stat("/dev/console")
        return {"chr": stat.S_ISCHR(st.st_mode), "rdev": st.st_rdev}

    try:
        res = run_as_init(body)
    finally:
        os.close(master)
        os.close(slave)
    assert res["ok"], res.get("trace")
    assert res["value"] == {"chr": True, "rdev": slave_rdev}
    host.assert_unchanged()


def test_console_after_pivot_from_the_container_devpts(base: Path, host: HostSnapshot):
    """The runc order: the pty comes from the container's own /dev/ptmx after pivot_root."""
    root = make_rootfs(base)
    spec = parse_spec(rootfs_config())

    def body() -> dict[str, Any]:
        prepare_rootfs(spec, str(root))
        pivot_root(str(root))
        master, slave = os.openpty()  # /dev/ptmx -> pts/ptmx: the container's devpts
        slave_path = os.ttyname(slave)
        refused = {}
        for bad in ("/dev/null", "/proc/self/fd/0"):
            try:
                mount_console("/", bad)
                refused[bad] = "mounted"
            except DeviceError as e:
                refused[bad] = str(e)
        os.symlink("/proc/sysrq-trigger", "/dev/console")
        try:
            mount_console("/", slave_path)
            refused["symlink"] = "mounted"
        except DeviceError as e:
            refused["symlink"] = str(e)
        os.unlink("/dev/console")
        mount_console("/", slave_path)
        finalize_rootfs(spec)
        st = os.stat("/dev/console")
        return {"slave": slave_path, "same": st.st_rdev == os.fstat(slave).st_rdev,
                "console_is_file_mount": _container_mounts().get("/dev/console"),
                "refused": refused, "master": master}

    res = run_as_init(body)
    assert res["ok"], res.get("trace")
    v = res["value"]
    assert v["slave"] == "/dev/pts/0" and v["same"]
    assert v["console_is_file_mount"] == "devpts"
    assert "not a pty slave" in v["refused"]["/dev/null"]
    assert "mounted" not in v["refused"].values()
    assert "symlink" in v["refused"]["symlink"]
    host.assert_unchanged()
