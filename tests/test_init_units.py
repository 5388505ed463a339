"""Unit tests of init's pure helpers (no namespaces needed)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pyruntime import init
from pyruntime.errors import ChildError, ConfigError
from pyruntime.syscalls.fake import FakeSyscalls


def test_environment_sets_home_from_passwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env = init._environment(["PATH=/bin", "A=b=c"], 0)
    assert env["PATH"] == "/bin" and env["A"] == "b=c" and "HOME" in env
    with pytest.raises(ConfigError, match="process.env: invalid entry 'NOEQUALS'"):
        init._environment(["NOEQUALS"], 0)
    assert init._environment(["HOME=/h"], 0)["HOME"] == "/h"


def test_look_path(tmp_path: Path) -> None:
    exe = tmp_path / "bin" / "tool"
    exe.parent.mkdir()
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    (tmp_path / "bin" / "plain").write_text("not executable")
    path = f"/nonexistent:{tmp_path / 'bin'}"
    assert init._look_path("tool", {"PATH": path}) == str(exe)
    assert init._look_path(str(exe), {}) == str(exe)
    # runc's words (Go's exec.LookPath), which podman maps to 127 and 126
    with pytest.raises(ChildError, match=r'exec: "plain": executable file not found in \$PATH'):
        init._look_path("plain", {"PATH": path})
    with pytest.raises(ChildError, match='exec: "/nope/x": stat /nope/x: no such file or directory'):
        init._look_path("/nope/x", {})
    for there in (tmp_path / "bin" / "plain", tmp_path / "bin"):
        with pytest.raises(ChildError, match=f'exec: "{there}": permission denied'):
            init._look_path(str(there), {})


def test_time_offsets_format(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    written: dict[str, str] = {}

    class Sink:
        def __init__(self, path: str, mode: str) -> None:
            self.path = path

        def __enter__(self) -> Sink:
            return self

        def __exit__(self, *exc: object) -> None:
            pass

        def write(self, text: str) -> None:
            written[self.path] = text

    monkeypatch.setattr("builtins.open", Sink)
    init._write_time_offsets({"monotonic": (5, 0), "boottime": (86400, 7)})
    assert written == {"/proc/self/timens_offsets": "monotonic 5 0\nboottime 86400 7\n"}


def test_signals_the_libc_refuses_go_through_the_raw_syscall() -> None:
    fake = FakeSyscalls()
    pid = os.fork()
    if pid == 0:  # in a child: this resets the test process's own signal dispositions
        try:
            init._unblock_signals(fake)  # type: ignore[arg-type]
            os._exit(0 if ("default_signal", (32,)) in fake.calls else 3)
        except BaseException:
            os._exit(4)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def test_fail_names_the_step() -> None:
    from pyruntime import sync

    a, b = sync.Channel.pair()
    init._at("setting up the terminal")
    init._fail(a, OSError(1, "Operation not permitted"))
    with pytest.raises(ChildError, match="^setting up the terminal: Operation not permitted$"):
        b.wait_for(sync.READY)
    a.close()
    b.close()
