"""Unit tests of the rootless decisions (pyruntime/rootless.py, spec --rootless): no root,
no real user; files under tmp_path stand in for /etc/subuid, cgroup trees and /proc."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from pyruntime import rootless
from pyruntime.cgroups import manager_from_record
from pyruntime.defaults import default_spec
from pyruntime.errors import ChildError, ConfigError, RuntimeErr
from pyruntime.main import state_root
from pyruntime.spec import parse_spec

UID, GID = 1234, 1235


# --- spec --rootless ------------------------------------------------------------------


def test_spec_rootless_is_runcs_template() -> None:
    doc = default_spec(rootless=True)
    lx = doc["linux"]
    types = [ns["type"] for ns in lx["namespaces"]]
    assert "network" not in types and types[-1] == "user" and types.count("user") == 1
    assert lx["uidMappings"] == [{"containerID": 0, "hostID": os.geteuid(), "size": 1}]
    assert lx["gidMappings"] == [{"containerID": 0, "hostID": os.getegid(), "size": 1}]
    assert "resources" not in lx
    sys_mount = next(m for m in doc["mounts"] if m["destination"] == "/sys")
    assert sys_mount == {"destination": "/sys", "type": "none", "source": "/sys",
                         "options": ["rbind", "nosuid", "noexec", "nodev", "ro"]}
    devpts = next(m for m in doc["mounts"] if m["type"] == "devpts")
    assert not any(o.startswith(("gid=", "uid=")) for o in devpts["options"])
    # everything else is the default spec's
    plain = default_spec()
    assert [m["destination"] for m in doc["mounts"]] == [m["destination"] for m in plain["mounts"]]
    assert doc["process"] == plain["process"]


def test_to_rootless_keeps_other_namespaces_and_maps_the_given_ids() -> None:
    doc = default_spec()
    rootless_doc = {**doc, "linux": dict(doc["linux"]), "mounts": list(doc["mounts"])}
    from pyruntime.defaults import to_rootless

    to_rootless(rootless_doc, 42, 43)
    assert rootless_doc["linux"]["uidMappings"][0]["hostID"] == 42
    assert rootless_doc["linux"]["gidMappings"][0]["hostID"] == 43
    assert {"pid", "ipc", "uts", "mount", "user"} == {ns["type"] for ns in rootless_doc["linux"]["namespaces"]}
    assert "resources" in doc["linux"]  # the input's linux object was not the one changed


# --- flags and the default root --------------------------------------------------------


@pytest.mark.parametrize("value,want", [(None, None), ("auto", None), ("true", True),
                                        ("TRUE", True), ("false", False), ("0", False)])
def test_parse_flag(value: Any, want: Any) -> None:
    assert rootless.parse_flag(value) is want


def test_parse_flag_refuses_anything_else() -> None:
    with pytest.raises(RuntimeErr, match=r"--rootless: invalid value 'maybe'"):
        rootless.parse_flag("maybe")


def test_default_root_rules(tmp_path: Path) -> None:
    assert rootless.default_root({"XDG_RUNTIME_DIR": "/x"}, euid=0) == ("/run/pyruntime", False)
    assert rootless.default_root({"XDG_RUNTIME_DIR": "/x"}, euid=UID) == ("/x/pyruntime", True)
    # no XDG_RUNTIME_DIR: /run/user/<uid> when it is the user's, else runc's /run/pyruntime
    mine = tmp_path / str(os.geteuid())
    mine.mkdir()
    assert rootless.default_root({}, euid=os.geteuid() or 1, run_user=str(tmp_path)) == (
        (str(mine / "pyruntime"), True) if os.geteuid() else ("/run/pyruntime", False))
    assert rootless.default_root({}, euid=UID, run_user=str(tmp_path)) == ("/run/pyruntime", False)


def test_prepare_root_is_private_and_sticky(tmp_path: Path) -> None:
    root = tmp_path / "xdg" / "pyruntime"
    rootless.prepare_root(str(root))
    assert root.stat().st_mode & 0o7777 == 0o1700


def test_state_root_for_root_costs_no_import(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    assert state_root({}) == ("/run/pyruntime", None)
    assert state_root({"--root": "/r"}) == ("/r", None)
    assert state_root({"--root": "/r", "--rootless": "true"}) == ("/r", True)


def test_state_root_for_a_user(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: UID)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    assert state_root({}) == (str(tmp_path / "pyruntime"), None)
    assert (tmp_path / "pyruntime").stat().st_mode & 0o7777 == 0o1700


# --- id mappings ------------------------------------------------------------------------


SUBUID = "someone:100000:65536\n1234:300000:1000\nbroken line\nother:500000:65536\n"


def test_parse_sub_ranges_by_name_and_uid() -> None:
    assert rootless.parse_sub_ranges(SUBUID, "someone", UID) == [
        rootless.Range(100000, 65536), rootless.Range(300000, 1000)]
    assert rootless.parse_sub_ranges(SUBUID, "nobody", 99) == []


def _spec(uid_maps: list[tuple[int, int, int]], gid_maps: list[tuple[int, int, int]] | None = None,
          **extra: Any) -> Any:
    doc = default_spec(rootless=True)
    doc["linux"]["uidMappings"] = [{"containerID": c, "hostID": h, "size": s} for c, h, s in uid_maps]
    doc["linux"]["gidMappings"] = [{"containerID": c, "hostID": h, "size": s}
                                   for c, h, s in (gid_maps if gid_maps is not None else [(0, GID, 1)])]
    doc.update(extra)
    return parse_spec(doc)


@pytest.fixture
def subfiles(tmp_path: Path) -> dict[str, str]:
    (tmp_path / "subuid").write_text(f"{UID}:100000:65536\n")
    (tmp_path / "subgid").write_text(f"{UID}:200000:65536\n")
    return {"subuid": str(tmp_path / "subuid"), "subgid": str(tmp_path / "subgid")}


def _check(spec: Any, subfiles: dict[str, str], which: Any = lambda name: f"/usr/bin/{name}") -> None:
    rootless.check_config(spec, euid=UID, egid=GID, which=which, **subfiles)


def test_own_ids_need_nothing(subfiles: dict[str, str]) -> None:
    _check(_spec([(0, UID, 1)]), subfiles, which=lambda name: None)


def test_subordinate_ranges_need_the_helpers(subfiles: dict[str, str]) -> None:
    spec = _spec([(0, UID, 1), (1, 100000, 65536)], [(0, GID, 1), (1, 200000, 65536)])
    _check(spec, subfiles)
    with pytest.raises(ConfigError, match=r"linux.uidMappings: .* needs newuidmap"):
        _check(spec, subfiles, which=lambda name: None)


@pytest.mark.parametrize("maps,field,ids", [
    ([(0, UID + 1, 1)], "uidMappings", "1235-1235"),            # someone else's uid
    ([(0, UID, 1), (1, 100000, 65537)], "uidMappings", "100000-165536"),  # one past the range
    ([(0, 0, 1)], "uidMappings", "0-0"),                        # the host's root
])
def test_ids_not_owned_are_refused(subfiles: dict[str, str], maps: Any, field: str, ids: str) -> None:
    with pytest.raises(ConfigError, match=rf"linux.{field}: host ids {ids} are not the user's"):
        _check(_spec(maps), subfiles)


def test_gid_not_owned_is_refused(subfiles: dict[str, str]) -> None:
    with pytest.raises(ConfigError, match=r"linux.gidMappings: host ids 0-0"):
        _check(_spec([(0, UID, 1)], [(0, 0, 1)]), subfiles)


def test_no_user_namespace_is_refused(subfiles: dict[str, str]) -> None:
    doc = default_spec()
    with pytest.raises(ConfigError, match=r"linux.namespaces: a rootless container needs a user namespace"):
        _check(parse_spec(doc), subfiles)


def test_unmapped_gid_mount_option_is_refused(subfiles: dict[str, str]) -> None:
    doc = default_spec(rootless=True)
    doc["linux"]["uidMappings"][0]["hostID"] = UID
    doc["linux"]["gidMappings"][0]["hostID"] = GID
    doc["mounts"][2]["options"].append("gid=5")
    with pytest.raises(ConfigError, match=r"mounts\[/dev/pts\]: option gid=5"):
        _check(parse_spec(doc), subfiles)


def test_write_id_maps_through_the_helpers() -> None:
    calls: list[list[str]] = []

    class Done:
        returncode, stdout, stderr = 0, "", ""

    def run(args: list[str], **kw: Any) -> Done:
        calls.append(args)
        return Done()
    spec = _spec([(0, UID, 1), (1, 100000, 65536)], [(0, GID, 1), (1, 200000, 65536)])
    rootless.write_id_maps(77, spec, euid=UID, egid=GID, run=run)
    assert calls == [["newuidmap", "77", "0", str(UID), "1", "1", "100000", "65536"],
                     ["newgidmap", "77", "0", str(GID), "1", "1", "200000", "65536"]]


def test_write_id_maps_helper_failure_is_one_line() -> None:
    class Failed:
        returncode, stdout = 1, ""
        stderr = "newuidmap: uid range [1-65537) -> [100000-165536) not allowed\n"
    spec = _spec([(0, UID, 1), (1, 100000, 65536)])
    with pytest.raises(ChildError, match=r"linux.uidMappings: newuidmap 77 .*: newuidmap: uid range"):
        rootless.write_id_maps(77, spec, euid=UID, egid=GID, run=lambda *a, **k: Failed())


# --- cgroups ---------------------------------------------------------------------------


def test_asked_limits_ignore_devices_and_empty_fields() -> None:
    assert rootless.asked_limits({"devices": [{"allow": False, "access": "rwm"}], "memory": {},
                                  "pids": {"limit": 10}}) == ["pids"]


def _hybrid(tmp_path: Path) -> Any:
    paths, mounts = {}, {}
    for ctrl in ("memory", "pids", "freezer", "unified"):
        mount = tmp_path / ctrl
        (mount / "own").mkdir(parents=True)
        mounts[ctrl] = str(mount)
        paths[ctrl] = str(mount / "own" / "deleg" / "ctr")
    return manager_from_record({"version": 1, "id": "c", "mode": "hybrid", "paths": paths,
                                "mounts": mounts})


def _delegate(tmp_path: Path, *ctrls: str) -> Any:
    """An access() that grants write only below <ctrl>/own/deleg (made for the user)."""
    for c in ctrls:
        (tmp_path / c / "own" / "deleg").mkdir()

    def access(path: Any, mode: int) -> bool:
        return "/deleg" in str(path)
    return access


def test_usable_cgroups_keep_only_delegated_hierarchies(tmp_path: Path) -> None:
    warnings: list[str] = []
    manager = _hybrid(tmp_path)
    access = _delegate(tmp_path, "memory", "freezer")
    m = rootless.usable_cgroups(manager, {"memory": {"limit": 1 << 20}}, warnings.append,
                                access=access, proc_self_cgroup="0::/own\n")
    assert sorted(m.paths()) == ["freezer", "memory"]
    assert len(warnings) == 1 and "skipped: pids, unified" in warnings[0]


def test_limits_needing_an_undelegated_controller_are_an_error(tmp_path: Path) -> None:
    manager = _hybrid(tmp_path)
    access = _delegate(tmp_path, "memory")
    with pytest.raises(ConfigError, match=r"linux.resources.pids: cannot set this limit .* "
                                          r"the cgroup .*/pids/own/deleg/ctr is not delegated"):
        rootless.usable_cgroups(manager, {"pids": {"limit": 5}}, print, access=access,
                                proc_self_cgroup="")


def test_nothing_writable_and_no_limits_is_one_warning(tmp_path: Path) -> None:
    warnings: list[str] = []
    m = rootless.usable_cgroups(_hybrid(tmp_path), {"devices": []}, warnings.append,
                                access=lambda p, mode: False, proc_self_cgroup="")
    assert m.paths() == {}
    assert len(warnings) == 1 and "runs without one" in warnings[0]


def test_unified_needs_the_common_ancestor_writable(tmp_path: Path) -> None:
    """cgroup2 moves need write access where source and target meet."""
    (tmp_path / "unified" / "own" / "deleg").mkdir(parents=True)
    target = tmp_path / "unified" / "own" / "deleg" / "ctr"
    grant = lambda p, mode: "/deleg" in str(p)  # noqa: E731
    assert not rootless.writable_cgroup(target, tmp_path / "unified", True,
                                        tmp_path / "unified" / "elsewhere", grant)
    assert rootless.writable_cgroup(target, tmp_path / "unified", True,
                                    tmp_path / "unified" / "own" / "deleg" / "me", grant)


# --- processes without a cgroup --------------------------------------------------------


def test_pidns_members_from_proc(tmp_path: Path) -> None:
    proc = tmp_path / "proc"
    for pid, ns in (("self", "pid:[1]"), ("10", "pid:[2]"), ("11", "pid:[2]"), ("12", "pid:[1]")):
        (proc / pid / "ns").mkdir(parents=True)
        os.symlink(ns, proc / pid / "ns" / "pid")
    assert rootless.pidns_members(10, str(proc)) == [10, 11]
    assert rootless.pidns_members(12, str(proc)) == [12]  # shares ours: init alone
    assert rootless.pidns_members(99, str(proc)) == []
