"""The container's terminal: a pty from the container's devpts, its master sent to the caller."""

from __future__ import annotations

import errno
import fcntl
import os
import struct
from stat import S_ISCHR

from .syscalls.linux import TIOCGPTN, TIOCGWINSZ, TIOCSCTTY, TIOCSPTLCK, TIOCSWINSZ

# What only the caller's side needs (socket, termios, signal, select) is imported where it is
# used: init loads this module for every container with a terminal, and `socket` alone
# brings enum and selectors.

PTMX = os.makedev(5, 2)


def open_pty(ptmx: str = "/dev/ptmx") -> tuple[int, str]:
    """Open a new pty pair in the devpts behind `ptmx`; returns (master fd, slave path)."""
    master = os.open(ptmx, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK | os.O_CLOEXEC)
    # In a running container (exec) /dev/ptmx is the container's to replace: a FIFO, or a
    # link to some file of ours.  Only the pty multiplexer (5:2) will do.
    st = os.fstat(master)
    if not (S_ISCHR(st.st_mode) and st.st_rdev == PTMX):
        os.close(master)
        raise OSError(errno.ENOTTY, f"{ptmx} is not the pty multiplexer")
    os.set_blocking(master, True)
    fcntl.ioctl(master, TIOCSPTLCK, struct.pack("i", 0))
    buf = fcntl.ioctl(master, TIOCGPTN, struct.pack("I", 0))
    n = struct.unpack("I", buf)[0]
    return master, f"/dev/pts/{n}"


def set_size(fd: int, height: int, width: int) -> None:
    fcntl.ioctl(fd, TIOCSWINSZ, struct.pack("HHHH", height, width, 0, 0))


def become_session_leader_on(slave_path: str) -> None:
    """setsid, open the slave, make it the controlling tty and stdio (in the container)."""
    if os.getsid(0) != os.getpid():
        os.setsid()
    fd = os.open(slave_path, os.O_RDWR)
    fcntl.ioctl(fd, TIOCSCTTY, 0)
    for target in (0, 1, 2):
        os.dup2(fd, target)
    if fd > 2:
        os.close(fd)


def send_to_socket(path: str, master: int) -> None:
    """One sendmsg with the master in SCM_RIGHTS and its name as payload, as runc does."""
    import _socket

    from .sync import pack_fds

    s = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        s.connect(path)
        s.sendmsg([b"/dev/ptmx"], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, pack_fds([master]))])
    finally:
        s.close()


def hand_over(path: str | None, master: int) -> int | None:
    """Give the pty master to --console-socket and close ours; without a socket, keep it
    (a foreground `run` or `exec -t` proxies it).  Returns the master we still hold."""
    if not path:
        # the caller's size from the start, before the process can ask for it (as runc's
        # initial resize)
        caller = caller_tty()
        if caller is not None:
            copy_size(caller, master)
        return master
    from .errors import RuntimeErr

    try:
        send_to_socket(path, master)
    except OSError as e:
        raise RuntimeErr(f"console socket {path}: {e.strerror}")
    finally:
        os.close(master)
    return None


def caller_tty() -> int | None:
    """The first of our stdin, stdout, stderr that is a terminal (runc's console.Current)."""
    for fd in (0, 1, 2):
        if os.isatty(fd):
            return fd
    return None


def copy_size(src: int, dst: int) -> None:
    try:
        buf = fcntl.ioctl(src, TIOCGWINSZ, b"\0" * 8)
        fcntl.ioctl(dst, TIOCSWINSZ, buf)
    except OSError:
        pass


def proxy(master: int, child_alive: object) -> None:
    """`run -t` without a console socket: bridge our stdin/stdout to the pty until it closes."""
    import select
    import signal
    import termios
    import tty

    restore = None
    if os.isatty(0):
        restore = termios.tcgetattr(0)
        tty.setraw(0)
    caller = caller_tty()
    previous_winch = None
    if caller is not None:
        # as runc: a resize of the caller's terminal is copied to the pty, never forwarded as
        # a signal (the kernel sends SIGWINCH to the pty's foreground group itself)
        def resize(_signum: int, _frame: object) -> None:
            copy_size(caller, master)

        previous_winch = signal.signal(signal.SIGWINCH, resize)
        copy_size(caller, master)  # a resize before the handler was in place
    stdin_open = True
    try:
        while True:
            fds = [master] + ([0] if stdin_open else [])
            ready, _, _ = select.select(fds, [], [], 0.2)
            if master in ready:
                try:
                    data = os.read(master, 65536)
                except OSError:
                    data = b""
                if not data:
                    return
                os.write(1, data)
            if 0 in ready:
                data = os.read(0, 65536)
                if not data:
                    stdin_open = False
                else:
                    os.write(master, data)
            if not ready and callable(child_alive) and not child_alive():
                return
    finally:
        if caller is not None:
            signal.signal(signal.SIGWINCH, previous_winch or signal.SIG_DFL)
        if restore is not None:
            termios.tcsetattr(0, termios.TCSADRAIN, restore)
