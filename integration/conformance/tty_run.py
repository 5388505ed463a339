"""Run a command in a new session whose controlling terminal is a fresh pty.

    tty_run.py TIMEOUT_SECONDS COMMAND [ARG...]

runc's integration tests expect a terminal: `runc spec` sets
"terminal": true and several tests then run containers in the foreground,
which makes the runtime open /dev/tty. Under make/CI there is none, so the
command gets a pty as controlling terminal and as stdin; stdout and stderr
stay as inherited (files), so the TAP output is not mangled.

The pty master is drained (discarded) while the command runs. After
TIMEOUT_SECONDS the command's process group gets SIGTERM, then SIGKILL 30 s
later; the exit status is then 124 (like coreutils timeout).
"""
import fcntl
import os
import pty
import select
import signal
import sys
import termios
import time


def main():
    if len(sys.argv) < 3:
        sys.stderr.write(__doc__)
        return 2
    timeout = float(sys.argv[1])
    argv = sys.argv[2:]

    master, slave = pty.openpty()
    pid = os.fork()
    if pid == 0:
        os.close(master)
        os.setsid()
        fcntl.ioctl(slave, termios.TIOCSCTTY, 0)
        os.dup2(slave, 0)
        if slave != 0:
            os.close(slave)
        try:
            os.execvp(argv[0], argv)
        except OSError as e:
            sys.stderr.write("tty_run: exec %s: %s\n" % (argv[0], e))
            os._exit(127)
    os.close(slave)
    os.set_blocking(master, False)

    deadline = time.monotonic() + timeout
    term_sent = kill_at = None
    status = None
    while status is None:
        try:
            ready, _, _ = select.select([master], [], [], 0.2)
        except InterruptedError:
            ready = []
        if ready:
            try:
                os.read(master, 65536)
            except OSError:
                pass  # EIO: no slave open right now; keep waiting for the child
        wpid, wstatus = os.waitpid(pid, os.WNOHANG)
        if wpid == pid:
            status = wstatus
            break
        now = time.monotonic()
        if term_sent is None and now >= deadline:
            sys.stderr.write("tty_run: timeout after %gs, terminating %s\n" % (timeout, argv))
            try:
                os.killpg(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            term_sent, kill_at = now, now + 30
        elif kill_at is not None and now >= kill_at:
            try:
                os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            kill_at = float("inf")
    os.close(master)
    if term_sent is not None:
        return 124
    if os.WIFEXITED(status):
        return os.WEXITSTATUS(status)
    return 128 + os.WTERMSIG(status)


if __name__ == "__main__":
    sys.exit(main())
