"""Unit tests for pyruntime.seccomp and the libseccomp binding; no root, no filter is loaded.

Two kinds: a recording fake library checks exactly what compile_filter asks libseccomp
for, and the real library (building a filter and exporting it needs no privilege) checks
that the result is what we mean.
"""

from __future__ import annotations

import errno
import json
import os
import re
import socket
import tempfile
from pathlib import Path
from typing import Any

import pytest

from pyruntime import seccomp
from pyruntime.errors import ConfigError
from pyruntime.syscalls import libseccomp as lsc

PODMAN_PROFILE = Path("/usr/share/containers/seccomp.json")
SECCOMP_H = Path("/usr/include/seccomp.h")
REFERENCE = Path(__file__).resolve().parents[2] / "shared/reference/runtime-spec-1.3.0-schema"


@pytest.fixture(scope="module")
def lib() -> lsc.LibSeccomp:
    try:
        return lsc.load_library()
    except OSError as e:
        pytest.skip(f"libseccomp not available: {e}")


def pfc(filt: seccomp.Filter) -> str:
    with tempfile.TemporaryFile("w+") as f:
        filt.export_pfc(f.fileno())
        f.seek(0)
        return f.read()


def unconditional_action(code: str, syscall: str) -> str | None:
    """The action pseudo filter code gives `syscall` when no argument is compared."""
    m = re.search(rf'syscall "{syscall}" .*\n\s+if \(\$syscall == \d+\)\n\s+action (.+);', code)
    return m.group(1) if m else None


def bpf(filt: seccomp.Filter) -> bytes:
    with tempfile.TemporaryFile("w+b") as f:
        filt.export_bpf(f.fileno())
        f.seek(0)
        return f.read()


class FakeLib(lsc.LibSeccomp):
    """Records every call compile_filter makes; knows x86_64 and x86, and a few syscalls."""

    SYSCALLS = {"read": 0, "write": 1, "mkdir": 83, "personality": 135, "socket": 41}
    ARCHES = {"x86_64": 0xC000003E, "x86": 0x40000003}

    def __init__(self, api: int = 6, version: tuple[int, int, int] = (2, 5, 4)) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.api = api
        self.ver = version
        self.refuse_attrs: set[int] = set()

    def version(self) -> tuple[int, int, int]:
        return self.ver

    def api_get(self) -> int:
        return self.api

    def arch_resolve_name(self, name: str) -> int | None:
        return self.ARCHES.get(name)

    def syscall_resolve_name(self, name: str) -> int | None:
        return self.SYSCALLS.get(name)

    def init(self, default_action: int) -> int:
        self.calls.append(("init", default_action))
        return 1

    def release(self, ctx: int) -> None:
        self.calls.append(("release",))

    def arch_add(self, ctx: int, arch: int) -> None:
        self.calls.append(("arch_add", arch))
        if arch == self.ARCHES["x86_64"]:
            raise OSError(errno.EEXIST, "seccomp_arch_add: File exists")

    def attr_set(self, ctx: int, attr: int, value: int) -> None:
        if attr in self.refuse_attrs:
            raise OSError(errno.EOPNOTSUPP, "seccomp_attr_set", None)
        self.calls.append(("attr_set", attr, value))

    def rule_add_array(self, ctx: int, action: int, syscall: int,
                       args: Any = ()) -> None:
        self.calls.append(("rule", action, syscall, list(args)))

    def rules(self) -> list[tuple[Any, ...]]:
        return [c[1:] for c in self.calls if c[0] == "rule"]


def compile_fake(doc: dict[str, Any], fake: FakeLib | None = None) -> tuple[seccomp.Filter,
                                                                             FakeLib]:
    fake = fake or FakeLib()
    return seccomp.compile_filter(doc, lib=fake), fake


# -- the binding --------------------------------------------------------------------------


def test_action_macros() -> None:
    assert lsc.SCMP_ACT_ERRNO(errno.EPERM) == 0x00050001
    assert lsc.SCMP_ACT_TRACE(0x1234) == 0x7FF01234
    assert lsc.SCMP_ACT_ERRNO(0x12345) == 0x00052345  # 16 bits of data, like the macro


def test_constants_match_header() -> None:
    # `make setup` installs libseccomp-dev (APT_PACKAGES): a missing header is a broken
    # setup, not a reason to skip the only check of the binding's constants
    assert SECCOMP_H.exists(), f"{SECCOMP_H} missing: run `make setup` (libseccomp-dev)"
    header = SECCOMP_H.read_text()
    defines = dict(re.findall(r"#define\s+(SCMP_ACT_[A-Z_]+)\s+(0x[0-9a-fA-F]+)U", header))
    assert defines, "no SCMP_ACT_* found in the header"
    for name, value in defines.items():
        assert getattr(lsc, name) == int(value, 16), name
    enums = dict(re.findall(r"\b(SCMP_(?:CMP|FLTATR)_[A-Z_]+)\s*=\s*(\d+)", header))
    for name, value in enums.items():
        assert getattr(lsc, name) == int(value), name


def test_binding_resolves_names(lib: lsc.LibSeccomp) -> None:
    assert lib.arch_resolve_name("x86_64") == 0xC000003E
    assert lib.arch_resolve_name("no-such-arch") is None
    assert lib.syscall_resolve_name("no_such_syscall") is None
    # a syscall that exists only elsewhere gets a negative pseudo number, not "unknown"
    assert lib.syscall_resolve_name_arch(lib.arch_resolve_name("x86_64") or 0, "socketcall") \
        is not None


def test_binding_raises_oserror_with_errno(lib: lsc.LibSeccomp) -> None:
    with pytest.raises(OSError) as bad_init:
        lib.init(0x12345678)
    assert bad_init.value.errno == errno.EINVAL
    ctx = lib.init(lsc.SCMP_ACT_ALLOW)
    try:
        nr = lib.syscall_resolve_name("mkdir")
        assert nr is not None
        with pytest.raises(OSError) as bad_arg:
            lib.rule_add_array(ctx, lsc.SCMP_ACT_KILL, nr, [lsc.ArgCmp(6, lsc.SCMP_CMP_EQ, 0)])
        assert bad_arg.value.errno == errno.EINVAL
        assert "seccomp_rule_add_array" in str(bad_arg.value)
        with pytest.raises(OSError) as same_as_default:
            lib.rule_add_array(ctx, lsc.SCMP_ACT_ALLOW, nr)
        assert same_as_default.value.errno == errno.EACCES
    finally:
        lib.release(ctx)


# -- compile_filter against the real library --------------------------------------------------


def podman_oci() -> dict[str, Any]:
    if not PODMAN_PROFILE.exists():
        pytest.skip(f"{PODMAN_PROFILE} not installed")
    return seccomp.containers_profile_to_oci(json.loads(PODMAN_PROFILE.read_text()),
                                             machine="x86_64")


def test_podman_profile_compiles(lib: lsc.LibSeccomp) -> None:
    doc = podman_oci()
    assert doc["architectures"] == ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
    with seccomp.compile_filter(doc, lib=lib) as filt:
        program = bpf(filt)
        code = pfc(filt)
    assert program and len(program) % 8 == 0  # struct sock_filter is 8 bytes
    assert filt.uses_notify is False
    for arch in ("x86_64", "x86", "x32"):
        assert f"filter for arch {arch} " in code
    assert unconditional_action(code, "swapoff") == "ERRNO(1)"
    assert "action ERRNO(38);" in code  # defaultErrnoRet: ENOSYS


def test_small_allow_list(lib: lsc.LibSeccomp) -> None:
    doc = {
        "defaultAction": "SCMP_ACT_ERRNO",
        "architectures": ["SCMP_ARCH_X86_64"],
        "syscalls": [{"names": ["read", "write", "exit_group"], "action": "SCMP_ACT_ALLOW"}],
    }
    with seccomp.compile_filter(doc, lib=lib) as filt:
        code = pfc(filt)
    for name in ("read", "write", "exit_group"):
        assert unconditional_action(code, name) == "ALLOW"
    assert "action ERRNO(1);" in code  # EPERM when defaultErrnoRet is unset, as runc does


def test_unknown_syscall_is_skipped(lib: lsc.LibSeccomp) -> None:
    doc = {"defaultAction": "SCMP_ACT_ALLOW",
           "syscalls": [{"names": ["no_such_call", "mkdir"], "action": "SCMP_ACT_ERRNO",
                         "errnoRet": errno.EROFS}]}
    with seccomp.compile_filter(doc, lib=lib) as filt:
        code = pfc(filt)
    assert filt.skipped_syscalls == ("no_such_call",)
    assert unconditional_action(code, "mkdir") == f"ERRNO({errno.EROFS})"


def test_arch_mapping(lib: lsc.LibSeccomp) -> None:
    doc = {"defaultAction": "SCMP_ACT_ALLOW",
           "architectures": ["SCMP_ARCH_X86", "SCMP_ARCH_AARCH64", "SCMP_ARCH_X86_64"],
           "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_KILL_PROCESS"}]}
    with seccomp.compile_filter(doc, lib=lib) as filt:
        code = pfc(filt)
    for arch in ("x86", "aarch64", "x86_64"):
        assert f"filter for arch {arch} " in code


def test_arg_comparisons_reach_the_filter(lib: lsc.LibSeccomp) -> None:
    doc = {"defaultAction": "SCMP_ACT_ALLOW",
           "syscalls": [{"names": ["personality"], "action": "SCMP_ACT_ERRNO",
                         "args": [{"index": 0, "value": 0xFF, "valueTwo": 8,
                                   "op": "SCMP_CMP_MASKED_EQ"}]}]}
    with seccomp.compile_filter(doc, lib=lib) as filt:
        code = pfc(filt)
    assert "if ($a0.lo32 & 0x000000ff == 8)" in code, code


def test_wait_killable_recv_needs_newer_library(lib: lsc.LibSeccomp) -> None:
    if lib.version() >= (2, 6, 0):
        pytest.skip("this libseccomp has SCMP_FLTATR_CTL_WAITKILL")
    doc = {"defaultAction": "SCMP_ACT_ALLOW",
           "flags": ["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"]}
    with pytest.raises(ConfigError) as e:
        seccomp.compile_filter(doc, lib=lib)
    assert e.value.where == "linux.seccomp.flags[1]"
    assert "libseccomp >= 2.6.0" in e.value.reason


def test_supported_flags_on_this_machine(lib: lsc.LibSeccomp) -> None:
    doc = {"defaultAction": "SCMP_ACT_ALLOW", "flags": seccomp.supported_flags(lib)}
    with seccomp.compile_filter(doc, lib=lib) as filt:
        assert filt.flags == tuple(doc["flags"])


def test_features_shape(lib: lsc.LibSeccomp) -> None:
    feats = seccomp.features(lib=lib)
    assert feats["enabled"] is True
    assert "SCMP_ACT_NOTIFY" in feats["actions"] and "SCMP_ACT_ERRNO" in feats["actions"]
    assert feats["operators"] == list(seccomp.OPERATORS)
    assert "SCMP_ARCH_X86_64" in feats["archs"]
    assert set(feats["supportedFlags"]) <= set(feats["knownFlags"])
    if lib.version() < (2, 6, 0):
        assert "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV" not in feats["supportedFlags"]
        assert "SCMP_ARCH_M68K" not in feats["archs"]


@pytest.mark.skipif(not (REFERENCE / "features-linux.json").exists(),
                    reason="runtime-spec reference schemas not present")
def test_features_match_the_spec_enums(lib: lsc.LibSeccomp) -> None:
    defs = json.loads((REFERENCE / "defs-linux.json").read_text())["definitions"]
    feats = seccomp.features(lib=lib)
    for key, enum in (("actions", "SeccompAction"), ("operators", "SeccompOperators"),
                      ("archs", "SeccompArch"), ("knownFlags", "SeccompFlag"),
                      ("supportedFlags", "SeccompFlag")):
        assert set(feats[key]) <= set(defs[enum]["enum"]), key
    assert set(seccomp.ACTIONS) == set(defs["SeccompAction"]["enum"])
    assert set(seccomp.ARCHES) == set(defs["SeccompArch"]["enum"])
    assert set(seccomp.FLAGS) == set(defs["SeccompFlag"]["enum"])


# -- compile_filter against the fake: what is asked of libseccomp ---------------------------


def test_nnp_attribute_is_cleared() -> None:
    _, fake = compile_fake({"defaultAction": "SCMP_ACT_ALLOW"})
    assert ("attr_set", lsc.SCMP_FLTATR_CTL_NNP, 0) in fake.calls


@pytest.mark.parametrize("op", list(seccomp.OPERATORS))
def test_operator_mapping(op: str) -> None:
    doc = {"defaultAction": "SCMP_ACT_ALLOW",
           "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_KILL",
                         "args": [{"index": 1, "value": 7, "valueTwo": 3, "op": op}]}]}
    _, fake = compile_fake(doc)
    masked = op == "SCMP_CMP_MASKED_EQ"
    want = lsc.ArgCmp(1, getattr(lsc, op), 7, 3 if masked else 0)
    assert fake.rules() == [(lsc.SCMP_ACT_KILL, 83, [want])]


def test_args_on_different_indexes_are_anded() -> None:
    doc = {"defaultAction": "SCMP_ACT_ALLOW",
           "syscalls": [{"names": ["socket"], "action": "SCMP_ACT_ERRNO", "errnoRet": 22,
                         "args": [{"index": 0, "value": 16, "op": "SCMP_CMP_EQ"},
                                  {"index": 2, "value": 9, "op": "SCMP_CMP_EQ"}]}]}
    _, fake = compile_fake(doc)
    assert fake.rules() == [(lsc.SCMP_ACT_ERRNO(22), 41,
                             [lsc.ArgCmp(0, lsc.SCMP_CMP_EQ, 16),
                              lsc.ArgCmp(2, lsc.SCMP_CMP_EQ, 9)])]


def test_args_on_the_same_index_become_separate_rules() -> None:
    doc = {"defaultAction": "SCMP_ACT_ERRNO",
           "syscalls": [{"names": ["personality"], "action": "SCMP_ACT_ALLOW",
                         "args": [{"index": 0, "value": 0, "op": "SCMP_CMP_EQ"},
                                  {"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]}]}
    _, fake = compile_fake(doc)
    assert fake.rules() == [(lsc.SCMP_ACT_ALLOW, 135, [lsc.ArgCmp(0, lsc.SCMP_CMP_EQ, 0)]),
                            (lsc.SCMP_ACT_ALLOW, 135, [lsc.ArgCmp(0, lsc.SCMP_CMP_EQ, 8)])]


def test_rule_equal_to_default_is_skipped() -> None:
    doc = {"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 38,
           "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38},
                        {"names": ["write"], "action": "SCMP_ACT_ERRNO"}]}
    _, fake = compile_fake(doc)
    assert fake.calls[0] == ("init", lsc.SCMP_ACT_ERRNO(38))
    assert fake.rules() == [(lsc.SCMP_ACT_ERRNO(errno.EPERM), 1, [])]


def test_trace_defaults_to_eperm_like_errno() -> None:
    doc = {"defaultAction": "SCMP_ACT_TRACE"}
    _, fake = compile_fake(doc)
    assert fake.calls[0] == ("init", lsc.SCMP_ACT_TRACE(errno.EPERM))


def test_arch_names_map_to_library_tokens() -> None:
    doc = {"defaultAction": "SCMP_ACT_ALLOW",
           "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"]}
    _, fake = compile_fake(doc)  # EEXIST for the native arch is not an error
    assert [c for c in fake.calls if c[0] == "arch_add"] == [
        ("arch_add", FakeLib.ARCHES["x86_64"]), ("arch_add", FakeLib.ARCHES["x86"])]


def test_flags_set_their_attributes() -> None:
    doc = {"defaultAction": "SCMP_ACT_ALLOW",
           "flags": ["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
                     "SECCOMP_FILTER_FLAG_TSYNC"]}
    filt, fake = compile_fake(doc)
    for attr in (lsc.SCMP_FLTATR_CTL_LOG, lsc.SCMP_FLTATR_CTL_SSB, lsc.SCMP_FLTATR_CTL_TSYNC):
        assert ("attr_set", attr, 1) in fake.calls
    assert filt.flags == tuple(doc["flags"])


def test_unsupported_flag_is_a_config_error_and_releases() -> None:
    fake = FakeLib()
    fake.refuse_attrs.add(lsc.SCMP_FLTATR_CTL_SSB)
    with pytest.raises(ConfigError) as e:
        compile_fake({"defaultAction": "SCMP_ACT_ALLOW",
                      "flags": ["SECCOMP_FILTER_FLAG_SPEC_ALLOW"]}, fake)
    assert e.value.where == "linux.seccomp.flags[0]"
    assert "not supported" in e.value.reason
    assert fake.calls[-1] == ("release",)


def test_notify_marks_the_filter_and_keeps_listener() -> None:
    doc = {"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/run/agent.sock",
           "listenerMetadata": "m",
           "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]}
    filt, fake = compile_fake(doc)
    assert filt.uses_notify and filt.listener_path == "/run/agent.sock"
    assert filt.listener_metadata == "m"
    assert fake.rules() == [(lsc.SCMP_ACT_NOTIFY, 83, [])]


def test_json_null_lists_are_empty() -> None:
    doc = {"defaultAction": "SCMP_ACT_ALLOW", "architectures": None, "flags": None,
           "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_LOG", "args": None}]}
    _, fake = compile_fake(doc)
    assert fake.rules() == [(lsc.SCMP_ACT_LOG, 83, [])]


def test_api_level_gates_actions() -> None:
    with pytest.raises(ConfigError) as e:
        compile_fake({"defaultAction": "SCMP_ACT_ALLOW",
                      "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]},
                     FakeLib(api=4))
    assert e.value.where == "linux.seccomp.syscalls[0].action"
    assert "API level 5" in e.value.reason


BAD_DOCS: list[tuple[dict[str, Any], str, str]] = [
    ({"defaultAction": "SCMP_ACT_ALLOW",
      "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ERRNO"},
                   {"names": ["write"], "action": "SCMP_ACT_ERRNO"},
                   {"names": ["mkdir"], "action": "SCMP_ACT_KILL"},
                   {"names": ["mkdir"], "action": "SCMP_ACT_EXPLODE"}]},
     "linux.seccomp.syscalls[3].action", "unknown action 'SCMP_ACT_EXPLODE'"),
    ({"defaultAction": "SCMP_ACT_NOPE"}, "linux.seccomp.defaultAction", "unknown action"),
    ({}, "linux.seccomp.defaultAction", "unknown action None"),
    ({"defaultAction": "SCMP_ACT_NOTIFY", "listenerPath": "/x"},
     "linux.seccomp.defaultAction", "cannot be the default action"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "defaultErrnoRet": 1},
     "linux.seccomp.defaultErrnoRet", "does not take an errno"),
    ({"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": -1},
     "linux.seccomp.defaultErrnoRet", "from 0 to 65535"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_VAX"]},
     "linux.seccomp.architectures[0]", "unknown architecture 'SCMP_ARCH_VAX'"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86", "SCMP_ARCH_S390X"]},
     "linux.seccomp.architectures[1]", "SCMP_ARCH_S390X is not supported by libseccomp 2.5.4"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "flags": ["SECCOMP_FILTER_FLAG_FAST"]},
     "linux.seccomp.flags[0]", "unknown flag"),
    ({"defaultAction": "SCMP_ACT_ALLOW",
      "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_KILL",
                    "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_ALMOST"}]}]},
     "linux.seccomp.syscalls[0].args[0].op", "unknown operator"),
    ({"defaultAction": "SCMP_ACT_ALLOW",
      "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_KILL",
                    "args": [{"index": 6, "value": 1, "op": "SCMP_CMP_EQ"}]}]},
     "linux.seccomp.syscalls[0].args[0].index", "from 0 to 5"),
    ({"defaultAction": "SCMP_ACT_ALLOW",
      "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_KILL",
                    "args": [{"index": 0, "value": 2**64, "op": "SCMP_CMP_EQ"}]}]},
     "linux.seccomp.syscalls[0].args[0].value", "must be an integer"),
    ({"defaultAction": "SCMP_ACT_ALLOW",
      "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_KILL", "errnoRet": 1}]},
     "linux.seccomp.syscalls[0].errnoRet", "does not take an errno"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": [3], "action": "SCMP_ACT_KILL"}]},
     "linux.seccomp.syscalls[0].names[0]", "non-empty string"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": {"names": ["mkdir"]}},
     "linux.seccomp.syscalls", "must be an array"),
    ({"defaultAction": "SCMP_ACT_ALLOW",
      "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]},
     "linux.seccomp.listenerPath", "must be set"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/x",
      "syscalls": [{"names": ["mkdir", "write"], "action": "SCMP_ACT_NOTIFY"}]},
     "linux.seccomp.syscalls[0].names[1]", "cannot be used for write"),
]


@pytest.mark.parametrize(("doc", "where", "reason"), BAD_DOCS,
                         ids=[w + ":" + r for _, w, r in BAD_DOCS])
def test_bad_documents(doc: dict[str, Any], where: str, reason: str) -> None:
    fake = FakeLib()
    with pytest.raises(ConfigError) as e:
        seccomp.compile_filter(doc, lib=fake)
    assert e.value.where == where
    assert reason in e.value.reason
    assert str(e.value).startswith(where + ": ")
    if any(c[0] == "init" for c in fake.calls):
        assert fake.calls[-1] == ("release",)


def test_bad_document_with_real_library_releases_nothing_twice(lib: lsc.LibSeccomp) -> None:
    with pytest.raises(ConfigError) as e:
        seccomp.compile_filter({"defaultAction": "SCMP_ACT_ALLOW",
                                "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_WHAT"}]},
                               lib=lib)
    assert e.value.where == "linux.seccomp.syscalls[0].action"


def test_released_filter_refuses_use(lib: lsc.LibSeccomp) -> None:
    filt = seccomp.compile_filter({"defaultAction": "SCMP_ACT_ALLOW"}, lib=lib)
    filt.release()
    filt.release()  # idempotent
    with pytest.raises(ValueError):
        filt.load()


# -- the notify hand-off (no filter needed: any fd travels the same way) ---------------------

STATE = {"ociVersion": "1.2.0", "id": "c1", "status": "creating", "pid": 4242,
         "bundle": "/b", "annotations": {"a": "b"}}


def test_encode_listener_state() -> None:
    msg = json.loads(seccomp.encode_listener_state(STATE, "meta"))
    assert msg == {"ociVersion": "1.2.0", "fds": ["seccompFd"], "pid": 4242,
                   "metadata": "meta", "state": STATE}


def _recv_all(conn: socket.socket) -> tuple[bytes, list[int]]:
    data, fds, _, _ = socket.recv_fds(conn, 1 << 16, 4)
    rest = b""
    while chunk := conn.recv(1 << 16):
        rest += chunk
    return data + rest, fds


def test_send_listener_fd_over_a_connected_socket() -> None:
    ours, agent = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    r, w = os.pipe()
    try:
        seccomp.send_listener_fd(ours, r, STATE, "meta")
        assert ours.fileno() == -1  # one message per connection, then closed
        data, fds = _recv_all(agent)
        assert json.loads(data)["state"]["id"] == "c1"
        assert len(fds) == 1
        os.write(w, b"x")
        assert os.read(fds[0], 1) == b"x"  # the very pipe we sent
        os.close(fds[0])
    finally:
        agent.close()
        os.close(r)
        os.close(w)


def test_send_listener_fd_by_path_with_preencoded_state(tmp_path: Path) -> None:
    path = str(tmp_path / "agent.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
        server.bind(path)
        server.listen(1)
        r, w = os.pipe()
        try:
            payload = seccomp.encode_listener_state(STATE, "m")
            seccomp.send_listener_fd(path, w, payload)
            conn, _ = server.accept()
            with conn:
                data, fds = _recv_all(conn)
            assert data == payload and len(fds) == 1
            os.close(fds[0])
        finally:
            os.close(r)
            os.close(w)


def test_connect_listener_missing(tmp_path: Path) -> None:
    path = str(tmp_path / "nobody-home.sock")
    with pytest.raises(OSError) as e:
        seccomp.connect_listener(path)
    assert e.value.errno == errno.ENOENT
    assert path in str(e.value)


# -- containers-format profiles --------------------------------------------------------------


def test_profile_conversion_follows_capabilities() -> None:
    raw = json.loads(PODMAN_PROFILE.read_text()) if PODMAN_PROFILE.exists() else pytest.skip(
        "podman profile not installed")

    def actions_for(doc: dict[str, Any], name: str) -> list[str]:
        return [r["action"] for r in doc["syscalls"] if name in r["names"]]

    plain = seccomp.containers_profile_to_oci(raw, machine="x86_64")
    admin = seccomp.containers_profile_to_oci(raw, machine="x86_64", caps=["CAP_SYS_ADMIN"])
    assert actions_for(plain, "bpf") == ["SCMP_ACT_ERRNO"]
    assert actions_for(admin, "bpf") == ["SCMP_ACT_ALLOW"]
    assert actions_for(plain, "arch_prctl") == ["SCMP_ACT_ALLOW"]
    assert actions_for(plain, "s390_runtime_instr") == []
    assert plain["defaultErrnoRet"] == errno.ENOSYS


def test_profile_min_kernel() -> None:
    raw = {"defaultAction": "SCMP_ACT_ERRNO",
           "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ALLOW",
                         "includes": {"minKernel": "5.8"}}]}
    assert seccomp.containers_profile_to_oci(raw, kernel="5.4.0-1")["syscalls"] == []
    assert seccomp.containers_profile_to_oci(raw, kernel="6.1.0")["syscalls"] == [
        {"names": ["mkdir"], "action": "SCMP_ACT_ALLOW"}]
