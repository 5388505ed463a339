"""linux.seccomp: from the OCI document to a loaded filter and a delivered notify fd.

This module owns the meaning of the `linux.seccomp` JSON (actions, operators, architectures,
flags, listener), the seccomp notify hand-off to the agent at `listenerPath`, and the
`seccomp` part of `pyruntime features`.  The ctypes side lives in
`pyruntime.syscalls.libseccomp`.

The order of use in the container's setup process:

1. `compile_filter()` before pivot_root: it dlopens libseccomp, probes the kernel's API
   level, checks the whole document and builds the libseccomp context.  Every
   `ConfigError` surfaces here, before the container is half built.
2. `connect_listener()` before pivot_root too, when the filter uses SCMP_ACT_NOTIFY, since
   `listenerPath` is a host path.
3. `Filter.load()` last, just before execve, after no_new_privs is set (the runtime sets it;
   libseccomp is told not to).
4. `send_listener_fd()` with the fd that `load()` returned, then execve.
"""

from __future__ import annotations

import errno
import os
from _collections_abc import Mapping  # what collections.abc exports, without `collections`

from . import OCI_VERSION
from .errors import ConfigError
from .fastjson import dumps
from .syscalls import libseccomp as lsc

# json, socket and typing cost milliseconds of every `create` with a profile: the notify
# hand-off imports socket itself (connect_listener, before pivot_root), and type names
# exist only for type checkers.
TYPE_CHECKING = False
if TYPE_CHECKING:
    import socket
    from collections.abc import Iterable, Sequence
    from typing import Any

WHERE = "linux.seccomp"

# OCI arch name -> libseccomp's name for it.  Whether the loaded library knows an arch is
# asked at run time (libseccomp 2.5.4 lacks loongarch64, m68k, sh and sheb).
ARCHES: dict[str, str] = {
    "SCMP_ARCH_X86": "x86",
    "SCMP_ARCH_X86_64": "x86_64",
    "SCMP_ARCH_X32": "x32",
    "SCMP_ARCH_ARM": "arm",
    "SCMP_ARCH_AARCH64": "aarch64",
    "SCMP_ARCH_LOONGARCH64": "loongarch64",
    "SCMP_ARCH_M68K": "m68k",
    "SCMP_ARCH_MIPS": "mips",
    "SCMP_ARCH_MIPS64": "mips64",
    "SCMP_ARCH_MIPS64N32": "mips64n32",
    "SCMP_ARCH_MIPSEL": "mipsel",
    "SCMP_ARCH_MIPSEL64": "mipsel64",
    "SCMP_ARCH_MIPSEL64N32": "mipsel64n32",
    "SCMP_ARCH_PPC": "ppc",
    "SCMP_ARCH_PPC64": "ppc64",
    "SCMP_ARCH_PPC64LE": "ppc64le",
    "SCMP_ARCH_S390": "s390",
    "SCMP_ARCH_S390X": "s390x",
    "SCMP_ARCH_SH": "sh",
    "SCMP_ARCH_SHEB": "sheb",
    "SCMP_ARCH_PARISC": "parisc",
    "SCMP_ARCH_PARISC64": "parisc64",
    "SCMP_ARCH_RISCV64": "riscv64",
}

OPERATORS: dict[str, int] = {
    "SCMP_CMP_NE": lsc.SCMP_CMP_NE,
    "SCMP_CMP_LT": lsc.SCMP_CMP_LT,
    "SCMP_CMP_LE": lsc.SCMP_CMP_LE,
    "SCMP_CMP_EQ": lsc.SCMP_CMP_EQ,
    "SCMP_CMP_GE": lsc.SCMP_CMP_GE,
    "SCMP_CMP_GT": lsc.SCMP_CMP_GT,
    "SCMP_CMP_MASKED_EQ": lsc.SCMP_CMP_MASKED_EQ,
}

# Action name -> (value, libseccomp API level it needs).  ERRNO and TRACE get their data
# (errnoRet) added by `_action`.
_ACTIONS: dict[str, tuple[int, int]] = {
    "SCMP_ACT_KILL": (lsc.SCMP_ACT_KILL_THREAD, 1),
    "SCMP_ACT_KILL_THREAD": (lsc.SCMP_ACT_KILL_THREAD, 1),
    "SCMP_ACT_KILL_PROCESS": (lsc.SCMP_ACT_KILL_PROCESS, 3),
    "SCMP_ACT_TRAP": (lsc.SCMP_ACT_TRAP, 1),
    "SCMP_ACT_ERRNO": (lsc.SCMP_ACT_ERRNO(0), 1),
    "SCMP_ACT_TRACE": (lsc.SCMP_ACT_TRACE(0), 1),
    "SCMP_ACT_ALLOW": (lsc.SCMP_ACT_ALLOW, 1),
    "SCMP_ACT_LOG": (lsc.SCMP_ACT_LOG, 3),
    "SCMP_ACT_NOTIFY": (lsc.SCMP_ACT_NOTIFY, 5),
}
ACTIONS = tuple(_ACTIONS)
_WITH_ERRNO = ("SCMP_ACT_ERRNO", "SCMP_ACT_TRACE")

# Flag -> the filter attribute that makes libseccomp pass it to seccomp(2).  libseccomp
# itself refuses an attribute the running kernel lacks, so setting it is the support test.
FLAGS: dict[str, int] = {
    "SECCOMP_FILTER_FLAG_TSYNC": lsc.SCMP_FLTATR_CTL_TSYNC,
    "SECCOMP_FILTER_FLAG_LOG": lsc.SCMP_FLTATR_CTL_LOG,
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW": lsc.SCMP_FLTATR_CTL_SSB,
    "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV": lsc.SCMP_FLTATR_CTL_WAITKILL,
}
_FLAG_MIN_LIBRARY = {"SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV": (2, 6, 0)}

# Between `Filter.load()` and the hand-off of the notify fd, the setup process itself makes
# these syscalls (send, close, and whatever CPython's allocator asks for).  Were one of them
# notified, it would wait for an agent that has not got the fd yet: a deadlock.
NOTIFY_FORBIDDEN = frozenset({
    "write", "sendmsg", "sendto", "close", "brk", "mmap", "munmap", "mremap", "madvise",
    "exit", "exit_group",
})


class Filter:
    """A built, not yet loaded, libseccomp context plus what the caller needs around loading.

    It belongs to the process that built it; a forked child inherits a usable copy.  The
    parent releases its copy with `release()` (or a `with` block) once it has forked.
    """

    __slots__ = ("_lib", "_ctx", "uses_notify", "listener_path", "listener_metadata",
                 "flags", "skipped_syscalls", "_program")

    def __init__(self, lib: lsc.LibSeccomp, ctx: int, *, uses_notify: bool,
                 listener_path: str | None, listener_metadata: str,
                 flags: tuple[str, ...], skipped_syscalls: tuple[str, ...]) -> None:
        self._lib = lib
        self._ctx: int | None = ctx
        self.uses_notify = uses_notify
        self.listener_path = listener_path
        self.listener_metadata = listener_metadata
        self.flags = flags
        self.skipped_syscalls = skipped_syscalls
        self._program: lsc.Program | None = None

    def prepare(self) -> None:
        """Generate the BPF program now, so that load() is one seccomp(2) call.

        seccomp_load generates it on the spot (some 60 ms for podman's profile), and load()
        runs between `start` releasing init and execve, while pid 1 is still the runtime
        and a TERM sent to it is dropped.  Without this, load() falls back to seccomp_load.
        """
        lib, ctx = self._lib, self._live()
        try:
            # a binary tree over the syscall numbers instead of a linear scan: the same
            # verdicts, but the kernel checks it (and caches it) in half the time, and
            # every syscall in the container pays less for it
            lib.attr_set(ctx, lsc.SCMP_FLTATR_CTL_OPTIMIZE, 2)
        except OSError:
            pass  # libseccomp < 2.5: the linear program
        flags = 0
        for attr, bit in ((lsc.SCMP_FLTATR_CTL_TSYNC, lsc.SECCOMP_FILTER_FLAG_TSYNC),
                          (lsc.SCMP_FLTATR_CTL_LOG, lsc.SECCOMP_FILTER_FLAG_LOG),
                          (lsc.SCMP_FLTATR_CTL_SSB, lsc.SECCOMP_FILTER_FLAG_SPEC_ALLOW),
                          (lsc.SCMP_FLTATR_CTL_WAITKILL, lsc.SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV)):
            try:
                if lib.attr_get(ctx, attr):
                    flags |= bit
            except OSError:
                continue  # an attribute this libseccomp lacks was not set either
        if self.uses_notify:  # what seccomp_load adds for a filter with SCMP_ACT_NOTIFY
            flags |= lsc.SECCOMP_FILTER_FLAG_NEW_LISTENER
            if flags & lsc.SECCOMP_FILTER_FLAG_TSYNC:
                flags |= lsc.SECCOMP_FILTER_FLAG_TSYNC_ESRCH
        fd = os.memfd_create("seccomp-bpf", os.MFD_CLOEXEC)
        try:
            lib.export_bpf(ctx, fd)
            size = os.fstat(fd).st_size
            bpf = os.pread(fd, size, 0)
        finally:
            os.close(fd)
        try:
            self._program = lsc.Program(bpf, flags)
        except (OSError, ValueError):
            self._program = None  # seccomp_load it is

    def load(self) -> int | None:
        """Install the filter in the calling thread; the notify fd if the filter has one.

        Runs just before execve: after prepare() it is one syscall.  The fd is
        close-on-exec; the caller sends it with `send_listener_fd` and closes it.
        """
        if self._program is not None:
            fd = self._program.install()
            return fd if self.uses_notify else None
        ctx = self._ctx
        if ctx is None:
            raise ValueError("seccomp filter already released")
        self._lib.load(ctx)
        return self._lib.notify_fd(ctx) if self.uses_notify else None

    def export_bpf(self, fd: int) -> None:
        """Write the BPF program to fd (no privilege needed; for tests and debugging)."""
        self._lib.export_bpf(self._live(), fd)

    def export_pfc(self, fd: int) -> None:
        """Write libseccomp's readable pseudo filter code to fd."""
        self._lib.export_pfc(self._live(), fd)

    def release(self) -> None:
        if self._ctx is not None:
            ctx, self._ctx = self._ctx, None
            self._lib.release(ctx)

    def _live(self) -> int:
        if self._ctx is None:
            raise ValueError("seccomp filter already released")
        return self._ctx

    def __enter__(self) -> Filter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


# -- compiling ------------------------------------------------------------------------------


def _list(doc: Mapping[str, Any], key: str, where: str) -> list[Any]:
    value = doc.get(key)
    if value is None:  # absent or JSON null: Go's decoder (runc) takes both as empty
        return []
    if not isinstance(value, list):
        raise ConfigError(f"{where}.{key}", f"must be an array, not {type(value).__name__}")
    return value


def _uint(value: Any, where: str, limit: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= limit:
        raise ConfigError(where, f"must be an integer from 0 to {limit}, not {value!r}")
    return value


def _action(name: Any, errno_ret: Any, where: str, errno_where: str, api: int) -> int:
    if name not in _ACTIONS:
        raise ConfigError(where, f"unknown action {name!r}")
    value, needs_api = _ACTIONS[name]
    if api < needs_api:
        raise ConfigError(where, f"{name} needs libseccomp API level {needs_api}; "
                                 f"this library and kernel offer {api}")
    if name in _WITH_ERRNO:
        # Like runc: an unset errnoRet means EPERM for both ERRNO and TRACE.
        data = errno.EPERM if errno_ret is None else _uint(errno_ret, errno_where,
                                                            lsc.ACTION_DATA_MAX)
        return value | data
    if errno_ret is not None:
        raise ConfigError(errno_where, f"{name} does not take an errno")
    return value


def _conditions(args: list[Any], where: str) -> list[list[lsc.ArgCmp]]:
    """The rules one syscall entry becomes, each a list of AND-ed conditions.

    Two conditions on the same argument would AND into a rule that can rarely match; the
    profiles in the wild (Docker's, podman's) mean "any of these", so, as runc does, such an
    entry becomes one rule per condition instead.
    """
    conds: list[lsc.ArgCmp] = []
    for k, arg in enumerate(args):
        at = f"{where}[{k}]"
        if not isinstance(arg, Mapping):
            raise ConfigError(at, "must be an object")
        index = _uint(arg.get("index"), f"{at}.index", lsc.MAX_ARG_INDEX)
        op_name = arg.get("op")
        if op_name not in OPERATORS:
            raise ConfigError(f"{at}.op", f"unknown operator {op_name!r}")
        op = OPERATORS[op_name]
        value = _uint(arg.get("value"), f"{at}.value", 2**64 - 1)
        value_two = arg.get("valueTwo")
        # For MASKED_EQ `value` is the mask and `valueTwo` the expected result; the other
        # operators compare with `value` alone.
        two = 0 if value_two is None or op != lsc.SCMP_CMP_MASKED_EQ else _uint(
            value_two, f"{at}.valueTwo", 2**64 - 1)
        conds.append(lsc.ArgCmp(index, op, value, two))
    indexes = [c.arg for c in conds]
    if len(set(indexes)) != len(indexes):
        return [[c] for c in conds]
    return [conds]


def _add_arches(lib: lsc.LibSeccomp, ctx: int, names: list[Any]) -> None:
    for i, name in enumerate(names):
        at = f"{WHERE}.architectures[{i}]"
        if name not in ARCHES:
            raise ConfigError(at, f"unknown architecture {name!r}")
        token = lib.arch_resolve_name(ARCHES[name])
        if token is None:
            raise ConfigError(at, f"{name} is not supported by libseccomp "
                                  f"{'.'.join(map(str, lib.version()))}")
        try:
            lib.arch_add(ctx, token)
        except OSError as e:
            if e.errno != errno.EEXIST:  # the native arch is always there
                raise ConfigError(at, f"{name}: {e.strerror}") from e


def _set_flags(lib: lsc.LibSeccomp, ctx: int, flags: list[Any]) -> tuple[str, ...]:
    for i, flag in enumerate(flags):
        at = f"{WHERE}.flags[{i}]"
        if flag not in FLAGS:
            raise ConfigError(at, f"unknown flag {flag!r}")
        try:
            lib.attr_set(ctx, FLAGS[flag], 1)
        except OSError as e:
            raise ConfigError(at, _unsupported_flag_reason(lib, flag, e)) from e
    return tuple(flags)


def _unsupported_flag_reason(lib: lsc.LibSeccomp, flag: str, err: OSError) -> str:
    have = lib.version()
    need = _FLAG_MIN_LIBRARY.get(flag)
    version = ".".join(map(str, have))
    if need is not None and have < need:
        return (f"{flag} is not supported: it needs libseccomp >= {'.'.join(map(str, need))}, "
                f"this is {version}")
    return f"{flag} is not supported by libseccomp {version} on this kernel ({err.strerror})"


def compile_filter(seccomp: Mapping[str, Any], *, lib: lsc.LibSeccomp | None = None) -> Filter:
    """Check `linux.seccomp` and build its libseccomp context (not loaded).

    Raises ConfigError naming the JSON path of the first bad field.  Syscall names the
    library does not know are skipped, as runc does (they are listed in
    `Filter.skipped_syscalls`); so are rules whose action is the default action.
    """
    if not isinstance(seccomp, Mapping):
        raise ConfigError(WHERE, "must be an object")
    if lib is None:
        lib = lsc.load_library()
    # The first call probes the kernel; doing it here keeps that out of load().
    api = lib.api_get()

    default_name = seccomp.get("defaultAction")
    if default_name == "SCMP_ACT_NOTIFY":
        raise ConfigError(f"{WHERE}.defaultAction", "SCMP_ACT_NOTIFY cannot be the default action")
    default = _action(default_name, seccomp.get("defaultErrnoRet"), f"{WHERE}.defaultAction",
                      f"{WHERE}.defaultErrnoRet", api)
    listener_path = seccomp.get("listenerPath")
    if listener_path is not None and not isinstance(listener_path, str):
        raise ConfigError(f"{WHERE}.listenerPath", "must be a string")
    metadata = seccomp.get("listenerMetadata", "")
    if not isinstance(metadata, str):
        raise ConfigError(f"{WHERE}.listenerMetadata", "must be a string")

    try:
        ctx = lib.init(default)
    except OSError as e:
        raise ConfigError(f"{WHERE}.defaultAction",
                          f"libseccomp refused {default_name}: {e.strerror}") from e
    try:
        # no_new_privs is the runtime's decision (process.noNewPrivileges), not libseccomp's.
        lib.attr_set(ctx, lsc.SCMP_FLTATR_CTL_NNP, 0)
        flags = _set_flags(lib, ctx, _list(seccomp, "flags", WHERE))
        _add_arches(lib, ctx, _list(seccomp, "architectures", WHERE))
        uses_notify, skipped = _add_rules(lib, ctx, _list(seccomp, "syscalls", WHERE),
                                          default, api)
        if uses_notify and not listener_path:
            raise ConfigError(f"{WHERE}.listenerPath", "must be set when SCMP_ACT_NOTIFY is used")
    except BaseException:
        lib.release(ctx)
        raise
    return Filter(lib, ctx, uses_notify=uses_notify, listener_path=listener_path or None,
                  listener_metadata=metadata, flags=flags, skipped_syscalls=skipped)


def _add_rules(lib: lsc.LibSeccomp, ctx: int, syscalls: list[Any], default: int,
               api: int) -> tuple[bool, tuple[str, ...]]:
    uses_notify = False
    skipped: list[str] = []
    for i, entry in enumerate(syscalls):
        at = f"{WHERE}.syscalls[{i}]"
        if not isinstance(entry, Mapping):
            raise ConfigError(at, "must be an object")
        names = _list(entry, "names", at)
        action_name = entry.get("action")
        action = _action(action_name, entry.get("errnoRet"), f"{at}.action",
                         f"{at}.errnoRet", api)
        rules = _conditions(_list(entry, "args", at), f"{at}.args")
        if action == default:
            continue  # libseccomp refuses a rule that repeats the default (EACCES)
        for j, name in enumerate(names):
            if not isinstance(name, str) or not name:
                raise ConfigError(f"{at}.names[{j}]", "must be a non-empty string")
            if action_name == "SCMP_ACT_NOTIFY" and name in NOTIFY_FORBIDDEN:
                raise ConfigError(f"{at}.names[{j}]", f"SCMP_ACT_NOTIFY cannot be used for "
                                  f"{name}: the runtime needs it to hand over the notify fd")
            nr = lib.syscall_resolve_name(name)
            if nr is None:
                skipped.append(name)
                continue
            for conds in rules:
                try:
                    lib.rule_add_array(ctx, action, nr, conds)
                except OSError as e:
                    raise ConfigError(at, f"{name}: libseccomp refused the rule: "
                                          f"{e.strerror}") from e
            uses_notify = uses_notify or action == lsc.SCMP_ACT_NOTIFY
    return uses_notify, tuple(skipped)


# -- seccomp notify hand-off ---------------------------------------------------------------


def connect_listener(path: str) -> socket.socket:
    """A connection to the agent at `listenerPath`; make it while the host path is visible.

    socket.py is imported here, before pivot_root, so that send_listener_fd() finds it
    loaded once the host's modules are out of reach.
    """
    import socket

    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        sock.connect(path)
    except OSError as e:
        sock.close()
        # "AF_UNIX path too long" comes without an errno
        code = e.errno or errno.ENAMETOOLONG
        raise OSError(code, f"connect seccomp listener {path}: {e.strerror or e}", path) from e
    return sock


def encode_listener_state(state: Mapping[str, Any], metadata: str = "") -> bytes:
    """The runtime-spec "container process state" message that goes with the notify fd.

    `state` is the container's runtime-spec state (ociVersion, id, status, pid, bundle,
    annotations).  Encode it before `Filter.load()` if the setup process should allocate as
    little as possible after loading.
    """
    message = {
        "ociVersion": OCI_VERSION,
        "fds": ["seccompFd"],
        "pid": state.get("pid", 0),
        "metadata": metadata,
        "state": dict(state),
    }
    return dumps(message).encode()  # json.dumps(message, separators=(",", ":"))


def send_listener_fd(target: str | socket.socket, fd: int, state: Mapping[str, Any] | bytes,
                     metadata: str = "") -> None:
    """Send the notify fd with the container process state to the agent, then hang up.

    `target` is `listenerPath` or a socket from `connect_listener()`; either way the
    connection is closed afterwards, since the spec allows one message per connection.
    `state` may be pre-encoded by `encode_listener_state` (then `metadata` is unused).  The
    caller still owns `fd`.
    """
    import array  # built into the interpreter: nothing to read after pivot_root
    import socket  # already loaded: by connect_listener(), or by whoever made `target`

    sock = connect_listener(target) if isinstance(target, str) else target
    payload = state if isinstance(state, bytes) else encode_listener_state(state, metadata)
    try:
        # The fd rides with the first byte; a stream socket may take the rest in pieces.
        sent = sock.sendmsg([payload], [(socket.SOL_SOCKET, socket.SCM_RIGHTS,
                                         array.array("i", [fd]))])
        view = memoryview(payload)
        while sent < len(payload):
            sent += sock.send(view[sent:])
    except OSError as e:
        where = target if isinstance(target, str) else _peer(sock)
        raise OSError(e.errno, f"send seccomp notify fd to {where}: {e.strerror}", where) from e
    finally:
        sock.close()


def _peer(sock: socket.socket) -> str:
    try:
        peer = sock.getpeername()
    except OSError:
        return "seccomp listener"
    return peer if isinstance(peer, str) and peer else "seccomp listener"


# -- features ---------------------------------------------------------------------------------


def features(*, lib: lsc.LibSeccomp | None = None) -> dict[str, Any]:
    """The `linux.seccomp` object of `pyruntime features` (runtime-spec features.md)."""
    if lib is None:
        try:
            lib = lsc.load_library()
        except OSError:
            return {"enabled": False}
    api = lib.api_get()
    return {
        "enabled": True,
        "actions": [name for name, (_, needs) in _ACTIONS.items() if api >= needs],
        "operators": list(OPERATORS),
        "archs": [name for name, lname in ARCHES.items()
                  if lib.arch_resolve_name(lname) is not None],
        "knownFlags": list(FLAGS),
        "supportedFlags": supported_flags(lib),
    }


def supported_flags(lib: lsc.LibSeccomp) -> list[str]:
    """The flags this library and kernel accept, found by setting each on a scratch filter."""
    ctx = lib.init(lsc.SCMP_ACT_ALLOW)
    supported = []
    try:
        for flag, attr in FLAGS.items():
            try:
                lib.attr_set(ctx, attr, 1)
            except OSError:
                continue
            supported.append(flag)
    finally:
        lib.release(ctx)
    return supported


# -- containers-format profiles -------------------------------------------------------------

# uname machine -> (OCI arch, the Go arch name that profiles' includes/excludes use)
_MACHINES = {
    "x86_64": ("SCMP_ARCH_X86_64", "amd64"),
    "aarch64": ("SCMP_ARCH_AARCH64", "arm64"),
    "ppc64le": ("SCMP_ARCH_PPC64LE", "ppc64le"),
    "s390x": ("SCMP_ARCH_S390X", "s390x"),
    "riscv64": ("SCMP_ARCH_RISCV64", "riscv64"),
}


def containers_profile_to_oci(profile: Mapping[str, Any], *, caps: Iterable[str] = (),
                              machine: str | None = None,
                              kernel: str | None = None) -> dict[str, Any]:
    """Turn a Docker/podman profile (e.g. /usr/share/containers/seccomp.json) into OCI form.

    Those profiles carry an archMap and per-entry includes/excludes on capabilities, arches
    and minimum kernel; an OCI config carries the result of applying them for one machine
    and one capability set, which is what this returns.
    """
    native, goarch = _MACHINES.get(machine or os.uname().machine, ("", ""))
    held = set(caps)
    release = _kernel_version(kernel if kernel is not None else os.uname().release)

    def applies(rule: Mapping[str, Any]) -> bool:
        inc = rule.get("includes") or {}
        exc = rule.get("excludes") or {}
        if inc.get("caps") and not set(inc["caps"]) <= held:
            return False
        if inc.get("arches") and goarch not in inc["arches"]:
            return False
        if inc.get("minKernel") and release < _kernel_version(inc["minKernel"]):
            return False
        if set(exc.get("caps") or ()) & held or goarch in (exc.get("arches") or ()):
            return False
        return True

    arches: list[str] = []
    for entry in profile.get("archMap") or ():
        if entry.get("architecture") == native:
            arches = [native, *(entry.get("subArchitectures") or ())]
    out: dict[str, Any] = {"defaultAction": profile.get("defaultAction"), "architectures": arches}
    for key in ("defaultErrnoRet", "flags", "listenerPath", "listenerMetadata"):
        if profile.get(key) is not None:
            out[key] = profile[key]
    out["syscalls"] = [
        {k: rule[k] for k in ("names", "action", "errnoRet", "args") if rule.get(k) is not None}
        for rule in profile.get("syscalls") or () if applies(rule)
    ]
    return out


def _kernel_version(release: str) -> tuple[int, ...]:
    parts: Sequence[str] = release.split("-", 1)[0].split(".")[:2]
    return tuple(int(p) if p.isdigit() else 0 for p in parts)
