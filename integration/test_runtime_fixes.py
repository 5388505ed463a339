"""Runtime bugs users found, each checked beside runc."""

from __future__ import annotations

import pytest

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
