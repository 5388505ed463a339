"""The verbs containerd and podman call per container import only an allow-list of modules.

Each heavy module (pathlib, re, typing, enum, json, socket, click, ...) costs milliseconds
of every call, and runc's whole `state` is a few milliseconds: a change that makes a hot
verb import one more module fails here, whatever the machine's speed (no timing).  The
verbs run for real, with -I -S as the launcher does, on a container faked in tmp_path: a
state.json whose init is a `sleep` of this test and whose freezer is a plain file.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# what CPython -I -S loads before any of our code, then what the hot verbs may add
STARTUP = {"_io", "marshal", "posix", "_frozen_importlib_external", "time", "zipimport",
           "_codecs", "codecs", "encodings.aliases", "encodings", "encodings.utf_8", "_signal",
           "_abc", "abc", "io", "__future__", "_stat", "stat", "_collections_abc",
           "genericpath", "posixpath", "os", "encodings.ascii", "encodings.latin_1"}
ALLOWED = STARTUP | {
    "pyruntime", "pyruntime.trace", "pyruntime.verbs", "pyruntime.main", "pyruntime.errors",
    "pyruntime.log", "pyruntime.record", "pyruntime.state", "pyruntime.fastjson",
    "pyruntime.syscalls", "pyruntime.syscalls.linux", "pyruntime.container",
    "pyruntime.signals", "pyruntime.listing", "pyruntime.control", "pyruntime.freezer",
    "gc", "select", "pwd", "_json", "errno", "atexit",
}
NEVER = {"pathlib", "re", "typing", "enum", "json", "socket", "urllib", "dataclasses", "click",
         "subprocess", "pyruntime.cli", "pyruntime.cgroups", "pyruntime.spec"}


def _imports(root: Path, *argv: str) -> tuple[set[str], subprocess.CompletedProcess[str]]:
    code = ("import sys\n"
            f"sys.path[0:0] = [{str(REPO)!r}]\n"
            f"sys.argv = ['pyruntime', '--root', {str(root)!r}, *{list(argv)!r}]\n"
            "from pyruntime.main import main\n"
            "main()\n")
    env = {k: v for k, v in os.environ.items() if k != "PYRUNTIME_SLOW_CLI"}
    proc = subprocess.run([sys.executable, "-I", "-S", "-X", "importtime", "-c", code],
                          capture_output=True, text=True, env=env, timeout=60)
    names = {line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines()
             if line.startswith("import time:") and "imported package" not in line}
    return names, proc


@pytest.fixture
def fake_container(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """--root with one running container: init is a sleep of ours, the freezer a file."""
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        with open(f"/proc/{sleeper.pid}/stat") as f:
            start = int(f.read().rsplit(")", 1)[1].split()[19])
        root, cid = tmp_path / "root", "c1"
        freezer = tmp_path / "freezer"
        freezer.mkdir(parents=True)
        (freezer / "freezer.state").write_text("THAWED")  # cgroupfs: no O_TRUNC needed
        (root / cid).mkdir(parents=True)
        state = {"id": cid, "bundle": str(tmp_path), "rootfs": str(tmp_path), "pid": sleeper.pid,
                 "pid_start": start, "created": "2026-01-01T00:00:00Z", "annotations": {},
                 "cgroup": {"version": 1, "id": cid, "mode": "v1",
                            "paths": {"freezer": str(freezer)}, "mounts": {}},
                 "config": {"ociVersion": "1.2.0"}, "owner": ""}
        (root / cid / "state.json").write_text(json.dumps(state))
        yield root, cid
    finally:
        sleeper.kill()
        sleeper.wait()


@pytest.mark.parametrize("argv", [["state", "{cid}"], ["list"], ["list", "-q"],
                                  ["list", "--format", "json"], ["pause", "{cid}"],
                                  ["kill", "{cid}", "0"]])
def test_hot_verbs_import_only_the_allow_list(fake_container: tuple[Path, str],
                                              argv: list[str]) -> None:
    root, cid = fake_container
    names, proc = _imports(root, *(a.format(cid=cid) for a in argv))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "pyruntime.main" in names, "the verb did not run through main.py"
    assert not names & NEVER, sorted(names & NEVER)
    assert names <= ALLOWED, sorted(names - ALLOWED)
    if argv[0] in ("state", "list", "pause"):  # they only read state: no Runtime, no syscalls
        assert not names & {"pyruntime.container", "pyruntime.syscalls.linux"}, sorted(names)


def test_pause_then_resume_through_the_lean_freezer(fake_container: tuple[Path, str]) -> None:
    root, cid = fake_container
    freezer_state = root.parent / "freezer" / "freezer.state"
    _, proc = _imports(root, "pause", cid)
    assert proc.returncode == 0 and freezer_state.read_text() == "FROZEN"
    names, proc = _imports(root, "resume", cid)
    assert proc.returncode == 0 and freezer_state.read_text() == "THAWED"
    assert names <= ALLOWED, sorted(names - ALLOWED)
    # resume of a container that is not paused: one line, no traceback
    _, proc = _imports(root, "resume", cid)
    said = [ln for ln in proc.stderr.splitlines() if not ln.startswith("import time:")]
    assert proc.returncode != 0 and said == ["pyruntime: container not paused"]
