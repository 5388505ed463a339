"""The foreground terminal proxy (`run` with process.terminal, `exec -t`) in a real terminal.

A private tmux server gives the runtime a terminal of a known size that the test can resize;
the shell in the container reports `stty size`.  runc runs the same steps as the reference.
"""

from __future__ import annotations

import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import Runtime, base_config

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux not installed")


class Tmux:
    """One tmux server on a private socket (never the user's), one session in it."""

    def __init__(self, socket: Path) -> None:
        self.socket = socket

    def __call__(self, *args: str) -> str:
        p = subprocess.run(["tmux", "-S", str(self.socket), "-f", "/dev/null", *args],
                           capture_output=True, text=True, timeout=10)
        return p.stdout

    def start(self, command: str, width: int, height: int) -> None:
        self("new-session", "-d", "-s", "t", "-x", str(width), "-y", str(height), command)

    def screen(self) -> str:
        return self("capture-pane", "-p", "-t", "t", "-S", "-100")

    def wait_for(self, text: str, timeout: float = 15) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.screen():
            if time.monotonic() > deadline:
                raise AssertionError(f"{text!r} not on the screen:\n{self.screen()}")
            time.sleep(0.1)

    def answer(self, tag: str, timeout: float = 15) -> str:
        """The rest of the line that starts with `tag=` (the output, not the typed command)."""
        deadline = time.monotonic() + timeout
        while True:
            for line in self.screen().splitlines():
                if line.startswith(f"{tag}="):
                    return line[len(tag) + 1:].strip()
            if time.monotonic() > deadline:
                raise AssertionError(f"no answer {tag}= on the screen:\n{self.screen()}")
            time.sleep(0.1)

    def size_inside(self, want: str, timeout: float = 15) -> None:
        """Ask the container's shell for its terminal size until it answers `want`: a resize
        reaches the container's pty asynchronously (tmux -> runtime -> pty), so one answer
        may predate it; a proxy that ignores resizes never answers `want`."""
        deadline = time.monotonic() + timeout
        while True:
            tag = f"S{uuid.uuid4().hex[:6]}"
            self("send-keys", "-t", "t", f"echo {tag}=$(stty size)", "Enter")
            answer = self.answer(tag)
            if answer == want:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"the size inside is not {want}:\n{self.screen()}")
            time.sleep(0.3)

    def kill(self) -> None:
        self("kill-server")
        self.socket.unlink(missing_ok=True)


@pytest.fixture
def tmux(tmp_path: Path) -> Iterator[Tmux]:
    t = Tmux(tmp_path / "tmux.sock")
    yield t
    t.kill()


def _resizes_follow(tmux: Tmux, command: str) -> None:
    tmux.start(command, 90, 25)
    # typing before the shell is up would be lost: the runtime's raw mode flushes pending input
    tmux.wait_for("built-in shell")
    tmux.size_inside("25 90", timeout=0)  # the caller's size from the start
    tmux("resize-window", "-t", "t", "-x", "70", "-y", "15")
    tmux.size_inside("15 70")
    tmux("resize-window", "-t", "t", "-x", "100", "-y", "30")
    tmux.size_inside("30 100")


def _terminal_config() -> dict[str, Any]:
    config = base_config(["sh"])
    config["process"]["terminal"] = True
    config["process"]["env"].append("PS1=$ ")
    return config


@pytest.mark.parametrize("which", ["pyrt", "runc"])
def test_foreground_run_follows_the_callers_terminal_size(
        which: str, tmux: Tmux, request: pytest.FixtureRequest) -> None:
    rt: Runtime = request.getfixturevalue(which)
    bundle = rt.bundle(_terminal_config())
    cid = rt.new_id()
    _resizes_follow(tmux, f"{rt.binary} --root {rt.root} run --bundle {bundle} {cid}")
    tmux("send-keys", "-t", "t", "exit", "Enter")


@pytest.mark.parametrize("which", ["pyrt", "runc"])
def test_foreground_exec_t_follows_the_callers_terminal_size(
        which: str, tmux: Tmux, request: pytest.FixtureRequest) -> None:
    rt: Runtime = request.getfixturevalue(which)
    bundle = rt.bundle(base_config(["sleep", "1000"]))
    cid = rt.new_id()
    rt("run", "-d", "--bundle", str(bundle), cid, check=True)
    _resizes_follow(tmux, f"{rt.binary} --root {rt.root} exec -t --env 'PS1=$ ' {cid} sh")
    tmux("send-keys", "-t", "t", "exit", "Enter")


def test_the_first_thing_a_container_sees_is_the_callers_size(tmux: Tmux, pyrt: Runtime) -> None:
    """The pty has the caller's size before the process starts, not only once the proxy
    runs: a `stty size` at once must not read 0 0.  (runc 1.1 resizes after the start and
    loses this race now and then: no reference here.)"""
    rt = pyrt
    config = _terminal_config()
    config["process"]["args"] = ["sh", "-c", "echo FIRST=$(stty size)"]
    bundle = rt.bundle(config)
    cid = rt.new_id()
    # the shell around keeps the pane (and the answer) after the container is gone
    tmux.start(f"sh -c '{rt.binary} --root {rt.root} run --bundle {bundle} {cid}; sleep 60'", 90, 25)
    assert tmux.answer("FIRST") == "25 90"
