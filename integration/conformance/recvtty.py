"""Python stand-in for runc's contrib/cmd/recvtty (console-socket consumer).

    recvtty [--mode single|null] [--pid-file FILE] [--no-stdin] SOCKET

The socket is bound before anything else (tests start us in the background
and connect right away), then the pid file is written.

  null:   accept any number of connections; receive each pty master fd via
          SCM_RIGHTS and read/discard it until EOF/EIO.
  single: accept one connection, clear ONLCR on the master, copy the master
          to stdout and (unless --no-stdin) stdin to the master.

Kept to stdlib modules that are cheap to import: the interpreter is started
with -S -E by the installed wrapper so startup stays fast.
"""
import os
import socket
import sys


def usage(msg):
    sys.stderr.write("[recvtty] %s\nusage: recvtty [--mode single|null] "
                     "[--pid-file FILE] [--no-stdin] SOCKET\n" % msg)
    sys.exit(1)


def parse_args(argv):
    opts = {"mode": "single", "pid_file": "", "no_stdin": False}
    args = []
    i = 0
    while i < len(argv):
        a = argv[i]
        if a in ("--mode", "-mode", "-m", "--pid-file", "-pid-file"):
            if i + 1 >= len(argv):
                usage("missing value for " + a)
            opts["mode" if "mode" in a or a == "-m" else "pid_file"] = argv[i + 1]
            i += 2
            continue
        if a.startswith("--mode=") or a.startswith("--pid-file="):
            k, v = a[2:].split("=", 1)
            opts[k.replace("-", "_")] = v
        elif a in ("--no-stdin", "-no-stdin"):
            opts["no_stdin"] = True
        elif a in ("-h", "--help"):
            sys.stdout.write(__doc__)
            sys.exit(0)
        else:
            args.append(a)
        i += 1
    if len(args) != 1:
        usage("need to specify a single socket path")
    if opts["mode"] not in ("single", "null"):
        usage("need to select a valid mode: " + opts["mode"])
    return opts, args[0]


def recv_fd(conn):
    """Receive one fd sent with SCM_RIGHTS (runc sends the pty name as data)."""
    import array
    fds = array.array("i")
    msg, anc, _flags, _addr = conn.recvmsg(4096, socket.CMSG_SPACE(fds.itemsize * 4))
    for level, typ, data in anc:
        if level == socket.SOL_SOCKET and typ == socket.SCM_RIGHTS:
            fds.frombytes(data[: len(data) - (len(data) % fds.itemsize)])
    if not fds:
        return None
    for extra in fds[1:]:
        os.close(extra)
    return fds[0]


def drain(fd):
    """Read and discard until EOF/EIO; return True when finished."""
    try:
        data = os.read(fd, 65536)
    except BlockingIOError:
        return False
    except OSError:
        return True
    return not data


def handle_null(ln):
    import selectors
    sel = selectors.DefaultSelector()
    sel.register(ln, selectors.EVENT_READ, "listen")
    while True:
        for key, _ in sel.select():
            if key.data == "listen":
                try:
                    conn, _ = ln.accept()
                except OSError:
                    continue
                sel.register(conn, selectors.EVENT_READ, "conn")
            elif key.data == "conn":
                conn = key.fileobj
                sel.unregister(conn)
                try:
                    fd = recv_fd(conn)
                except OSError:
                    fd = None
                conn.close()
                if fd is not None:
                    os.set_blocking(fd, False)
                    sel.register(fd, selectors.EVENT_READ, "pty")
            else:  # pty master
                if drain(key.fd):
                    sel.unregister(key.fd)
                    os.close(key.fd)


def handle_single(ln, path, no_stdin):
    import termios
    import threading
    conn, _ = ln.accept()
    ln.close()
    try:
        os.unlink(path)  # like Go's listener close; lets another instance bind
    except OSError:
        pass
    master = recv_fd(conn)
    conn.close()
    if master is None:
        usage("no file descriptor received")
    attrs = termios.tcgetattr(master)
    attrs[1] &= ~termios.ONLCR
    termios.tcsetattr(master, termios.TCSANOW, attrs)

    def pump_in():
        while True:
            try:
                data = os.read(0, 65536)
            except OSError:
                return
            if not data:
                return
            try:
                os.write(master, data)
            except OSError:
                return

    if not no_stdin:
        threading.Thread(target=pump_in, daemon=True).start()
    out = sys.stdout.buffer
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:
            break
        if not data:
            break
        out.write(data)
        out.flush()
    os.close(master)


def main():
    opts, path = parse_args(sys.argv[1:])
    ln = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        ln.bind(path)
        ln.listen(128)
    except OSError as e:
        usage("listen %s: %s" % (path, e))
    if opts["pid_file"]:
        with open(opts["pid_file"], "w") as f:
            f.write("%d\n" % os.getpid())
    try:
        if opts["mode"] == "null":
            handle_null(ln)
        else:
            handle_single(ln, path, opts["no_stdin"])
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
