"""The real kernel interface: every raw syscall pyruntime makes that Python's os module lacks.

All ctypes in the runtime (apart from the libseccomp binding) lives here.  Each wrapper
checks the return value and raises OSError(errno, "<op> <path>").
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # typing and ctypes load only when a raw syscall is made
if TYPE_CHECKING:
    import ctypes
    from typing import Any

# clone(2) namespace flags
CLONE_NEWTIME = 0x00000080
CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

NAMESPACE_FLAGS = {
    "mount": CLONE_NEWNS, "cgroup": CLONE_NEWCGROUP, "uts": CLONE_NEWUTS, "ipc": CLONE_NEWIPC,
    "user": CLONE_NEWUSER, "pid": CLONE_NEWPID, "network": CLONE_NEWNET, "time": CLONE_NEWTIME,
}
# the names under /proc/<pid>/ns/
NAMESPACE_PROC_NAMES = {
    "mount": "mnt", "cgroup": "cgroup", "uts": "uts", "ipc": "ipc", "user": "user",
    "pid": "pid", "network": "net", "time": "time",
}

# mount(2) flags
MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_SYNCHRONOUS = 16
MS_REMOUNT = 32
MS_MANDLOCK = 64
MS_DIRSYNC = 128
MS_NOSYMFOLLOW = 256
MS_NOATIME = 1024
MS_NODIRATIME = 2048
MS_BIND = 4096
MS_MOVE = 8192
MS_REC = 16384
MS_SILENT = 32768
MS_UNBINDABLE = 1 << 17
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MS_SHARED = 1 << 20
MS_RELATIME = 1 << 21
MS_STRICTATIME = 1 << 24
MS_LAZYTIME = 1 << 25

MNT_DETACH = 2
UMOUNT_NOFOLLOW = 8

# prctl(2) options
PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_SET_KEEPCAPS = 8
PR_SET_CHILD_SUBREAPER = 36
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_RAISE = 2
PR_CAP_AMBIENT_CLEAR_ALL = 4
PR_CAPBSET_DROP = 24

_LINUX_CAPABILITY_VERSION_3 = 0x20080522  # capset(2): 64-bit sets as two u32 halves

# ioctls
TIOCSCTTY = 0x540E
TIOCGPTN = 0x80045430
TIOCSPTLCK = 0x40045431
TIOCSWINSZ = 0x5414
TIOCGWINSZ = 0x5413

PROC_SUPER_MAGIC = 0x9FA0

# struct ifreq ioctls (netdevice(7)): enough to bring a link up without a netlink library
SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
IFF_UP = 0x1

_SYSCALL_NUMBERS = {
    "x86_64": {"rt_sigaction": 13, "pivot_root": 155, "pidfd_send_signal": 424, "pidfd_open": 434, "keyctl": 250,
               "capset": 126},
    "aarch64": {"rt_sigaction": 134, "pivot_root": 41, "pidfd_send_signal": 424, "pidfd_open": 434, "keyctl": 219,
                "capset": 91},
    "ppc64le": {"rt_sigaction": 173, "pivot_root": 203, "pidfd_send_signal": 424, "pidfd_open": 434, "keyctl": 271,
                "capset": 184},
    "s390x": {"rt_sigaction": 174, "pivot_root": 217, "pidfd_send_signal": 424, "pidfd_open": 434, "keyctl": 280,
              "capset": 185},
    "riscv64": {"rt_sigaction": 134, "pivot_root": 41, "pidfd_send_signal": 424, "pidfd_open": 434, "keyctl": 219,
                "capset": 91},
}

KEYCTL_JOIN_SESSION_KEYRING = 1

class _Libc:
    """libc through ctypes, loaded on first use: `state`, `start` and `kill` never need it."""

    _lib: ctypes.CDLL | None = None

    def __getattr__(self, name: str) -> object:
        if _Libc._lib is None:
            import ctypes

            lib = ctypes.CDLL(None, use_errno=True)
            lib.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong,
                                  ctypes.c_char_p]
            lib.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
            lib.unshare.argtypes = [ctypes.c_int]
            lib.setns.argtypes = [ctypes.c_int, ctypes.c_int]
            lib.sethostname.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
            lib.setdomainname.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
            lib.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong,
                                  ctypes.c_ulong]
            lib.personality.argtypes = [ctypes.c_ulong]
            lib.syscall.restype = ctypes.c_long
            _Libc._lib = lib
        return getattr(_Libc._lib, name)


_libc: Any = _Libc()


def _check(ret: int, op: str, path: str | None = None) -> int:
    if ret < 0:
        import ctypes

        err = ctypes.get_errno()
        raise OSError(err, f"{op}: {os.strerror(err)}", path)
    return ret


def _b(s: str | None) -> bytes | None:
    return None if s is None else os.fsencode(s)


# read once, at import: a seccomp filter loaded before capset may deny uname
_MACHINE = os.uname().machine


def _nr(name: str) -> int:
    machine = _MACHINE
    table = _SYSCALL_NUMBERS.get(machine)
    if table is None:
        raise OSError(38, f"{name}: unsupported architecture {machine}")
    return table[name]


class LinuxSyscalls:
    """The real implementation; `pyruntime.syscalls.fake.FakeSyscalls` mirrors it for tests."""

    def unshare(self, flags: int) -> None:
        _check(_libc.unshare(flags), "unshare")

    def setns(self, fd: int, nstype: int = 0) -> None:
        _check(_libc.setns(fd, nstype), "setns")

    def mount(self, source: str | None, target: str, fstype: str | None, flags: int = 0,
              data: str | None = None) -> None:
        _check(_libc.mount(_b(source), _b(target), _b(fstype), flags, _b(data)),
               f"mount {source or fstype or ''} on {target}", target)

    def umount2(self, target: str, flags: int = 0) -> None:
        _check(_libc.umount2(_b(target), flags), f"umount {target}", target)

    def pivot_root(self, new_root: str, put_old: str) -> None:
        _check(_libc.syscall(_nr("pivot_root"), _b(new_root), _b(put_old)), "pivot_root", new_root)

    def sethostname(self, name: str) -> None:
        raw = name.encode()
        _check(_libc.sethostname(raw, len(raw)), "sethostname")

    def setdomainname(self, name: str) -> None:
        raw = name.encode()
        _check(_libc.setdomainname(raw, len(raw)), "setdomainname")

    def prctl(self, option: int, a2: int = 0, a3: int = 0, a4: int = 0, a5: int = 0) -> int:
        return _check(_libc.prctl(option, a2, a3, a4, a5), f"prctl({option})")

    def personality(self, persona: int) -> None:
        _check(_libc.personality(persona), "personality")

    def pidfd_open(self, pid: int) -> int:
        return os.pidfd_open(pid)

    def pidfd_send_signal(self, pidfd: int, sig: int) -> None:
        import _signal  # signal's enums cost milliseconds; kill needs only this function

        _signal.pidfd_send_signal(pidfd, sig)

    def join_session_keyring(self, name: str | None) -> None:
        import ctypes

        _check(_libc.syscall(_nr("keyctl"), ctypes.c_int(KEYCTL_JOIN_SESSION_KEYRING), _b(name)),
               "keyctl join session keyring")

    def default_signal(self, sig: int) -> None:
        """SIG_DFL through the raw syscall: glibc refuses its reserved signals (32, 33), but a
        caller may have left them ignored, and ignored survives execve into the container."""
        import ctypes

        act = (ctypes.c_ulong * 4)(0, 0, 0, 0)  # handler SIG_DFL, flags, restorer, mask
        _check(_libc.syscall(_nr("rt_sigaction"), ctypes.c_int(sig), act, None, ctypes.c_size_t(8)),
               f"rt_sigaction {sig}")

    def capset(self, effective: int, permitted: int, inheritable: int) -> None:
        """This thread's three capability sets, each a bit mask, replaced as a whole (what
        libcap's cap_set_proc does; python-prctl cost ~2 ms to import and libcap's pages)."""
        import ctypes

        header = (ctypes.c_uint32 * 2)(_LINUX_CAPABILITY_VERSION_3, 0)  # version, pid 0: us
        low, high = 0xFFFFFFFF, 32
        data = (ctypes.c_uint32 * 6)(effective & low, permitted & low, inheritable & low,
                                     effective >> high, permitted >> high, inheritable >> high)
        _check(_libc.syscall(_nr("capset"), header, data), "capset")

    def capbset_drop(self, cap: int) -> None:
        self.prctl(PR_CAPBSET_DROP, cap)

    def ambient_raise(self, cap: int) -> None:
        self.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap)

    def ambient_clear(self) -> None:
        self.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL)

    def link_up(self, name: str) -> None:
        """`ip link set NAME up` in our network namespace.  For lo the kernel then adds
        127.0.0.1/8 and ::1 itself.  (_socket, not socket: that one builds enums and
        imports selectors, milliseconds of every create.)"""
        import _socket
        import fcntl

        raw = name.encode()[:15].ljust(16, b"\0")
        try:
            s = _socket.socket(_socket.AF_INET, _socket.SOCK_DGRAM | _socket.SOCK_CLOEXEC)
            try:
                ifreq = fcntl.ioctl(s.fileno(), SIOCGIFFLAGS, raw + bytes(24))
                flags = int.from_bytes(ifreq[16:18], sys.byteorder)
                if not flags & IFF_UP:
                    fcntl.ioctl(s.fileno(), SIOCSIFFLAGS,
                                raw + (flags | IFF_UP).to_bytes(2, sys.byteorder) + bytes(22))
            finally:
                s.close()
        except OSError as e:
            raise OSError(e.errno, f"SIOCSIFFLAGS {name} up: {os.strerror(e.errno or 0)}") from e

    def preload(self) -> None:
        """Load ctypes and libc now (while the host's files are reachable, and before the
        cgroup attach completes, so that create's child does it in the attach's shadow)."""
        _libc.syscall  # noqa: B018 - the attribute access loads the library

    def fstatfs_type(self, fd: int) -> int:
        """f_type of the filesystem holding fd (to check that /proc really is procfs)."""
        import ctypes

        buf = ctypes.create_string_buffer(120)
        _check(_libc.fstatfs(fd, buf), "fstatfs")
        return int.from_bytes(buf.raw[:8], "little" if _little() else "big")


def _little() -> bool:
    import sys

    return sys.byteorder == "little"


LINUX = LinuxSyscalls()
