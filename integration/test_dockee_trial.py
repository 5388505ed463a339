"""The user trial's findings (/work/notes/trial.md), each typed as a docker user types it.

One private store and runtime state dir for the module (pyruntime as the runtime); every test
force-removes what it made and checks nothing of it is left.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import tarfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_dockee_containers import Dockee, leftovers, tear_down_store


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dockee]:
    base = tmp_path_factory.mktemp("dockee-trial")
    d = Dockee("pyruntime", base / "store", base / "rt")
    yield d
    tear_down_store(d, base)


@pytest.fixture
def dk(store: Dockee) -> Iterator[Dockee]:
    before = store.ids()
    yield store
    made = store.ids() - before
    for cid in made:
        store("rm", "-f", "-v", cid)
    for cid in made:
        assert leftovers(store, cid) == [], cid


def name() -> str:
    return f"t{uuid.uuid4().hex[:10]}"


def test_F1_every_busybox_applet_is_in_bin(dk: Dockee) -> None:
    p = dk("run", "--rm", "--net", "none", "--image", "busybox", "/bin/ip a")
    assert p.returncode == 0, p.stderr
    assert "lo" in p.stdout
    assert dk("run", "--rm", "--net", "none", "busybox", "/sbin/ip", "link").returncode == 0


def test_F8_export_import_round_trip_cp_and_port(dk: Dockee, tmp_path: Path) -> None:
    n = name()
    assert dk("run", "--name", n, "--net", "none", "busybox", "sh", "-c", "echo made > /made").returncode == 0
    tar = tmp_path / "x.tar"
    p = dk("export", "-o", str(tar), n)
    assert p.returncode == 0, p.stderr
    with tarfile.open(tar) as t:
        names = set(t.getnames())
    assert {"./made", "./bin/busybox", "./etc/passwd"} <= names
    img = f"exp{uuid.uuid4().hex[:8]}:1"
    assert dk("import", str(tar), img).returncode == 0
    try:
        p = dk("run", "--rm", "--net", "none", img, "cat", "/made")
        assert (p.returncode, p.stdout) == (0, "made\n"), p.stderr
    finally:
        dk("rmi", img)
    # cp out of and into the stopped container
    assert dk("cp", f"{n}:/made", str(tmp_path / "out")).returncode == 0
    assert (tmp_path / "out").read_text() == "made\n"
    (tmp_path / "in").write_text("in\n")
    assert dk("cp", str(tmp_path / "in"), f"{n}:/tmp/").returncode == 0
    assert dk("start", "-a", n).returncode == 0
    p = dk("cp", f"{n}:/tmp/in", str(tmp_path / "back"))
    assert p.returncode == 0, p.stderr
    assert (tmp_path / "back").read_text() == "in\n"
    p = dk("cp", f"{n}:/nosuch", str(tmp_path / "x"))
    assert p.returncode != 0 and "nosuch" in p.stderr


def test_F10_F12_ps_and_port_show_the_host_port(dk: Dockee) -> None:
    n = name()
    p = dk("run", "-d", "--name", n, "-p", "80", "-p", "127.0.0.1::81", "busybox", "sleep", "60")
    assert p.returncode == 0, p.stderr
    out = dk("port", n).stdout.splitlines()
    assert len(out) == 2 and out[0].startswith("80/tcp -> 0.0.0.0:"), out
    host_port = out[0].rsplit(":", 1)[1]
    assert int(host_port) > 0
    assert out[1].startswith("81/tcp -> 127.0.0.1:")
    assert dk("port", n, "80").stdout == f"0.0.0.0:{host_port}\n"
    ps = dk("ps", "--format", "{{.Ports}}", "-f", f"name={n}").stdout
    assert f"0.0.0.0:{host_port}->80/tcp" in ps
    doc = dk.inspect(n)
    assert doc["NetworkSettings"]["Ports"]["80/tcp"] == [{"HostIp": "0.0.0.0", "HostPort": host_port}]


def test_F21_new_volume_gets_the_image_content_and_etc_binds_stay_on_top(dk: Dockee) -> None:
    vol = f"v{uuid.uuid4().hex[:10]}"
    try:
        p = dk("run", "--rm", "--hostname", "hn1", "-v", f"{vol}:/etc", "busybox", "sh", "-c",
               "ls /etc; cat /etc/hostname; grep -c . /etc/resolv.conf; grep hn1 /etc/hosts")
        assert p.returncode == 0, p.stderr
        lines = p.stdout.split()
        assert {"group", "hostname", "hosts", "passwd", "resolv.conf"} <= set(lines), lines
        assert "hn1" in lines
        # the volume kept the image's files; an existing volume is not filled again
        data = Path(dk.root) / "volumes" / vol / "_data"
        assert (data / "passwd").exists()
        (data / "passwd").unlink()
        again = dk("run", "--rm", "--net", "none", "-v", f"{vol}:/etc", "busybox", "ls", "/etc").stdout.split()
        assert "group" in again and "passwd" not in again
    finally:
        dk("volume", "rm", "-f", vol)


def test_F23_commit_takes_the_containers_cmd_and_no_mount_points(dk: Dockee, tmp_path: Path) -> None:
    n = name()
    img = f"live{uuid.uuid4().hex[:8]}:1"
    assert dk("run", "-d", "--name", n, "-e", "A=1", "busybox", "sh", "-c",
              "echo a > /state; sleep 300").returncode == 0
    try:
        assert dk("commit", n, img).returncode == 0
        assert dk("inspect", "-f", "{{.Config.Cmd}}", img).stdout.strip() == \
            '["sh", "-c", "echo a > /state; sleep 300"]'
        assert "A=1" in dk("inspect", "-f", "{{.Config.Env}}", img).stdout
        out = tmp_path / "img.tar"
        assert dk("save", "-o", str(out), img).returncode == 0
        names: set[str] = set()
        with tarfile.open(out) as t:
            for m in t.getmembers():
                if m.name.endswith(".tar") or m.name.startswith("blobs/"):
                    f = t.extractfile(m)
                    if f is None:
                        continue
                    with contextlib.suppress(tarfile.TarError), tarfile.open(fileobj=f) as layer:
                        names |= set(layer.getnames())
        assert "state" in names or "./state" in names
        assert not {"etc/hosts", "etc/resolv.conf", "etc/hostname"} & {x.removeprefix("./") for x in names}
    finally:
        dk("rm", "-f", n)
        dk("rmi", img)


def test_F25_a_missing_workdir_is_made(dk: Dockee) -> None:
    p = dk("run", "--rm", "--net", "none", "-w", "/newdir/sub", "busybox", "pwd")
    assert (p.returncode, p.stdout) == (0, "/newdir/sub\n"), p.stderr


def test_F15_net_host_keeps_the_hosts_hostname(dk: Dockee) -> None:
    p = dk("run", "--rm", "--net", "host", "busybox", "hostname")
    assert (p.returncode, p.stdout.strip()) == (0, socket.gethostname()), p.stderr


def test_F2_started_before_finished(dk: Dockee) -> None:
    n = name()
    assert dk("run", "--name", n, "--net", "none", "busybox", "true").returncode == 0
    state = dk.inspect(n)["State"]
    assert state["StartedAt"] <= state["FinishedAt"], state


@pytest.mark.parametrize("spec,needle", [(":/x", "invalid spec: :/x: empty section between colons"),
                                         ("/tmp:/x:ro,bogus", "invalid mode 'bogus'")])
def test_F3_F43_volume_specs(dk: Dockee, spec: str, needle: str) -> None:
    before = dk.ids()
    p = dk("run", "--rm", "--net", "none", "-v", spec, "busybox", "true")
    assert p.returncode == 125 and needle in p.stderr and p.stderr.count("\n") == 1, p.stderr
    assert dk.ids() == before


def test_F43_comma_modes_and_propagation(dk: Dockee, tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    p = dk("run", "--rm", "--net", "none", "-v", f"{tmp_path}:/h:ro,z", "-v", f"{tmp_path}:/s:rslave",
           "busybox", "sh", "-c", "cat /h/f; touch /h/g")
    assert p.returncode != 0 and p.stdout == "x" and "Read-only" in p.stderr, (p.stdout, p.stderr)


def test_F5_F6_F20_messages_and_exit_codes(dk: Dockee) -> None:
    n = name()
    assert dk("run", "-d", "--name", n, "--net", "none", "busybox", "sleep", "60").returncode == 0
    p = dk("exec", n, "nosuchcmd")
    assert p.returncode == 127 and p.stderr.startswith("dockee-shim: ") and "nosuchcmd" in p.stderr, p.stderr
    p = dk("unpause", n)
    assert (p.returncode, p.stderr) == (1, f"dockee-shim: Container {n} is not paused\n")
    p = dk("kill", "-s", "BOGUS", n)
    assert (p.returncode, p.stderr) == (125, "dockee-shim: invalid signal: BOGUS\n")
    assert dk.inspect(n)["State"]["Running"] is True
    assert dk("pause", n).returncode == 0
    p = dk("pause", n)
    assert p.returncode == 1 and "already paused" in p.stderr
    assert dk("unpause", n).returncode == 0
    assert dk("kill", n).returncode == 0
    dk("wait", n)
    p = dk("pause", n)
    assert (p.returncode, p.stderr) == (1, f"dockee-shim: Container {n} is not running\n")
    # "no such container": 1 for the verbs, 125 for run
    for verb in (["rm"], ["stop"], ["kill"], ["logs"], ["inspect"], ["exec"], ["port"], ["export", "-o", "/dev/null"]):
        p = dk(*verb, "nosuch" + n, *(["true"] if verb == ["exec"] else []))
        assert p.returncode == 1, (verb, p.returncode, p.stderr)
    p = dk("run", "--rm", "--net", "none", "--name", n, "busybox", "true")
    assert p.returncode == 125 and "already in use" in p.stderr, p.stderr


def test_F7_restart_count_counts_only_policy_restarts(dk: Dockee) -> None:
    n = name()
    assert dk("run", "--name", n, "--net", "none", "busybox", "true").returncode == 0
    assert dk("start", "-a", n).returncode == 0
    assert dk.inspect(n)["RestartCount"] == 0


def test_F9_volume_help_describes_each_verb(dk: Dockee) -> None:
    out = dk("volume", "--help").stdout
    assert "Create a named volume" in out and "Remove volumes no container uses" in out


def test_F17_cpu_ranges(dk: Dockee) -> None:
    import os

    n = os.cpu_count() or 1
    p = dk("run", "--rm", "--net", "none", "--cpus", str(n + 1), "busybox", "true")
    assert p.returncode == 125 and f"from 0.01 to {n:.2f}" in p.stderr, p.stderr
    p = dk("run", "--rm", "--net", "none", "--cpuset", str(n + 5), "busybox", "true")
    assert p.returncode == 125 and f"requested CPUs are not available - requested {n + 5}" in p.stderr, p.stderr


def test_F18_run_runtime_and_F47_a_failed_delete_keeps_the_record(dk: Dockee, tmp_path: Path) -> None:
    flag = tmp_path / "fail-delete"
    wrapper = tmp_path / "rt-wrapper"
    real = shutil.which("pyruntime")
    wrapper.write_text(f'#!/bin/sh\nfor a; do [ "$a" = delete ] && [ -e {flag} ] && exit 1; done\n'
                       f'exec {real} "$@"\n')
    wrapper.chmod(0o755)
    n = name()
    p = dk("run", "-d", "--runtime", str(wrapper), "--name", n, "--net", "none", "busybox", "sleep", "60")
    assert p.returncode == 0, p.stderr
    assert dk.inspect(n)["OCIRuntime"] == str(wrapper)
    flag.touch()
    p = dk("rm", "-f", n)
    assert p.returncode == 1 and "retry" in p.stderr, p.stderr
    assert dk.inspect(n)["Id"]  # still there to be retried
    flag.unlink()
    assert dk("rm", "-f", n).returncode == 0
    assert dk("inspect", n).returncode == 1


def test_F29_F30_inspect_templates_and_fields(dk: Dockee) -> None:
    n = name()
    assert dk("run", "-d", "--name", n, "busybox", "sleep", "60").returncode == 0
    p = dk("inspect", "-f", "{{if .State.Running}}yes{{end}}", n)
    assert p.returncode != 0 and "not supported" in p.stderr and p.stdout == ""
    doc = dk.inspect(n)
    assert doc["Name"] == f"/{n}"
    net = next(iter(doc["NetworkSettings"]["Networks"].values()))
    assert net["Gateway"] and net["IPPrefixLen"] == 24 and net["MacAddress"], net
    p = dk("inspect", "-f", "{{.State.Running}}", n, "nosuch" + n)
    assert (p.returncode, p.stdout) == (1, "true\n") and "nosuch" in p.stderr


def test_F34_foreground_run_removed_elsewhere_exits_137(dk: Dockee) -> None:
    n = name()
    fg = subprocess.Popen(dk.argv("run", "--name", n, "--net", "none", "busybox", "sleep", "60"),
                          stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(200):
            if dk("ps", "-q", "-f", f"name={n}").stdout.strip():
                break
            time.sleep(0.05)
        assert dk("rm", "-f", n).returncode == 0
        assert fg.wait(60) == 137
    finally:
        fg.kill()
        fg.wait()


def test_F39_non_root_is_told_once(dk: Dockee) -> None:
    p = subprocess.run(["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups", *dk.argv("ps")],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 125 and "needs root" in p.stderr and p.stderr.count("\n") == 1, p.stderr


def test_F40_oom_kill_disable_without_memory_warns(dk: Dockee) -> None:
    p = dk("run", "--rm", "--net", "none", "-k", "busybox", "true")
    assert p.returncode == 0 and "WARNING: Disabling the OOM killer" in p.stderr


def test_F46_logs_tail_streams_from_the_end(dk: Dockee) -> None:
    n = name()
    assert dk("run", "--name", n, "--net", "none", "busybox", "sh", "-c",
              # pauses: stdout and stderr are two pipes, and conmon may log a line of one
              # before the end of a 100 kB burst on the other
              "seq 1 20000; sleep 0.3; echo tail-a; sleep 0.1; echo tail-b >&2; "
              "sleep 0.1; echo tail-c").returncode == 0
    p = dk("logs", "--tail", "2", n)
    assert (p.stdout, p.stderr) == ("tail-c\n", "tail-b\n"), p
    assert dk("logs", "--tail", "0", n).stdout == ""
    assert dk("logs", n).stdout.count("\n") == 20002


def test_F19_F4_F22_F27_tables_formats_and_streaming(dk: Dockee) -> None:
    n = name()
    assert dk("run", "-d", "--name", n, "--net", "none", "busybox", "sleep", "60").returncode == 0
    out = dk("ps", "--format", "table {{.ID}}\\t{{.Names}}", "-f", f"name={n}").stdout.splitlines()
    assert out[0].split() == ["CONTAINER", "ID", "NAMES"] and out[1].split()[1] == n, out
    assert dk("ps", "-aq", "-f", "status=exited", "-f", f"name={n}").stdout == ""
    head = dk("stats", "--no-stream", n).stdout.splitlines()[0]
    for col in ("CPU %", "MEM USAGE / LIMIT", "NET I/O", "BLOCK I/O", "PIDS"):
        assert col in head, head
    assert dk("stats", "--no-stream", "--format", "{{.Name}} {{.PIDs}}", n).stdout == f"{n} 1\n"
    p = dk("top", n, "-o", "pid,comm")
    assert p.returncode == 0 and p.stdout.split()[:2] == ["PID", "COMMAND"] and "sleep" in p.stdout, p
    # streaming into a pipe: each refresh arrives as it happens, even when killed by SIGTERM
    p = subprocess.run(["timeout", "3", *dk.argv("stats", n)], capture_output=True, text=True, timeout=30)
    assert p.stdout.count("NET I/O") >= 1 and n in p.stdout, p
    assert dk("kill", n).returncode == 0
    dk("wait", n)
    rows = dk("stats", "--no-stream", n).stdout.splitlines()
    assert len(rows) == 2 and "0.00%" in rows[1], rows  # a stopped container: a row of zeros


def test_F37_restart_ulimit_tmpfs_shm_label_pid_host(dk: Dockee) -> None:
    n = name()
    p = dk("run", "-d", "--name", n, "--net", "none", "--restart", "on-failure:2", "busybox", "sh", "-c",
           "date +%s%N >> /runs; sleep 0.3; exit 3")
    assert p.returncode == 0, p.stderr
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if dk.inspect(n)["RestartCount"] == 2 and dk.inspect(n)["State"]["Status"] == "exited":
            break
        time.sleep(0.3)
    doc = dk.inspect(n)
    assert doc["RestartCount"] == 2 and doc["State"]["ExitCode"] == 3, doc["State"]
    assert dk("start", "-a", n).returncode == 3  # a manual start still works
    m = name()
    p = dk("run", "-d", "--name", m, "--net", "none", "--restart", "always", "busybox", "sleep", "60")
    assert p.returncode == 0, p.stderr
    assert dk("stop", "-t", "1", m).returncode == 0
    time.sleep(1)
    assert dk.inspect(m)["State"]["Status"] == "exited"  # a manual stop disarms the policy
    p = dk("run", "--rm", "--net", "none", "--ulimit", "nofile=512:2048", "--tmpfs", "/scratch:size=1m",
           "--shm-size", "8m", "-l", "team=a", "--pid", "host", "busybox", "sh", "-c",
           "ulimit -n; ulimit -Hn; grep -E ' /scratch | /dev/shm ' /proc/mounts | cut -d' ' -f2,4; [ $$ -ne 1 ]")
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert lines[:2] == ["512", "2048"], lines
    assert any(x.startswith("/scratch ") and "size=1024k" in x for x in lines), lines
    assert any(x.startswith("/dev/shm ") and "size=8192k" in x for x in lines), lines
    assert dk("run", "--rm", "--net", "none", "--restart", "bogus", "busybox", "true").returncode == 125


def test_F35_rename_version_info_stop_signal_logs_since(dk: Dockee) -> None:
    n, m = name(), name()
    assert dk("run", "-d", "--name", n, "--net", "none", "busybox", "sh", "-c",
              "echo early; trap 'echo got-usr1; exit 7' USR1; while :; do sleep 0.1; done").returncode == 0
    assert dk("rename", n, m).returncode == 0
    assert dk.inspect(m)["Name"] == f"/{m}" and dk("inspect", n).returncode == 1
    time.sleep(1.5)
    p = dk("stop", "-s", "USR1", "-t", "10", m)
    assert p.returncode == 0, p.stderr
    assert dk.inspect(m)["State"]["ExitCode"] == 7
    stamped = dk("logs", "-t", m).stdout.splitlines()
    second = stamped[1].split()[0]
    assert dk("logs", "--since", second, m).stdout == "got-usr1\n"
    assert dk("logs", "--until", second, m).stdout == "early\n"
    assert dk("logs", "--since", "1h", m).stdout == "early\ngot-usr1\n"
    assert dk("logs", "--since", "bogus", m).returncode == 125
    assert "Version:" in dk("version").stdout
    assert "Containers:" in dk("info").stdout


def test_F16_ctrl_p_ctrl_q_detaches_and_attach_comes_back(dk: Dockee, tmp_path: Path) -> None:
    if shutil.which("tmux") is None:
        pytest.skip("tmux not installed")
    session = f"dk{uuid.uuid4().hex[:8]}"
    n = name()
    result = tmp_path / "exit"
    cmd = " ".join(dk.argv("run", "-it", "--name", n, "--net", "none", "busybox", "sh"))
    subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", "100", "-y", "30",
                    f"{cmd}; echo $? > {result}; sleep 60"], check=True)

    def until(text: str, timeout: float = 15) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            s = subprocess.run(["tmux", "capture-pane", "-p", "-t", session], capture_output=True,
                               text=True).stdout
            if text in s:
                return s
            time.sleep(0.1)
        raise AssertionError(f"{text!r} never appeared:\n{s}")

    def keys(*k: str) -> None:
        subprocess.run(["tmux", "send-keys", "-t", session, *k], check=True)

    def wait_file() -> str:
        deadline = time.monotonic() + 15
        while not result.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        return result.read_text().strip()
    try:
        until("/ #")
        keys("echo one-$((40+2))", "Enter")
        until("one-42")
        keys("C-p", "C-q")
        assert wait_file() == "0"
        assert dk.inspect(n)["State"]["Running"] is True
        result.unlink()
        subprocess.run(["tmux", "kill-session", "-t", session], check=False)
        subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", "100", "-y", "30",
                        f"{' '.join(dk.argv('attach', n))}; echo $? > {result}; sleep 60"], check=True)
        time.sleep(1)
        keys("echo two-$((40+3))", "Enter")
        until("two-43")
        keys("exit 5", "Enter")
        assert wait_file() == "5"
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], check=False)


def test_F41_a_failed_start_keeps_the_previous_exit(dk: Dockee) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    a, b = name(), name()
    assert dk("run", "--name", a, "-p", f"{port}:80", "busybox", "sh", "-c", "exit 3").returncode == 3
    p = dk("run", "-d", "--name", b, "-p", f"{port}:80", "busybox", "sleep", "60")
    assert p.returncode == 0, p.stderr
    p = dk("start", a)
    assert p.returncode != 0 and p.stderr.count("\n") == 1, p.stderr
    state = dk.inspect(a)["State"]
    assert (state["Status"], state["ExitCode"]) == ("exited", 3), state
    assert dk("rm", "-f", b).returncode == 0
    assert dk("start", "-a", a).returncode == 3


def test_F32_a_killed_loads_staging_goes_at_the_next_import(dk: Dockee, tmp_path: Path) -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()
    dk("images")  # the store exists
    stale = Path(dk.root) / "tmp" / f"layer-{dead.pid}-zz"
    (stale / "diff").mkdir(parents=True)
    rootfs = tmp_path / "rootfs"
    rootfs.mkdir()
    (rootfs / "f").write_text("x")
    tar = tmp_path / "r.tar"
    subprocess.run(["tar", "-C", str(rootfs), "-cf", str(tar), "."], check=True)
    img = f"sw{uuid.uuid4().hex[:8]}:1"
    try:
        assert dk("import", str(tar), img).returncode == 0
        assert not stale.exists()
    finally:
        dk("rmi", img)


def test_F26_F37_devices_privileged_and_device_flag(dk: Dockee) -> None:
    p = dk("run", "--rm", "--net", "none", "--privileged", "busybox", "sh", "-c",
           "test -b /dev/loop0 || test -c /dev/loop-control; ls /dev | wc -l")
    assert p.returncode == 0, p.stderr
    assert int(p.stdout.split()[-1]) > 30, p.stdout
    p = dk("run", "--rm", "--net", "none", "--device", "/dev/null:/dev/mynull", "busybox", "sh", "-c",
           "echo x > /dev/mynull && test -c /dev/mynull")
    assert p.returncode == 0, p.stderr
    p = dk("run", "--rm", "--net", "none", "--device", "/etc/passwd", "busybox", "true")
    assert p.returncode == 125 and "not a device node" in p.stderr


def test_images_filter_and_no_registry_hint(dk: Dockee) -> None:
    dk("run", "--rm", "--net", "none", "busybox", "true")  # the embedded image exists
    out = dk("images", "--format", "{{.Repository}}:{{.Tag}}", "-f", "reference=busybox").stdout.split()
    assert out and all(x.endswith("busybox:latest") for x in out), out
    assert dk("images", "-q", "-f", "reference=nosuch*").stdout == ""
    assert dk("images", "-q", "-f", "dangling=true", "-f", "reference=busybox").stdout == ""
    assert dk("images", "-f", "bogus=1").returncode == 125
    p = dk("pull", "alpine")
    assert p.returncode == 125 and "load" in p.stderr and p.stderr.count("\n") == 1, p.stderr


def test_F37_init_reaps_as_pid_1(dk: Dockee) -> None:
    if not (shutil.which("catatonit") or Path("/usr/libexec/podman/catatonit").exists()):
        pytest.skip("no catatonit")
    p = dk("run", "--rm", "--net", "none", "--init", "busybox", "sh", "-c",
           "cat /proc/1/cmdline | tr '\\0' ' '; echo; echo $$")
    assert p.returncode == 0, p.stderr
    first, own = p.stdout.splitlines()
    assert first.startswith("/run/dockee-init -- sh") and own != "1", p.stdout
    assert dk("run", "--rm", "--net", "none", "--init", "busybox", "sh", "-c", "exit 4").returncode == 4


def test_F16_piped_input_into_run_it_still_ends_with_eof(dk: Dockee) -> None:
    p = dk("run", "-it", "--rm", "--net", "none", "busybox", "sh", input="echo piped-ok; exit 3\n", timeout=30)
    assert p.returncode == 3 and "piped-ok" in p.stdout, (p.stdout, p.stderr)
