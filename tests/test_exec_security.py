"""Unit tests (no root) of what keeps a container's files and processes from reaching the
runtime through exec and run: numeric --user, the guarded opens of container paths, the
pid file's temp file, LISTEN_FDS, the stdio pipes and the setup deadline."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pyruntime import container, init, state, stdio
from pyruntime import exec as exec_mod
from pyruntime.errors import RuntimeErr


@pytest.mark.parametrize("text,want", [("0", {"uid": 0}), ("1000:100", {"uid": 1000, "gid": 100}),
                                       ("65534:65534", {"uid": 65534, "gid": 65534})])
def test_user_is_numeric(text: str, want: dict[str, int]) -> None:
    assert exec_mod.parse_user(text) == want


@pytest.mark.parametrize("text", ["root", "0:root", "1000:", ":0", "-1", "1e3", "4294967295", "٣"])
def test_user_names_are_refused_not_looked_up(text: str) -> None:
    with pytest.raises(RuntimeErr, match=f"--user {text}: .* is not a number"):
        exec_mod.parse_user(text)


def test_user_keeps_the_container_gid_and_groups_as_runc() -> None:
    cfg = {"process": {"user": {"uid": 0, "gid": 7, "additionalGids": [9]}, "args": ["sh"]}}
    proc = exec_mod.process_from_flags(cfg, ["id"], tty=False, cwd=None, env=[], user="1000",
                                       additional_gids=[10], caps=[], no_new_privs=False,
                                       apparmor=None)
    assert proc["user"] == {"uid": 1000, "gid": 7, "additionalGids": [9, 10]}


def test_home_of_reads_only_a_regular_passwd(tmp_path: Path) -> None:
    passwd = tmp_path / "passwd"
    passwd.write_text("root:x:0:0:root:/root:/bin/sh\nu:x:1000:1000::/home/u:/bin/sh\n")
    assert init._home_of(1000, str(passwd)) == "/home/u"
    link = tmp_path / "link"
    link.symlink_to(passwd)
    assert init._home_of(1000, str(link)) == "/", "a symlink is not followed"
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    start = time.monotonic()
    assert init._home_of(1000, str(fifo)) == "/", "a FIFO is not read"
    assert time.monotonic() - start < 5
    assert init._home_of(0, "/dev/zero") == "/", "a device is not read"
    big = tmp_path / "big"
    big.write_bytes(b"x" * (init.PASSWD_MAX + 10) + b"\nu:x:1000:1000::/late:/bin/sh\n")
    assert init._home_of(1000, str(big)) == "/", "reading stops at PASSWD_MAX"


def test_dev_null_must_be_the_device(tmp_path: Path) -> None:
    fd = init._open_dev_null("/dev/null")
    assert fd is not None
    os.close(fd)
    secret = tmp_path / "secret"
    secret.write_text("s")
    link = tmp_path / "null"
    link.symlink_to(secret)
    assert init._open_dev_null(str(link)) is None
    assert init._open_dev_null(str(secret)) is None
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    assert init._open_dev_null(str(fifo)) is None
    assert init._open_dev_null("/dev/zero") is None


def test_atomic_write_never_follows_a_planted_name(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("host data")
    target = tmp_path / "app.pid"
    # every predictable name the old writer used, and the final name, as symlinks
    for pid in range(os.getpid() - 5, os.getpid() + 5):
        (tmp_path / f".app.pid.{pid}.tmp").symlink_to(victim)
    (tmp_path / ".app.pid").symlink_to(victim)
    target.symlink_to(victim)
    state.atomic_write(target, b"42", 0o644)
    assert victim.read_text() == "host data"
    assert not target.is_symlink() and target.read_text() == "42"
    assert sorted(p.name for p in tmp_path.glob(".app.pid.*.tmp") if not p.is_symlink()) == []


def test_pid_file_in_a_missing_directory_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(RuntimeErr, match=r"--pid-file .*/nope/x.pid: No such file or directory"):
        container.write_pid_file(str(tmp_path / "nope" / "x.pid"), 1)


@pytest.mark.parametrize("env,want", [({"LISTEN_FDS": "2"}, 0),
                                      ({"LISTEN_FDS": "2", "LISTEN_PID": "1"}, 0),
                                      ({"LISTEN_FDS": "2", "LISTEN_PID": "0"}, 0),
                                      ({"LISTEN_FDS": "2", "LISTEN_PID": "SELF"}, 2),
                                      ({"LISTEN_FDS": "x", "LISTEN_PID": "SELF"}, 0)])
def test_listen_fds_only_for_our_own_pid(env: dict[str, str], want: int,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LISTEN_PID", raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, str(os.getpid()) if v == "SELF" else v)
    assert container._listen_fds() == want


def test_pipes_copy_both_ways_and_wait_for_every_holder() -> None:
    """In a subprocess (the copy uses our fds 0-2): a child holds the pipes' stdout after
    the first writer exits; drain() returns only when it is done too."""
    code = r'''
import os, sys, time
from pyruntime.stdio import Pipes
p = Pipes()
in_r, out_w, err_w = p.child
pid = os.fork()
if pid == 0:
    os.dup2(in_r, 0); os.dup2(out_w, 1); os.dup2(err_w, 2)
    data = b""
    while not data.endswith(b"END\n"):
        data += os.read(0, 1 << 20)
    os.write(1, b"got %d bytes\n" % len(data))
    os.write(2, b"to stderr\n")
    if os.fork() == 0:          # a straggler that keeps stdout open for a while
        time.sleep(0.5); os.write(1, b"late\n"); os._exit(0)
    os._exit(3)
p.copy_until_exit(pid)
_, status = os.waitpid(pid, 0)
p.drain()
p.close()
sys.stdout.write("status %d\n" % os.waitstatus_to_exitcode(status))
'''
    big = "x" * 300_000 + "END\n"  # more than a pipe holds: the copy must not block on it
    p = subprocess.run([sys.executable, "-c", code], input=big, capture_output=True,
                       text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    assert p.stdout == f"got {len(big)} bytes\nlate\nstatus 3\n"
    assert p.stderr == "to stderr\n"


def test_pipes_close_before_start_leaves_nothing_open() -> None:
    before = set(os.listdir("/proc/self/fd"))
    p = stdio.Pipes()
    p.close()
    p.close()
    assert set(os.listdir("/proc/self/fd")) == before


def test_await_gives_up_on_a_stopped_process() -> None:
    from pyruntime import sync

    parent, child = sync.Channel.pair()
    victim = subprocess.Popen(["sleep", "30"])
    try:
        os.kill(victim.pid, 19)  # SIGSTOP, as the container would
        start = time.monotonic()
        with pytest.raises(RuntimeErr, match="stopped during setup"):
            exec_mod._await(parent, sync.READY, [victim.pid], time.monotonic() + 30)
        assert time.monotonic() - start < exec_mod.STOPPED_GRACE + 3
        with pytest.raises(RuntimeErr, match="not ready within"):
            exec_mod._await(parent, sync.READY, [], time.monotonic() + 0.3)
        child.send(sync.READY)
        assert exec_mod._await(parent, sync.READY, [victim.pid], time.monotonic() + 0.3)["type"] == sync.READY
    finally:
        victim.kill()
        victim.wait()
        parent.close()
        child.close()


def test_pipes_are_owned_by_the_containers_root() -> None:
    """runc chowns the stdio pipes to the host uid/gid that the container's root maps to."""
    from pyruntime.spec import IDMapping

    maps = [IDMapping(container_id=1, host_id=200000, size=10),
            IDMapping(container_id=0, host_id=100000, size=1)]
    assert init._host_root(maps) == 100000
    assert init._host_root([IDMapping(container_id=0, host_id=5000, size=65536)]) == 5000
    assert init._host_root([]) == 0
