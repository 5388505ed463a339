"""Unit tests of the small pure pieces: fast argv parser, flags -> process, sizes, cgroups."""

from __future__ import annotations

from pathlib import Path

import pytest

from pyruntime import main as fastcli
from pyruntime.capabilities import CapabilityPlan, to_numbers
from pyruntime.control import parse_bytes
from pyruntime.defaults import default_spec, effective_resources
from pyruntime.errors import ConfigError, RuntimeErr
from pyruntime.exec import process_from_flags, sub_cgroup_paths
from pyruntime.record import FrozenInstanceError, asdict, dataclass, field
from pyruntime.spec import Capabilities


def test_fast_parser_handles_what_containerd_sends() -> None:
    g, verb, opts, pos = fastcli.parse(
        ["--root", "/run/containerd/runc/k8s.io", "--log", "/x/log.json", "--log-format", "json",
         "create", "--bundle", "/b", "--pid-file", "/b/init.pid", "--console-socket", "/s.sock", "c1"])
    assert verb == "create" and pos == ["c1"]
    assert g == {"--root": "/run/containerd/runc/k8s.io", "--log": "/x/log.json", "--log-format": "json"}
    assert opts == {"bundle": "/b", "pid_file": "/b/init.pid", "console_socket": "/s.sock",
                    "no_pivot": False, "no_new_keyring": False, "preserve_fds": 0}
    assert fastcli.parse(["kill", "--all", "c1", "9"])[3] == ["c1", "9"]
    assert fastcli.parse(["delete", "-f", "c1"])[2] == {"force": True}
    assert fastcli.parse(["list", "-q"])[2] == {"quiet": True, "fmt": "table"}
    assert fastcli.parse(["pause", "c1"])[1:] == ("pause", {}, ["c1"])
    assert fastcli.parse(["--root=/r", "state", "c1"])[0] == {"--root": "/r"}
    # conmon and containerd-shim exec with a process.json
    _, verb, opts, pos = fastcli.parse(["exec", "--process", "/p.json", "--detach", "--pid-file", "/x", "c1"])
    assert verb == "exec" and pos == ["c1"]
    assert (opts["process_file"], opts["detach"], opts["pid_file"], opts["tty"]) == ("/p.json", True, "/x", False)


@pytest.mark.parametrize("argv", [
    ["--help"], ["exec", "c1", "ls"], ["create", "--weird", "c1"], ["state"], ["state", "a", "b"],
    ["create", "--preserve-fds", "x", "c1"], ["--version"], ["list", "-f", "xml"], ["list", "c1"],
    ["exec", "--process", "/p.json", "--env", "A=1", "c1"], ["--log-format", "xml", "state", "c1"],
])
def test_fast_parser_falls_back_to_click(argv: list[str]) -> None:
    with pytest.raises(fastcli._Fallback):
        fastcli.parse(argv)


def test_one_table_feeds_both_parsers() -> None:
    """Every option of verbs.py's table is an option of the click command, and nothing else
    is: a flag cannot exist in one parser and not in the other."""
    from pyruntime import cli
    from pyruntime.verbs import GLOBAL, VERBS

    def names(cmd: object) -> set[str]:
        return {n for p in cmd.params if p.param_type_name == "option"  # type: ignore[attr-defined]
                for n in p.opts} - {"-h", "--help", "-v", "--version"}

    assert names(cli.main) == {n for o in GLOBAL for n in o["names"]}  # type: ignore[attr-defined]
    for verb, (options, _, _) in VERBS.items():
        assert names(cli.main.commands[verb]) == {n for o in options for n in o["names"]}, verb  # type: ignore[attr-defined]


def test_process_from_flags_starts_from_the_container_process() -> None:
    cfg = default_spec()
    proc = process_from_flags(cfg, ["ls", "-l"], tty=False, cwd="/tmp",
                              env=["A=1"], user="1000:1000", additional_gids=[5],
                              caps=["CAP_SYS_ADMIN"], no_new_privs=True, apparmor=None)
    assert proc["args"] == ["ls", "-l"] and proc["cwd"] == "/tmp" and not proc["terminal"]
    assert proc["env"][-1] == "A=1" and proc["env"][0].startswith("PATH=")
    assert proc["user"] == {"uid": 1000, "gid": 1000, "additionalGids": [5]}
    assert "CAP_SYS_ADMIN" in proc["capabilities"]["bounding"]
    assert "CAP_SYS_ADMIN" not in cfg["process"]["capabilities"]["bounding"], "config untouched"
    # names are not looked up (the container's /etc/passwd is the container's to forge)
    with pytest.raises(RuntimeErr, match="--user nobody: uid 'nobody' is not a number"):
        process_from_flags(cfg, ["ls"], tty=False, cwd=None, env=[], user="nobody",
                           additional_gids=[], caps=[], no_new_privs=False, apparmor=None)


def test_sub_cgroup_paths() -> None:
    paths = {"memory": "/cg/memory/c1", "cpu": "/cg/cpu/c1", "cpuacct": "/cg/cpuacct/c1"}
    assert sub_cgroup_paths(paths, ("sub",))["cpu"] == "/cg/cpu/c1/sub"
    out = sub_cgroup_paths(paths, ("memory:m", "cpu,cpuacct:c"))
    assert out == {"memory": "/cg/memory/c1/m", "cpu": "/cg/cpu/c1/c", "cpuacct": "/cg/cpuacct/c1/c"}
    assert sub_cgroup_paths(paths, ("/",)) == paths
    with pytest.raises(RuntimeErr, match="is not a sub cgroup path"):
        sub_cgroup_paths(paths, ("..",))
    with pytest.raises(RuntimeErr, match="unknown controller whaaat"):
        sub_cgroup_paths(paths, ("whaaat:/",))


@pytest.mark.parametrize("text,value", [("100", 100), ("64k", 65536), ("512M", 512 << 20),
                                        ("1g", 1 << 30), ("2GiB", 2 << 30), ("-1", -1)])
def test_parse_bytes(text: str, value: int) -> None:
    assert parse_bytes(text, "--memory") == value


def test_parse_bytes_rejects() -> None:
    with pytest.raises(RuntimeErr, match="--memory: invalid size"):
        parse_bytes("lots", "--memory")


def test_effective_resources_appends_runc_defaults_after_config_rules() -> None:
    res = effective_resources({"devices": [{"allow": False, "access": "rwm"}]})
    rules = res["devices"]
    assert rules[0] == {"allow": False, "access": "rwm"}
    assert {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"} in rules
    assert effective_resources({"memory": {"limit": 1}}) == {"memory": {"limit": 1}}


def test_capability_names() -> None:
    assert to_numbers(("CAP_CHOWN", "cap_kill"), "x") == {0, 5}
    with pytest.raises(ConfigError, match=r"process.capabilities.bounding\[1\]: unknown capability"):
        CapabilityPlan(Capabilities(bounding=("CAP_KILL", "CAP_BOGUS")))


def test_capability_plan_sets_exactly_the_asked_sets() -> None:
    from pyruntime.capabilities import last_cap
    from pyruntime.syscalls.fake import FakeSyscalls

    fake = FakeSyscalls()
    plan = CapabilityPlan(Capabilities(bounding=("CAP_KILL", "CAP_CHOWN"), effective=("CAP_KILL", "CAP_CHOWN"),
                                       permitted=("CAP_KILL",), inheritable=("CAP_CHOWN",),
                                       ambient=("CAP_KILL", "CAP_CHOWN")))
    plan.drop_bounding(fake)
    plan.apply(fake)
    dropped = [args[0] for name, args in fake.calls if name == "capbset_drop"]
    assert dropped == [c for c in range(last_cap() + 1) if c not in (0, 5)]
    # effective only within permitted; ambient only where permitted and inheritable meet
    assert ("capset", (1 << 5, 1 << 5, 1 << 0)) in fake.calls
    assert fake.names()[-1] == "ambient_clear"


def test_record_behaves_like_a_frozen_dataclass() -> None:
    @dataclass(frozen=True)
    class Point:
        x: int
        y: int = 2
        tags: list[str] = field(default_factory=list)

    p = Point(1)
    assert p == Point(1, 2, []) and p != Point(1, 3) and repr(p) == "Point(x=1, y=2, tags=[])"
    assert Point(x=1, tags=["a"]).tags == ["a"]
    assert asdict(Point(1)) == {"x": 1, "y": 2, "tags": []}
    with pytest.raises(FrozenInstanceError):
        p.x = 3  # type: ignore[misc]
    with pytest.raises(TypeError, match="missing required argument 'x'"):
        Point()  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="unexpected arguments"):
        Point(1, z=3)  # type: ignore[call-arg]
    assert Point(1).tags is not Point(1).tags, "default_factory runs per instance"


def test_oom_kills_read_from_the_memory_cgroup(tmp_path: Path) -> None:
    """create's word for a setup killed under a tiny memory limit rests on this count."""
    from pyruntime.container import _oom_kills

    class Manager:
        def __init__(self, paths: dict[str, str]) -> None:
            self._paths = paths

        def paths(self) -> dict[str, str]:
            return self._paths

    v1 = tmp_path / "memory"
    v1.mkdir()
    (v1 / "memory.oom_control").write_text("oom_kill_disable 0\nunder_oom 0\noom_kill 2\n")
    assert _oom_kills(Manager({"memory": str(v1), "pids": str(tmp_path)})) == 2
    v2 = tmp_path / "unified"
    v2.mkdir()
    (v2 / "memory.events").write_text("low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n")
    assert _oom_kills(Manager({"unified": str(v2)})) == 1
    assert _oom_kills(Manager({"pids": str(tmp_path / "nowhere")})) == 0
