"""bundle.py: image config + flags -> config.json, table-driven, no root, no disk."""

from __future__ import annotations

from typing import Any

import pytest

from pyruntime.dockee import bundle as b
from pyruntime.dockee.errors import DockeeError

BUSYBOX = {"Env": ["PATH=/bin:/usr/bin", "LANG=C"], "Cmd": ["sh"], "WorkingDir": ""}


def spec(image: dict[str, Any] | None = None, **flags: Any) -> dict[str, Any]:
    return b.build_spec(BUSYBOX if image is None else image, b.RunFlags(**flags))


@pytest.mark.parametrize(("image", "flags", "args"), [
    (BUSYBOX, {}, ["sh"]),
    (BUSYBOX, {"command": ["echo", "hi"]}, ["echo", "hi"]),
    ({"Entrypoint": ["/init"], "Cmd": ["--x"]}, {}, ["/init", "--x"]),
    ({"Entrypoint": ["/init"], "Cmd": ["--x"]}, {"command": ["--y"]}, ["/init", "--y"]),
    ({"Entrypoint": ["/init"], "Cmd": ["--x"]}, {"entrypoint": "top -b"}, ["top", "-b"]),
    ({"Entrypoint": ["/init"], "Cmd": ["--x"]}, {"entrypoint": "", "command": ["ls"]}, ["ls"]),
], ids=["image-cmd", "cmd", "entrypoint+cmd", "entrypoint+override", "entrypoint-flag", "entrypoint-reset"])
def test_process_args(image: dict[str, Any], flags: dict[str, Any], args: list[str]) -> None:
    assert spec(image, **flags)["process"]["args"] == args


def test_no_command_is_refused() -> None:
    with pytest.raises(DockeeError, match="no command"):
        spec({"Env": []})


def test_env_order_and_override() -> None:
    env = spec(env=["LANG=fr", "A=1"], hostname="h1", tty=True)["process"]["env"]
    assert env == ["PATH=/bin:/usr/bin", "LANG=fr", "HOSTNAME=h1", "TERM=xterm", "A=1"]


@pytest.mark.parametrize(("flags", "resources"), [
    ({"memory": 16 << 20}, {"memory": {"limit": 16 << 20, "swap": 32 << 20}}),
    ({"memory": 16 << 20, "memory_swap": -1}, {"memory": {"limit": 16 << 20, "swap": -1}}),
    ({"memory": 16 << 20, "memory_swap": 20 << 20}, {"memory": {"limit": 16 << 20, "swap": 20 << 20}}),
    ({"oom_kill_disable": True}, {"memory": {"disableOOMKiller": True}}),
    ({"cpu_quota": 50000}, {"cpu": {"quota": 50000, "period": 100000}}),
    ({"cpu_shares": 512, "cpuset_cpus": "0"}, {"cpu": {"shares": 512, "cpus": "0"}}),
    ({"pids_limit": 20}, {"pids": {"limit": 20}}),
], ids=["memory", "swap-unlimited", "swap", "oom-kill-disable", "cpus", "shares+cpuset", "pids"])
def test_resources(flags: dict[str, Any], resources: dict[str, Any]) -> None:
    res = spec(**flags)["linux"]["resources"]
    assert res == {"devices": [{"allow": False, "access": "rwm"}], **resources}


@pytest.mark.parametrize(("flags", "match"), [
    ({"memory": 16 << 20, "memory_swap": 8 << 20}, "at least as large"),
    ({"memory_swap": 8 << 20}, "needs --memory"),
])
def test_inconsistent_memory_refused(flags: dict[str, Any], match: str) -> None:
    with pytest.raises(DockeeError, match=match):
        spec(**flags)


@pytest.mark.parametrize(("value", "flag", "expected"), [
    ("64m", "--memory", 64 << 20), ("1g", "--memory", 1 << 30), ("512k", "-m", 512 << 10),
    ("1048576", "-m", 1 << 20), ("16MiB", "-m", 16 << 20), ("1.5g", "-m", 3 << 29),
])
def test_parse_size(value: str, flag: str, expected: int) -> None:
    assert b.parse_size(value, flag) == expected


@pytest.mark.parametrize("value", ["10x", "", "-5m", "m", "0"])
def test_parse_size_refuses(value: str) -> None:
    with pytest.raises(DockeeError, match="--memory"):
        b.parse_size(value, "--memory")


@pytest.mark.parametrize(("fn", "value", "expected"), [
    (b.parse_cpus, "0.5", 50000), (b.parse_cpus, "2", 200000), (b.parse_cpu_percent, "20", 20000),
    (b.parse_cpu_percent, "150", 150000),
])
def test_cpu_quotas(fn: Any, value: str, expected: int) -> None:
    assert fn(value) == expected


@pytest.mark.parametrize("value", ["-1", "0", "abc", "nan"])
def test_cpus_refused(value: str) -> None:
    with pytest.raises(DockeeError, match="--cpus"):
        b.parse_cpus(value)


def test_capabilities_default_add_drop_privileged() -> None:
    caps = spec()["process"]["capabilities"]["bounding"]
    assert caps == b.DEFAULT_CAPS
    caps = spec(cap_add=["CAP_SYS_ADMIN"], cap_drop=["CAP_NET_RAW"])["process"]["capabilities"]["effective"]
    assert "CAP_SYS_ADMIN" in caps and "CAP_NET_RAW" not in caps
    assert spec(cap_drop=["ALL"])["process"]["capabilities"]["permitted"] == []
    priv = spec(privileged=True)
    assert priv["process"]["capabilities"]["bounding"] == b.ALL_CAPS
    assert "maskedPaths" not in priv["linux"] and "seccomp" not in priv["linux"]
    assert priv["linux"]["resources"]["devices"] == [{"allow": True, "access": "rwm"}]


@pytest.mark.parametrize(("name", "expected"), [("sys_admin", "CAP_SYS_ADMIN"), ("CAP_KILL", "CAP_KILL"),
                                                ("all", "ALL")])
def test_normalize_cap(name: str, expected: str) -> None:
    assert b.normalize_cap(name, "--cap-add") == expected


def test_unknown_cap_refused() -> None:
    with pytest.raises(DockeeError, match="--cap-add"):
        b.normalize_cap("CAP_FLY", "--cap-add")


def test_defaults_like_runc() -> None:
    s = spec(hostname="abc", cgroups_path="dockee-abc")
    assert [m["destination"] for m in s["mounts"]] == ["/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue",
                                                       "/sys", "/sys/fs/cgroup"]
    assert "/proc/kcore" in s["linux"]["maskedPaths"] and "/proc/sys" in s["linux"]["readonlyPaths"]
    assert {n["type"] for n in s["linux"]["namespaces"]} == {"pid", "ipc", "uts", "mount", "network"}
    assert s["linux"]["cgroupsPath"] == "dockee-abc"
    assert s["process"]["rlimits"] == [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}]
    assert s["root"] == {"path": "merged", "readonly": False}
    assert s["process"]["cwd"] == "/"


def test_host_network_read_only_binds_hooks() -> None:
    bind = b.bind_mount("/h", "/data", True)
    s = spec(net="host", read_only=True, binds=[bind], hooks={"createRuntime": [{"path": "/x"}]},
             extra_mounts=[b.bind_mount("/n/hosts", "/etc/hosts", False)])
    assert "network" not in {n["type"] for n in s["linux"]["namespaces"]}
    assert s["root"]["readonly"] is True
    # docker's order: shallower destinations first, the spec's own mounts before all
    assert s["mounts"][-2] == {"destination": "/data", "type": "bind", "source": "/h",
                               "options": ["rbind", "rprivate", "ro"]}
    assert s["mounts"][-1]["destination"] == "/etc/hosts"
    assert s["hooks"] == {"createRuntime": [{"path": "/x"}]}


def test_a_volume_on_etc_goes_under_the_etc_binds() -> None:
    s = spec(binds=[b.bind_mount("/v", "/etc", False), b.bind_mount("/w", "/a/b/c", False)],
             extra_mounts=[b.bind_mount("/n/hosts", "/etc/hosts", False),
                           b.bind_mount("/n/hostname", "/etc/hostname", False)])
    assert [m["destination"] for m in s["mounts"]][-4:] == ["/etc", "/etc/hosts", "/etc/hostname", "/a/b/c"]


def test_relative_workdir_refused() -> None:
    with pytest.raises(DockeeError, match="-w"):
        spec({"Cmd": ["sh"], "WorkingDir": "rel"})


PASSWD = "root:x:0:0:root:/root:/bin/sh\nwww:x:33:33::/var/www:/bin/false\nbob:x:1000:1000::/home/bob:/bin/sh\n"
GROUP = "root:x:0:\nwww:x:33:\nstaff:x:50:bob,www\nbob:x:1000:\n"


@pytest.mark.parametrize(("user", "expected"), [
    ("root", (0, 0, [])), ("www", (33, 33, [50])), ("1000", (1000, 1000, [50])), ("bob:www", (1000, 33, [50])),
    ("4242", (4242, 0, [])), ("4242:7", (4242, 7, [])), ("www:0", (33, 0, [50])),
])
def test_resolve_user(user: str, expected: tuple[int, int, list[int]]) -> None:
    assert b.resolve_user(user, PASSWD, GROUP) == expected


@pytest.mark.parametrize("user", ["nobody", "bob:nogroup"])
def test_resolve_user_unknown(user: str) -> None:
    with pytest.raises(DockeeError, match="unable to find"):
        b.resolve_user(user, PASSWD, GROUP)


@pytest.mark.parametrize(("args", "expected"), [
    (["/bin/ip a"], ["/bin/ip", "a"]), (["ls", "-l"], ["ls", "-l"]), (["sh -c 'echo a b'"], ["sh", "-c", "echo a b"]),
    ([], []), (["true"], ["true"]),
])
def test_split_command(args: list[str], expected: list[str]) -> None:
    assert b.split_command(args) == expected


def test_env_file_and_host_values() -> None:
    text = "# comment\n\nA=1\nHOMEISH\nMISSING\nB=x=y\n"
    assert b.parse_env_file(text, {"HOMEISH": "/h"}) == ["A=1", "HOMEISH=/h", "B=x=y"]


PROFILE = {
    "defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 38,
    "archMap": [{"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86", "SCMP_ARCH_X32"]},
                {"architecture": "SCMP_ARCH_AARCH64", "subArchitectures": ["SCMP_ARCH_ARM"]}],
    "syscalls": [
        {"names": ["read", "write"], "action": "SCMP_ACT_ALLOW", "args": [], "includes": {}, "excludes": {}},
        {"names": ["arch_prctl"], "action": "SCMP_ACT_ALLOW", "includes": {"arches": ["amd64", "x32"]}},
        {"names": ["arm_only"], "action": "SCMP_ACT_ALLOW", "includes": {"arches": ["arm64"]}},
        {"names": ["mount"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_ADMIN"]}},
        {"names": ["mount"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1, "excludes": {"caps": ["CAP_SYS_ADMIN"]}},
        {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
         "args": [{"index": 0, "value": 8, "valueTwo": 0, "op": "SCMP_CMP_EQ"}]},
    ],
}


def test_seccomp_filtered_by_arch_and_caps() -> None:
    out = b.seccomp_from_profile(PROFILE, b.DEFAULT_CAPS, "x86_64")
    assert out["architectures"] == ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
    assert out["defaultErrnoRet"] == 38
    names = [(r["names"][0], r["action"]) for r in out["syscalls"]]
    assert names == [("read", "SCMP_ACT_ALLOW"), ("arch_prctl", "SCMP_ACT_ALLOW"), ("mount", "SCMP_ACT_ERRNO"),
                     ("personality", "SCMP_ACT_ALLOW")]
    assert out["syscalls"][2]["errnoRet"] == 1
    assert out["syscalls"][3]["args"] == [{"index": 0, "value": 8, "valueTwo": 0, "op": "SCMP_CMP_EQ"}]
    admin = b.seccomp_from_profile(PROFILE, [*b.DEFAULT_CAPS, "CAP_SYS_ADMIN"], "x86_64")
    assert ("mount", "SCMP_ACT_ALLOW") in [(r["names"][0], r["action"]) for r in admin["syscalls"]]
    spec_ = b.build_spec(BUSYBOX, b.RunFlags(), seccomp_profile=PROFILE)
    assert spec_["linux"]["seccomp"]["defaultAction"] == "SCMP_ACT_ERRNO"


def test_privileged_gets_only_the_hosts_bounding_set() -> None:
    host = b.caps_from_mask(0x1fffeffffff)  # CAP_SYS_RESOURCE (bit 24) missing, as on a restricted host
    assert "CAP_SYS_RESOURCE" not in host and "CAP_SYS_ADMIN" in host and len(host) == 40
    priv = spec(privileged=True, host_caps=host)["process"]["capabilities"]["bounding"]
    assert priv == host
    assert spec(cap_add=["ALL"], host_caps=host)["process"]["capabilities"]["bounding"] == host
    assert spec(host_caps=host)["process"]["capabilities"]["bounding"] == b.DEFAULT_CAPS


@pytest.mark.parametrize("flags", [
    {},
    {"tty": True, "memory": 16 << 20, "cpu_quota": 50000, "cpuset_cpus": "0", "pids_limit": 10,
     "cpu_shares": 512, "oom_kill_disable": True, "user": (33, 33, [50]), "read_only": True,
     "binds": [b.bind_mount("/h", "/data", True)], "cgroups_path": "dockee-x", "hostname": "h"},
    {"privileged": True, "net": "host", "memory": 8 << 20, "memory_swap": -1},
], ids=["defaults", "limits", "privileged-host"])
def test_spec_passes_pyruntimes_validation(flags: dict[str, Any], tmp_path: Any) -> None:
    """What dockee writes must be a config.json the runtime accepts (schema and semantic checks)."""
    import json
    import os

    from pyruntime.validate import validate_config

    profile = None
    if os.path.exists("/usr/share/containers/seccomp.json"):
        with open("/usr/share/containers/seccomp.json") as f:
            profile = json.load(f)
    (tmp_path / "merged").mkdir()
    doc = b.build_spec(BUSYBOX, b.RunFlags(**flags), seccomp_profile=profile or PROFILE)
    validate_config(json.loads(json.dumps(doc)), tmp_path)
