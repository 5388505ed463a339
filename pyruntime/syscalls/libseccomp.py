"""The ctypes binding to libseccomp.so.2: its constants and one checked wrapper per function.

This module owns nothing but the foreign-function boundary; turning an OCI `linux.seccomp`
document into a filter is `pyruntime.seccomp`'s job.

The library is not opened at import time.  `load_library()` dlopens it explicitly, so the
container's setup process can do that while the host's /usr/lib is still reachable, before
pivot_root.  ctypes opens it with RTLD_NOW and every symbol is looked up in
`LibSeccomp.__init__`, so nothing touches the filesystem later.

libseccomp reports failure as a negative errno in the return value (it does not set
`errno`); each wrapper turns that into `OSError(errno, "<function> <subject>: <strerror>")`.
Values are cross-checked against /usr/include/seccomp.h of libseccomp 2.5.4.
"""

from __future__ import annotations

import ctypes
import errno
import os

# typing (and the re, enum, collections it brings) costs ~10 ms of every create with a
# seccomp profile: type names are for type checkers only.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any

SONAME = "libseccomp.so.2"

# Filter actions (SCMP_ACT_*).  ERRNO and TRACE carry 16 bits of data.
SCMP_ACT_KILL_PROCESS = 0x80000000
SCMP_ACT_KILL_THREAD = 0x00000000
SCMP_ACT_KILL = SCMP_ACT_KILL_THREAD
SCMP_ACT_TRAP = 0x00030000
SCMP_ACT_NOTIFY = 0x7FC00000
SCMP_ACT_LOG = 0x7FFC0000
SCMP_ACT_ALLOW = 0x7FFF0000
_SCMP_ACT_ERRNO_BASE = 0x00050000
_SCMP_ACT_TRACE_BASE = 0x7FF00000
ACTION_DATA_MAX = 0xFFFF


def SCMP_ACT_ERRNO(err: int) -> int:
    return _SCMP_ACT_ERRNO_BASE | (err & ACTION_DATA_MAX)


def SCMP_ACT_TRACE(msg: int) -> int:
    return _SCMP_ACT_TRACE_BASE | (msg & ACTION_DATA_MAX)


# Argument comparison operators (enum scmp_compare).
SCMP_CMP_NE = 1
SCMP_CMP_LT = 2
SCMP_CMP_LE = 3
SCMP_CMP_EQ = 4
SCMP_CMP_GE = 5
SCMP_CMP_GT = 6
SCMP_CMP_MASKED_EQ = 7

# Filter attributes (enum scmp_filter_attr).
SCMP_FLTATR_ACT_DEFAULT = 1
SCMP_FLTATR_ACT_BADARCH = 2
SCMP_FLTATR_CTL_NNP = 3
SCMP_FLTATR_CTL_TSYNC = 4
SCMP_FLTATR_API_TSKIP = 5
SCMP_FLTATR_CTL_LOG = 6
SCMP_FLTATR_CTL_SSB = 7
SCMP_FLTATR_CTL_OPTIMIZE = 8
SCMP_FLTATR_API_SYSRAWRC = 9
# Added in libseccomp 2.6.0; 2.5.x rejects it with EINVAL, which callers treat as unsupported.
SCMP_FLTATR_CTL_WAITKILL = 10

SCMP_ARCH_NATIVE = 0
# seccomp_syscall_resolve_name*() returns this for an unknown name; other negative numbers
# are pseudo-syscalls (a syscall that exists on some other architecture) and are valid.
NR_SCMP_ERROR = -1

# Highest syscall argument index (the kernel passes six).
MAX_ARG_INDEX = 5


class ScmpArgCmp(ctypes.Structure):
    """struct scmp_arg_cmp."""

    _fields_ = [
        ("arg", ctypes.c_uint),
        ("op", ctypes.c_int),
        ("datum_a", ctypes.c_uint64),
        ("datum_b", ctypes.c_uint64),
    ]


class _ScmpVersion(ctypes.Structure):
    _fields_ = [("major", ctypes.c_uint), ("minor", ctypes.c_uint), ("micro", ctypes.c_uint)]


class ArgCmp(tuple[int, int, int, int]):
    """One argument condition in Python form: (arg index, SCMP_CMP_* op, datum_a, datum_b).

    A NamedTuple without typing.NamedTuple's import."""

    __slots__ = ()

    def __new__(cls, arg: int, op: int, datum_a: int, datum_b: int = 0) -> ArgCmp:
        return tuple.__new__(cls, (arg, op, datum_a, datum_b))

    @property
    def arg(self) -> int:
        return self[0]

    @property
    def op(self) -> int:
        return self[1]

    @property
    def datum_a(self) -> int:
        return self[2]

    @property
    def datum_b(self) -> int:
        return self[3]

    def __repr__(self) -> str:
        return f"ArgCmp(arg={self[0]!r}, op={self[1]!r}, datum_a={self[2]!r}, datum_b={self[3]!r})"


def _fail(rc: int, op: str) -> OSError:
    err = -rc
    return OSError(err, f"{op}: {os.strerror(err)}")


class LibSeccomp:
    """An opened libseccomp; contexts are opaque integers (scmp_filter_ctx pointers)."""

    def __init__(self, cdll: ctypes.CDLL) -> None:
        c_ctx = ctypes.c_void_p
        u32 = ctypes.c_uint32
        self._cdll = cdll

        def fn(name: str, restype: Any, *argtypes: Any) -> Any:
            f = getattr(cdll, name)
            f.restype = restype
            f.argtypes = list(argtypes)
            return f

        self._version = fn("seccomp_version", ctypes.POINTER(_ScmpVersion))
        self._api_get = fn("seccomp_api_get", ctypes.c_uint)
        self._api_set = fn("seccomp_api_set", ctypes.c_int, ctypes.c_uint)
        self._init = fn("seccomp_init", c_ctx, u32)
        self._release = fn("seccomp_release", None, c_ctx)
        self._arch_native = fn("seccomp_arch_native", u32)
        self._arch_resolve_name = fn("seccomp_arch_resolve_name", u32, ctypes.c_char_p)
        self._arch_add = fn("seccomp_arch_add", ctypes.c_int, c_ctx, u32)
        self._arch_exist = fn("seccomp_arch_exist", ctypes.c_int, c_ctx, u32)
        self._syscall_resolve_name = fn("seccomp_syscall_resolve_name", ctypes.c_int,
                                        ctypes.c_char_p)
        self._syscall_resolve_name_arch = fn("seccomp_syscall_resolve_name_arch", ctypes.c_int,
                                             u32, ctypes.c_char_p)
        self._rule_add_array = fn("seccomp_rule_add_array", ctypes.c_int, c_ctx, u32,
                                  ctypes.c_int, ctypes.c_uint, ctypes.POINTER(ScmpArgCmp))
        self._attr_set = fn("seccomp_attr_set", ctypes.c_int, c_ctx, ctypes.c_int, u32)
        self._attr_get = fn("seccomp_attr_get", ctypes.c_int, c_ctx, ctypes.c_int,
                            ctypes.POINTER(u32))
        self._load = fn("seccomp_load", ctypes.c_int, c_ctx)
        self._notify_fd = fn("seccomp_notify_fd", ctypes.c_int, c_ctx)
        self._export_bpf = fn("seccomp_export_bpf", ctypes.c_int, c_ctx, ctypes.c_int)
        self._export_pfc = fn("seccomp_export_pfc", ctypes.c_int, c_ctx, ctypes.c_int)

    # -- library-wide -------------------------------------------------------------------

    def version(self) -> tuple[int, int, int]:
        v = self._version().contents
        return (int(v.major), int(v.minor), int(v.micro))

    def api_get(self) -> int:
        """The API level; the first call probes the kernel, so make it before any filter loads."""
        return int(self._api_get())

    def api_set(self, level: int) -> None:
        rc = self._api_set(level)
        if rc < 0:
            raise _fail(rc, f"seccomp_api_set {level}")

    def arch_native(self) -> int:
        return int(self._arch_native())

    def arch_resolve_name(self, name: str) -> int | None:
        """The token for a libseccomp arch name ("x86_64"), or None if the library lacks it."""
        token = int(self._arch_resolve_name(name.encode()))
        return token or None

    def syscall_resolve_name(self, name: str) -> int | None:
        """The native syscall number (maybe a negative pseudo number), or None if unknown."""
        nr = int(self._syscall_resolve_name(name.encode()))
        return None if nr == NR_SCMP_ERROR else nr

    def syscall_resolve_name_arch(self, arch: int, name: str) -> int | None:
        nr = int(self._syscall_resolve_name_arch(arch, name.encode()))
        return None if nr == NR_SCMP_ERROR else nr

    # -- filter contexts ------------------------------------------------------------------

    def init(self, default_action: int) -> int:
        ctx = self._init(default_action)
        if not ctx:
            # seccomp_init returns NULL without an errno: a bad action or no memory.
            raise OSError(errno.EINVAL, f"seccomp_init {default_action:#x}: invalid default action")
        return int(ctx)

    def release(self, ctx: int) -> None:
        self._release(ctx)

    def arch_add(self, ctx: int, arch: int) -> None:
        """Raises OSError(EEXIST) when the arch is already in the filter (the native one is)."""
        rc = self._arch_add(ctx, arch)
        if rc < 0:
            raise _fail(rc, f"seccomp_arch_add {arch:#x}")

    def arch_exist(self, ctx: int, arch: int) -> bool:
        rc = self._arch_exist(ctx, arch)
        if rc == -errno.EEXIST:
            return False
        if rc < 0:
            raise _fail(rc, f"seccomp_arch_exist {arch:#x}")
        return True

    def rule_add_array(self, ctx: int, action: int, syscall: int,
                       args: Sequence[ArgCmp] = ()) -> None:
        array = None
        if args:
            array = (ScmpArgCmp * len(args))(
                *(ScmpArgCmp(a.arg, a.op, a.datum_a, a.datum_b) for a in args))
        rc = self._rule_add_array(ctx, action, syscall, len(args), array)
        if rc < 0:
            raise _fail(rc, f"seccomp_rule_add_array syscall {syscall} action {action:#x}")

    def attr_set(self, ctx: int, attr: int, value: int) -> None:
        rc = self._attr_set(ctx, attr, value)
        if rc < 0:
            raise _fail(rc, f"seccomp_attr_set {attr}={value}")

    def attr_get(self, ctx: int, attr: int) -> int:
        value = ctypes.c_uint32()
        rc = self._attr_get(ctx, attr, ctypes.byref(value))
        if rc < 0:
            raise _fail(rc, f"seccomp_attr_get {attr}")
        return int(value.value)

    def load(self, ctx: int) -> None:
        rc = self._load(ctx)
        if rc < 0:
            raise _fail(rc, "seccomp_load")

    def notify_fd(self, ctx: int) -> int:
        fd = self._notify_fd(ctx)
        if fd < 0:
            raise _fail(fd, "seccomp_notify_fd")
        return int(fd)

    def export_bpf(self, ctx: int, fd: int) -> None:
        """Write the raw BPF program (struct sock_filter[]) to fd; needs no privilege."""
        rc = self._export_bpf(ctx, fd)
        if rc < 0:
            raise _fail(rc, "seccomp_export_bpf")

    def export_pfc(self, ctx: int, fd: int) -> None:
        """Write libseccomp's human-readable pseudo filter code to fd."""
        rc = self._export_pfc(ctx, fd)
        if rc < 0:
            raise _fail(rc, "seccomp_export_pfc")


# seccomp(2) itself, for a program generated ahead of time (libseccomp generates it inside
# seccomp_load, tens of milliseconds for podman's profile: too long for the moment between
# `start` and execve).  The flags are the ones seccomp_load would pass for the same context.
SECCOMP_SET_MODE_FILTER = 1
SECCOMP_FILTER_FLAG_TSYNC = 1
SECCOMP_FILTER_FLAG_LOG = 2
SECCOMP_FILTER_FLAG_SPEC_ALLOW = 4
SECCOMP_FILTER_FLAG_NEW_LISTENER = 8
SECCOMP_FILTER_FLAG_TSYNC_ESRCH = 16
SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV = 32
_SECCOMP_NR = {"x86_64": 317, "aarch64": 277, "ppc64le": 358, "s390x": 348, "riscv64": 277}


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


class Program:
    """A generated BPF program (struct sock_filter[]) ready for one seccomp(2) call."""

    def __init__(self, bpf: bytes, flags: int) -> None:
        if not bpf or len(bpf) % 8 or len(bpf) // 8 > 0xFFFF:
            raise ValueError(f"not a BPF program: {len(bpf)} bytes")
        nr = _SECCOMP_NR.get(os.uname().machine)
        if nr is None:
            raise OSError(errno.ENOSYS, f"seccomp: unknown syscall number on {os.uname().machine}")
        self._nr = nr
        self._buf = ctypes.create_string_buffer(bpf, len(bpf))
        self._fprog = _SockFprog(len(bpf) // 8, ctypes.cast(self._buf, ctypes.c_void_p))
        libc = ctypes.CDLL(None, use_errno=True)
        self._syscall = libc.syscall
        self._syscall.restype = ctypes.c_long
        self.flags = flags

    def install(self) -> int:
        """Load it into the calling thread: the listener fd with NEW_LISTENER, else 0."""
        rc = self._syscall(ctypes.c_long(self._nr), ctypes.c_long(SECCOMP_SET_MODE_FILTER),
                           ctypes.c_ulong(self.flags), ctypes.byref(self._fprog))
        if rc < 0:
            err = ctypes.get_errno()
            raise OSError(err, f"seccomp(SECCOMP_SET_MODE_FILTER): {os.strerror(err)}")
        return int(rc)


_loaded: LibSeccomp | None = None


def load_library(name: str = SONAME) -> LibSeccomp:
    """dlopen libseccomp once per process (a forked child inherits it) and return it."""
    global _loaded
    if _loaded is None:
        try:
            cdll = ctypes.CDLL(name, mode=os.RTLD_NOW)
        except OSError as e:
            raise OSError(errno.ELIBACC, f"dlopen {name}: {e}") from e
        _loaded = LibSeccomp(cdll)
    return _loaded
