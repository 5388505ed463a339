"""pyruntime as an unprivileged user (issue 12), beside runc run by the same user.

Each test makes its own throwaway user (useradd gives it a subuid/subgid range), a 0700
XDG_RUNTIME_DIR and bundles it owns under a temp dir, runs the runtimes as that user
with setpriv, and removes the user, its processes (also those running as its
subordinate ids), its cgroups and its files afterwards, also when the test fails.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from harness import PYRUNTIME, ConsoleReceiver, rmdir_cgroup, run_captured, wait_until

from conftest import busybox_rootfs

pytestmark = pytest.mark.skipif(shutil.which("newuidmap") is None, reason="uidmap not installed")


@dataclass
class User:
    name: str
    uid: int
    gid: int
    top: Path
    xdg: Path
    sub_uid: int
    sub_gid: int
    cgroups: list[Path] = field(default_factory=list)

    def env(self) -> dict[str, str]:
        return {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(self.top / "home"),
                "USER": self.name, "XDG_RUNTIME_DIR": str(self.xdg)}

    def run(self, *cmd: str, timeout: float = 60, **kw: Any) -> subprocess.CompletedProcess[str]:
        return run_captured(["setpriv", f"--reuid={self.uid}", f"--regid={self.gid}", "--init-groups",
                             *cmd], timeout=timeout, env=self.env(), cwd=str(self.top), **kw)

    def pyrt(self, *args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
        return self.run(PYRUNTIME, *args, **kw)

    def runc(self, *args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
        return self.run("runc", *args, **kw)

    def bundle(self, runtime: str = PYRUNTIME, edit: Any = None) -> Path:
        """A busybox bundle this user owns, with its runtime's `spec --rootless`."""
        b = Path(tempfile.mkdtemp(prefix="bundle-", dir=self.top))
        shutil.copytree(busybox_rootfs(), b / "rootfs", symlinks=True)
        _chown_tree(b, self.uid, self.gid)
        p = self.run(runtime, "spec", "--rootless", "--bundle", str(b))
        assert p.returncode == 0, p.stderr
        doc = json.loads((b / "config.json").read_text())
        doc["process"]["terminal"] = False
        doc["root"]["readonly"] = False
        if edit is not None:
            edit(doc)
        (b / "config.json").write_text(json.dumps(doc))
        return b

    def own_dir(self, name: str) -> Path:
        d = self.top / name
        d.mkdir(mode=0o755)
        os.chown(d, self.uid, self.gid)
        return d


def _chown_tree(path: Path, uid: int, gid: int) -> None:
    os.lchown(path, uid, gid)
    for dirpath, dirs, files in os.walk(path):
        for n in dirs + files:
            os.lchown(os.path.join(dirpath, n), uid, gid)


def _subrange(path: str, name: str) -> int:
    for line in Path(path).read_text().splitlines():
        parts = line.split(":")
        if parts[0] == name:
            return int(parts[1])
    raise AssertionError(f"useradd gave {name} no range in {path}")


def _pids_of(uids: set[int] | range) -> list[int]:
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/status") as f:
                for line in f:
                    if line.startswith("Uid:"):
                        if int(line.split()[1]) in uids:
                            out.append(int(name))
                        break
        except OSError:
            continue
    return out


def _kill_all(user: User) -> None:
    """Everything running as the user or as one of its subordinate uids."""
    ids = set(range(user.sub_uid, user.sub_uid + 65536)) | {user.uid}
    for _ in range(50):
        pids = _pids_of(ids)
        if not pids:
            return
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.05)


def _make_user() -> User:
    name = f"pyrt{uuid.uuid4().hex[:10]}"
    top = Path(tempfile.mkdtemp(prefix="pyrt-rootless-", dir="/tmp"))
    os.chmod(top, 0o755)
    home = top / "home"
    subprocess.run(["useradd", "-M", "-d", str(home), "-s", "/bin/sh", name], check=True,
                   capture_output=True, timeout=30)
    pw = pwd.getpwnam(name)
    home.mkdir(mode=0o755)
    xdg = top / "xdg"
    xdg.mkdir(mode=0o700)
    for d in (home, xdg, top):
        os.chown(d, pw.pw_uid, pw.pw_gid)
    return User(name, pw.pw_uid, pw.pw_gid, top, xdg,
                _subrange("/etc/subuid", name), _subrange("/etc/subgid", name))


def _remove_user(user: User) -> None:
    _kill_all(user)
    for cg in reversed(user.cgroups):
        for sub in sorted(cg.glob("**/"), key=lambda p: len(p.parts), reverse=True):
            rmdir_cgroup(sub)
    subprocess.run(["userdel", user.name], capture_output=True, timeout=30)
    shutil.rmtree(user.top, ignore_errors=True)


@pytest.fixture
def user() -> Iterator[User]:
    u = _make_user()
    try:
        yield u
    finally:
        _remove_user(u)


@pytest.fixture
def other_user() -> Iterator[User]:
    u = _make_user()
    try:
        yield u
    finally:
        _remove_user(u)


def _host_uid(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("Uid:"):
                return int(line.split()[1])
    raise AssertionError("no Uid line")


def _data_mount(doc: dict[str, Any], source: Path) -> None:
    doc["mounts"].append({"destination": "/data", "type": "bind", "source": str(source),
                          "options": ["rbind", "rw"]})


# --- the tests -------------------------------------------------------------------------


@pytest.mark.parametrize("runtime", ["pyruntime", "runc"])
def test_rootless_lifecycle_as_the_user(user: User, runtime: str) -> None:
    """spec --rootless bundle: root inside, the user's uid on the host, a file written to a
    bind-mounted host directory owned by the user; create/start/state/exec/ps/list/kill/
    delete; the default --root is $XDG_RUNTIME_DIR/<runtime>, private to the user."""
    binary = PYRUNTIME if runtime == "pyruntime" else "runc"
    data = user.own_dir(f"data-{runtime}")
    b = user.bundle(binary, edit=lambda d: (_data_mount(d, data),
                                            d["process"].update(args=["sleep", "300"])))
    rt = user.pyrt if runtime == "pyruntime" else user.runc
    cid = f"c{uuid.uuid4().hex[:8]}"
    p = rt("create", "--bundle", str(b), cid)
    assert p.returncode == 0, p.stderr
    p = rt("start", cid)
    assert p.returncode == 0, p.stderr
    st = json.loads(rt("state", cid).stdout)
    assert st["status"] == "running"
    assert _host_uid(st["pid"]) == user.uid
    p = rt("exec", cid, "sh", "-c", "id -u; echo hi > /data/f")
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == ["0"]
    assert (data / "f").stat().st_uid == user.uid
    ps = rt("ps", "--format", "json", cid)
    if runtime == "pyruntime":
        # without a cgroup, the container's pid namespace says who is in it
        assert ps.returncode == 0, ps.stderr
        assert st["pid"] in json.loads(ps.stdout)
    else:
        assert ps.returncode != 0  # runc's ps needs a cgroup ("unable to get all container pids")
    assert cid in rt("list", "-q").stdout.split()
    root = user.xdg / ("pyruntime" if runtime == "pyruntime" else "runc")
    assert (root / cid).is_dir()
    assert root.stat().st_mode & 0o7777 == 0o1700
    if runtime == "pyruntime":  # runc leaves it 0711 and relies on the root's 0700
        assert (root / cid).stat().st_mode & 0o077 == 0
    assert rt("kill", cid, "KILL").returncode == 0
    assert wait_until(lambda: json.loads(rt("state", cid).stdout)["status"] == "stopped")
    p = rt("delete", cid)
    assert p.returncode == 0, p.stderr
    assert not (root / cid).exists()


def test_run_prints_root_inside(user: User) -> None:
    """`run` in the foreground: the user is root in the container (as with runc)."""
    args = ["sh", "-c", "id -u; id -g; cat /proc/self/uid_map"]
    outs = []
    for binary, rt in ((PYRUNTIME, user.pyrt), ("runc", user.runc)):
        b = user.bundle(binary, edit=lambda d: d["process"].update(args=args))
        p = rt("run", "--bundle", str(b), f"c{uuid.uuid4().hex[:8]}")
        assert p.returncode == 0, p.stderr
        outs.append(p.stdout.split())
    assert outs[0] == outs[1] == ["0", "0", "0", str(user.uid), "1"]


def _multi(doc: dict[str, Any], user: User) -> None:
    doc["linux"]["uidMappings"] = [{"containerID": 0, "hostID": user.uid, "size": 1},
                                   {"containerID": 1, "hostID": user.sub_uid, "size": 65536}]
    doc["linux"]["gidMappings"] = [{"containerID": 0, "hostID": user.gid, "size": 1},
                                   {"containerID": 1, "hostID": user.sub_gid, "size": 65536}]
    doc["process"]["user"] = {"uid": 1000, "gid": 1000}
    doc["process"]["args"] = ["sh", "-c", "id -u; touch /data/g"]


def test_multi_id_mapping_through_newuidmap(user: User) -> None:
    """Container uid 1000 is subordinate uid sub+999 on the host, as with runc."""
    for binary, rt in ((PYRUNTIME, user.pyrt), ("runc", user.runc)):
        data = user.own_dir(f"data-{uuid.uuid4().hex[:6]}")
        os.chmod(data, 0o777)
        b = user.bundle(binary, edit=lambda d, data=data: (_multi(d, user), _data_mount(d, data)))
        p = rt("run", "--bundle", str(b), f"c{uuid.uuid4().hex[:8]}")
        assert p.returncode == 0, f"{binary}: {p.stderr}"
        assert p.stdout.split() == ["1000"]
        st = (data / "g").stat()
        assert (st.st_uid, st.st_gid) == (user.sub_uid + 999, user.sub_gid + 999), binary


def _nothing_left(user: User, cid: str) -> None:
    assert not (user.xdg / "pyruntime" / cid).exists()
    assert wait_until(lambda: not _pids_of({user.uid}), timeout=10), "stray processes"


def test_mapping_ids_the_user_does_not_own_is_refused(user: User) -> None:
    def edit(d: dict[str, Any]) -> None:
        _multi(d, user)
        d["linux"]["uidMappings"][1]["hostID"] = user.sub_uid + 65536  # past its range
    b = user.bundle(edit=edit)
    cid = f"c{uuid.uuid4().hex[:8]}"
    p = user.pyrt("run", "--bundle", str(b), cid)
    assert p.returncode != 0
    assert p.stderr.strip().splitlines() == [
        f"pyruntime: linux.uidMappings: host ids {user.sub_uid + 65536}-{user.sub_uid + 2 * 65536 - 1} "
        f"are not the user's: only its own id ({user.uid}) and its ranges in /etc/subuid may be mapped"]
    _nothing_left(user, cid)


def test_mount_a_user_namespace_cannot_make_is_one_line(user: User) -> None:
    """sysfs without a network namespace of the container's own (runc's template binds
    /sys instead); a block filesystem needs the host's root."""
    for mount, words in (
            ({"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["ro"]},
             "only with a network namespace of its own"),
            ({"destination": "/mnt", "type": "ext4", "source": "/dev/null"},
             "ext4 can only be mounted by the host's root")):
        def edit(d: dict[str, Any], mount: dict[str, Any] = mount) -> None:
            d["mounts"] = [m for m in d["mounts"] if m["destination"] != mount["destination"]]
            d["mounts"].append(mount)
        b = user.bundle(edit=edit)
        cid = f"c{uuid.uuid4().hex[:8]}"
        p = user.pyrt("run", "--bundle", str(b), cid)
        assert p.returncode != 0
        lines = [ln for ln in p.stderr.splitlines() if "warning" not in ln]
        assert len(lines) == 1, p.stderr
        assert f"({mount['type']}) on {mount['destination']}" in lines[0] and words in lines[0]
        _nothing_left(user, cid)


def test_limits_without_delegation_refused_no_limits_warned(user: User) -> None:
    b = user.bundle(edit=lambda d: d["linux"].update(resources={"memory": {"limit": 64 << 20}}))
    cid = f"c{uuid.uuid4().hex[:8]}"
    p = user.pyrt("run", "--bundle", str(b), cid)
    assert p.returncode != 0
    assert p.stderr.startswith("pyruntime: linux.resources.memory: cannot set this limit as uid")
    assert len(p.stderr.strip().splitlines()) == 1, p.stderr
    _nothing_left(user, cid)
    # --rootless false: cgroups are not optional, so even no limits fail (as runc's)
    b = user.bundle()
    p = user.pyrt("--rootless", "false", "run", "--bundle", str(b), cid)
    assert p.returncode != 0 and "Permission denied" in p.stderr
    _nothing_left(user, cid)
    p = user.pyrt("--rootless", "maybe", "list")
    assert p.returncode != 0 and p.stderr.strip() == (
        "pyruntime: --rootless: invalid value 'maybe' (expected true, false or auto)")
    # no limits: one warning, and the container runs; pause then says why it cannot
    b = user.bundle(edit=lambda d: d["process"].update(args=["sleep", "300"]))
    p = user.pyrt("run", "-d", "--bundle", str(b), cid)
    assert p.returncode == 0, p.stderr
    assert [ln for ln in p.stderr.splitlines() if "warning" in ln] == [
        f"pyruntime: warning: rootless: no cgroup is writable by uid {user.uid}; the container "
        "runs without one (no limits, no pause)"] or "cgroups not writable" in p.stderr
    p = user.pyrt("pause", cid)
    assert p.returncode != 0 and "no writable freezer cgroup" in p.stderr
    assert user.pyrt("kill", "--all", cid, "KILL").returncode == 0
    assert user.pyrt("delete", "--force", cid).returncode == 0
    _nothing_left(user, cid)


def _own_cgroup(controller: str) -> Path:
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _n, ctrls, path = line.split(":", 2)
        if controller in ctrls.split(","):
            return Path("/sys/fs/cgroup") / controller / path.lstrip("/")
    pytest.skip(f"no {controller} cgroup v1 hierarchy")


def test_delegated_cgroups_are_used(user: User) -> None:
    """memory and freezer delegated (a directory the user owns under our cgroup): the
    memory limit lands, pause/resume work, delete removes the cgroup."""
    name = f"pyrt-deleg-{uuid.uuid4().hex[:8]}"
    for ctrl in ("memory", "freezer"):
        d = _own_cgroup(ctrl) / name
        d.mkdir()
        user.cgroups.append(d)
        for f in (d, d / "cgroup.procs", d / "tasks"):
            os.chown(f, user.uid, user.gid)

    def edit(doc: dict[str, Any]) -> None:
        doc["linux"]["cgroupsPath"] = f"{name}/ctr"
        doc["linux"]["resources"] = {"memory": {"limit": 64 << 20}}
        doc["process"]["args"] = ["sleep", "300"]
    b = user.bundle(edit=edit)
    cid = f"c{uuid.uuid4().hex[:8]}"
    p = user.pyrt("run", "-d", "--bundle", str(b), cid)
    assert p.returncode == 0, p.stderr
    mem = _own_cgroup("memory") / name / "ctr"
    assert int((mem / "memory.limit_in_bytes").read_text()) == 64 << 20
    pid = json.loads(user.pyrt("state", cid).stdout)["pid"]
    assert pid in [int(x) for x in (mem / "cgroup.procs").read_text().split()]
    assert user.pyrt("pause", cid).returncode == 0
    assert json.loads(user.pyrt("state", cid).stdout)["status"] == "paused"
    assert user.pyrt("resume", cid).returncode == 0
    assert json.loads(user.pyrt("state", cid).stdout)["status"] == "running"
    assert user.pyrt("delete", "--force", cid).returncode == 0
    assert not mem.exists()


def test_another_user_cannot_see_signal_or_delete(user: User, other_user: User) -> None:
    shared = Path(tempfile.mkdtemp(prefix="shared-", dir=user.top))
    os.chmod(shared, 0o1777)
    b = user.bundle(edit=lambda d: d["process"].update(args=["sleep", "300"]))
    cid = f"c{uuid.uuid4().hex[:8]}"
    p = user.pyrt("--root", str(shared), "run", "-d", "--bundle", str(b), cid)
    assert p.returncode == 0, p.stderr
    assert (shared / cid).stat().st_mode & 0o077 == 0
    for args in (["state", cid], ["kill", cid, "KILL"], ["delete", "--force", cid],
                 ["exec", cid, "true"], ["pause", cid]):
        p = other_user.pyrt("--root", str(shared), *args)
        assert p.returncode != 0, args
        assert "belongs to another user" in p.stderr, (args, p.stderr)
    assert other_user.pyrt("--root", str(shared), "list", "-q").stdout == ""
    assert json.loads(user.pyrt("--root", str(shared), "state", cid).stdout)["status"] == "running"
    assert user.pyrt("--root", str(shared), "delete", "--force", cid).returncode == 0
    assert not (shared / cid).exists()


def test_terminal_through_console_socket(user: User) -> None:
    sock_dir = user.own_dir("sock")
    path = sock_dir / "console.sock"
    recv = ConsoleReceiver(path, until=b"END")
    os.chown(path, user.uid, user.gid)

    def edit(d: dict[str, Any]) -> None:
        d["process"]["terminal"] = True
        d["process"]["args"] = ["sh", "-c", "tty; echo END"]
    b = user.bundle(edit=edit)
    cid = f"c{uuid.uuid4().hex[:8]}"
    p = user.pyrt("run", "-d", "--console-socket", str(path), "--bundle", str(b), cid)
    assert p.returncode == 0, p.stderr
    out = recv.join()
    assert "/dev/pts/0" in out and "END" in out
    user.pyrt("delete", "--force", cid)
    # exec -t into a running container, through a socket of its own
    b = user.bundle(edit=lambda d: d["process"].update(args=["sleep", "300"]))
    assert user.pyrt("run", "-d", "--bundle", str(b), cid).returncode == 0
    path2 = sock_dir / "exec.sock"
    # read to the end: a master closed while the shell still runs would hang it up (129)
    recv = ConsoleReceiver(path2, until=b"\0never")
    os.chown(path2, user.uid, user.gid)
    p = user.pyrt("exec", "-t", "--console-socket", str(path2), cid, "sh", "-c", "tty; echo END")
    assert p.returncode == 0, p.stderr
    out = recv.join()
    assert "/dev/pts/" in out and "END" in out
    user.pyrt("delete", "--force", cid)


def test_a_rootless_container_gains_nothing(user: User) -> None:
    """The user's root inside, with every DAC capability, reads and writes no more than
    the user: a root-only host file bound in stays unreadable, and a root-owned file of
    the test's, bound read-write, stays unwritable (harmless probes only: nothing here may
    touch the host if the protection regressed)."""
    probe = user.top / "root-owned"
    probe.write_text("root\n")
    os.chmod(probe, 0o644)

    def edit(d: dict[str, Any]) -> None:
        d["mounts"] += [{"destination": "/shadow", "type": "bind", "source": "/etc/shadow",
                         "options": ["bind", "ro"]},
                        {"destination": "/probe", "type": "bind", "source": str(probe),
                         "options": ["bind", "rw"]}]
        d["process"]["capabilities"] = {k: ["CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER"]
                                        for k in ("bounding", "effective", "permitted")}
        d["process"]["args"] = ["sh", "-c", "cat /shadow >/dev/null 2>&1 && echo read; "
                                "(echo x >> /probe) 2>/dev/null && echo wrote; echo done"]
    outs = []
    for binary, rt in ((PYRUNTIME, user.pyrt), ("runc", user.runc)):
        b = user.bundle(binary, edit=edit)
        p = rt("run", "--bundle", str(b), f"c{uuid.uuid4().hex[:8]}")
        assert p.returncode == 0, f"{binary}: {p.stderr}"
        outs.append(p.stdout.split())
    assert outs == [["done"], ["done"]]
    assert probe.read_text() == "root\n"



# --- rootless podman -------------------------------------------------------------------

IMAGE = "localhost/pyrt-rootless/busybox:1"


def _podman_obs(user: User, runtime: str) -> dict[str, Any]:
    conf = user.top / "containers.conf"
    env = {**user.env(), "CONTAINERS_CONF": str(conf)}
    base = ["podman", "--runtime", runtime]

    def pm(*args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
        return user.run("env", *[f"{k}={v}" for k, v in env.items()], *base, *args, timeout=timeout)

    obs: dict[str, Any] = {}
    p = pm("run", "--rm", "--network", "none", IMAGE, "echo", "hi")
    obs["run --rm"] = (p.returncode, p.stdout)
    p = pm("run", "-d", "--network", "none", IMAGE, "sleep", "300")
    cid = p.stdout.strip()
    obs["run -d"] = p.returncode
    p = pm("exec", cid, "sh", "-c", "id -u; wc -l < /proc/self/uid_map")
    obs["exec"] = (p.returncode, p.stdout.split())
    p = pm("rm", "-f", "-t", "0", cid)
    obs["rm -f"] = (p.returncode, p.stdout.strip() == cid)
    p = pm("run", "--rm", "--network", "none", "--userns=keep-id", IMAGE, "id", "-u")
    obs["keep-id"] = (p.returncode, p.stdout.split())
    # the pause lets conmon drain the pty before the exit: under load podman may drop the last
    # output of a process that exits at once (with either runtime)
    line = " ".join([*base, "run", "--rm", "-it", "--network", "none", IMAGE, "sh", "-c", "'tty; sleep 1; exit 3'"])
    p = user.run("env", *[f"{k}={v}" for k, v in env.items()], "script", "-qec", line, "/dev/null")
    obs["-it"] = (p.returncode, [ln for ln in p.stdout.replace("^@", "").splitlines() if ln.strip()])
    return obs


def test_rootless_podman_with_pyruntime_as_with_runc(user: User) -> None:
    """podman 4.3 as the user (cgroupfs, file events, no systemd): run --rm, -d + exec +
    rm -f, --userns=keep-id and -it on a pty, with --runtime pyruntime as with runc."""
    if shutil.which("podman") is None or shutil.which("script") is None:
        pytest.skip("needs podman and script")
    from images import write_layer_tar

    (user.top / "containers.conf").write_text(
        '[engine]\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\n'
        f'events_logfile_path = "{user.top}/events.log"\n')
    layer = write_layer_tar(user.top / "busybox.tar")
    os.chown(layer, user.uid, user.gid)
    env = [f"{k}={v}" for k, v in {**user.env(), "CONTAINERS_CONF": str(user.top / "containers.conf")}.items()]
    try:
        p = user.run("env", *env, "podman", "import", "--change", "CMD=sh", str(layer), IMAGE)
        assert p.returncode == 0, p.stderr
        runc = _podman_obs(user, "runc")
        pyrt = _podman_obs(user, PYRUNTIME)
    finally:
        user.run("env", *env, "podman", "rm", "-af", "-t", "0", timeout=120)
        user.run("env", *env, "podman", "system", "reset", "-f", timeout=120)
    assert runc == {"run --rm": (0, "hi\n"), "run -d": 0, "exec": (0, ["0", "2"]),
                    "rm -f": (0, True), "keep-id": (0, [str(user.uid)]), "-it": (3, ["/dev/pts/0"])}
    assert pyrt == runc


def test_without_xdg_runtime_dir_the_error_says_what_to_set(user: User) -> None:
    """runc's fallback root (/run/pyruntime) is root's: one line says what to set."""
    b = user.bundle()
    env = {k: v for k, v in user.env().items() if k != "XDG_RUNTIME_DIR"}
    p = run_captured(["setpriv", f"--reuid={user.uid}", f"--regid={user.gid}", "--init-groups",
                      PYRUNTIME, "run", "--bundle", str(b), f"c{uuid.uuid4().hex[:8]}"],
                     env=env, cwd=str(user.top))
    assert p.returncode != 0
    assert p.stderr.splitlines()[-1].endswith("Permission denied (set XDG_RUNTIME_DIR or pass --root)")
    assert not _pids_of({user.uid})
