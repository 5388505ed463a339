"""Container records, status derivation, ps's columns, logs joining, conmon's argv: no root."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from pyruntime.dockee import logs, monitor
from pyruntime.dockee.cli_containers import render_template, rewrite_seed_args, stats_sample
from pyruntime.dockee.containers import Containers, derive_status, human_duration, status_text
from pyruntime.dockee.errors import Conflict, DockeeError, NotFound
from pyruntime.dockee.overlay import mount_points, options
from pyruntime.dockee.store import Store

STARTED = {"started_at": 100.0, "generation": 1}


@pytest.mark.parametrize(("rec", "state", "exit_info", "expected"), [
    ({}, None, None, ("created", None, None)),
    (STARTED, {"status": "running"}, None, ("running", None, None)),
    (STARTED, {"status": "paused"}, None, ("paused", None, None)),
    (STARTED, {"status": "stopped"}, (3, 200.0), ("exited", 3, 200.0)),
    (STARTED, None, (137, 200.0), ("exited", 137, 200.0)),
    (STARTED, None, None, ("exited", -1, None)),  # a reboot, monitor and state gone
    ({**STARTED, "finished_at": 150.0, "finished_generation": 1, "exit_code": 0}, {"status": "running"}, None,
     ("exited", 0, 150.0)),
    ({**STARTED, "generation": 2, "finished_at": 150.0, "finished_generation": 1, "exit_code": 0},
     {"status": "running"}, None, ("running", None, None)),  # restarted: the old finish no longer counts
], ids=["never-started", "running", "paused", "exit-file", "state-gone-exit-file", "state-gone", "recorded",
        "restarted"])
def test_derive_status(rec: dict[str, Any], state: dict[str, Any] | None, exit_info: tuple[int, float] | None,
                       expected: tuple[str, int | None, float | None]) -> None:
    assert derive_status(rec, state, exit_info) == expected


@pytest.mark.parametrize(("seconds", "text"), [
    (0.2, "Less than a second"), (1, "1 second"), (42, "42 seconds"), (61, "About a minute"),
    (600, "10 minutes"), (3600, "About an hour"), (7200, "2 hours"), (86400 * 3, "3 days"),
    (86400 * 21, "3 weeks"),
])
def test_human_duration(seconds: float, text: str) -> None:
    assert human_duration(seconds) == text


def test_status_text_uses_the_stored_finish_time() -> None:
    now = 1000.0
    assert status_text("exited", 137, 100.0, 995.0, now) == "Exited (137) 5 seconds ago"
    assert status_text("running", None, 820.0, None, now) == "Up 3 minutes"
    assert status_text("paused", None, 999.5, None, now) == "Up Less than a second (Paused)"
    assert status_text("created", None, None, None, now) == "Created"
    assert status_text("exited", None, 100.0, None, now) == "Exited (-1)"


def test_records_names_and_prefixes(tmp_path: Path) -> None:
    c = Containers(Store(tmp_path).ensure())
    a = {"id": "ab" + "0" * 62, "name": "web", "created": 1}
    b = {"id": "ac" + "1" * 62, "name": "", "created": 2}
    c.reserve(a)
    c.reserve(b)
    assert b["name"] and b["name"] != "web"  # generated
    assert c.resolve("web") == a["id"]
    assert c.resolve("ab") == a["id"]
    assert c.resolve(b["name"]) == b["id"]
    with pytest.raises(DockeeError, match="ambiguous"):
        c.resolve("a")
    with pytest.raises(NotFound):
        c.resolve("nosuch")
    with pytest.raises(Conflict, match="already in use"):
        c.reserve({"id": "f" * 64, "name": "web"})
    assert not c.dir("f" * 64).exists()
    with pytest.raises(DockeeError, match="--name"):
        c.reserve({"id": "e" * 64, "name": "bad/name"})
    assert [r["id"] for r in c.all()] == [b["id"], a["id"]]  # newest first
    c.forget(a["id"])
    with pytest.raises(NotFound):
        c.resolve("web")


def test_concurrent_reserve_of_one_name_has_one_winner(tmp_path: Path) -> None:
    c = Containers(Store(tmp_path).ensure())
    results: list[str] = []

    def one(i: int) -> None:
        try:
            c.reserve({"id": f"{i:064x}", "name": "same", "created": i})
            results.append("ok")
        except Conflict:
            results.append("conflict")
    threads = [threading.Thread(target=one, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == ["conflict"] * 7 + ["ok"]


def test_exit_file_and_oom(tmp_path: Path) -> None:
    c = Containers(Store(tmp_path).ensure())
    cid = "9" * 64
    c.reserve({"id": cid, "name": "x"})
    assert c.read_exit(cid) is None and not c.oom_killed(cid)
    (c.dir(cid) / "exits").mkdir()
    (c.dir(cid) / "exits" / cid).write_text("137")
    (c.dir(cid) / "persist").mkdir()
    (c.dir(cid) / "persist" / "oom").touch()
    code, when = c.read_exit(cid) or (None, 0)
    assert code == 137 and abs(when - time.time()) < 60
    assert c.oom_killed(cid)


def test_log_partial_chunks_are_joined(tmp_path: Path) -> None:
    p = tmp_path / "ctr.log"
    p.write_bytes(b"2026-01-01T00:00:00.1+00:00 stdout P aaaa\n"
                  b"2026-01-01T00:00:00.2+00:00 stderr F oops\n"
                  b"2026-01-01T00:00:00.3+00:00 stdout F bbbb\n"
                  b"2026-01-01T00:00:00.4+00:00 stdout F \n"
                  b"2026-01-01T00:00:00.5+00:00 stdout F half-writ")
    entries, offset = logs.read_entries(p)
    assert [(e.stream, e.data) for e in entries] == [("stderr", b"oops\n"), ("stdout", b"aaaabbbb\n"),
                                                      ("stdout", b"\n")]
    assert entries[1].time.endswith("00.1+00:00")
    assert offset == p.read_bytes().rfind(b"\n") + 1


def test_follow_drains_after_the_container_stopped(tmp_path: Path) -> None:
    p = tmp_path / "ctr.log"
    p.write_bytes(b"t stdout F one\n")
    state = {"alive": True}

    def writer() -> None:
        time.sleep(0.2)
        with open(p, "ab") as f:
            f.write(b"t stdout F two\nt stdout P thr\nt stdout F e")
            f.flush()
            time.sleep(0.1)  # a line half-written when follow reads
            f.write(b"e\nt stdout F four\n")
        state["alive"] = False
    threading.Thread(target=writer).start()
    got = [e.data for e in logs.follow(p, lambda: state["alive"], start_at=0, poll=0.02)]
    assert got == [b"one\n", b"two\n", b"three\n", b"four\n"]


@pytest.mark.parametrize(("args", "expected"), [
    (["-it", "--name", "res1", "--image", "res_test", "-m", "10m", "-cpuset", "0", "-cpu", "20", "/bin/bash"],
     ["-it", "--name", "res1", "--image", "res_test", "-m", "10m", "--cpuset", "0", "--cpu", "20", "/bin/bash"]),
    (["busybox", "ls", "-cpu"], ["busybox", "ls", "-cpu"]),  # the command's own arguments stay
    (["-e", "-cpu", "busybox"], ["-e", "-cpu", "busybox"]),  # a value is not an option
    (["-idt", "--memory", "50m", "centos", "ps", "ef"], ["-idt", "--memory", "50m", "centos", "ps", "ef"]),
])
def test_rewrite_seed_args(args: list[str], expected: list[str]) -> None:
    assert rewrite_seed_args(args) == expected


@pytest.mark.parametrize(("message", "code"), [
    ('exec: "nosuch": executable file not found in $PATH', 127),
    ('runc create failed: unable to start container process: exec: "/etc/passwd": permission denied', 126),
    ('exec: "/x/y": stat /x/y: no such file or directory', 127),
    ("cgroup: no such controller", None),
])
def test_command_exit_codes(message: str, code: int | None) -> None:
    assert monitor.command_exit_code(message) == code
    assert monitor.CreateFailed(message).exit_code == (code or 125)


def test_conmon_argv() -> None:
    s = monitor.ConmonSpec(cid="c1", name="web", bundle=Path("/b"), runtime="/usr/bin/runc",
                           runtime_args=["--root", "/r"], log_path=Path("/b/ctr.log"),
                           exit_command=["/bin/dockee-shim", "--root", "/s", "_exited", "c1"], tty=True, stdin=True)
    argv = monitor.conmon_argv(s)
    assert argv[:9] == ["conmon", "--api-version", "1", "-c", "c1", "-u", "c1", "-r", "/usr/bin/runc"]
    text = " ".join(argv)
    for part in ("-b /b", "--exit-dir /b/exits", "--full-attach", "-l k8s-file:/b/ctr.log",
                 "--persist-dir /b/persist", "--conmon-pidfile /b/conmon.pid", " -t", " -i",
                 "--runtime-arg --root --runtime-arg /r", "--exit-command /bin/dockee-shim",
                 "--exit-command-arg _exited --exit-command-arg c1"):
        assert part in text


def test_overlay_options_top_layer_first() -> None:
    assert options([Path("/l0"), Path("/l1")], Path("/u"), Path("/w")) == "lowerdir=/l1:/l0,upperdir=/u,workdir=/w"
    with pytest.raises(DockeeError, match="overlayfs"):
        options([Path("/a:b")], Path("/u"), Path("/w"))


def test_mountinfo_escapes() -> None:
    info = "36 35 98:0 / /mnt/with\\040space rw - ext4 /dev/x rw\n37 35 98:0 / /plain rw - ext4 /dev/x rw\n"
    assert mount_points(info) == ["/mnt/with space", "/plain"]


def test_render_template() -> None:
    doc = {"State": {"ExitCode": 137, "OOMKilled": True}, "Name": "web", "Config": {"Env": ["A=1"]}}
    assert render_template("{{.State.ExitCode}} {{.State.OOMKilled}} {{.Name}}", doc) == "137 true web"
    assert json.loads(render_template("{{json .Config}}", doc)) == {"Env": ["A=1"]}
    with pytest.raises(DockeeError, match="--format"):
        render_template("{{.Nope}}", doc)


def test_stats_memory_excludes_inactive_file() -> None:
    data = {"cpu": {"usage": {"total": 5}}, "pids": {"current": 3},
            "memory": {"usage": {"usage": 10 << 20, "limit": 16 << 20}, "raw": {"total_inactive_file": 4 << 20}}}
    assert stats_sample(data) == (5, 6 << 20, 16 << 20, 3)


def test_cgroup_dirs_of_a_relative_path() -> None:
    from pyruntime.dockee.lifecycle import cgroup_dirs

    proc = "9:name=systemd:/\n4:memory:/api/abc\n2:cpu,cpuacct:/\n0::/\n"
    got = [str(p) for p in cgroup_dirs("dockee-x", proc, Path("/cg"))]
    assert got == ["/cg/systemd/dockee-x", "/cg/memory/api/abc/dockee-x", "/cg/cpu/dockee-x",
                   "/cg/cpuacct/dockee-x", "/cg/unified/dockee-x", "/cg/dockee-x"]
    assert cgroup_dirs("/abs/path", proc) == [] and cgroup_dirs("a/../../x", proc) == []
