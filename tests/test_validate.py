"""pyruntime.validate: our schemas and semantic checks, with the spec's own schemas as an oracle.

The reference schemas (../shared/reference) are used only here, only as an oracle: every
valid document must pass them too, and every invalid one that is a schema-level error for
the spec must fail them.  Tests that need them skip when the folder is absent.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pyruntime import validate
from pyruntime.errors import ConfigError
from pyruntime.validate import validate_config, validate_process, validate_state

try:
    from configs import default_config, full_config
except ImportError:  # tests/ became a package
    from tests.configs import default_config, full_config

REPO = Path(__file__).resolve().parent.parent
REFERENCE = REPO.parent / "shared" / "reference" / "runtime-spec-1.3.0-schema"


# --- oracles -----------------------------------------------------------------------------


def _reference_validator(name: str) -> Any:
    if not (REFERENCE / name.split("#")[0]).exists():
        pytest.skip("reference schemas not present")
    from jsonschema import Draft4Validator
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT4

    registry = Registry().with_resources(
        (p.name, Resource.from_contents(json.loads(p.read_text()), default_specification=DRAFT4))
        for p in REFERENCE.glob("*.json")
    )
    return Draft4Validator({"$ref": name}, registry=registry)


def reference_errors(doc: Any, name: str = "config-schema.json") -> list[str]:
    return [e.message for e in _reference_validator(name).iter_errors(doc)]


def our_schema_errors(doc: Any, ref: str = "config-schema.json") -> list[str]:
    return [e.message for e in validate._validator(ref).iter_errors(doc)]


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    (tmp_path / "rootfs").mkdir()
    return tmp_path


@pytest.fixture(autouse=True)
def _no_apparmor(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # Results must not depend on whether the test machine runs AppArmor.
    flag = tmp_path / "apparmor-enabled"
    flag.write_text("N\n")
    monkeypatch.setattr(validate, "APPARMOR_ENABLED", flag)


# --- valid documents ---------------------------------------------------------------------


@pytest.mark.parametrize("make", [default_config, full_config])
def test_valid_config_passes_ours_and_reference(make: Callable[[], dict], bundle: Path) -> None:
    doc = make()
    validate_config(doc, bundle)
    assert our_schema_errors(doc) == []
    assert reference_errors(doc) == []


def _documents() -> list[tuple[str, Any]]:
    """Valid documents of every kind: runc's spec output, a config with nearly every field,
    its process (process.json for exec) and a state."""
    return [
        ("config-runc-spec", default_config()),
        ("config-full", full_config()),
        ("process-full", full_config()["process"]),
        ("state-running", {"ociVersion": "1.2.0", "id": "c1", "status": "running", "pid": 42,
                           "bundle": "/b", "annotations": {"a": "b"}}),
    ]


@pytest.mark.parametrize(("name", "doc"), _documents(), ids=[n for n, _d in _documents()])
def test_documents_pass_both_schemas(name: str, doc: Any) -> None:
    if name.startswith("config"):
        ref, oracle = "config-schema.json", "config-schema.json"
    elif name.startswith("state"):
        ref, oracle = "state-schema.json", "state-schema.json"
    else:
        ref = "config-schema.json#/definitions/Process"
        oracle = "config-schema.json#/properties/process"
    assert our_schema_errors(doc, ref) == []
    # the oracle, where the reference schemas are present (our own check above runs anyway)
    if (REFERENCE / oracle.split("#")[0]).exists():
        assert reference_errors(doc, oracle) == []


def test_unknown_properties_are_ignored(bundle: Path) -> None:
    doc = default_config()
    doc["x-vendor"] = {"anything": [1, 2]}
    doc["process"]["x-extra"] = True
    doc["linux"]["x-extra"] = "y"
    doc["hooks"] = {"x-vendorStage": [{"no": "path"}], "prestart": [{"path": "/bin/true"}]}
    validate_config(doc, bundle)


def test_relative_mount_destination_warns_like_runc_1_1(
        bundle: Path, caplog: pytest.LogCaptureFixture) -> None:
    doc = default_config()
    doc["mounts"].append({"destination": "mnt", "type": "tmpfs", "source": "tmpfs"})
    with caplog.at_level(logging.WARNING, logger="pyruntime"):
        validate_config(doc, bundle)
    assert "mounts[7].destination" in caplog.text


def test_unknown_syscall_name_is_not_an_error(bundle: Path) -> None:
    doc = default_config()
    doc["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["definitely_not_a_syscall"], "action": "SCMP_ACT_ERRNO"}]}
    validate_config(doc, bundle)


def test_apparmor_profile_allowed_when_enabled(bundle: Path, tmp_path: Path) -> None:
    validate.APPARMOR_ENABLED.write_text("Y\n")
    doc = default_config()
    doc["process"]["apparmorProfile"] = "docker-default"
    validate_config(doc, bundle)


def test_joined_user_namespace_needs_no_mappings(bundle: Path) -> None:
    doc = default_config()
    doc["linux"]["namespaces"].append({"type": "user", "path": "/proc/self/ns/user"})
    validate_config(doc, bundle)


def test_absolute_root_path(bundle: Path) -> None:
    doc = default_config()
    doc["root"]["path"] = str(bundle / "rootfs")
    validate_config(doc, bundle)


# --- invalid documents -------------------------------------------------------------------

Mutation = Callable[[dict[str, Any]], None]


def _set(path: str, value: Any) -> Mutation:
    """A mutation that sets a dotted path (list indices as numbers) in the document."""
    def apply(doc: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = doc
        for key in parents:
            node = node[int(key)] if key.isdigit() else node.setdefault(key, {})
        node[int(last) if last.isdigit() else last] = value
    return apply


def _delete(path: str) -> Mutation:
    def apply(doc: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = doc
        for key in parents:
            node = node[int(key)] if key.isdigit() else node[key]
        del node[last]
    return apply


def _drop_namespace(ns_type: str) -> Mutation:
    def apply(doc: dict[str, Any]) -> None:
        doc["linux"]["namespaces"] = [n for n in doc["linux"]["namespaces"]
                                      if n["type"] != ns_type]
    return apply


def _add_namespace(ns: dict[str, str]) -> Mutation:
    return lambda doc: doc["linux"]["namespaces"].append(ns)


def _all(*mutations: Mutation) -> Mutation:
    def apply(doc: dict[str, Any]) -> None:
        for m in mutations:
            m(doc)
    return apply


_USERNS = _all(_add_namespace({"type": "user"}),
               _set("linux.uidMappings", [{"containerID": 0, "hostID": 1000, "size": 1}]),
               _set("linux.gidMappings", [{"containerID": 0, "hostID": 1000, "size": 1}]))
_SECCOMP = {"defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["chmod"], "action": "SCMP_ACT_ERRNO"}]}

# (id, mutation of default_config(), expected `where`, does the spec's own schema reject it?)
INVALID: list[tuple[str, Mutation, str, bool]] = [
    ("no-ociVersion", _delete("ociVersion"), "ociVersion", True),
    ("ociVersion-int", _set("ociVersion", 1), "ociVersion", True),
    ("ociVersion-not-semver", _set("ociVersion", "one"), "ociVersion", False),
    ("root-no-path", _set("root", {}), "root.path", True),
    ("root-missing-dir", _set("root.path", "nope"), "root.path", False),
    ("root-is-file", _set("root.path", "config.json"), "root.path", False),
    ("no-process", _delete("process"), "process", False),
    ("args-empty", _set("process.args", []), "process.args", False),
    ("args-not-strings", _set("process.args", ["sh", 1]), "process.args[1]", True),
    ("cwd-missing", _delete("process.cwd"), "process.cwd", True),
    ("cwd-relative", _set("process.cwd", "tmp"), "process.cwd", False),
    ("env-no-equals", _set("process.env", ["PATH=/bin", "FOO"]), "process.env[1]", False),
    ("uid-negative", _set("process.user.uid", -1), "process.user.uid", True),
    ("terminal-string", _set("process.terminal", "yes"), "process.terminal", True),
    ("cap-unknown", _set("process.capabilities.bounding.0", "CAP_FOO"),
     "process.capabilities.bounding[0]", False),
    ("rlimit-unknown", _set("process.rlimits.0.type", "RLIMIT_FOO"),
     "process.rlimits[0].type", False),
    ("rlimit-not-rlimit", _set("process.rlimits.0.type", "nofile"),
     "process.rlimits[0].type", True),
    ("rlimit-soft-gt-hard", _set("process.rlimits.0.soft", 4096), "process.rlimits[0].soft", False),
    ("rlimit-duplicate", _set("process.rlimits", [
        {"type": "RLIMIT_NOFILE", "hard": 1, "soft": 1},
        {"type": "RLIMIT_NOFILE", "hard": 2, "soft": 2}]), "process.rlimits[1].type", False),
    ("oomScoreAdj-range", _set("process.oomScoreAdj", 5000), "process.oomScoreAdj", False),
    ("apparmor-disabled", _set("process.apparmorProfile", "docker-default"),
     "process.apparmorProfile", False),
    ("ns-type-unknown", _set("linux.namespaces.2.type", "bogus"), "linux.namespaces[2].type", True),
    ("ns-duplicate", _add_namespace({"type": "pid"}), "linux.namespaces[5].type", False),
    ("ns-path-missing", _set("linux.namespaces.1", {"type": "network", "path": "/nonexistent/ns"}),
     "linux.namespaces[1].path", False),
    ("ns-path-relative", _set("linux.namespaces.1", {"type": "network", "path": "ns/net"}),
     "linux.namespaces[1].path", False),
    ("mappings-without-userns",
     _set("linux.uidMappings", [{"containerID": 0, "hostID": 1000, "size": 1}]),
     "linux.uidMappings", False),
    ("userns-without-mappings", _add_namespace({"type": "user"}), "linux.uidMappings", False),
    ("userns-no-gid-mappings",
     _all(_USERNS, _delete("linux.gidMappings")), "linux.gidMappings", False),
    ("mapping-size-zero",
     _all(_USERNS, _set("linux.uidMappings", [{"containerID": 0, "hostID": 1000, "size": 0}])),
     "linux.uidMappings[0].size", False),
    ("mapping-missing-hostID",
     _all(_USERNS, _set("linux.uidMappings", [{"containerID": 0, "size": 1}])),
     "linux.uidMappings[0].hostID", True),
    ("mappings-overlap", _all(_USERNS, _set("linux.uidMappings", [
        {"containerID": 0, "hostID": 1000, "size": 10},
        {"containerID": 5, "hostID": 5000, "size": 10}])), "linux.uidMappings[1]", False),
    ("uid-not-mapped", _all(_USERNS, _set("process.user.uid", 1000)), "process.user.uid", False),
    ("gid-not-mapped", _all(_USERNS, _set("process.user.gid", 7)), "process.user.gid", False),
    ("extra-gid-not-mapped", _all(_USERNS, _set("process.user.additionalGids", [0, 5])),
     "process.user.additionalGids[1]", False),
    ("hostname-without-uts", _drop_namespace("uts"), "hostname", False),
    ("domainname-without-uts", _all(_drop_namespace("uts"), _delete("hostname"),
                                    _set("domainname", "example.org")), "domainname", False),
    ("hostname-too-long", _set("hostname", "h" * 65), "hostname", False),
    ("ipc-sysctl-without-ipc", _all(_drop_namespace("ipc"),
                                    _set("linux.sysctl", {"kernel.shmmax": "1"})),
     'linux.sysctl["kernel.shmmax"]', False),
    ("mqueue-sysctl-without-ipc", _all(_drop_namespace("ipc"),
                                       _set("linux.sysctl", {"fs.mqueue.msg_max": "1"})),
     'linux.sysctl["fs.mqueue.msg_max"]', False),
    ("net-sysctl-without-netns", _all(_drop_namespace("network"),
                                      _set("linux.sysctl", {"net.ipv4.ip_forward": "1"})),
     'linux.sysctl["net.ipv4.ip_forward"]', False),
    ("net-sysctl-in-host-netns", _all(
        _set("linux.namespaces.1", {"type": "network", "path": "/proc/self/ns/net"}),
        _set("linux.sysctl", {"net.ipv4.ip_forward": "1"})),
     'linux.sysctl["net.ipv4.ip_forward"]', False),
    ("sysctl-not-namespaced", _set("linux.sysctl", {"vm.swappiness": "10"}),
     'linux.sysctl["vm.swappiness"]', False),
    ("sysctl-kernel-hostname", _set("linux.sysctl", {"kernel.hostname": "x"}),
     'linux.sysctl["kernel.hostname"]', False),
    ("sysctl-value-not-string", _set("linux.sysctl", {"kernel.shmmax": 1}),
     'linux.sysctl["kernel.shmmax"]', True),
    ("timeoffsets-without-timens", _set("linux.timeOffsets", {"monotonic": {"secs": 1}}),
     "linux.timeOffsets", False),
    ("timeoffsets-joined-timens", _all(
        _add_namespace({"type": "time", "path": "/proc/self/ns/time"}),
        _set("linux.timeOffsets", {"monotonic": {"secs": 1}})), "linux.timeOffsets", False),
    ("timeoffsets-unknown-clock", _all(_add_namespace({"type": "time"}),
                                       _set("linux.timeOffsets", {"realtime": {"secs": 1}})),
     "linux.timeOffsets.realtime", False),
    ("cgroupsPath-escapes", _set("linux.cgroupsPath", "/../../escape"), "linux.cgroupsPath", False),
    ("cgroupsPath-systemd-escapes", _set("linux.cgroupsPath", "system.slice:..:x"),
     "linux.cgroupsPath", False),
    ("rootfsPropagation-unknown", _set("linux.rootfsPropagation", "bogus"),
     "linux.rootfsPropagation", True),
    ("masked-relative", _set("linux.maskedPaths.0", "proc/kcore"), "linux.maskedPaths[0]", False),
    ("readonly-relative", _set("linux.readonlyPaths.0", "proc/bus"),
     "linux.readonlyPaths[0]", False),
    ("no-mountns", _drop_namespace("mount"), "linux.namespaces", False),
    ("mount-no-destination", _set("mounts.0", {"type": "proc", "source": "proc"}),
     "mounts[0].destination", True),
    ("mount-options-string", _set("mounts.1.options", "nosuid"), "mounts[1].options", True),
    ("device-bad-type", _set("linux.devices", [{"type": "x", "path": "/dev/x"}]),
     "linux.devices[0].type", True),
    ("device-relative-path", _set("linux.devices", [{"type": "p", "path": "dev/fifo"}]),
     "linux.devices[0].path", False),
    ("device-missing-major", _set("linux.devices", [{"type": "c", "path": "/dev/x", "minor": 1}]),
     "linux.devices[0].major", False),
    ("devcgroup-no-allow", _set("linux.resources.devices.0", {"access": "rwm"}),
     "linux.resources.devices[0].allow", True),
    ("pids-no-limit", _set("linux.resources.pids", {}), "linux.resources.pids.limit", True),
    ("hugepage-bad-size", _set("linux.resources.hugepageLimits",
                               [{"pageSize": "2M", "limit": 1}]),
     "linux.resources.hugepageLimits[0].pageSize", True),
    ("memory-swap-below-limit", _set("linux.resources.memory", {"limit": 200, "swap": 100}),
     "linux.resources.memory.swap", False),
    ("memory-swap-without-limit", _set("linux.resources.memory", {"swap": 100}),
     "linux.resources.memory.swap", False),
    ("memory-limit-string", _set("linux.resources.memory", {"limit": "1G"}),
     "linux.resources.memory.limit", True),
    ("cpu-shares-negative", _set("linux.resources.cpu", {"shares": -1}),
     "linux.resources.cpu.shares", True),
    ("seccomp-no-default", _set("linux.seccomp", {"syscalls": []}),
     "linux.seccomp.defaultAction", True),
    ("seccomp-bad-default", _set("linux.seccomp", {"defaultAction": "SCMP_ACT_FOO"}),
     "linux.seccomp.defaultAction", True),
    ("seccomp-bad-action", _all(_set("linux.seccomp", json.loads(json.dumps(_SECCOMP))),
                                _set("linux.seccomp.syscalls.0.action", "ALLOW")),
     "linux.seccomp.syscalls[0].action", True),
    ("seccomp-no-names", _all(_set("linux.seccomp", json.loads(json.dumps(_SECCOMP))),
                              _set("linux.seccomp.syscalls.0.names", [])),
     "linux.seccomp.syscalls[0].names", True),
    ("seccomp-bad-op", _all(_set("linux.seccomp", json.loads(json.dumps(_SECCOMP))),
                            _set("linux.seccomp.syscalls.0.args",
                                 [{"index": 0, "value": 1, "op": "SCMP_CMP_FOO"}])),
     "linux.seccomp.syscalls[0].args[0].op", True),
    ("seccomp-bad-arch", _all(_set("linux.seccomp", json.loads(json.dumps(_SECCOMP))),
                              _set("linux.seccomp.architectures", ["x86_64"])),
     "linux.seccomp.architectures[0]", True),
    ("seccomp-notify-default", _set("linux.seccomp", {"defaultAction": "SCMP_ACT_NOTIFY",
                                                      "listenerPath": "/run/x.sock"}),
     "linux.seccomp.defaultAction", False),
    ("seccomp-notify-no-listener", _all(_set("linux.seccomp", json.loads(json.dumps(_SECCOMP))),
                                        _set("linux.seccomp.syscalls.0.action", "SCMP_ACT_NOTIFY")),
     "linux.seccomp.listenerPath", False),
    ("hook-no-path", _set("hooks", {"prestart": [{"args": ["x"]}]}),
     "hooks.prestart[0].path", True),
    ("hook-relative-path", _set("hooks", {"poststop": [{"path": "bin/hook"}]}),
     "hooks.poststop[0].path", False),
    ("hook-timeout-zero", _set("hooks", {"createRuntime": [{"path": "/h", "timeout": 0}]}),
     "hooks.createRuntime[0].timeout", True),
    ("annotation-not-string", _set("annotations", {"org.example": 1}),
     'annotations["org.example"]', True),
    ("scheduler-bad-policy", _set("process.scheduler", {"policy": "SCHED_FAST"}),
     "process.scheduler.policy", True),
    ("scheduler-priority-for-other", _set("process.scheduler", {"policy": "SCHED_OTHER",
                                                                "priority": 5}),
     "process.scheduler.priority", False),
    ("ioPriority-bad-class", _set("process.ioPriority", {"class": "IOPRIO_CLASS_FAST"}),
     "process.ioPriority.class", True),
    ("personality-bad-domain", _set("linux.personality", {"domain": "WINDOWS"}),
     "linux.personality.domain", True),
]


@pytest.mark.parametrize("mutate,where,reference_rejects",
                         [case[1:] for case in INVALID], ids=[case[0] for case in INVALID])
def test_invalid_config_is_rejected(mutate: Mutation, where: str, reference_rejects: bool,
                                    bundle: Path) -> None:
    doc = default_config()
    mutate(doc)
    with pytest.raises(ConfigError) as info:
        validate_config(doc, bundle)
    assert info.value.where == where, str(info.value)
    assert str(info.value).startswith(f"{where}: ")
    assert info.value.reason and "\n" not in str(info.value)
    if REFERENCE.is_dir():
        # The spec's schema agrees on which errors are schema-level; the rest are ours.
        assert bool(reference_errors(doc)) == reference_rejects


def test_corpus_is_big_enough() -> None:
    assert len(INVALID) >= 25


def test_not_a_json_object(bundle: Path) -> None:
    with pytest.raises(ConfigError) as info:
        validate_config([], bundle)  # type: ignore[arg-type]
    assert info.value.where == "config.json"


def test_first_error_wins(bundle: Path) -> None:
    doc = default_config()
    doc["process"]["cwd"] = "relative"
    doc["linux"]["namespaces"].append({"type": "pid"})
    with pytest.raises(ConfigError) as info:
        validate_config(doc, bundle)
    assert info.value.where == "process.cwd"


def test_messages_are_runc_like(bundle: Path) -> None:
    doc = default_config()
    doc["process"]["apparmorProfile"] = "p"
    with pytest.raises(ConfigError, match="apparmor profile specified but AppArmor is not "
                                          "enabled on this system"):
        validate_config(doc, bundle)
    doc = default_config()
    doc["linux"]["namespaces"] = [n for n in doc["linux"]["namespaces"] if n["type"] != "uts"]
    with pytest.raises(ConfigError, match="unable to set hostname without a private UTS"):
        validate_config(doc, bundle)


# --- process.json and state -------------------------------------------------------------


def test_validate_process() -> None:
    proc = default_config()["process"]
    validate_process(proc)
    for key, value, where in [("args", [], "process.args"), ("cwd", "x", "process.cwd"),
                              ("rlimits", [{"type": "RLIMIT_X", "soft": 1, "hard": 1}],
                               "process.rlimits[0].type"),
                              ("user", {"uid": "root"}, "process.user.uid")]:
        bad = dict(proc, **{key: value})
        with pytest.raises(ConfigError) as info:
            validate_process(bad)
        assert info.value.where == where
    with pytest.raises(ConfigError) as info:
        validate_process({"cwd": "/"})
    assert info.value.where == "process.args"
    # last: without the reference schemas this skips, after the cases above have run
    assert reference_errors({"ociVersion": "1.0.0", "process": proc}) == []


STATES = [
    {"ociVersion": "1.2.0", "id": "c1", "status": "creating", "bundle": "/b"},
    {"ociVersion": "1.2.0", "id": "c1", "status": "created", "pid": 42, "bundle": "/b"},
    {"ociVersion": "1.2.0", "id": "c1", "status": "running", "pid": 42, "bundle": "/b",
     "annotations": {"a": "b"}, "rootfs": "/b/rootfs", "created": "2024-01-01T00:00:00Z"},
    {"ociVersion": "1.2.0", "id": "c1", "status": "stopped", "pid": 0, "bundle": "/b"},
]


@pytest.mark.parametrize("state", STATES, ids=[s["status"] for s in STATES])
def test_valid_state(state: dict[str, Any]) -> None:
    validate_state(state)
    assert reference_errors(state, "state-schema.json") == []


def test_paused_state_is_ours() -> None:
    validate_state(dict(STATES[2], status="paused"))


@pytest.mark.parametrize("change,where", [
    ({"status": "bogus"}, "status"),
    ({"pid": -1}, "pid"),
    ({"id": ""}, "id"),
    ({"bundle": "relative"}, "bundle"),
    ({"annotations": {"a": 1}}, "annotations.a"),
])
def test_invalid_state(change: dict[str, Any], where: str) -> None:
    with pytest.raises(ConfigError) as info:
        validate_state(dict(STATES[2], **change))
    assert info.value.where == where


def test_running_state_needs_pid() -> None:
    state = dict(STATES[2])
    del state["pid"]
    with pytest.raises(ConfigError) as info:
        validate_state(state)
    assert info.value.where == "pid"


# --- the fast checker (pyruntime.schema) agrees with jsonschema ---------------------------

_CHILD = """
import json, sys
from pathlib import Path
from pyruntime.validate import validate_config
bundle = Path(sys.argv[1])
validate_config(json.loads((bundle / "config.json").read_bytes()), bundle)
print(json.dumps(sorted(m for m in ("jsonschema", "referencing") if m in sys.modules)))
"""


def test_valid_config_never_imports_jsonschema(bundle: Path) -> None:
    (bundle / "config.json").write_text(json.dumps(full_config()))
    out = subprocess.run([sys.executable, "-c", _CHILD, str(bundle)], check=True,
                         capture_output=True, text=True, cwd=REPO)
    assert json.loads(out.stdout) == []


def _ours_with_jsonschema(doc: dict[str, Any]) -> bool:
    return not list(validate._validator("config-schema.json").iter_errors(doc))


@pytest.mark.parametrize("mutate", [case[1] for case in INVALID] + [None],
                         ids=[case[0] for case in INVALID] + ["valid"])
def test_fast_checker_agrees_with_jsonschema(mutate: Mutation | None) -> None:
    from pyruntime.schema import SchemaSet

    fast = SchemaSet(str(validate.SCHEMA_DIR))
    for make in (default_config, full_config):
        doc = make()
        if mutate is not None:
            mutate(doc)
        assert fast.is_valid("config-schema.json", doc) == _ours_with_jsonschema(doc)


def test_import_is_cheap() -> None:
    code = ("import sys, pyruntime.validate; "
            "print(any(m in sys.modules for m in ('jsonschema', 'referencing', 'logging')))")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                         text=True, cwd=REPO)
    assert out.stdout.strip() == "False"


def test_where_format() -> None:
    assert validate._where(["linux", "namespaces", 2, "type"]) == "linux.namespaces[2].type"
    assert validate._where(["linux", "sysctl", "net.ipv4.ip_forward"]) == \
        'linux.sysctl["net.ipv4.ip_forward"]'
    assert validate._where([]) == ""


_PATTERN_SAMPLES = [
    "", "\n", "\n\n", "/", "/x", "x/", "1.0.0", "1.0.0\n", "1.0.0\n\n", "01.0.0", "1.00.0", "0.0.0",
    "1.2", "1.2.3.4", "1.2.3-", "1.2.3-rc.1", "1.2.3-rc-1+build.5", "1.2.3+", "1.2.3+b+c",
    "1.2.3-a_b", "1.2.3-ü", "١.2.3", "1.2.3 ", " 1.2.3", "1.2.3-rc\n", "10.20.30+x-y.z",
    "0-3,7", "0-3,7\n", "0-3\n7", "a", "2MB", "2MB\n", "02MB", "1GB", "1TB", "12KBB", "KB", "1kB",
    "MB:", "MB:0=100;1=50", "MB:x\n", "MB:x\n\n", "MB:\nx", "mb:", "1.2.3\n-rc",
]


def test_known_patterns_match_as_re_does() -> None:
    import random
    import re

    from pyruntime.schema import _KNOWN_PATTERNS

    rng = random.Random(11)
    alphabet = "0123456789.-+,: \nKMGBabzM/_é"
    samples = _PATTERN_SAMPLES + ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 12)))
                                  for _ in range(3000)]
    samples += [f"{a}.{b}.{c}{d}" for a in ("0", "1", "01") for b in ("2", "00") for c in ("3", "")
                for d in ("", "-x", "+y", "-x+y", "-+", "\n")]
    for pattern, check in _KNOWN_PATTERNS.items():
        compiled = re.compile(pattern)
        for v in samples:
            assert bool(check.search(v)) == bool(compiled.search(v)), (pattern, v)


def test_every_schema_pattern_has_a_plain_check() -> None:
    # an unknown pattern still works, through `re`, but costs every create ~10 ms
    from pyruntime.schema import _KNOWN_PATTERNS, SchemaSet

    found: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("pattern"), str):
                found.add(node["pattern"])
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(SchemaSet(str(validate.SCHEMA_DIR)).docs)
    assert found and found <= set(_KNOWN_PATTERNS)
