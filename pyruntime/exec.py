"""`exec`: a new process inside a running container (its namespaces and its cgroup).

The parent opens the container init's namespace files while it checks init's start time,
so a recycled pid can never make the new process join someone else's namespaces.
"""

from __future__ import annotations

import copy
import os
import signal
from typing import Any

from . import state as st_mod
from . import sync
from .errors import ConfigError, ContainerNotRunning, RuntimeErr
from .record import dataclass
from .spec import parse_process, parse_spec
from .state import CREATED, PAUSED, RUNNING
from .syscalls.linux import NAMESPACE_PROC_NAMES, PR_SET_CHILD_SUBREAPER


@dataclass
class ExecOptions:
    cgroups: tuple[str, ...] = ()  # --cgroup [controller[,controller]:]path, as runc
    detach: bool = False
    pid_file: str | None = None
    console_socket: str | None = None
    preserve_fds: int = 0
    ignore_paused: bool = False


def process_from_flags(config: dict[str, Any], rootfs: str, args: list[str], *, tty: bool,
                       cwd: str | None, env: list[str], user: str | None,
                       additional_gids: list[int], caps: list[str], no_new_privs: bool,
                       apparmor: str | None) -> dict[str, Any]:
    """runc's way: start from the container's own process, then apply the flags."""
    if not args:
        raise RuntimeErr("exec: a command is required (or --process)")
    proc = copy.deepcopy(config.get("process") or {})
    proc["args"] = list(args)
    proc["terminal"] = tty
    proc.pop("consoleSize", None)
    if cwd:
        proc["cwd"] = cwd
    proc["env"] = list(proc.get("env") or []) + list(env)
    if user:
        proc["user"] = {**proc.get("user", {}), **_parse_user(user, rootfs)}
        proc["user"].pop("additionalGids", None)
    if additional_gids:
        proc.setdefault("user", {})["additionalGids"] = list(additional_gids)
    if caps:
        c = proc.setdefault("capabilities", {})
        for key in ("bounding", "effective", "permitted"):
            c[key] = list(dict.fromkeys(list(c.get(key) or []) + caps))
    if no_new_privs:
        proc["noNewPrivileges"] = True
    if apparmor:
        proc["apparmorProfile"] = apparmor
    return proc


def _parse_user(text: str, rootfs: str) -> dict[str, int]:
    name, _, group = text.partition(":")
    uid = _lookup(name, os.path.join(rootfs, "etc/passwd"), "--user")
    out = {"uid": uid}
    if group:
        out["gid"] = _lookup(group, os.path.join(rootfs, "etc/group"), "--user")
    else:
        out["gid"] = _primary_gid(uid, os.path.join(rootfs, "etc/passwd"))
    return out


def _lookup(name: str, db: str, flag: str) -> int:
    if name.isdigit():
        return int(name)
    try:
        with open(db) as f:
            for line in f:
                parts = line.strip().split(":")
                if len(parts) >= 3 and parts[0] == name:
                    return int(parts[2])
    except OSError:
        pass
    raise RuntimeErr(f"{flag}: unable to find {name!r} in the container's {os.path.basename(db)}")


def _primary_gid(uid: int, passwd: str) -> int:
    try:
        with open(passwd) as f:
            for line in f:
                parts = line.strip().split(":")
                if len(parts) >= 4 and parts[2] == str(uid):
                    return int(parts[3])
    except (OSError, ValueError):
        pass
    return 0


def exec_process(rt: Any, cid: str, proc_doc: dict[str, Any], opts: ExecOptions) -> int:
    from .init import InitPlan, stage1

    st, stat = rt.load(cid)
    if stat == PAUSED and not opts.ignore_paused:
        raise RuntimeErr("cannot exec in a paused container (use --ignore-paused to override)")
    if stat not in (CREATED, RUNNING, PAUSED):
        raise RuntimeErr("cannot exec in a stopped container")
    from .validate import validate_process

    validate_process(proc_doc)
    proc = parse_process(proc_doc)
    if not proc.args:
        raise ConfigError("process.args", "must not be empty")
    if proc.terminal and opts.detach and not opts.console_socket:
        raise RuntimeErr("cannot allocate tty if runc will detach without setting console socket")
    if opts.console_socket and not proc.terminal:
        raise RuntimeErr("cannot use console socket if runc will not detach or allocate tty")
    spec = parse_spec(st.config)
    rt.debug(f"exec {cid}: joining the namespaces of init {st.pid}")
    ns_fds = _open_namespaces(st, [ns.type for ns in spec.linux.namespaces])
    plan = InitPlan(spec=spec, rootfs=st.rootfs, fifo_path=None, is_exec=True, process=proc,
                    join_namespaces=[(t, f"/proc/self/fd/{fd}") for t, fd in ns_fds],
                    extra_fds=opts.preserve_fds, container_id=cid)
    if not opts.detach:
        rt.sys.prctl(PR_SET_CHILD_SUBREAPER, 1)
    parent, child = sync.Channel.pair()
    pid = os.fork()
    if pid == 0:
        parent.close()
        stage1(child, plan, rt.sys)  # never returns
    child.close()
    for _t, fd in ns_fds:
        os.close(fd)
    master = None
    exec_pidfd = -1
    try:
        if st.cgroup:
            from .cgroups import manager_from_record

            manager = manager_from_record(st.cgroup)
            if opts.cgroups:
                join_sub_cgroups(manager.paths(), opts.cgroups, pid)
            else:
                manager.apply(pid)
        parent.send(sync.GO)
        exec_pid = parent.wait_for(sync.INIT_PID)["pid"]
        # pinned, so a failure below kills exactly the process we started (as runc does)
        exec_pidfd = os.pidfd_open(exec_pid)
        rt.debug(f"exec {cid}: process pid {exec_pid}")
        os.waitpid(pid, 0)
        pid = 0
        if proc.terminal:
            from .console import hand_over

            master = hand_over(opts.console_socket, parent.wait_for(sync.CONSOLE)["_fds"][0])
        parent.wait_for(sync.READY)
        if opts.pid_file:
            from .container import write_pid_file

            write_pid_file(opts.pid_file, exec_pid)
    except BaseException:
        if pid:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
        if exec_pidfd >= 0:
            try:
                signal.pidfd_send_signal(exec_pidfd, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if master is not None:
            os.close(master)
        raise
    finally:
        parent.close()
        if exec_pidfd >= 0:
            os.close(exec_pidfd)
    if opts.detach:
        return 0
    return _wait(exec_pid, master)


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


def _wait(pid: int, master: int | None) -> int:
    from .run import attend, forwarding_signals

    with forwarding_signals(pid):
        return attend(pid, master, lambda: _alive(pid))


def _alive(pid: int) -> bool:
    # not waitpid(WNOHANG): that would reap the status the wait loop needs
    return st_mod.proc_start_time(pid) is not None
