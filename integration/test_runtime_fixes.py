"""Runtime bugs users found, each checked beside runc."""

from __future__ import annotations

import os
import stat
import subprocess

import pytest
from harness import wait_until

from conftest import Runtime, base_config


@pytest.mark.parametrize("which", ["pyrt", "runc"])
def test_a_duplicate_create_says_only_that_the_id_exists(
        which: str, request: pytest.FixtureRequest) -> None:
    rt: Runtime = request.getfixturevalue(which)
    bundle = rt.bundle(base_config(["sleep", "100"]))
    cid = rt.new_id()
    rt("create", "--bundle", str(bundle), cid, check=True)
    first = rt.state(cid)

    # the same bundle, so the same (now busy) cgroup: the id is checked before the cgroup
    again = rt("create", "--bundle", str(bundle), cid)
    assert again.returncode == 1
    lines = again.stderr.splitlines()
    assert len(lines) == 1, again.stderr
    if which == "pyrt":
        assert lines[0] == f"pyruntime: container with id exists: {cid}"
    else:  # runc 1.1: "runc create failed: container with given ID already exists"
        assert "exists" in lines[0]

    # the first container is untouched: same init, still created, and it starts
    after = rt.state(cid)
    assert (after["status"], after["pid"]) == ("created", first["pid"])
    rt("start", cid, check=True)
    assert rt.state(cid)["status"] == "running"


@pytest.mark.parametrize("which", ["pyrt", "runc"])
def test_a_missing_cwd_is_made_even_on_a_read_only_root(
        which: str, request: pytest.FixtureRequest) -> None:
    rt: Runtime = request.getfixturevalue(which)
    cfg = base_config(["pwd"])
    cfg["process"]["cwd"] = "/newdir/sub"
    cfg["root"]["readonly"] = True
    bundle = rt.bundle(cfg)
    p = rt("run", "--bundle", str(bundle), rt.new_id())
    assert (p.returncode, p.stdout) == (0, "/newdir/sub\n"), p.stderr
    made = os.stat(bundle / "rootfs" / "newdir" / "sub")
    assert (stat.S_IMODE(made.st_mode), made.st_uid) == (0o755, 0)


@pytest.mark.parametrize("which", ["pyrt", "runc"])
def test_a_foreground_run_deleted_elsewhere_exits_137(
        which: str, request: pytest.FixtureRequest) -> None:
    """`delete --force` from another shell kills init: the foreground `run` reports it as
    a SIGKILL (128+9), as runc does, not as a failure of its own."""
    rt: Runtime = request.getfixturevalue(which)
    bundle = rt.bundle(base_config(["sleep", "100"]))
    cid = rt.new_id()
    with subprocess.Popen([rt.binary, "--root", str(rt.root), "run", "--bundle", str(bundle), cid],
                          stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True) as fg:
        try:
            assert wait_until(lambda: rt("state", cid).returncode == 0
                       and rt.state(cid)["status"] == "running", timeout=20)
            rt("delete", "--force", cid, check=True)
            _, err = fg.communicate(timeout=30)
        finally:
            if fg.poll() is None:
                fg.kill()
    assert fg.returncode == 137, err
    assert rt("state", cid).returncode != 0
