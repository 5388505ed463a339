"""Regression tests for runc's container-escape CVE classes, run as the attacks themselves.

Each test drives real containers through the pyruntime CLI (the `pyrt` fixture) and plays
the part of a malicious image, config or container process.  Each docstring names the runc
CVE it models and the broken runtime it fails on: that runtime is a committed patch in
integration/mutations/ (named in the docstring), and `make mutation` applies each patch
to a copy of the tree and shows that the test fails there.  A few cases are labelled as
what they really pin (the order of pivot_root and the setup steps, or a control) where no
single protection of their own can be removed.

Nothing here may touch the host for real: targets "on the host" are scratch directories
under tmp_path.  The tests that aim at the host check afterwards that those, the host's
/etc, core_pattern and the host's mount table (below tmp_path, /etc, /proc/sys, /usr, ...;
other mounts come and go with other users of the machine) are unchanged; the
CVE-2019-5736 tests compare the runtime's launcher and interpreter by sha256.
"""

from __future__ import annotations

import json
import os
import re
import struct
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from harness import (
    PODMAN_PROFILE,
    ConsoleReceiver,
    HostSnapshot,
    mountinfo_points,
    run_captured,
    sha256,
    status_field,
)

from conftest import Runtime, base_config
from pyruntime import seccomp

DEFAULT_CAPS = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]


# --- helpers ---------------------------------------------------------------------------


def runtime_files(binary: str) -> list[str]:
    """The runtime's launcher and the interpreter it runs (/proc/<runtime pid>/exe)."""
    out = [os.path.realpath(binary)]
    with open(binary, "rb") as f:
        first = f.readline()
    if first.startswith(b"#!"):
        out.append(os.path.realpath(first[2:].split()[0].decode()))
    return out


def file_id(path: str | Path) -> str:
    st = os.stat(path)
    return f"{st.st_dev}:{st.st_ino}"


def host_pid_in_ns(host_pid: int) -> int:
    """The pid that `host_pid` has in its innermost pid namespace."""
    with open(f"/proc/{host_pid}/status") as f:
        for line in f:
            if line.startswith("NSpid:"):
                return int(line.split()[-1])
    raise AssertionError("no NSpid")


def scratch(tmp_path: Path, name: str, secret: str = "") -> Path:
    """A host directory a container must never reach; optionally with a secret file."""
    d = tmp_path / name
    d.mkdir()
    if secret:
        (d / "secret").write_text(secret)
    return d


def without_dev_tmpfs(cfg: dict[str, Any]) -> dict[str, Any]:
    """Keep the image's own /dev (no tmpfs over it) so that what the image put there counts."""
    cfg["mounts"] = [m for m in cfg["mounts"] if m["destination"] != "/dev"]
    return cfg


# --- CVE-2019-5736: /proc/<runtime>/exe ----------------------------------------------------

# Run by the attacker inside container A against one pid ($1) of its pid namespace.  Every
# check reports "OPEN ..." on success (environ: with what it read) or the shell's error
# (which names the errno).  O_RDWR
# (never O_TRUNC) is how the exploit overwrote runc; the other opens are what non-dumpable
# also closes: the binary read-only, the environment, memory, fds, root and cwd.
ATTACK_ONE_PID = r"""
d=/proc/$1
one() { tr '\n' ' '; }
echo "exe-rw: $( { true 3<>$d/exe && echo OPEN; } 2>&1 | one )"
echo "exe-ro: $( { stat -L -c 'OPEN %d:%i' /proc/self/fd/3; } 2>&1 3<$d/exe | one )"
echo "environ: $( { echo "OPEN $(tr '\0' ' ' <&4)"; } 2>&1 4<$d/environ | one )"
echo "mem: $( { true && echo OPEN; } 2>&1 5<$d/mem | one )"
echo "fd: $( for f in $d/fd/*; do stat -L -c "OPEN $f" $f; done 2>&1 | one )"
echo "root: $( { ls $d/root/ >/dev/null && echo OPEN; } 2>&1 | one )"
echo "cwd: $( stat -L -c OPEN $d/cwd 2>&1 | one )"
"""


def test_cve_2019_5736_runtime_process_is_not_reachable(pyrt: Runtime) -> None:
    """CVE-2019-5736 (runc overwritten through /proc/self/exe).

    Container A is running; container B is created in A's pid namespace, so B's init (the
    runtime's python, waiting on the exec fifo with the container's capabilities already
    applied) is a process A can see, for as long as we like.  From inside A, as root with
    the default capabilities, the attacker tries to open /proc/<B's init>/exe for writing
    and reading, and to read its environ (the runtime's, with a marker), mem, fd/, root/
    and cwd.  All must be EACCES: the runtime made itself non-dumpable before joining the
    namespaces.  The interpreter and launcher on the host must be unchanged.

    Broken build: mutations/cve-2019-5736-dumpable.patch (`sys.prctl(PR_SET_DUMPABLE, 0)`
    removed from init.stage1).  The test then failed: A opened the host's python binary read-only (same
    dev:ino as /root/.pyenv/.../python3.11), read PYRT_MARKER from the runtime's environ,
    opened its mem, reached the files behind its fds (the host's exec.fifo among them),
    its root and cwd; only the O_RDWR open was stopped, by ETXTBSY ("Text file busy"),
    because the interpreter was running.
    """
    files = runtime_files(pyrt.binary)
    before = {f: sha256(f) for f in files}
    marker = uuid.uuid4().hex
    a_cfg = base_config(["sleep", "100"])
    a = pyrt.bundle(a_cfg)
    aid = pyrt.new_id()
    pyrt("run", "-d", "--bundle", str(a), aid, check=True)
    a_pid = pyrt.state(aid)["pid"]

    b_cfg = base_config(["true"])
    b_cfg["linux"]["namespaces"] = [
        {"type": "pid", "path": f"/proc/{a_pid}/ns/pid"} if ns["type"] == "pid" else ns
        for ns in b_cfg["linux"]["namespaces"]]
    b = pyrt.bundle(b_cfg)
    bid = pyrt.new_id()
    pyrt("create", "--bundle", str(b), bid, check=True,
         env={"PYRT_MARKER": marker, **os.environ})
    b_pid = pyrt.state(bid)["pid"]
    assert "pyruntime" in Path(f"/proc/{b_pid}/cmdline").read_text()  # not exec'd yet
    target = host_pid_in_ns(b_pid)

    p = pyrt("exec", aid, "sh", "-c", ATTACK_ONE_PID, "attack", str(target))
    assert p.returncode == 0, p.stderr
    results = dict(line.split(": ", 1) for line in p.stdout.strip().splitlines())
    assert set(results) == {"exe-rw", "exe-ro", "environ", "mem", "fd", "root", "cwd"}, p.stdout
    for what, outcome in results.items():
        assert "OPEN" not in outcome and "Permission denied" in outcome, (what, p.stdout)
    assert marker not in p.stdout

    # the attacker's own reach is intact: the same checks against A's pid 1 (sleep) work
    p = pyrt("exec", aid, "sh", "-c", ATTACK_ONE_PID, "attack", "1")
    assert "exe-ro: OPEN" in p.stdout and "environ: OPEN PATH" in p.stdout, p.stdout
    assert "fd: OPEN" in p.stdout and "root: OPEN" in p.stdout, p.stdout
    # and a readable environ shows its values: the probe would print a leaked marker
    p = pyrt("exec", "--env", f"PROBE={marker}", aid, "sh", "-c", ATTACK_ONE_PID, "attack", "self")
    assert p.returncode == 0 and f"PROBE={marker}" in p.stdout, p.stdout
    assert {f: sha256(f) for f in files} == before


# The watcher: container A's process, polling its pid namespace for new processes (those
# of `pyruntime exec`) and trying each until it becomes the exec'd busybox.  Only builtins in
# the loop (no fork) so that it is fast.  exe and environ are opened together and read
# through the fds, so a process that execs meanwhile cannot blur what was opened; `stat`
# (once per pid) names the exe file.
WATCHER = r"""
seen=" $$ "; denied=" "
: > /tmp/log
while [ ! -e /tmp/stop ]; do
  for d in /proc/[0-9]*; do
    p=${d#/proc/}
    case "$seen" in *" $p "*) continue;; esac
    if { IFS= read -r line <&4
         case "$line" in PYRT_MARKER=*) echo "pid $p environ LEAK";; esac
         stat -L -c "pid $p exe %d:%i" /proc/self/fd/3
       } 2>/tmp/err 3<$d/exe 4<$d/environ >> /tmp/log; then
      true 2>/dev/null 5<$d/mem && echo "pid $p mem open" >> /tmp/log
      { true 6<>$d/exe; } 2>>/tmp/log
      seen="$seen$p "
    else
      # only EACCES counts: a process that exited meanwhile (ENOENT) was not refused
      case "$denied" in *" $p "*) ;; *)
        IFS= read -r err < /tmp/err
        case "$err" in *"Permission denied"*) denied="$denied$p "; echo "pid $p denied: $err" >> /tmp/log;; esac
      esac
    fi
  done
done
echo end >> /tmp/log
"""


def test_cve_2019_5736_exec_race(pyrt: Runtime) -> None:
    """CVE-2019-5736, the racing form: a container process watches for `pyruntime exec`
    joining it and tries /proc/<pid>/exe (read, then O_RDWR), environ and mem of each new
    pid in a loop, while the host runs ten execs.  No attempt may reach the runtime's
    interpreter or its environment; the host binaries stay unchanged.

    The container uses podman's seccomp profile (as podman would), which makes the runtime
    load a large filter after dropping capabilities: the widest window in which a
    dumpable runtime would be open to the container.

    Broken build (mutations/cve-2019-5736-dumpable.patch, as above): failed in three of
    three runs, each time on every exec: the watcher opened the host's python binary as /proc/<pid>/exe,
    read PYRT_MARKER from the runtime's environ and opened its mem.  In trials without the
    seccomp profile it still caught 2-5 of 15 execs.
    """
    files = runtime_files(pyrt.binary)
    before = {f: sha256(f) for f in files}
    interpreter = file_id(files[-1])
    marker = uuid.uuid4().hex
    cfg = base_config(["sh", "-c", WATCHER])
    if PODMAN_PROFILE.exists():
        cfg["linux"]["seccomp"] = seccomp.containers_profile_to_oci(
            json.loads(PODMAN_PROFILE.read_text()), caps=DEFAULT_CAPS)
    b = pyrt.bundle(cfg)
    cid = pyrt.new_id()
    pyrt("run", "-d", "--bundle", str(b), cid, check=True)
    log = b / "rootfs" / "tmp" / "log"
    deadline = time.monotonic() + 10
    while not log.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    env = {"PYRT_MARKER": marker, **os.environ}
    for _ in range(10):
        p = pyrt("exec", cid, "true", env=env)
        assert p.returncode == 0, p.stderr
    (b / "rootfs" / "tmp" / "stop").touch()
    deadline = time.monotonic() + 10
    while "end" not in log.read_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    text = log.read_text()
    assert "end" in text, text
    # a pid whose exe the watcher could open was the runtime's (a leak) if that exe is the
    # interpreter; the exec'd busybox it may open (and its mem) as it likes
    leaks = [line for line in text.splitlines() if interpreter in line or "LEAK" in line]
    assert not leaks, text
    # the watcher did see runtime processes in flight, and was refused with EACCES: without
    # one such observation the test would pass without having raced anything
    assert re.search(r"^pid \d+ denied: .*Permission denied$", text, re.M), text
    assert {f: sha256(f) for f in files} == before


# --- CVE-2024-21626: leaked host fds and cwd -------------------------------------------------

def run_with_fds(pyrt: Runtime, fds: str, args: str,
                 timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """`pyruntime <args>` started by a shell that first opens `fds` (e.g. "3<file 7<dir"),
    as a caller that leaks fds would.  Output through files: a detached container keeps
    its stdio open."""
    return run_captured(["bash", "-c", f"exec {fds}; exec {pyrt.binary} --root {pyrt.root} {args}"],
                        timeout=timeout)


def fds_seen_by_ls(out: str) -> dict[int, str]:
    """fd -> target from `ls -l /proc/self/fd`, without the fd ls itself reads the dir by."""
    fds = {}
    for line in out.splitlines():
        m = re.search(r" (\d+) -> (.*)$", line)
        if m and not re.fullmatch(r"/proc/\d+/fd", m.group(2)):
            fds[int(m.group(1))] = m.group(2)
    return fds


def host_view(pid: int) -> tuple[list[int], str, str]:
    """A process's fds, and its cwd and root as dev:ino (the paths are in its mount ns)."""
    fds = sorted(int(n) for n in os.listdir(f"/proc/{pid}/fd"))
    return fds, file_id(f"/proc/{pid}/cwd"), file_id(f"/proc/{pid}/root")


def test_cve_2024_21626_no_host_fd_reaches_the_container(pyrt: Runtime, tmp_path: Path) -> None:
    """CVE-2024-21626 (leaked fds): the runtime is started with an inherited host directory
    fd (7, not preserved) and a preserved file (3, --preserve-fds 1).  From inside,
    `ls -l /proc/self/fd` shows 0, 1, 2 and 3 only, and /proc/self/cwd is the container's;
    from the host, the container process has exactly fds 0-3 and its cwd and root in the
    rootfs.  The same for `exec --preserve-fds 1` with and without `--cwd /tmp`.

    Broken build (mutations/cve-2024-21626-closerange.patch): neither stage 1's
    close_inherited nor the close-on-exec pass before READY in init.  The test then failed:
    `ls -l /proc/self/fd` inside showed
    "7 -> <tmp>/hostdir", the host directory.
    """
    host = scratch(tmp_path, "hostdir", "HOST-SECRET")
    passed = tmp_path / "passed"
    passed.write_text("preserved")
    snap = HostSnapshot(tmp_path, scratch=[host])
    fds = f"3<{passed} 7<{host}"
    inside = "ls -l /proc/self/fd; echo cwd=$(readlink /proc/self/cwd)"

    b = pyrt.bundle(base_config(["sh", "-c", inside]))
    p = run_with_fds(pyrt, fds, f"run --preserve-fds 1 --bundle {b} {pyrt.new_id()}")
    assert p.returncode == 0, p.stderr
    seen = fds_seen_by_ls(p.stdout)
    assert sorted(seen) == [0, 1, 2, 3] and seen[3] == str(passed), p.stdout
    assert "cwd=/\n" in p.stdout, p.stdout

    b = pyrt.bundle(base_config(["sleep", "100"]))
    cid = pyrt.new_id()
    p = run_with_fds(pyrt, fds, f"run -d --preserve-fds 1 --bundle {b} {cid}")
    assert p.returncode == 0, p.stderr
    rootfs = str(b / "rootfs")
    assert host_view(pyrt.state(cid)["pid"]) == ([0, 1, 2, 3], file_id(rootfs), file_id(rootfs))

    for cwd in ("", "/tmp"):
        flag = f"--cwd {cwd}" if cwd else ""
        p = run_with_fds(pyrt, fds, f"exec {flag} --preserve-fds 1 {cid} sh -c '{inside}'")
        assert p.returncode == 0, p.stderr
        seen = fds_seen_by_ls(p.stdout)
        assert sorted(seen) == [0, 1, 2, 3] and seen[3] == str(passed), p.stdout
        assert f"cwd={cwd or '/'}\n" in p.stdout, p.stdout

        pidfile = tmp_path / "exec.pid"
        p = run_with_fds(pyrt, fds, f"exec -d --pid-file {pidfile} {flag} --preserve-fds 1 "
                                    f"{cid} sleep 100")
        assert p.returncode == 0, p.stderr
        pid = int(pidfile.read_text())
        assert host_view(pid) == ([0, 1, 2, 3], file_id(rootfs + cwd), file_id(rootfs))
        os.kill(pid, 9)
    snap.assert_unchanged()


CWD_PROBE = ('echo "pwd=$(pwd)"; cat secret 2>/dev/null; '
             'cat ../../../../../../../../../../{host}/secret 2>/dev/null; echo end')


@pytest.mark.parametrize("verb", ["create", "exec"])
def test_cve_2024_21626_cwd_through_an_inherited_fd(pyrt: Runtime, tmp_path: Path,
                                                     verb: str) -> None:
    """CVE-2024-21626 (process.cwd /proc/self/fd/N): the runtime's caller has a host
    directory open as fd 7 (not preserved, as runc's own leaked fd was not), and the
    image/config asks for process.cwd (or `exec --cwd`) /proc/self/fd/7.  The runtime must
    refuse, or the process must end up with no way to the host: its cwd inside the
    container, the host's secret unreadable.

    Broken build (mutations/cve-2024-21626-inherited-cwd.patch: the inherited fds not
    closed in stage 1, and no os.getcwd() check after the chdir in init): `pwd` printed
    nothing (cwd unreachable from the root) and the
    process read HOST-SECRET through the cwd, and the host's /etc/hostname through ../..
    """
    host = scratch(tmp_path, "hostdir", "HOST-SECRET")
    snap = HostSnapshot(tmp_path, scratch=[host])
    probe = CWD_PROBE.format(host=host)
    if verb == "create":
        cfg = base_config(["sh", "-c", probe])
        cfg["process"]["cwd"] = "/proc/self/fd/7"
        b = pyrt.bundle(cfg)
        p = run_with_fds(pyrt, f"7<{host}", f"run --bundle {b} {pyrt.new_id()}")
    else:
        b = pyrt.bundle(base_config(["sleep", "100"]))
        cid = pyrt.new_id()
        pyrt("run", "-d", "--bundle", str(b), cid, check=True)
        p = run_with_fds(pyrt, f"7<{host}", f"exec --cwd /proc/self/fd/7 {cid} sh -c '{probe}'")
    assert "HOST-SECRET" not in p.stdout, p.stdout
    if p.returncode == 0:
        assert re.search(r"^pwd=/\S*$", p.stdout, re.M), p.stdout
    else:
        assert "cwd" in p.stderr, p.stderr
    snap.assert_unchanged()


@pytest.mark.parametrize("volume", [
    False,
    True,
], ids=["control-no-bind-source", "with-volume"])
def test_cve_2024_21626_cwd_through_the_runtimes_own_fds(pyrt: Runtime, tmp_path: Path,
                                                          volume: bool) -> None:
    """CVE-2024-21626 with nothing inherited: process.cwd /proc/self/fd/N for every N the
    runtime's init could hold at chdir time (3..12).  runc leaked its own fd to the
    host's /sys/fs/cgroup this way.  With a volume (a bind mount) in the config, the
    runtime's pre-opened bind sources are among those fds.  Each attempt must fail, or
    leave the process inside the container.

    Broken build (mutations/cve-2024-21626-own-fds.patch: bind-source fds kept open past
    the chdir, no os.getcwd() check): with-volume failed, for N=5 (the pre-opened volume
    source) `pwd` printed nothing and the process read HOST-SECRET (and the host's
    /etc/hostname) through ../..  control-no-bind-source is the control it is named for:
    it passed on that build too (the runtime holds no host directory fd of its own at
    chdir time) and fails only if a change makes init hold one there.
    """
    host = scratch(tmp_path, "hostdir", "HOST-SECRET")
    vol = scratch(tmp_path, "volume", "VOLUME-FILE")
    snap = HostSnapshot(tmp_path, scratch=[host])
    cfg = base_config(["sh", "-c", "cat /vol/secret 2>/dev/null || echo no-volume"])
    if volume:
        cfg["mounts"].append({"destination": "/vol", "type": "bind", "source": str(vol),
                              "options": ["rbind"]})
    p = pyrt.run(cfg)
    assert p.returncode == 0, p.stderr  # sanity: the config works with a normal cwd
    assert ("VOLUME-FILE" if volume else "no-volume") in p.stdout
    cfg["process"]["args"] = ["sh", "-c", CWD_PROBE.format(host=host)]
    for n in range(3, 13):
        cfg["process"]["cwd"] = f"/proc/self/fd/{n}"
        p = pyrt.run(cfg)
        assert "HOST-SECRET" not in p.stdout, (n, p.stdout)
        if p.returncode == 0:
            assert re.search(r"^pwd=/\S*$", p.stdout, re.M), (n, p.stdout)
        else:
            assert "cwd" in p.stderr, (n, p.stderr)
    snap.assert_unchanged()


# --- CVE-2021-30465: symlinked and racing mount destinations ---------------------------------


def test_cve_2021_30465_symlinked_destinations_stay_inside(pyrt: Runtime, tmp_path: Path) -> None:
    """CVE-2021-30465, static form: the image's mount destinations are symlinks out of the
    rootfs, absolute with '..' (mnt/a -> /../../../../etc), through /proc
    (mnt/b -> /proc/self/root/<host dir>) and relative (mnt/c -> ../../../..<host dir>).
    The config mounts tmpfs on mnt/a, mnt/b/x and mnt/c/y.  Each must land inside the
    rootfs (where the link means *inside the container*): the container sees tmpfs on
    /etc, <host dir>/x and <host dir>/y, and the host's directory, /etc and mount table
    are untouched.

    Broken builds: (2) is mutations/cve-2021-30465-mount-by-path.patch.  (1)
    paths.open_in_root replaced by a kernel lookup of
    /proc/self/fd/<root>/<dest> that follows symlinks, with os.makedirs for `create`
    (runc before the fix): the test failed, the runtime had made `x` in the host
    directory (through mnt/b).  (2) open_in_root intact but mounts._mount_filesystem
    mounting on the path string <rootfs>/<dest> instead of /proc/self/fd/<checked fd>
    (time of check != time of use): failed too, /etc in the container was not a tmpfs
    (the kernel had followed mnt/a to the host's /etc, in the container's namespace).
    """
    hostdir = scratch(tmp_path, "hostside")
    snap = HostSnapshot(tmp_path, scratch=[hostdir])
    cfg = base_config(["cat", "/proc/self/mountinfo"])
    for dest in ("/mnt/a", "/mnt/b/x", "/mnt/c/y"):
        cfg["mounts"].append({"destination": dest, "type": "tmpfs", "source": "tmpfs",
                              "options": ["size=1m"]})
    b = pyrt.bundle(cfg)
    mnt = b / "rootfs" / "mnt"
    mnt.mkdir(exist_ok=True)
    os.symlink("/../../../../etc", mnt / "a")
    os.symlink(f"/proc/self/root{hostdir}", mnt / "b")
    os.symlink("../../../.." + str(hostdir), mnt / "c")
    p = pyrt("run", "--bundle", str(b), pyrt.new_id())
    snap.assert_unchanged()
    assert p.returncode == 0, p.stderr
    points = mountinfo_points(p.stdout)
    assert points.get("/etc") == "tmpfs", p.stdout
    assert points.get(f"{hostdir}/x") == "tmpfs", p.stdout
    assert points.get(f"{hostdir}/y") == "tmpfs", p.stdout
    # and they are inside the rootfs: the directories were made there
    assert (b / "rootfs" / str(hostdir).lstrip("/") / "x").is_dir()


# Container A: swaps `x` in the shared directory between a directory and a symlink to the
# host directory until told to stop.  The symlink phase is held a little (a builtin-only
# loop): each swap is a fork+exec of busybox mv, and with short phases B rarely resolved
# x while it was the link.
#
# B's runtime creates a missing mount destination, so when B looks while x is away it
# makes a fresh directory x; the link then moves *into* it and the swap would be stuck
# on directories for good.  Each round first repairs that (only builtins unless needed),
# moving strays aside, never deleting them: unlinking a directory would also detach B's
# mount on it, which the test would count as a mount gone astray.
SWAPPER = r"""
cd {shared}
mkdir -p d && ln -sf {target} l
: > /tmp/swapping
n=0
while [ ! -e /tmp/stop ]; do
  if [ -e x ] || [ -L x ]; then n=$((n+1)); mv x stray$n; fi
  if [ ! -L l ]; then
    if [ -e l ]; then n=$((n+1)); mv l stray$n; fi
    ln -s {target} l
  fi
  if [ -L d ] || [ ! -d d ]; then
    if [ -e d ] || [ -L d ]; then n=$((n+1)); mv d stray$n; fi
    mkdir d
  fi
  mv -f d x; mv -f x d; mv -f l x
  i=0; while [ $i -lt 1000 ]; do i=$((i+1)); done
  mv -f x l
done
echo end > /tmp/swapper-done
"""


@pytest.mark.parametrize("share", [
    "rootfs",
    "volume",
])
def test_cve_2021_30465_racing_symlink_swap(pyrt: Runtime, tmp_path: Path, share: str) -> None:
    """CVE-2021-30465, racing form: container A keeps swapping `x` in a directory it shares
    with container B between a real directory and a symlink to a host directory, while B
    is created 16 times with a tmpfs on <shared>/x/t.  Shared either as the same
    rootfs directory for both, or as a volume (a host directory bind-mounted into both).
    Wherever each of B's mounts lands, it must be inside B's rootfs (x/t or, through the
    link, <host dir>/t in the container), never on the host: the host directory, /etc and
    the mount table are unchanged.

    Broken builds (the two of the test above; (2) is the committed mutation): both variants failed in every run (6 of
    6 with (1), 3 of 3 with (2)): with (1) `t` appeared in the host directory, with (2)
    up to 6 of B's 16 tmpfs mounts were nowhere in B (mounted on the host's <host dir>/t
    in B's namespace: the link was followed between the check and the mount).  Before
    the symlink phase of the swapper was lengthened, (1) was caught in only about half
    of the runs.
    """
    hostdir = scratch(tmp_path, "hostside")
    (hostdir / "t").mkdir()  # so that a mount that follows the link has a place to land
    snap = HostSnapshot(tmp_path, scratch=[hostdir])
    vol = scratch(tmp_path, "volume")
    if share == "rootfs":
        shared_in_container = "/shared"
    else:
        shared_in_container = "/vol"
    a_cfg = base_config(["sh", "-c", SWAPPER.format(shared=shared_in_container, target=hostdir)])
    if share == "volume":
        a_cfg["mounts"].append({"destination": "/vol", "type": "bind", "source": str(vol),
                                "options": ["rbind"]})
    a = pyrt.bundle(a_cfg)
    if share == "rootfs":
        (a / "rootfs" / "shared").mkdir()
    aid = pyrt.new_id()
    pyrt("run", "-d", "--bundle", str(a), aid, check=True)
    try:
        deadline = time.monotonic() + 10
        while not (a / "rootfs" / "tmp" / "swapping").exists():
            assert time.monotonic() < deadline, "swapper did not start"
            time.sleep(0.02)
        b_cfg = base_config(["cat", "/proc/self/mountinfo"])
        if share == "rootfs":
            b_cfg["root"]["path"] = str(a / "rootfs")
        else:
            b_cfg["mounts"].append({"destination": "/vol", "type": "bind", "source": str(vol),
                                    "options": ["rbind"]})
        b_cfg["mounts"].append({"destination": f"{shared_in_container}/x/t", "type": "tmpfs",
                                "source": "tmpfs", "options": ["size=1m"]})
        b = pyrt.bundle(b_cfg)
        landed: list[Any] = []
        astray: list[Any] = []
        through_link = 0
        runs = 0
        # at least 16 runs, and more (up to 64) until one of them resolved x while it was
        # the link: without such a run the race was never run, and the test shows nothing
        while runs < 16 or (not through_link and runs < 64):
            runs += 1
            p = pyrt("run", "--bundle", str(b), pyrt.new_id())
            if p.returncode != 0:
                # losing a race to a vanishing path may fail the create; never silently
                assert "mounts[" in p.stderr, p.stderr
                continue
            # A's renames and links move the mount point around, but B's own mountinfo
            # lists only what is inside B's root: a tmpfs on .../t there is inside B
            # (x/t, or <host dir>/t or <host dir>/x/t resolved *inside* the rootfs); a mount
            # that followed a link onto the host would not appear in it at all
            inside = [m for m, fs in mountinfo_points(p.stdout).items()
                      if fs == "tmpfs" and m.endswith("/t")]
            (landed if inside else astray).append(inside or p.stdout)
            # resolved through the link: the mount sits at <host dir>/t inside B
            through_link += any(m.startswith(str(hostdir) + "/") for m in inside)
    finally:
        (a / "rootfs" / "tmp" / "stop").touch()
    snap.assert_unchanged()
    assert not astray, f"{len(astray)} of B's tmpfs mounts not found in B:\n{astray[0]}"
    assert landed, "B never started"
    assert through_link, f"none of {runs} runs of B resolved x while it was the link: {landed}"


# --- CVE-2025-31133, CVE-2025-52565: /dev/null and /dev/console ---------------------------------


@pytest.mark.parametrize("null", ["symlink-core-pattern", "symlink-host-pivot-order", "regular-file"])
def test_cve_2025_31133_masking_with_a_fake_dev_null(pyrt: Runtime, tmp_path: Path,
                                                     null: str) -> None:
    """CVE-2025-31133 (maskedPaths through a replaced /dev/null): the image keeps its own
    /dev (no tmpfs over it) and its /dev/null is a symlink to /proc/sys/kernel/core_pattern,
    a symlink to a host file, or a regular file.  Masking bind-mounts /dev/null over files
    like /proc/kcore; were it to bind whatever the image put there, the container would see
    (and perhaps write) core_pattern or a host file in place of the masked one.  The runtime
    must refuse, or the masked files must be the real null device; never a host bind.

    Broken build (mutations/cve-2025-31133-null-check.patch): the S_ISCHR/1:3 check
    removed from mounts._NullDevice.path.  The test
    then failed: for symlink-core-pattern the masked /proc/keys and /proc/timer_list were
    the host's core_pattern (reading "core"), for regular-file the image's file.
    symlink-host-pivot-order is no test of that check (it passed there too): it pins the
    order of the setup, masking after pivot_root, where /dev/null resolves inside the root
    and the host path does not exist, so the create fails.
    """
    hostdir = scratch(tmp_path, "hostside", "HOST-SECRET")
    snap = HostSnapshot(tmp_path, scratch=[hostdir])
    cfg = without_dev_tmpfs(base_config(
        ["sh", "-c", "for f in /proc/keys /proc/timer_list; do "
                     "echo \"$f $(stat -c %F:%t:%T $f) [$(head -c 100 $f 2>&1)]\"; done"]))
    b = pyrt.bundle(cfg)
    dev = b / "rootfs" / "dev"
    dev.mkdir(exist_ok=True)
    if null == "symlink-core-pattern":
        os.symlink("/proc/sys/kernel/core_pattern", dev / "null")
    elif null == "symlink-host-pivot-order":
        os.symlink(str(hostdir / "secret"), dev / "null")
    else:
        (dev / "null").write_text("IMAGE-NULL\n")
    p = pyrt("run", "--bundle", str(b), pyrt.new_id())
    if p.returncode != 0:
        assert "/dev/null" in p.stderr or "maskedPaths" in p.stderr, p.stderr
    else:
        # both masked: the null device, reading as nothing
        assert p.stdout.splitlines() == [f"{f} character special file:1:3 []"
                                         for f in ("/proc/keys", "/proc/timer_list")], p.stdout
    snap.assert_unchanged()


@pytest.mark.parametrize("console", ["symlink-host-pivot-order", "symlink-core-pattern",
                                     "pts-symlink-host-in-root"])
def test_cve_2025_52565_console_cannot_be_redirected(pyrt: Runtime, tmp_path: Path,
                                                     console: str) -> None:
    """CVE-2025-52565 (/dev/console and /dev/pts swapped): with the image's own /dev and a
    terminal, the image makes /dev/console a symlink to a host file or to
    /proc/sys/kernel/core_pattern, or makes /dev/pts a symlink to a host directory.  The
    runtime must fail, or give the container a real pty as /dev/console, with devpts
    inside the rootfs; never bind the pty onto the host file or a procfs file, never mount
    devpts on the host.

    Broken build (mutations/cve-2025-52565-console-nofollow.patch):
    devices._open_mount_file opening without O_NOFOLLOW.  The test then failed for
    symlink-core-pattern: the pty was bind-mounted
    over the container's /proc/sys/kernel/core_pattern (a char device there afterwards,
    /dev/console still the image's symlink).  The other two cases are labelled for what
    they pin (they passed on that build as well): symlink-host-pivot-order, that the
    console is set up after pivot_root, where the host path does not exist (the create
    fails); pts-symlink-host-in-root, that /dev/pts is resolved inside the rootfs
    (open_in_root), which the 30465 tests' mutation removes for every mount.
    """
    hostdir = scratch(tmp_path, "hostside", "HOST-SECRET")
    snap = HostSnapshot(tmp_path, scratch=[hostdir])
    script = ("stat -c 'console %F %t' /dev/console; stat -c 'core %F' "
              f"/proc/sys/kernel/core_pattern; cat {hostdir}/secret 2>/dev/null; echo END")
    cfg = without_dev_tmpfs(base_config(["sh", "-c", script]))
    cfg["process"]["terminal"] = True
    b = pyrt.bundle(cfg)
    dev = b / "rootfs" / "dev"
    dev.mkdir(exist_ok=True)
    if console == "symlink-host-pivot-order":
        os.symlink(str(hostdir / "secret"), dev / "console")
    elif console == "symlink-core-pattern":
        os.symlink("/proc/sys/kernel/core_pattern", dev / "console")
    else:
        os.symlink(str(hostdir), dev / "pts")
    sock = tmp_path / "console.sock"
    receiver = ConsoleReceiver(sock, until=b"END")
    cid = pyrt.new_id()
    p = pyrt("run", "-d", "--console-socket", str(sock), "--bundle", str(b), cid)
    if p.returncode != 0:
        assert "console" in p.stderr or "/dev/pts" in p.stderr, p.stderr
    else:
        out = receiver.join(30)
        assert "END" in out, (out, receiver.error)
        assert re.search(r"console character special file 88", out), out  # pty major 136
        assert re.search(r"core regular (empty )?file", out), out
        assert "HOST-SECRET" not in out, out
    snap.assert_unchanged()
    assert os.listdir(hostdir) == ["secret"]


# --- CVE-2019-16884 / CVE-2025-52881: /proc redirected ----------------------------------------


@pytest.mark.parametrize("target", ["/tmp/fakeproc", "host"])
def test_cve_2019_16884_proc_symlink_is_refused(pyrt: Runtime, tmp_path: Path,
                                                target: str) -> None:
    """CVE-2019-16884 (an image whose /proc is a symlink, so that the runtime's later
    writes to /proc/self/attr/... or /proc/sys go to a place the image controls): the
    image's /proc is a symlink to /tmp/fakeproc (inside the image, with a fake
    self/attr/exec) or to a host directory.  The runtime must refuse with an error that
    names proc, and write nothing anywhere.

    Broken build (mutations/cve-2019-16884-proc-symlink.patch): mounts._mount_filesystem
    with strict=False (proc mounted wherever the
    symlink leads) and paths.open_procfs without O_NOFOLLOW.  The test then failed: the
    container started with /proc -> /tmp/fakeproc (or -> the host dir's path, inside the
    rootfs), a procfs there, and the sysctl written through the link.  With strict=False
    alone it still passed: the second check (open_procfs("/proc") in devices) refused with
    "checking /proc: Not a directory".
    """
    hostdir = scratch(tmp_path, "hostside")
    snap = HostSnapshot(tmp_path, scratch=[hostdir])
    cfg = base_config(["sh", "-c", "ls -ld /proc; echo started"])
    cfg["linux"]["sysctl"] = {"net.ipv4.ip_forward": "1"}
    b = pyrt.bundle(cfg)
    proc = b / "rootfs" / "proc"
    os.rmdir(proc)
    if target == "host":
        os.symlink(str(hostdir), proc)
    else:
        fake = b / "rootfs" / "tmp" / "fakeproc"
        (fake / "self" / "attr").mkdir(parents=True)
        (fake / "self" / "attr" / "exec").write_text("")
        (fake / "sys" / "net" / "ipv4").mkdir(parents=True)
        (fake / "sys" / "net" / "ipv4" / "ip_forward").write_text("0")
        os.symlink("/tmp/fakeproc", proc)
    p = pyrt("run", "--bundle", str(b), pyrt.new_id())
    assert p.returncode != 0 and "started" not in p.stdout, p.stdout
    assert p.stderr == ("pyruntime: mounts[0] on /proc: proc must be mounted on ordinary "
                        "directory, and /proc is a symlink or not a directory\n"), p.stderr
    if target != "host":
        fake = b / "rootfs" / "tmp" / "fakeproc"
        assert (fake / "sys" / "net" / "ipv4" / "ip_forward").read_text() == "0"
        assert (fake / "self" / "attr" / "exec").read_text() == ""
    snap.assert_unchanged()


@pytest.mark.parametrize("cover", ["bind-over-sysctl", "tmpfs-over-proc-sys",
                                   "proc-over-proc-sys-net"])
def test_cve_2025_52881_sysctl_write_cannot_be_redirected(pyrt: Runtime, tmp_path: Path,
                                                          cover: str) -> None:
    """CVE-2025-52881 (runtime writes to /proc redirected by mounts over /proc): the config
    mounts something over /proc/sys before the runtime writes linux.sysctl
    net.ipv4.ip_forward: a host file bind-mounted on /proc/sys/net/ipv4/ip_forward, or a
    tmpfs on /proc/sys with that host file bound at the same place inside it, or a
    second procfs on /proc/sys/net so that the sysctl "net/sys/kernel/hostname" (a net.*
    key, allowed with a network namespace) names /proc/sys/kernel/hostname of that
    procfs.  The runtime must refuse (an error naming the sysctl) instead of writing the
    file it finds there; the host file keeps its content.

    Broken build (mutations/cve-2025-52881-sysctl-mount-check.patch): the fstatfs/mount-id
    check removed from mounts._write_one.  The test then
    failed for all three: the host file read "1" afterwards (bind-over-sysctl,
    tmpfs-over-proc-sys), and the container started with the hostname "redirected",
    written through the second procfs.
    """
    hostdir = scratch(tmp_path, "hostside")
    target = hostdir / "ip_forward"
    target.write_text("0\n")
    snap = HostSnapshot(tmp_path, scratch=[hostdir])
    cfg = base_config(["sh", "-c", "hostname; echo started"])
    cfg.pop("hostname", None)
    bind = {"destination": "/proc/sys/net/ipv4/ip_forward", "type": "bind",
            "source": str(target), "options": ["bind"]}
    key, value = "net.ipv4.ip_forward", "1"
    if cover == "bind-over-sysctl":
        cfg["mounts"].insert(1, bind)
    elif cover == "tmpfs-over-proc-sys":
        cfg["mounts"][1:1] = [{"destination": "/proc/sys", "type": "tmpfs", "source": "tmpfs",
                               "options": ["size=1m"]}, bind]
    else:
        cfg["mounts"].insert(1, {"destination": "/proc/sys/net", "type": "proc",
                                 "source": "proc"})
        key, value = "net/sys/kernel/hostname", "redirected"
    cfg["linux"]["sysctl"] = {key: value}
    p = pyrt.run(cfg)
    assert target.read_text() == "0\n", "the sysctl was written into the host file"
    snap.assert_unchanged()
    assert "redirected" not in p.stdout, p.stdout
    assert p.returncode != 0 and "started" not in p.stdout, p.stdout
    assert f"linux.sysctl.{key}" in p.stderr, p.stderr


# --- CVE-2022-29162: inheritable capabilities ---------------------------------------------------


def file_caps_v2(caps: list[int], effective: bool = True) -> bytes:
    """security.capability (VFS_CAP_REVISION_2) with `caps` inheritable only ("+ei")."""
    inh = sum(1 << c for c in caps)
    magic = 0x02000000 | (1 if effective else 0)
    return struct.pack("<IIIII", magic, 0, inh & 0xFFFFFFFF, 0, inh >> 32)


CAP_KILL, CAP_NET_BIND_SERVICE = 5, 10


def test_cve_2022_29162_no_inheritable_caps(pyrt: Runtime) -> None:
    """CVE-2022-29162 (runc gave the container process, and `exec --cap`, a non-empty
    inheritable set, so a non-root user gained capabilities by exec'ing a binary with
    inheritable file capabilities).  Checked: CapInh and CapAmb are 0 for root with the
    default config and for `exec` / `exec --cap CAP_SYS_ADMIN`; and a non-root user
    (noNewPrivileges false, so file capabilities count) gets no capability from a busybox
    copy carrying "cap_kill,cap_net_bind_service+ei", neither as the container process nor
    through `exec --user` with `--cap`.

    Broken build (mutations/cve-2022-29162-inheritable.patch): capabilities.CapabilityPlan
    with `self.inheritable = self.permitted`
    (what runc did for exec --cap).  The test then failed: CapInh 0000000020000420 as
    root, and the uid 1000 process running the file-caps binary had CapEff 0000000000000420.
    """
    cfg = base_config(["sh", "-c", "cat /proc/self/status; sleep 100"])
    cfg["process"]["noNewPrivileges"] = False
    b = pyrt.bundle(cfg)
    capbb = b / "rootfs" / "bin" / "busybox-caps"
    capbb.write_bytes((b / "rootfs" / "bin" / "busybox").read_bytes())
    capbb.chmod(0o755)
    os.setxattr(capbb, "security.capability", file_caps_v2([CAP_KILL, CAP_NET_BIND_SERVICE]))
    cid = pyrt.new_id()
    pyrt("run", "-d", "--bundle", str(b), cid, check=True)
    init_pid = pyrt.state(cid)["pid"]
    status = Path(f"/proc/{init_pid}/status").read_text()
    assert status_field(status, "CapInh") == "0000000000000000"
    assert status_field(status, "CapAmb") == "0000000000000000"
    assert status_field(status, "CapEff") == "0000000020000420"

    for extra in ([], ["--cap", "CAP_SYS_ADMIN"]):
        p = pyrt("exec", *extra, cid, "cat", "/proc/self/status")
        assert p.returncode == 0, p.stderr
        assert status_field(p.stdout, "CapInh") == "0000000000000000", extra
        assert status_field(p.stdout, "CapAmb") == "0000000000000000", extra
        eff = int(status_field(p.stdout, "CapEff"), 16)
        assert bool(eff & (1 << 21)) == bool(extra), extra

        p = pyrt("exec", "--user", "1000:1000", *extra, cid, "/bin/busybox-caps", "cat",
                 "/proc/self/status")
        assert p.returncode == 0, p.stderr
        for key in ("CapInh", "CapPrm", "CapEff", "CapAmb"):
            assert status_field(p.stdout, key) == "0000000000000000", (key, extra, p.stdout)

    run_cfg = base_config(["/bin/busybox-caps", "cat", "/proc/self/status"])
    run_cfg["process"]["noNewPrivileges"] = False
    run_cfg["process"]["user"] = {"uid": 1000, "gid": 1000}
    rb = pyrt.bundle(run_cfg)
    rcap = rb / "rootfs" / "bin" / "busybox-caps"
    rcap.write_bytes(capbb.read_bytes())
    rcap.chmod(0o755)
    os.setxattr(rcap, "security.capability", file_caps_v2([CAP_KILL, CAP_NET_BIND_SERVICE]))
    p = pyrt("run", "--bundle", str(rb), pyrt.new_id())
    assert p.returncode == 0, p.stderr
    for key in ("CapInh", "CapPrm", "CapEff", "CapAmb"):
        assert status_field(p.stdout, key) == "0000000000000000", (key, p.stdout)
