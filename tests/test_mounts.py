"""Unit tests (no root) for paths.open_in_root, mounts and devices, against FakeSyscalls.

Mount targets are /proc/self/fd/N magic links; `ResolvingSys` turns them back into the
paths the kernel would have mounted on, at the time of the call.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable
from pathlib import Path

import pytest

from pyruntime import devices, mounts
from pyruntime.devices import DeviceError, create_devices
from pyruntime.errors import ConfigError
from pyruntime.mounts import (
    MountError,
    MountOptions,
    cgroup_bind_dirs,
    finalize_rootfs,
    host_cgroup_layout,
    parse_mount_options,
    parse_mountinfo,
    pivot_root,
    prepare_rootfs,
    root_propagation_flags,
    sysctl_relpath,
    write_sysctl,
)
from pyruntime.paths import MAX_SYMLINK_HOPS, fd_path, open_in_root
from pyruntime.spec import Device, Linux, Mount, Namespace, Spec
from pyruntime.syscalls.fake import FakeSyscalls
from pyruntime.syscalls.linux import (
    MNT_DETACH,
    MS_BIND,
    MS_DIRSYNC,
    MS_LAZYTIME,
    MS_MANDLOCK,
    MS_NOATIME,
    MS_NODEV,
    MS_NODIRATIME,
    MS_NOEXEC,
    MS_NOSUID,
    MS_NOSYMFOLLOW,
    MS_PRIVATE,
    MS_RDONLY,
    MS_REC,
    MS_RELATIME,
    MS_REMOUNT,
    MS_SHARED,
    MS_SLAVE,
    MS_STRICTATIME,
    MS_SYNCHRONOUS,
    MS_UNBINDABLE,
)

TMPFS_MAGIC = 0x01021994


def _resolve(p: str | None) -> str | None:
    if p is not None and p.startswith("/proc/self/fd/"):
        return os.readlink(p)
    return p


class ResolvingSys(FakeSyscalls):
    """FakeSyscalls that also records mounts with magic-link paths resolved, and can be told
    to fail selected mounts: `fail_mount(source, target, fstype, flags) -> errno | None`."""

    def __init__(self) -> None:
        super().__init__()
        self.mounts: list[tuple[str | None, str | None, str | None, int, str | None]] = []
        self.fail_mount: Callable[[str | None, str | None, str | None, int], int | None] = \
            lambda src, dst, fstype, flags: None

    def mount(self, source: str | None, target: str, fstype: str | None, flags: int = 0,
              data: str | None = None) -> None:
        super().mount(source, target, fstype, flags, data)
        src, dst = _resolve(source), _resolve(target)
        code = self.fail_mount(src, dst, fstype, flags)
        if code:
            raise OSError(code, os.strerror(code), target)
        self.mounts.append((src, dst, fstype, flags, data))


def _spec(*mount_list: Mount, userns: bool = True, **linux: object) -> Spec:
    namespaces = [Namespace("mount"), Namespace("pid")]
    if userns:
        namespaces.append(Namespace("user"))
    return Spec(oci_version="1.2.0", root_path="rootfs", mounts=tuple(mount_list),
                linux=Linux(namespaces=tuple(namespaces), **linux))  # type: ignore[arg-type]


def _mountinfo(tmp_path: Path, text: str = "") -> str:
    p = tmp_path / "mountinfo"
    p.write_text(text or "1 0 8:1 / / rw,relatime master:1 - ext4 /dev/sda1 rw\n")
    return str(p)


# --- parse_mount_options ---------------------------------------------------------

@pytest.mark.parametrize("options, flags, propagation, data", [
    ([], 0, (), ""),
    (["ro"], MS_RDONLY, (), ""),
    (["ro", "rw"], 0, (), ""),
    (["nosuid", "nodev", "noexec"], MS_NOSUID | MS_NODEV | MS_NOEXEC, (), ""),
    (["nosuid", "suid", "dev", "exec"], 0, (), ""),
    (["sync", "async", "dirsync"], MS_DIRSYNC, (), ""),
    (["sync"], MS_SYNCHRONOUS, (), ""),
    (["remount", "ro"], MS_REMOUNT | MS_RDONLY, (), ""),
    (["mand", "nomand"], 0, (), ""),
    (["mand"], MS_MANDLOCK, (), ""),
    (["noatime", "nodiratime"], MS_NOATIME | MS_NODIRATIME, (), ""),
    (["noatime", "atime", "diratime"], 0, (), ""),
    (["relatime"], MS_RELATIME, (), ""),
    (["relatime", "norelatime"], 0, (), ""),
    (["strictatime"], MS_STRICTATIME, (), ""),
    (["strictatime", "nostrictatime"], 0, (), ""),
    (["lazytime"], MS_LAZYTIME, (), ""),
    (["nosymfollow"], MS_NOSYMFOLLOW, (), ""),
    (["bind"], MS_BIND, (), ""),
    (["rbind", "ro"], MS_BIND | MS_REC | MS_RDONLY, (), ""),
    (["defaults"], 0, (), ""),
    (["private"], 0, (MS_PRIVATE,), ""),
    (["rprivate", "shared"], 0, (MS_PRIVATE | MS_REC, MS_SHARED), ""),
    (["rshared"], 0, (MS_SHARED | MS_REC,), ""),
    (["slave", "rslave"], 0, (MS_SLAVE, MS_SLAVE | MS_REC), ""),
    (["unbindable", "runbindable"], 0, (MS_UNBINDABLE, MS_UNBINDABLE | MS_REC), ""),
    (["tmpcopyup", "mode=755"], 0, (), "mode=755"),
    (["nosuid", "mode=755", "size=65536k", "strictatime"], MS_NOSUID | MS_STRICTATIME, (),
     "mode=755,size=65536k"),
    (["newinstance", "ptmxmode=0666", "mode=0620", "gid=5"], 0, (),
     "newinstance,ptmxmode=0666,mode=0620,gid=5"),
])
def test_parse_mount_options(options, flags, propagation, data):
    opts = parse_mount_options(options)
    assert (opts.flags, opts.propagation, opts.data) == (flags, propagation, data)


def test_parse_mount_options_cleared_and_atime():
    opts = parse_mount_options(["rw", "atime"])
    assert opts.cleared == MS_RDONLY | MS_NOATIME
    assert opts.sets_atime
    assert not parse_mount_options(["ro", "nosuid"]).sets_atime
    assert parse_mount_options(["bind"]).is_bind and not parse_mount_options(["ro"]).is_bind


@pytest.mark.parametrize("option", ["idmap", "ridmap", "idmap=uids=0-1000-10", "rro", "rnosuid"])
def test_parse_mount_options_unsupported(option):
    with pytest.raises(ConfigError, match=option.split("=")[0]) as err:
        parse_mount_options(["ro", option], where="mounts[2].options")
    assert err.value.where == "mounts[2].options"


def test_root_propagation_flags():
    assert root_propagation_flags("") == MS_SLAVE | MS_REC
    assert root_propagation_flags("rshared") == MS_SHARED | MS_REC
    assert root_propagation_flags("private") == MS_PRIVATE
    with pytest.raises(ConfigError, match="rootfsPropagation"):
        root_propagation_flags("sideways")


# --- open_in_root ----------------------------------------------------------------

@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A root full of symlinks that would escape it if the kernel followed them."""
    root = tmp_path / "root"
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_text("host")
    root.mkdir()
    (root / "etc").mkdir()
    (root / "etc" / "passwd").write_text("container")
    (root / "file").write_text("x")
    (root / "dir" / "sub").mkdir(parents=True)
    os.symlink("/../../etc", root / "abs_dotdot")
    os.symlink("../../../../etc", root / "rel_dotdot")
    os.symlink(str(outside), root / "host_abs")  # absolute host path of a real dir
    os.symlink("../outside", root / "sibling")
    os.symlink("../../..", root / "dir" / "sub" / "up")
    os.symlink("/proc/self/root/etc", root / "magic")
    os.symlink("loop2", root / "loop1")
    os.symlink("loop1", root / "loop2")
    os.symlink("chain2", root / "chain1")
    os.symlink("/chain3", root / "chain2")
    os.symlink("dir/../etc", root / "chain3")
    os.symlink("file", root / "to_file")
    os.symlink("/", root / "to_root")
    return root


def _opened(root: Path, path: str, **kw) -> str:
    root_fd = os.open(root, os.O_PATH | os.O_DIRECTORY)
    try:
        fd = open_in_root(root_fd, path, **kw)
    finally:
        os.close(root_fd)
    try:
        return os.readlink(fd_path(fd))
    finally:
        os.close(fd)


@pytest.mark.parametrize("path, expected", [
    ("etc/passwd", "etc/passwd"),
    ("/etc/passwd", "etc/passwd"),
    ("../../../etc/passwd", "etc/passwd"),
    ("abs_dotdot/passwd", "etc/passwd"),
    ("rel_dotdot/passwd", "etc/passwd"),
    ("dir/sub/up/etc/passwd", "etc/passwd"),
    ("chain1/passwd", "etc/passwd"),
    ("to_root/to_root/etc", "etc"),
    ("dir/sub/../../etc//./passwd", "etc/passwd"),
    ("to_file", "file"),
    ("", ""),
    ("/", ""),
    ("..", ""),
])
def test_open_in_root_resolves_inside(tree: Path, path: str, expected: str):
    assert _opened(tree, path) == str(tree / expected).rstrip("/")


@pytest.mark.parametrize("path", [
    "host_abs/secret", "sibling/secret", "magic/passwd", "abs_dotdot/../../outside/secret",
])
def test_open_in_root_never_reaches_outside(tree: Path, path: str):
    # each of these reaches tmp_path/outside/secret if the kernel resolves it
    with pytest.raises(FileNotFoundError):
        _opened(tree, path)


@pytest.mark.parametrize("path", [
    "host_abs/secret", "sibling/secret", "magic/new", "abs_dotdot/new", "rel_dotdot/x/y",
    "dir/sub/up/up/up/z", "chain1/n",
])
def test_open_in_root_creates_inside(tree: Path, path: str):
    created = _opened(tree, path, create="file")
    assert created.startswith(str(tree) + "/")
    assert os.path.isfile(created)
    assert os.path.realpath(created) == created  # a real file, no symlink left on its path
    assert (tree.parent / "outside" / "secret").read_text() == "host"
    assert sorted(os.listdir(tree.parent)) == ["outside", "root"]


def test_open_in_root_creates_dirs_with_mode(tree: Path):
    created = _opened(tree, "a/b/c", create="dir", mode=0o700)
    assert created == str(tree / "a" / "b" / "c")
    assert stat.S_IMODE(os.stat(tree / "a").st_mode) == 0o700 & ~_umask()


def _umask() -> int:
    old = os.umask(0)
    os.umask(old)
    return old


def test_open_in_root_loops_and_hops(tree: Path):
    with pytest.raises(OSError) as err:
        _opened(tree, "loop1")
    assert err.value.errno == errno.ELOOP
    for i in range(MAX_SYMLINK_HOPS + 1):
        os.symlink(f"hop{i + 1}", tree / f"hop{i}")
    (tree / f"hop{MAX_SYMLINK_HOPS + 1}").mkdir()
    assert _opened(tree, "hop1") == str(tree / f"hop{MAX_SYMLINK_HOPS + 1}")  # exactly 40
    with pytest.raises(OSError) as err:
        _opened(tree, "hop0")  # 41
    assert err.value.errno == errno.ELOOP


def test_open_in_root_kinds(tree: Path):
    with pytest.raises(NotADirectoryError):
        _opened(tree, "file/x")
    with pytest.raises(NotADirectoryError):
        _opened(tree, "to_file", create="dir")
    with pytest.raises(IsADirectoryError):
        _opened(tree, "etc", create="file")
    with pytest.raises(OSError) as err:
        _opened(tree, "abs_dotdot", follow_last=False)
    assert err.value.errno == errno.ELOOP
    assert _opened(tree, "abs_dotdot/passwd", follow_last=False) == str(tree / "etc/passwd")
    with pytest.raises(ValueError):
        _opened(tree, "etc", create="socket")


def test_open_in_root_leaks_no_fds(tree: Path):
    before = len(os.listdir("/proc/self/fd"))
    for path in ("chain1/passwd", "dir/sub/up/etc", "nope/x"):
        try:
            _opened(tree, path)
        except OSError:
            pass
    with pytest.raises(OSError):
        _opened(tree, "loop1")
    assert len(os.listdir("/proc/self/fd")) == before


# --- prepare_rootfs --------------------------------------------------------------

RUNC_DEFAULT_MOUNTS = (
    Mount("/proc", "proc", "proc"),
    Mount("/dev", "tmpfs", "tmpfs", ("nosuid", "strictatime", "mode=755", "size=65536k")),
    Mount("/dev/pts", "devpts", "devpts",
          ("nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5")),
    Mount("/dev/shm", "tmpfs", "shm", ("nosuid", "noexec", "nodev", "mode=1777", "size=65536k")),
    Mount("/dev/mqueue", "mqueue", "mqueue", ("nosuid", "noexec", "nodev")),
    Mount("/sys", "sysfs", "sysfs", ("nosuid", "noexec", "nodev", "ro")),
)


@pytest.fixture
def rootfs(tmp_path: Path) -> Path:
    r = tmp_path / "rootfs"
    (r / "bin").mkdir(parents=True)
    return r


def test_prepare_rootfs_default_mounts(tmp_path: Path, rootfs: Path):
    host_dir = tmp_path / "hostdir"
    host_dir.mkdir()
    host_file = tmp_path / "hostfile"
    host_file.write_text("hi")
    spec = _spec(*RUNC_DEFAULT_MOUNTS,
                 Mount("/mnt/ro", "bind", str(host_dir), ("rbind", "ro", "nosuid", "rprivate")),
                 Mount("/etc/hostname", "", str(host_file), ("bind",)))
    sys = ResolvingSys()
    prepare_rootfs(spec, str(rootfs), sys=sys, mountinfo=_mountinfo(tmp_path))
    r = str(rootfs)
    expected = [
        (None, "/", None, MS_SLAVE | MS_REC, None),
        (r, r, None, MS_BIND | MS_REC, None),
        ("proc", f"{r}/proc", "proc", 0, None),
        ("tmpfs", f"{r}/dev", "tmpfs", MS_NOSUID | MS_STRICTATIME, "mode=755,size=65536k"),
        ("devpts", f"{r}/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC,
         "newinstance,ptmxmode=0666,mode=0620,gid=5"),
        ("shm", f"{r}/dev/shm", "tmpfs", MS_NOSUID | MS_NOEXEC | MS_NODEV, "mode=1777,size=65536k"),
        ("mqueue", f"{r}/dev/mqueue", "mqueue", MS_NOSUID | MS_NOEXEC | MS_NODEV, None),
        ("sysfs", f"{r}/sys", "sysfs", MS_NOSUID | MS_NOEXEC | MS_NODEV | MS_RDONLY, None),
        (str(host_dir), f"{r}/mnt/ro", None, MS_BIND | MS_REC, None),
        (None, f"{r}/mnt/ro", None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID, None),
        (None, f"{r}/mnt/ro", None, MS_PRIVATE | MS_REC, None),
        (str(host_file), f"{r}/etc/hostname", None, MS_BIND, None),
    ]
    assert sys.mounts[:len(expected)] == expected
    # the bind target of a file source is an (empty) file, of a dir source a dir
    assert (rootfs / "etc" / "hostname").is_file() and (rootfs / "mnt" / "ro").is_dir()
    # user namespace: devices are host nodes bind-mounted onto empty files
    device_binds = sys.mounts[len(expected):]
    assert device_binds == [(f"/dev/{n}", f"{r}/dev/{n}", None, MS_BIND, None)
                            for n in ("null", "zero", "full", "random", "urandom", "tty")]
    assert os.readlink(rootfs / "dev" / "ptmx") == "pts/ptmx"
    assert os.readlink(rootfs / "dev" / "fd") == "/proc/self/fd"
    assert os.readlink(rootfs / "dev" / "stderr") == "/proc/self/fd/2"


def test_prepare_rootfs_makes_shared_parent_private(tmp_path: Path, rootfs: Path):
    info = (f"1 0 8:1 / / rw shared:1 - ext4 /dev/sda1 rw\n"
            f"2 1 0:5 / {tmp_path} rw shared:7 - tmpfs tmpfs rw\n"
            f"3 1 0:6 / {tmp_path}2 rw shared:8 - tmpfs tmpfs rw\n")
    sys = ResolvingSys()
    prepare_rootfs(_spec(rootfs_propagation="rshared"), str(rootfs), sys=sys,
                   mountinfo=_mountinfo(tmp_path, info))
    assert sys.mounts[:3] == [
        (None, "/", None, MS_SHARED | MS_REC, None),
        (None, str(tmp_path), None, MS_PRIVATE, None),
        (str(rootfs), str(rootfs), None, MS_BIND | MS_REC, None),
    ]


def test_prepare_rootfs_proc_on_symlink_is_refused(tmp_path: Path, rootfs: Path):
    os.symlink("/../../etc", rootfs / "proc")
    sys = ResolvingSys()
    with pytest.raises(MountError, match=r"mounts\[0\] on /proc: proc must be mounted on ordin"):
        prepare_rootfs(_spec(Mount("/proc", "proc", "proc")), str(rootfs), sys=sys,
                       mountinfo=_mountinfo(tmp_path))
    assert all(target != "/etc" for _, target, *_ in sys.mounts)


def test_prepare_rootfs_proc_on_file_is_refused(tmp_path: Path, rootfs: Path):
    (rootfs / "proc").write_text("")
    with pytest.raises(MountError, match=r"mounts\[0\]"):
        prepare_rootfs(_spec(Mount("/proc", "proc", "proc")), str(rootfs), sys=ResolvingSys(),
                       mountinfo=_mountinfo(tmp_path))


def test_prepare_rootfs_symlinked_destination_stays_inside(tmp_path: Path, rootfs: Path):
    os.symlink("/../../etc", rootfs / "evil")
    os.symlink("/proc/self/root/etc", rootfs / "evil2")
    sys = ResolvingSys()
    prepare_rootfs(_spec(Mount("/evil", "tmpfs", "tmpfs"), Mount("/evil2/x", "tmpfs", "tmpfs")),
                   str(rootfs), sys=sys, mountinfo=_mountinfo(tmp_path))
    assert ("tmpfs", f"{rootfs}/etc", "tmpfs", 0, None) in sys.mounts
    assert ("tmpfs", f"{rootfs}/proc/self/root/etc/x", "tmpfs", 0, None) in sys.mounts


def test_prepare_rootfs_errors_name_the_mount(tmp_path: Path, rootfs: Path):
    sys = ResolvingSys()
    sys.fail_mount = lambda src, dst, fstype, flags: errno.ENODEV if fstype == "nosuchfs" else None
    spec = _spec(Mount("/proc", "proc", "proc"), Mount("/data", "nosuchfs", "x"))
    with pytest.raises(MountError, match=r"mounts\[1\] \(nosuchfs\) on /data: .*No such device"):
        prepare_rootfs(spec, str(rootfs), sys=sys, mountinfo=_mountinfo(tmp_path))
    spec = _spec(Mount("/data", "bind", str(tmp_path / "missing"), ("rbind",)))
    with pytest.raises(MountError, match=r"mounts\[0\] on /data: bind source .*missing does not"):
        prepare_rootfs(spec, str(rootfs), sys=ResolvingSys(), mountinfo=_mountinfo(tmp_path))
    spec = _spec(Mount("/data", "bind", str(tmp_path), ("rbind", "idmap")))
    with pytest.raises(ConfigError, match=r"mounts\[0\]\.options"):
        prepare_rootfs(spec, str(rootfs), sys=ResolvingSys(), mountinfo=_mountinfo(tmp_path))


def test_bind_remount_retries_with_locked_flags(tmp_path: Path, rootfs: Path):
    src = tmp_path / "src"
    src.mkdir()
    sys = ResolvingSys()
    first: list[int] = []

    def fail_first_remount(source, target, fstype, flags):
        if flags & MS_REMOUNT and not first:
            first.append(flags)
            return errno.EPERM
        return None

    sys.fail_mount = fail_first_remount
    prepare_rootfs(_spec(Mount("/m", "bind", str(src), ("bind", "ro"))), str(rootfs), sys=sys,
                   mountinfo=_mountinfo(tmp_path))
    locked = mounts.mount_flags_of(os.statvfs(src).f_flag)
    assert first == [MS_REMOUNT | MS_BIND | MS_RDONLY]
    retried = MS_REMOUNT | MS_BIND | MS_RDONLY | locked
    assert (None, f"{rootfs}/m", None, retried, None) in sys.mounts


MOUNTINFO_V1 = """\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw,nsdelegate
50 1 0:40 / /mnt/with\\040space rw - tmpfs tmpfs rw
"""


def test_parse_mountinfo_and_cgroup_layout():
    infos = parse_mountinfo(MOUNTINFO_V1)
    assert infos[-1].mountpoint == "/mnt/with space"
    assert infos[1].super_options == ("rw", "cpu", "cpuacct")
    mode, hierarchies = host_cgroup_layout(infos)
    assert mode == "v1"
    assert [(h.name, h.fstype, h.data) for h in hierarchies] == [
        ("cpu,cpuacct", "cgroup", "cpu,cpuacct"), ("memory", "cgroup", "memory"),
        ("systemd", "cgroup", "name=systemd"), ("unified", "cgroup2", ""),
    ]
    v2 = "31 23 0:28 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw,nsdelegate\n"
    assert host_cgroup_layout(parse_mountinfo(v2)) == ("v2", [])


CGROUP_MOUNT = Mount("/sys/fs/cgroup", "cgroup", "cgroup",
                     ("nosuid", "noexec", "nodev", "relatime", "ro"))
CG_FLAGS = MS_NOSUID | MS_NOEXEC | MS_NODEV | MS_RELATIME


def test_cgroup_mount_new_namespace_v1(tmp_path: Path, rootfs: Path):
    sys = ResolvingSys()
    prepare_rootfs(_spec(CGROUP_MOUNT), str(rootfs), sys=sys, new_cgroupns=True,
                   mountinfo=_mountinfo(tmp_path, MOUNTINFO_V1))
    cg = f"{rootfs}/sys/fs/cgroup"
    assert sys.mounts[2:-6] == [
        ("tmpfs", cg, "tmpfs", CG_FLAGS, "mode=755"),
        ("cgroup", f"{cg}/cpu,cpuacct", "cgroup", CG_FLAGS | MS_RDONLY, "cpu,cpuacct"),
        ("cgroup", f"{cg}/memory", "cgroup", CG_FLAGS | MS_RDONLY, "memory"),
        ("cgroup", f"{cg}/systemd", "cgroup", CG_FLAGS | MS_RDONLY, "name=systemd"),
        ("cgroup2", f"{cg}/unified", "cgroup2", CG_FLAGS | MS_RDONLY, None),
        (None, cg, None, MS_REMOUNT | MS_BIND | CG_FLAGS | MS_RDONLY, None),
    ]
    assert os.readlink(f"{cg}/cpu") == "cpu,cpuacct"
    assert os.readlink(f"{cg}/cpuacct") == "cpu,cpuacct"


def test_cgroup_mount_new_namespace_v2(tmp_path: Path, rootfs: Path):
    sys = ResolvingSys()
    prepare_rootfs(_spec(CGROUP_MOUNT), str(rootfs), sys=sys, new_cgroupns=True,
                   mountinfo=_mountinfo(tmp_path, "31 23 0:28 / /sys/fs/cgroup rw - cgroup2 c rw"))
    assert sys.mounts[2:-6] == [
        ("cgroup2", f"{rootfs}/sys/fs/cgroup", "cgroup2", CG_FLAGS | MS_RDONLY, None)]


def test_cgroup_bind_dirs_follow_the_host_hierarchies():
    _, hierarchies = host_cgroup_layout(parse_mountinfo(MOUNTINFO_V1))
    ctr = "/sys/fs/cgroup/{}/pod/ctr"
    paths = {"cpu": ctr.format("cpu,cpuacct"), "cpuacct": ctr.format("cpu,cpuacct"),
             "memory": ctr.format("memory"), "name=systemd": ctr.format("systemd"),
             "unified": ctr.format("unified"), "name=other": "/elsewhere/ctr"}
    assert cgroup_bind_dirs(paths, hierarchies) == {
        "cpu,cpuacct": ctr.format("cpu,cpuacct"), "memory": ctr.format("memory"),
        "systemd": ctr.format("systemd"), "unified": ctr.format("unified"),
        "other": "/elsewhere/ctr"}
    with pytest.raises(MountError, match="cannot place"):
        cgroup_bind_dirs({"name=..": "/x"}, hierarchies)


def test_cgroup_mount_without_namespace_binds_host_dirs(tmp_path: Path, rootfs: Path):
    host = {}
    for name in ("memory", "cpu,cpuacct", "name=systemd"):
        host[name] = str(tmp_path / "host" / name / "ctr")
        os.makedirs(host[name])
    sys = ResolvingSys()
    prepare_rootfs(_spec(CGROUP_MOUNT), str(rootfs), sys=sys, cgroup_paths=host,
                   mountinfo=_mountinfo(tmp_path, MOUNTINFO_V1))
    cg = f"{rootfs}/sys/fs/cgroup"
    remount = MS_REMOUNT | MS_BIND | CG_FLAGS | MS_RDONLY
    assert sys.mounts[2:-6] == [
        ("tmpfs", cg, "tmpfs", CG_FLAGS, "mode=755"),
        (host["cpu,cpuacct"], f"{cg}/cpu,cpuacct", None, MS_BIND | MS_REC, None),
        (None, f"{cg}/cpu,cpuacct", None, remount, None),
        (host["memory"], f"{cg}/memory", None, MS_BIND | MS_REC, None),
        (None, f"{cg}/memory", None, remount, None),
        (host["name=systemd"], f"{cg}/systemd", None, MS_BIND | MS_REC, None),
        (None, f"{cg}/systemd", None, remount, None),
        (None, cg, None, remount, None),
    ]
    assert os.readlink(f"{cg}/cpuacct") == "cpu,cpuacct"


def test_cgroup_mount_without_namespace_v2_binds_own_dir(tmp_path: Path, rootfs: Path):
    own = tmp_path / "host" / "ctr"
    own.mkdir(parents=True)
    sys = ResolvingSys()
    prepare_rootfs(_spec(CGROUP_MOUNT), str(rootfs), sys=sys, cgroup_paths={"unified": str(own)},
                   mountinfo=_mountinfo(tmp_path, "31 23 0:28 / /sys/fs/cgroup rw - cgroup2 c rw"))
    cg = f"{rootfs}/sys/fs/cgroup"
    assert sys.mounts[2:-6] == [
        (str(own), cg, None, MS_BIND | MS_REC, None),
        (None, cg, None, MS_REMOUNT | MS_BIND | CG_FLAGS | MS_RDONLY, None),
    ]


# --- devices ---------------------------------------------------------------------

def test_devices_skipped_when_dev_is_a_host_bind(tmp_path: Path, rootfs: Path):
    sys = ResolvingSys()
    spec = _spec(Mount("/dev", "bind", "/dev", ("rbind",)))
    assert not devices.needs_dev_setup(spec)
    create_devices(spec, str(rootfs), sys=sys, in_userns=True)
    assert sys.mounts == [] and not (rootfs / "dev").exists()


def test_devices_config_entries_in_userns(rootfs: Path):
    sys = ResolvingSys()
    spec = _spec(devices=(Device("c", "/dev/null", 1, 3, 0o600),
                          Device("p", "/dev/myfifo", file_mode=0o640, uid=os.getuid(),
                                 gid=os.getgid())))
    create_devices(spec, str(rootfs), sys=sys, in_userns=True)
    targets = [t for _, t, *_ in sys.mounts]
    assert targets.count(f"{rootfs}/dev/null") == 1  # the config's entry replaces the default
    assert stat.S_ISFIFO(os.lstat(rootfs / "dev" / "myfifo").st_mode)  # mkfifo works in a userns
    assert stat.S_IMODE(os.lstat(rootfs / "dev" / "myfifo").st_mode) == 0o640


def test_devices_refuse_bad_types(rootfs: Path):
    with pytest.raises(ConfigError, match=r"linux.devices\[0\].type"):
        create_devices(_spec(devices=(Device("x", "/dev/foo"),)), str(rootfs), sys=ResolvingSys())


def test_devices_symlinked_dev_stays_inside(tmp_path: Path, rootfs: Path):
    outside = tmp_path / "hostdev"
    outside.mkdir()
    os.symlink(str(outside), rootfs / "dev")
    sys = ResolvingSys()
    create_devices(_spec(), str(rootfs), sys=sys, in_userns=True)
    assert os.listdir(outside) == []
    assert all(str(t).startswith(str(rootfs) + "/") for _, t, *_ in sys.mounts)


@pytest.mark.skipif(os.geteuid() != 0, reason="mknod needs root")
def test_devices_mknod(rootfs: Path):
    spec = _spec(userns=False, devices=(Device("c", "/dev/fuse", 10, 229, 0o600, 5, 6),))
    create_devices(spec, str(rootfs), sys=ResolvingSys(), in_userns=False)
    st = os.lstat(rootfs / "dev" / "null")
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == os.makedev(1, 3)
    assert stat.S_IMODE(st.st_mode) == 0o666
    st = os.lstat(rootfs / "dev" / "fuse")
    assert (st.st_rdev, stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (
        os.makedev(10, 229), 0o600, 5, 6)


def test_console_is_bound_on_dev_console(rootfs: Path):
    master, slave = os.openpty()
    try:
        sys = ResolvingSys()
        create_devices(_spec(), str(rootfs), sys=sys, in_userns=True,
                       console_path=os.ttyname(slave))
        assert sys.mounts[-1] == (os.ttyname(slave), f"{rootfs}/dev/console", None, MS_BIND, None)
        assert (rootfs / "dev" / "console").is_file()
    finally:
        os.close(master)
        os.close(slave)


def test_console_refuses_non_pty_and_symlinks(tmp_path: Path, rootfs: Path):
    with pytest.raises(DeviceError, match="not a pty slave"):
        create_devices(_spec(), str(rootfs), sys=ResolvingSys(), in_userns=True,
                       console_path="/dev/null")
    master, slave = os.openpty()
    try:
        (rootfs / "dev").mkdir(exist_ok=True)
        os.symlink("/etc/shadow", rootfs / "dev" / "console")
        with pytest.raises(DeviceError, match="console"):
            create_devices(_spec(), str(rootfs), sys=ResolvingSys(), in_userns=True,
                           console_path=os.ttyname(slave))
    finally:
        os.close(master)
        os.close(slave)
    # a console "inside the rootfs" reached through a symlinked /dev/pts is resolved inside
    os.unlink(rootfs / "dev" / "console")
    os.symlink("/../../../dev/pts", rootfs / "dev" / "pts")
    with pytest.raises(DeviceError):
        create_devices(_spec(), str(rootfs), sys=ResolvingSys(), in_userns=True,
                       console_path=f"{rootfs}/dev/pts/0")


# --- pivot_root --------------------------------------------------------------------

def test_pivot_root_sequence(rootfs: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(rootfs)
    sys = FakeSyscalls()
    pivot_root(str(rootfs), sys=sys)
    assert sys.calls == [
        ("pivot_root", (".", ".")),
        ("mount", (None, ".", None, MS_SLAVE | MS_REC, None)),
        ("umount2", (".", MNT_DETACH)),
    ]
    assert os.getcwd() == "/"


def test_pivot_root_error(rootfs: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(rootfs)
    sys = FakeSyscalls()
    sys.fail["pivot_root"] = errno.EINVAL
    with pytest.raises(MountError, match="pivot_root to"):
        pivot_root(str(rootfs), sys=sys)


# --- finalize_rootfs -----------------------------------------------------------------

@pytest.fixture
def after_pivot(tmp_path: Path) -> Path:
    """A directory standing in for / after pivot_root."""
    root = tmp_path / "newroot"
    for d in ("proc/sys", "proc/bus", "sys/firmware", "dev"):
        (root / d).mkdir(parents=True)
    (root / "proc" / "kcore").write_text("secret")
    return root


def test_finalize_readonly_and_masked_dirs(after_pivot: Path):
    spec = _spec(readonly_paths=("/proc/sys", "/proc/missing"),
                 masked_paths=("/sys/firmware", "/proc/nope", "/proc/sys/../bus"))
    sys = ResolvingSys()
    finalize_rootfs(spec, sys=sys, root=str(after_pivot))
    keep = mounts.mount_flags_of(os.statvfs(after_pivot).f_flag, with_atime=False) & ~MS_RDONLY
    r = str(after_pivot)
    assert sys.mounts == [
        (f"{r}/proc/sys", f"{r}/proc/sys", None, MS_BIND | MS_REC, None),
        (None, f"{r}/proc/sys", None, MS_REMOUNT | MS_BIND | MS_RDONLY | keep, None),
        ("tmpfs", f"{r}/sys/firmware", "tmpfs", MS_RDONLY, None),
        ("tmpfs", f"{r}/proc/bus", "tmpfs", MS_RDONLY, None),
    ]


def test_finalize_masks_files_only_with_the_real_null_device(after_pivot: Path):
    spec = _spec(masked_paths=("/proc/kcore",))
    (after_pivot / "dev" / "null").write_text("")  # a regular file posing as /dev/null
    with pytest.raises(MountError, match="not the null device"):
        finalize_rootfs(spec, sys=ResolvingSys(), root=str(after_pivot))
    os.unlink(after_pivot / "dev" / "null")
    os.symlink("/proc/kcore", after_pivot / "dev" / "null")
    with pytest.raises(MountError, match="not the null device"):
        finalize_rootfs(spec, sys=ResolvingSys(), root=str(after_pivot))


@pytest.mark.skipif(os.geteuid() != 0, reason="mknod needs root")
def test_finalize_masks_file_with_dev_null(after_pivot: Path):
    os.mknod(after_pivot / "dev" / "null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
    sys = ResolvingSys()
    finalize_rootfs(_spec(masked_paths=("/proc/kcore",)), sys=sys, root=str(after_pivot))
    assert sys.mounts == [(f"{after_pivot}/dev/null", f"{after_pivot}/proc/kcore", None, MS_BIND,
                           None)]


def test_finalize_requires_procfs(after_pivot: Path):
    sys = ResolvingSys()
    sys.fs_type = TMPFS_MAGIC
    with pytest.raises(MountError, match="not a procfs"):
        finalize_rootfs(_spec(masked_paths=("/proc/kcore",)), sys=sys, root=str(after_pivot))
    (after_pivot / "proc").rename(after_pivot / "realproc")
    os.symlink("realproc", after_pivot / "proc")
    with pytest.raises(MountError, match="checking .*proc"):
        finalize_rootfs(_spec(masked_paths=("/proc/kcore",)), sys=ResolvingSys(),
                        root=str(after_pivot))
    assert sys.mounts == []


def test_finalize_root_readonly_and_propagation(after_pivot: Path):
    sys = ResolvingSys()
    spec = Spec(oci_version="1.2.0", root_path="rootfs", root_readonly=True,
                linux=Linux(rootfs_propagation="rshared"))
    finalize_rootfs(spec, sys=sys, root=str(after_pivot))
    r = str(after_pivot)
    assert sys.mounts == [(None, r, None, MS_SHARED | MS_REC, None),
                          (None, r, None, MS_REMOUNT | MS_BIND | MS_RDONLY, None)]
    sys = ResolvingSys()
    finalize_rootfs(_spec(rootfs_propagation="rprivate"), sys=sys, root=str(after_pivot))
    assert sys.mounts == []


@pytest.mark.parametrize("host_flags", [0, os.ST_NOSUID | os.ST_NODEV | os.ST_NOEXEC],
                         ids=["nothing-locked", "nosuid-nodev-noexec-locked"])
def test_finalize_root_readonly_retries_with_locked_flags(after_pivot: Path, host_flags: int,
                                                          monkeypatch: pytest.MonkeyPatch):
    """Both branches, whatever the flags of the test machine's tmp: the mount's flags as
    fstatvfs reports them are faked."""
    real = os.fstatvfs

    class Flags:
        def __init__(self, fd: int) -> None:
            self.f_flag = host_flags | (real(fd).f_flag & ~(os.ST_NOSUID | os.ST_NODEV | os.ST_NOEXEC
                                                              | os.ST_RDONLY | os.ST_NOATIME
                                                              | os.ST_NODIRATIME | os.ST_RELATIME))

    monkeypatch.setattr(mounts.os, "fstatvfs", Flags)
    sys = ResolvingSys()
    plain = MS_REMOUNT | MS_BIND | MS_RDONLY
    sys.fail_mount = lambda s, t, f, flags: errno.EPERM if flags == plain else None
    spec = Spec(oci_version="1.2.0", root_path="rootfs", root_readonly=True)
    locked = mounts.mount_flags_of(host_flags)
    if not host_flags:
        # nothing the retry could add: the EPERM stands, named by the field
        with pytest.raises(MountError, match="root.readonly"):
            finalize_rootfs(spec, sys=sys, root=str(after_pivot))
    else:
        assert locked == MS_NOSUID | MS_NODEV | MS_NOEXEC
        finalize_rootfs(spec, sys=sys, root=str(after_pivot))
        assert sys.mounts == [(None, str(after_pivot), None,
                               MS_REMOUNT | MS_BIND | MS_RDONLY | locked, None)]


# --- sysctl --------------------------------------------------------------------------

@pytest.mark.parametrize("key, rel", [
    ("net.ipv4.ip_forward", "net/ipv4/ip_forward"),
    ("kernel.shm_rmid_forced", "kernel/shm_rmid_forced"),
    ("net/ipv4/conf/eth0.100/forwarding", "net/ipv4/conf/eth0.100/forwarding"),
])
def test_sysctl_relpath(key, rel):
    assert sysctl_relpath(key) == rel


@pytest.mark.parametrize("key", ["", "..", "net...x", "kernel/../../etc", "a..b"])
def test_sysctl_relpath_rejects(key):
    with pytest.raises(ConfigError):
        sysctl_relpath(key)


def test_write_sysctl(tmp_path: Path):
    proc = tmp_path / "proc"
    (proc / "sys" / "net" / "ipv4").mkdir(parents=True)
    (proc / "sys" / "net" / "ipv4" / "ip_forward").write_text("")
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "x").write_text("host")
    os.symlink("/../../etc", proc / "sys" / "evil")
    sys = ResolvingSys()
    write_sysctl({"net.ipv4.ip_forward": "1"}, sys=sys, proc=str(proc))
    assert (proc / "sys" / "net" / "ipv4" / "ip_forward").read_text() == "1"
    with pytest.raises(MountError, match="linux.sysctl.evil.x"):
        write_sysctl({"evil.x": "pwned"}, sys=sys, proc=str(proc))
    assert (tmp_path / "etc" / "x").read_text() == "host"
    with pytest.raises(MountError, match="not a sysctl file"):
        write_sysctl({"net.ipv4": "1"}, sys=sys, proc=str(proc))
    sys.fs_type = TMPFS_MAGIC
    with pytest.raises(MountError, match="not a procfs"):
        write_sysctl({"net.ipv4.ip_forward": "0"}, sys=sys, proc=str(proc))
    write_sysctl({}, sys=sys, proc="/nonexistent")  # nothing to do, nothing checked


def test_mount_options_dataclass_is_frozen():
    with pytest.raises(AttributeError):
        MountOptions().flags = 1  # type: ignore[misc]
