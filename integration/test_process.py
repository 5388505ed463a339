"""What the container process gets: capabilities, rlimits, user, masked paths, hooks, exec."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

from harness import ConsoleReceiver, parse_mountinfo, proc_status, status_field

from conftest import Runtime, base_config

_status = status_field


STATUS_KEYS = ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "NoNewPrivs", "Seccomp")


def test_capabilities_rlimits_user(pyrt: Runtime, runc: Runtime) -> None:
    cfg = base_config(["sh", "-c", "cat /proc/self/status; ulimit -n; umask; id"])
    # a non-root user keeps capabilities across execve only through the ambient set
    cfg["process"]["capabilities"] = {k: ["CAP_KILL", "CAP_CHOWN"] for k in
                                      ("bounding", "effective", "permitted", "inheritable",
                                       "ambient")}
    cfg["process"]["rlimits"] = [{"type": "RLIMIT_NOFILE", "hard": 200, "soft": 123}]
    cfg["process"]["user"] = {"uid": 1000, "gid": 1000, "additionalGids": [5], "umask": 0o027}
    cfg["process"]["noNewPrivileges"] = True
    p = pyrt.run(cfg)
    assert p.returncode == 0, p.stderr
    # CAP_CHOWN (bit 0) and CAP_KILL (bit 5) only
    for key in ("CapBnd", "CapPrm", "CapEff", "CapInh", "CapAmb"):
        assert _status(p.stdout, key) == "0000000000000021", key
    assert _status(p.stdout, "NoNewPrivs") == "1"
    lines = p.stdout.strip().splitlines()
    assert lines[-3] == "123"
    assert lines[-2] == "0027"
    assert lines[-1].startswith("uid=1000 gid=1000") and "groups=5" in lines[-1]
    # runc gives the same process the same sets, limits, umask and ids
    r = runc.run(cfg)
    assert r.returncode == 0, r.stderr
    ours, theirs = proc_status(p.stdout), proc_status(r.stdout)
    assert {k: ours[k] for k in STATUS_KEYS} == {k: theirs[k] for k in STATUS_KEYS}
    assert lines[-3:] == r.stdout.strip().splitlines()[-3:]


def test_root_without_inheritable_by_default(pyrt: Runtime, runc: Runtime) -> None:
    cfg = base_config(["cat", "/proc/self/status"])
    p = pyrt.run(cfg)
    assert p.returncode == 0, p.stderr
    # runc's default set: CAP_AUDIT_WRITE, CAP_KILL, CAP_NET_BIND_SERVICE; none inheritable
    assert _status(p.stdout, "CapEff") == "0000000020000420"
    assert _status(p.stdout, "CapInh") == "0000000000000000"
    r = runc.run(cfg)
    ours, theirs = proc_status(p.stdout), proc_status(r.stdout)
    assert {k: ours[k] for k in STATUS_KEYS} == {k: theirs[k] for k in STATUS_KEYS}


def test_dropped_capability_is_absent(pyrt: Runtime) -> None:
    # the hostname it already has: were the capability kept and the uts namespace lost, the
    # probe still leaves the host as it was
    cfg = base_config(["sh", "-c", "grep CapEff /proc/self/status; hostname \"$(hostname)\" 2>&1; "
                       "echo rc=$?"])
    p = pyrt.run(cfg)
    assert p.returncode == 0, p.stderr
    eff = int(_status(p.stdout, "CapEff"), 16)
    assert not eff & (1 << 21), "CAP_SYS_ADMIN must be dropped by the default config"
    assert "rc=1" in p.stdout


def test_masked_and_readonly_paths(pyrt: Runtime) -> None:
    cfg = base_config(["sh", "-c",
                       "cat /proc/timer_list | wc -c; ls /sys/firmware | wc -l; "
                       # the value the file already has (harmless should /proc/sys be the host's)
                       "h=$(cat /proc/sys/kernel/hostname); "
                       "(echo \"$h\" > /proc/sys/kernel/hostname) 2>&1; "
                       "touch /etc/new 2>&1 && echo rw; echo ---; cat /proc/self/mountinfo"])
    p = pyrt.run(cfg)
    assert p.returncode == 0, p.stderr
    out, mountinfo = p.stdout.split("---\n")
    lines = out.splitlines()
    assert lines[0] == "0" and lines[1] == "0"
    # EROFS, not EPERM: the write fails for the mount, before any capability check
    assert "Read-only file system" in lines[2], lines[2]
    assert lines[3] == "rw"
    mounts = {m.point: m for m in parse_mountinfo(mountinfo)}
    ro = [path for path in cfg["linux"]["readonlyPaths"] if path in mounts]
    assert "/proc/sys" in ro, sorted(mounts)
    for path in ro:
        assert mounts[path].readonly, (path, mounts[path])
    cfg["root"]["readonly"] = True
    p = pyrt.run(cfg)
    assert "Read-only file system" in p.stdout


def test_hooks_run_in_order_with_state(pyrt: Runtime, tmp_path: Path) -> None:
    log = tmp_path / "hooks.log"
    log.touch()
    os.chmod(log, 0o666)
    hook = tmp_path / "hook.sh"
    hook.write_text(f"#!/bin/sh\nread -r state\necho \"$1 $state\" >> {log}\n")
    hook.chmod(0o755)
    cfg = base_config(["true"])
    kinds = ["prestart", "createRuntime", "createContainer", "poststart", "poststop"]
    cfg["hooks"] = {k: [{"path": str(hook), "args": ["hook.sh", k]}] for k in kinds}
    p = pyrt.run(cfg)
    assert p.returncode == 0, p.stderr
    entries = [line.split(" ", 1) for line in log.read_text().splitlines()]
    assert [e[0] for e in entries] == kinds
    states = {name: json.loads(doc) for name, doc in entries}
    assert states["createRuntime"]["status"] == "creating" and states["createRuntime"]["pid"] > 0
    assert states["poststart"]["status"] == "running"
    assert states["poststop"]["status"] == "stopped"


def test_failing_prestart_hook_fails_create(pyrt: Runtime) -> None:
    cfg = base_config(["true"])
    cfg["hooks"] = {"prestart": [{"path": "/bin/false"}]}
    b = pyrt.bundle(cfg)
    cid = pyrt.new_id()
    p = pyrt("create", "--bundle", str(b), cid)
    assert p.returncode != 0 and "hooks.prestart[0]" in p.stderr
    assert not (pyrt.root / cid).exists()


def test_exec_joins_the_container(pyrt: Runtime) -> None:
    cfg = base_config(["sleep", "100"])
    cfg["hostname"] = "inside"
    b = pyrt.bundle(cfg)
    cid = pyrt.new_id()
    pyrt("run", "-d", "--bundle", str(b), cid, check=True)
    p = pyrt("exec", cid, "sh", "-c", "hostname; cat /proc/1/comm; echo $$; exit 3")
    assert p.returncode == 3, p.stderr
    out = p.stdout.split()
    assert out[0] == "inside" and out[1] == "sleep" and int(out[2]) > 1
    proc = dict(cfg["process"], args=["sh", "-c", "id -u"], user={"uid": 1234, "gid": 1234})
    pf = b / "process.json"
    pf.write_text(json.dumps(proc))
    p = pyrt("exec", "--process", str(pf), cid)
    assert p.returncode == 0 and p.stdout.strip() == "1234", p.stderr
    p = pyrt("exec", cid, "nonexistent")
    assert p.returncode != 0 and "executable file not found" in p.stderr


def test_terminal_through_console_socket(pyrt: Runtime, tmp_path: Path) -> None:
    cfg = base_config(["sh", "-c", "tty; stty size; echo done"])
    cfg["process"]["terminal"] = True
    cfg["process"]["consoleSize"] = {"height": 33, "width": 101}
    b = pyrt.bundle(cfg)
    sock = tmp_path / "console.sock"
    receiver = ConsoleReceiver(sock, until=b"done")
    cid = pyrt.new_id()
    pyrt("run", "-d", "--console-socket", str(sock), "--bundle", str(b), cid, check=True)
    data = receiver.join(15)
    assert "/dev/pts/0" in data and "33 101" in data, (data, receiver.error)


def test_terminal_without_console_socket_when_detached_is_an_error(pyrt: Runtime) -> None:
    cfg = base_config(["true"])
    cfg["process"]["terminal"] = True
    b = pyrt.bundle(cfg)
    p = pyrt("create", "--bundle", str(b), pyrt.new_id())
    assert p.returncode != 0 and "console socket" in p.stderr


def test_preserve_fds(pyrt: Runtime, tmp_path: Path) -> None:
    cfg = base_config(["sh", "-c", "ls /proc/self/fd | sort -n | tr '\\n' ' '; cat <&3"])
    b = pyrt.bundle(cfg)
    secret = tmp_path / "passed"
    secret.write_text("through-fd-3")
    script = (f'exec 3<{secret} 4>{tmp_path / "leak"}; exec {pyrt.binary} --root {pyrt.root} '
              f'run --preserve-fds 1 --bundle {b} {pyrt.new_id()}')
    p = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    fds = p.stdout.split("through")[0].split()
    # 0-2, the preserved 3, and ls's own directory fd; never the unpreserved 4
    assert fds[:4] == ["0", "1", "2", "3"] and len(fds) == 5, fds
    assert "through-fd-3" in p.stdout


def test_time_namespace_offsets(pyrt: Runtime) -> None:
    cfg = base_config(["cat", "/proc/uptime"])
    cfg["linux"]["namespaces"].append({"type": "time"})
    cfg["linux"]["timeOffsets"] = {"boottime": {"secs": 86400 * 365, "nanosecs": 0}}
    p = pyrt.run(cfg)
    assert p.returncode == 0, p.stderr
    with open("/proc/uptime") as f:
        host_uptime = float(f.read().split()[0])
    assert float(p.stdout.split()[0]) - host_uptime > 86400 * 364


def test_user_namespace_mappings(pyrt: Runtime, tmp_path: Path) -> None:
    cfg = base_config(["sh", "-c", "cat /proc/self/uid_map /proc/self/gid_map; id -u; touch /tmp/f"])
    cfg["linux"]["namespaces"].append({"type": "user"})
    cfg["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    cfg["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    b = pyrt.bundle(cfg)
    # the container's root is host uid 100000: give it its rootfs, as a user-namespaced
    # image would be shipped
    subprocess.run(["chown", "-R", "100000:100000", str(b / "rootfs")], check=True)
    for d in (b, *b.parents):  # pytest's private tmp dirs must be walkable by that uid
        if str(d).startswith("/tmp/"):
            d.chmod(d.stat().st_mode | 0o011)
    cid = pyrt.new_id()
    p = pyrt("run", "--bundle", str(b), cid)
    assert p.returncode == 0, p.stderr
    maps = [line.split() for line in p.stdout.splitlines()[:2]]
    assert maps == [["0", "100000", "65536"], ["0", "100000", "65536"]]
    assert p.stdout.splitlines()[2] == "0"
    assert (b / "rootfs" / "tmp" / "f").stat().st_uid == 100000


def test_listen_fds_are_passed_on(pyrt: Runtime, tmp_path: Path) -> None:
    """systemd socket activation: fds 3.. named by LISTEN_FDS reach the container, which
    sees LISTEN_FDS=N and LISTEN_PID=1, as runc passes them."""
    cfg = base_config(["sh", "-c", "echo $LISTEN_FDS $LISTEN_PID; cat <&3"])
    b = pyrt.bundle(cfg)
    activated = tmp_path / "activated"
    activated.write_text("socket-activated")
    # exec keeps bash's pid, so LISTEN_PID=$$ names the runtime itself
    script = (f'exec 3<{activated}; export LISTEN_FDS=1 LISTEN_PID=$$; '
              f'exec {pyrt.binary} --root {pyrt.root} run --bundle {b} {pyrt.new_id()}')
    p = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines() == ["1 1", "socket-activated"]


def test_relative_executable_and_clean_signals(pyrt: Runtime) -> None:
    """WORKDIR + CMD ["./x"]: args[0] is looked up after the cwd is set; and the process
    starts with no ignored signal (CPython ignores SIGPIPE and SIGXFSZ for itself)."""
    cfg = base_config(["./probe.sh"])
    cfg["process"]["cwd"] = "/app"
    b = pyrt.bundle(cfg)
    (b / "rootfs" / "app").mkdir()
    script = b / "rootfs" / "app" / "probe.sh"
    script.write_text("#!/bin/sh\ngrep -E '^Sig(Ign|Blk)' /proc/self/status\n")
    script.chmod(0o755)
    p = pyrt("run", "--bundle", str(b), pyrt.new_id())
    assert p.returncode == 0, p.stderr
    assert _status(p.stdout, "SigIgn") == "0000000000000000"
    assert _status(p.stdout, "SigBlk") == "0000000000000000"


def test_no_capabilities_object_means_none(pyrt: Runtime) -> None:
    cfg = base_config(["grep", "-E", "^Cap(Eff|Bnd|Prm)", "/proc/self/status"])
    del cfg["process"]["capabilities"]
    p = pyrt.run(cfg)
    assert p.returncode == 0, p.stderr
    for key in ("CapEff", "CapBnd", "CapPrm"):
        assert _status(p.stdout, key) == "0000000000000000", key


def test_user_namespace_with_many_bind_mounts(pyrt: Runtime, tmp_path: Path) -> None:
    """Each bind source is opened by the parent and passed as an fd: more than a handful
    must fit (Kubernetes pods have hosts, hostname, resolv.conf, secrets...)."""
    cfg = base_config(["sh", "-c", "cat /v0/f /v7/f"])
    cfg["linux"]["namespaces"].append({"type": "user"})
    cfg["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 0, "size": 65536}]
    cfg["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 0, "size": 65536}]
    for i in range(8):
        src = tmp_path / f"vol{i}"
        src.mkdir()
        (src / "f").write_text(f"v{i}\n")
        cfg["mounts"].append({"destination": f"/v{i}", "type": "bind", "source": str(src),
                              "options": ["rbind", "ro"]})
    p = pyrt.run(cfg)
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == ["v0", "v7"]


def test_failed_exec_leaves_no_process(pyrt: Runtime) -> None:
    b = pyrt.bundle(base_config(["sleep", "100"]))
    cid = pyrt.new_id()
    pyrt("run", "-d", "--bundle", str(b), cid, check=True)
    p = pyrt("exec", "-d", "--pid-file", "/nonexistent/dir/pid", cid, "sleep", "4242")
    assert p.returncode == 255 and "--pid-file" in p.stderr, p.stderr
    time.sleep(0.2)
    procs = pyrt("ps", "--format", "json", cid, check=True).stdout
    assert len(json.loads(procs)) == 1, "only the container's init is left"


def test_join_namespaces_by_path(pyrt: Runtime) -> None:
    """A second container joins the first one's network and uts namespaces by path (what a
    Kubernetes pod's containers do with the pause container)."""
    first = base_config(["sleep", "100"])
    first["hostname"] = "pod"
    b = pyrt.bundle(first)
    cid = pyrt.new_id()
    pyrt("run", "-d", "--bundle", str(b), cid, check=True)
    pid = pyrt.state(cid)["pid"]
    second = base_config(["sh", "-c", "hostname; readlink /proc/self/ns/net"])
    del second["hostname"]  # it would rename the shared namespace
    for ns in second["linux"]["namespaces"]:
        if ns["type"] in ("network", "uts"):
            ns["path"] = f"/proc/{pid}/ns/{'net' if ns['type'] == 'network' else 'uts'}"
    p = pyrt.run(second)
    assert p.returncode == 0, p.stderr
    hostname, netns = p.stdout.split()
    assert hostname == "pod"
    assert netns == os.readlink(f"/proc/{pid}/ns/net")
