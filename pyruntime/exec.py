"""`exec`: a new process inside a running container (its namespaces and its cgroup).

The parent opens the container init's namespace files while it checks init's start time,
so a recycled pid can never make the new process join someone else's namespaces.  The
running container is untrusted: the parent reads none of its files (a user is a number,
as in runc), and the setup handshake has a deadline, since the container can see and
stop the new process before it is ready.
"""

from __future__ import annotations

# neither copy, signal nor typing: each costs milliseconds of every exec
import _signal as signal
import os
import select
import time

from . import state as st_mod
from . import sync, trace
from .errors import ChildError, ConfigError, ContainerNotRunning, RuntimeErr
from .record import dataclass
from .spec import parse_process, parse_spec
from .state import CREATED, PAUSED, RUNNING
from .syscalls.linux import NAMESPACE_PROC_NAMES, PR_SET_CHILD_SUBREAPER

SIGKILL = 9

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

SETUP_DEADLINE = 60.0  # seconds for the whole setup handshake, however busy the host
STOPPED_GRACE = 2.0  # a setup process kept stopped this long was stopped on purpose


@dataclass
class ExecOptions:
    cgroups: tuple[str, ...] = ()  # --cgroup [controller[,controller]:]path, as runc
    detach: bool = False
    pid_file: str | None = None
    console_socket: str | None = None
    preserve_fds: int = 0
    ignore_paused: bool = False


def process_from_flags(config: dict[str, Any], args: list[str], *, tty: bool,
                       cwd: str | None, env: list[str], user: str | None,
                       additional_gids: list[int], caps: list[str], no_new_privs: bool,
                       apparmor: str | None) -> dict[str, Any]:
    """runc's way: start from the container's own process, then apply the flags."""
    if not args:
        raise RuntimeErr("exec: a command is required (or --process)")
    from .fastjson import dumps, loads

    proc = loads(dumps(config.get("process") or {}))  # a deep copy of plain JSON
    proc["args"] = list(args)
    proc["terminal"] = tty
    proc.pop("consoleSize", None)
    if cwd:
        proc["cwd"] = cwd
    proc["env"] = list(proc.get("env") or []) + list(env)
    if user:
        proc["user"] = {**proc.get("user", {}), **parse_user(user)}
    if additional_gids:
        u = proc.setdefault("user", {})
        u["additionalGids"] = list(u.get("additionalGids") or []) + list(additional_gids)
    if caps:
        c = proc.setdefault("capabilities", {})
        for key in ("bounding", "effective", "permitted"):
            c[key] = list(dict.fromkeys(list(c.get(key) or []) + caps))
    if no_new_privs:
        proc["noNewPrivileges"] = True
    if apparmor:
        proc["apparmorProfile"] = apparmor
    return proc


def parse_user(text: str) -> dict[str, int]:
    """--user uid[:gid], numbers only, as runc takes it.  A name would have to be looked up
    in the container's /etc/passwd, a file the container controls: read from here it may
    be a link to a host file (/etc/shadow), a FIFO or /dev/zero.  Without a gid the
    container process's own stays."""
    uid, sep, gid = text.partition(":")
    out = {"uid": _number(uid, "uid", text)}
    if sep:
        out["gid"] = _number(gid, "gid", text)
    return out


def _number(value: str, what: str, text: str) -> int:
    if not (value.isascii() and value.isdigit()) or int(value) > 0xFFFFFFFE:
        raise RuntimeErr(f"--user {text}: {what} {value!r} is not a number "
                         f"(uid[:gid]; names are not looked up, as in runc)")
    return int(value)


def exec_process(rt: Any, cid: str, proc_doc: dict[str, Any], opts: ExecOptions) -> int:
    from .plan import InitPlan, run_child

    st, stat = rt.load(cid)
    if stat == PAUSED and not opts.ignore_paused:
        raise RuntimeErr("cannot exec in a paused container (use --ignore-paused to override)")
    if stat not in (CREATED, RUNNING, PAUSED):
        raise RuntimeErr("cannot exec in a stopped container")
    from .validate import validate_process

    container_oom = (st.config.get("process") or {}).get("oomScoreAdj")
    if proc_doc.get("oomScoreAdj") is None and container_oom is not None:
        # as runc: an exec'd process is the container's, also to the OOM killer
        proc_doc = {**proc_doc, "oomScoreAdj": container_oom}
    validate_process(proc_doc)
    proc = parse_process(proc_doc)
    if not proc.args:
        raise ConfigError("process.args", "must not be empty")
    if proc.terminal and opts.detach and not opts.console_socket:
        raise RuntimeErr("cannot allocate tty if runc will detach without setting console socket")
    if opts.console_socket and not proc.terminal:
        raise RuntimeErr("cannot use console socket if runc will not detach or allocate tty")
    spec = parse_spec(st.config)
    trace.mark("config")
    rt.debug(f"exec {cid}: joining the namespaces of init {st.pid}")
    ns_fds = _open_namespaces(st, [ns.type for ns in spec.linux.namespaces])
    pipes = None
    if not opts.detach and not proc.terminal:
        from .stdio import Pipes

        pipes = Pipes()
    plan = InitPlan(spec=spec, rootfs=st.rootfs, fifo_path=None, is_exec=True, process=proc,
                    join_namespaces=[(t, f"/proc/self/fd/{fd}") for t, fd in ns_fds],
                    extra_fds=opts.preserve_fds, container_id=cid,
                    stdio=pipes.child if pipes else None)
    if not opts.detach:
        rt.sys.prctl(PR_SET_CHILD_SUBREAPER, 1)
    parent, child = sync.Channel.pair()
    trace.mark("init")
    pid = os.fork()
    if pid == 0:
        parent.close()
        run_child(child, plan, rt.sys)  # never returns
    trace.mark("fork")
    child.close()
    for _t, fd in ns_fds:
        os.close(fd)
    if pipes:
        pipes.close_child_ends()
    master = None
    exec_pidfd = -1
    deadline = time.monotonic() + SETUP_DEADLINE
    try:
        if st.cgroup and (opts.cgroups or not _enter_cgroups(st.cgroup, pid)):
            from .cgroups import manager_from_record

            manager = manager_from_record(st.cgroup)
            if opts.cgroups:
                join_sub_cgroups(manager.paths(), opts.cgroups, pid)
            else:
                manager.apply(pid)
        trace.mark("cgroup")
        parent.send(sync.GO)
        exec_pid = _await(parent, sync.INIT_PID, [pid], deadline)["pid"]
        # pinned, so a failure below kills exactly the process we started (as runc does)
        exec_pidfd = os.pidfd_open(exec_pid)
        rt.debug(f"exec {cid}: process pid {exec_pid}")
        os.waitpid(pid, 0)
        pid = 0
        if proc.terminal:
            from .console import hand_over

            master = hand_over(opts.console_socket,
                               _await(parent, sync.CONSOLE, [exec_pid], deadline)["_fds"][0])
        _await(parent, sync.READY, [exec_pid], deadline)
        if opts.pid_file:
            from .container import write_pid_file

            write_pid_file(opts.pid_file, exec_pid)
    except BaseException as e:
        # the child prepares while we attach it to the cgroups: when it failed first, our
        # failure (a closed channel, a pid gone) only echoes its error, which is the news
        child_error = None
        if isinstance(e, Exception) and not isinstance(e, ChildError):
            child_error = parent.pending_error()
        if pid:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
        if exec_pidfd >= 0:
            try:
                signal.pidfd_send_signal(exec_pidfd, SIGKILL)
            except ProcessLookupError:
                pass
        if master is not None:
            os.close(master)
        if pipes:
            pipes.close()
        if child_error is not None:
            raise child_error from None
        raise
    finally:
        parent.close()
        if exec_pidfd >= 0:
            os.close(exec_pidfd)
    trace.mark("init")
    if opts.detach:
        return 0
    code = _wait(exec_pid, master, pipes)
    trace.mark("container")
    return code


def _enter_cgroups(record: dict[str, Any], pid: int) -> bool:
    """runc's EnterPid: `pid` into each recorded directory's cgroup.procs, without the
    cgroups package (its import and apply's mkdirs cost more than the rest of an exec).
    False, with nothing written, when a directory is gone or none is recorded: then the
    manager's apply recreates what is missing, as before."""
    dirs = sorted(set((record.get("paths") or {}).values()))
    if not dirs or not all(os.path.isdir(d) for d in dirs):
        return False
    from .freezer import write_control

    for d in dirs:
        write_control(os.path.join(d, "cgroup.procs"), str(pid))
    return True


def _await(chan: sync.Channel, kind: str, watch: list[int], deadline: float) -> dict[str, Any]:
    """chan.wait_for(kind), but not forever: the container sees the new process (in its
    pid namespace) and may SIGSTOP it halfway through setup.  Fails at the deadline, or
    as soon as a watched process has stayed stopped for STOPPED_GRACE."""
    stopped_since = None
    poller = select.poll()
    poller.register(chan.fileno(), select.POLLIN)
    while not poller.poll(100):
        now = time.monotonic()
        if now > deadline:
            raise RuntimeErr(f"exec: the process was not ready within {SETUP_DEADLINE:.0f}s "
                             f"(waiting for {kind})")
        if any(_stopped(p) for p in watch):
            stopped_since = stopped_since or now
            if now - stopped_since > STOPPED_GRACE:
                raise RuntimeErr(f"exec: the process was stopped during setup (waiting for "
                                 f"{kind}), by a signal from inside the container?")
        else:
            stopped_since = None
    return chan.wait_for(kind)


def _stopped(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return False
    return data[data.rfind(b")") + 2:][:1] in (b"T", b"t")


def sub_cgroup_paths(paths: dict[str, str], specs: tuple[str, ...]) -> dict[str, str]:
    """--cgroup values -> {controller: directory} below the container's own cgroups."""
    out = dict(paths)
    for spec in specs:
        controllers, sep, sub = spec.rpartition(":")
        names = controllers.split(",") if sep else list(paths)
        parts = [p for p in sub.split("/") if p not in ("", ".")]
        if ".." in parts:
            raise RuntimeErr(f"--cgroup: {sub} is not a sub cgroup path")
        for name in names:
            if name not in paths:
                raise RuntimeErr(f"--cgroup: unknown controller {name}")
            out[name] = os.path.join(paths[name], *parts)
    return out


def join_sub_cgroups(paths: dict[str, str], specs: tuple[str, ...], pid: int) -> None:
    for _name, path in sorted(sub_cgroup_paths(paths, specs).items()):
        procs = os.path.join(path, "cgroup.procs")
        try:
            with open(procs, "w") as f:
                f.write(str(pid))
        except OSError as e:
            reason = (e.strerror or str(e)).lower()
            raise RuntimeErr(f"--cgroup: adding pid {pid} to {procs}: {reason}")


def _open_namespaces(st: st_mod.State, types: list[str]) -> list[tuple[str, int]]:
    out = []
    try:
        for t in types:
            name = NAMESPACE_PROC_NAMES[t]
            if os.stat(f"/proc/{st.pid}/ns/{name}").st_ino == os.stat(f"/proc/self/ns/{name}").st_ino:
                continue  # already there (setns into one's own user namespace even fails)
            out.append((t, os.open(f"/proc/{st.pid}/ns/{name}", os.O_RDONLY | os.O_CLOEXEC)))
    except FileNotFoundError:
        for _t, fd in out:
            os.close(fd)
        raise ContainerNotRunning(st.id)
    if not st_mod.is_alive(st):
        for _t, fd in out:
            os.close(fd)
        raise ContainerNotRunning(st.id)
    return out


def _wait(pid: int, master: int | None, pipes: Any) -> int:
    from .run import attend, forwarding_signals

    with forwarding_signals(pid):
        if pipes:
            pipes.copy_until_exit(pid)
        code = attend(pid, master, lambda: _alive(pid))
        if pipes:
            pipes.drain()  # as runc: not before the container closed its ends
            pipes.close()
        return code


def _alive(pid: int) -> bool:
    # not waitpid(WNOHANG): that would reap the status the wait loop needs
    return st_mod.proc_start_time(pid) is not None
