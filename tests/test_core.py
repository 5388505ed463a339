"""Unit tests of the parent-side pieces: spec parsing, state facts, sync, hooks, CLI bits."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from pyruntime import state as st_mod
from pyruntime import sync
from pyruntime.defaults import default_spec
from pyruntime.errors import ChildError, ConfigError, ContainerNotExist, HookError, RuntimeErr
from pyruntime.hooks import run_hook
from pyruntime.signals import parse_signal
from pyruntime.spec import Hook, load_config, parse_spec


def test_parse_default_spec() -> None:
    spec = parse_spec(default_spec())
    assert spec.process is not None and spec.process.args == ("sh",)
    assert spec.root_path == "rootfs" and spec.root_readonly
    assert spec.linux.namespace("pid") is not None and spec.linux.namespace("user") is None
    assert spec.process.capabilities is not None
    assert "CAP_KILL" in (spec.process.capabilities.bounding or ())
    assert spec.mounts[0].destination == "/proc"


def test_parse_spec_names_the_field() -> None:
    doc = default_spec()
    doc["process"]["args"] = ["sh", 3]
    with pytest.raises(ConfigError, match=r"process.args\[1\]"):
        parse_spec(doc)
    doc = default_spec()
    doc["linux"]["namespaces"][1] = "net"
    with pytest.raises(ConfigError, match=r"linux.namespaces\[1\]"):
        parse_spec(doc)


def test_load_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config.json: no such file"):
        load_config(tmp_path)
    (tmp_path / "config.json").write_text("{nope")
    with pytest.raises(ConfigError, match="invalid JSON at line 1"):
        load_config(tmp_path)


def test_atomic_write_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "state.json"
    st_mod.atomic_write_json(target, {"a": 1})
    st_mod.atomic_write_json(target, {"a": 2})
    assert json.loads(target.read_text()) == {"a": 2}
    assert os.listdir(tmp_path) == ["state.json"]


def test_status_is_derived_from_facts(tmp_path: Path) -> None:
    me = os.getpid()
    start = st_mod.proc_start_time(me)
    assert start is not None
    st = st_mod.State(id="x", bundle="/b", rootfs="/b/rootfs", created="now", pid=me, pid_start=start)
    assert st_mod.status(st, tmp_path) == st_mod.RUNNING
    os.mkfifo(tmp_path / st_mod.FIFO)
    assert st_mod.status(st, tmp_path) == st_mod.CREATED
    # the same pid with another start time is someone else: the container is stopped
    st.pid_start = start + 1
    assert st_mod.status(st, tmp_path) == st_mod.STOPPED
    st.pid = 0x3FFFFFFF
    assert st_mod.status(st, tmp_path) == st_mod.STOPPED


def test_store_load_missing_and_ids(tmp_path: Path) -> None:
    store = st_mod.Store(tmp_path)
    with pytest.raises(ContainerNotExist, match="container does not exist"):
        store.load("nope")
    with pytest.raises(RuntimeErr, match="invalid container id"):
        store.dir("../etc")
    (tmp_path / "half").mkdir()  # a create killed before it saved anything
    assert store.load("half").pid == 0
    assert store.ids() == ["half"]


def test_sync_roundtrip_and_errors() -> None:
    a, b = sync.Channel.pair()
    r, w = os.pipe()
    a.send(sync.CONSOLE, fds=[r], note="x")
    msg = b.wait_for(sync.CONSOLE)
    assert msg["note"] == "x" and len(msg["_fds"]) == 1
    assert stat.S_ISFIFO(os.fstat(msg["_fds"][0]).st_mode)
    a.send(sync.READY)
    with pytest.raises(sync.UnexpectedMessage, match="expected hooks, received ready"):
        b.wait_for(sync.HOOKS)
    a.error("exec: foo: executable file not found in $PATH")
    with pytest.raises(ChildError, match="executable file not found"):
        b.wait_for(sync.READY)
    a.close()
    with pytest.raises(ChildError, match="exited unexpectedly"):
        b.wait_for(sync.READY)
    for fd in (r, w, msg["_fds"][0]):
        os.close(fd)


def test_hook_gets_state_on_stdin_and_env(tmp_path: Path) -> None:
    out = tmp_path / "out"
    script = tmp_path / "hook.sh"
    script.write_text(f'#!/bin/sh\ncat > {out}\necho "$FOO" >> {out}\n')
    script.chmod(0o755)
    run_hook(Hook(path=str(script), args=("hook.sh",), env=("FOO=bar",)), {"id": "c1"}, "prestart", 0)
    text = out.read_text()
    assert text == json.dumps({"id": "c1"}) + "bar\n"


def test_hook_failure_and_timeout(tmp_path: Path) -> None:
    with pytest.raises(HookError, match=r"hooks.poststop\[2\]: exit status 3: boom"):
        run_hook(Hook(path="/bin/sh", args=("sh", "-c", "echo boom >&2; exit 3")), {}, "poststop", 2)
    with pytest.raises(HookError, match="timed out after 1s"):
        run_hook(Hook(path="/bin/sleep", args=("sleep", "10"), timeout=1), {}, "prestart", 0)
    with pytest.raises(HookError, match="no such file"):
        run_hook(Hook(path="/nonexistent/hook"), {}, "prestart", 0)


@pytest.mark.parametrize("text,num", [("KILL", 9), ("SIGTERM", 15), ("9", 9), ("hup", 1)])
def test_parse_signal(text: str, num: int) -> None:
    assert parse_signal(text) == num


def test_parse_signal_rejects() -> None:
    for bad in ("SIGNOPE", "-1", "99"):
        with pytest.raises(RuntimeErr, match="invalid signal"):
            parse_signal(bad)


def test_corrupt_state_is_one_line_and_force_deletable(tmp_path: Path) -> None:
    from pyruntime.container import Runtime
    from pyruntime.errors import CorruptState

    (tmp_path / "c1").mkdir()
    (tmp_path / "c1" / "state.json").write_text("{bad")
    with pytest.raises(CorruptState, match="c1/state.json: corrupt state"):
        st_mod.Store(tmp_path).load("c1")
    rt = Runtime(tmp_path)
    with pytest.raises(CorruptState):
        rt.delete("c1")
    rt.delete("c1", force=True)
    assert not (tmp_path / "c1").exists()


# What the configuration side of create/run/exec may not import on a valid config, however
# rich: each costs milliseconds of every call (issue 11).  The rare branches (a malformed
# file, a seccomp listener, an invalid document's message) may import them.
_HEAVY = {"pathlib", "re", "typing", "enum", "json", "socket", "urllib", "ipaddress",
          "dataclasses", "functools", "collections", "contextlib", "signal", "fnmatch",
          "warnings", "copy", "shlex", "string", "tempfile", "subprocess", "prctl", "logging"}

_CONFIG_SIDE = """
import sys
sys.path[0:0] = sys.argv[2:]
from pyruntime.fastjson import dumps, loads
from pyruntime.spec import load_config, parse_spec
from pyruntime.validate import validate_config
from pyruntime.labels import with_mount_labels
from pyruntime import capabilities, devices, features, hooks, log, mounts, paths, rootless, seccomp
bundle = sys.argv[1]
doc = load_config(bundle)
validate_config(doc, bundle)
spec = parse_spec(with_mount_labels(doc))
flt = seccomp.compile_filter(spec.linux.seccomp)
flt.prepare()
flt.release()
capabilities.CapabilityPlan(spec.process.capabilities)
hooks.run_hook(spec.hooks.poststart[0], {"id": "x", "pid": 1}, "poststart", 0)
mounts.parse_mount_options(spec.mounts[0].options)
log.Logger(bundle + "/log.json", "json").write("warning", "w")
print(dumps(sorted(m for m in sys.modules if m.split(".")[0] in HEAVY)))
"""


def test_config_side_imports_nothing_heavy(tmp_path: Path) -> None:
    import subprocess
    import sys

    from configs import full_config

    doc = full_config()
    doc["process"].pop("apparmorProfile", None)  # the host's AppArmor is not the question
    doc["hooks"] = {"poststart": [{"path": "/bin/true", "timeout": 5}]}
    (tmp_path / "rootfs").mkdir()
    (tmp_path / "config.json").write_text(json.dumps(doc))
    repo = str(Path(__file__).resolve().parents[1])
    site = [p for p in sys.path if p.endswith("site-packages")]
    code = _CONFIG_SIDE.replace("HEAVY", repr(_HEAVY))
    out = subprocess.run([sys.executable, "-I", "-S", "-c", code, str(tmp_path), repo, *site],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == []
