"""The child side of create: the stage-1 child (namespaces) and the container's init.

Both run in processes forked from `pyruntime create`.  Each body runs inside
`try/except BaseException`, reports failure as one ERROR message over the sync channel
and always ends with os._exit().  After pivot_root the host filesystem is gone, so every
module init needs is imported at the top of this file or before the pivot.
"""

from __future__ import annotations

# _signal, not signal: the module's enums cost milliseconds of every create and exec
import _signal as signal
import os
import resource
import stat

from . import console, sync
from .capabilities import CapabilityPlan
from .errors import ChildError, ConfigError
from .hooks import run_hooks
from .plan import InitPlan, namespaces_before_go, needs_state_doc
from .spec import Process, Spec
from .syscalls.linux import (
    CLONE_NEWCGROUP,
    CLONE_NEWNET,
    CLONE_NEWTIME,
    CLONE_NEWUSER,
    NAMESPACE_FLAGS,
    PR_SET_DUMPABLE,
    PR_SET_KEEPCAPS,
    PR_SET_NO_NEW_PRIVS,
    LinuxSyscalls,
)

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
DEV_NULL = os.makedev(1, 3)
PASSWD_MAX = 1 << 20  # far more than any real /etc/passwd; a link to /dev/zero never ends
# Joining order matters: the user namespace first (it grants the rights for the rest),
# the mount namespace last (it changes what paths mean).
JOIN_ORDER = ("user", "ipc", "uts", "network", "pid", "cgroup", "time", "mount")

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


# Whether READY went out: after it nobody listens on the channel any more.
_ready = [False]

# What the child is doing, so that a bare OSError ("Operation not permitted") still says where.
_step = ["starting"]


def _at(step: str) -> None:
    _step[0] = step


def _fail(chan: sync.Channel, e: BaseException) -> None:
    if isinstance(e, OSError) and e.strerror:
        msg = e.strerror
        if e.filename is not None and str(e.filename) not in msg:
            msg = f"{e.filename}: {msg}"
        msg = f"{_step[0]}: {msg}"
    else:
        msg = str(e) or type(e).__name__
    try:
        chan.error(msg)
    except OSError:
        if _runtime_gone(e) or not _ready[0]:
            # create failed (and says why: a `delete --force` that took our cgroups or
            # state mid-create, say) or was killed: nobody to tell, and create's stderr,
            # which we still share, must keep its one line
            return
        # after READY nobody listens on the channel: the container's stderr is all there is
        try:
            os.write(2, f"pyruntime init: {msg}\n".encode())
        except OSError:
            pass


def _runtime_gone(e: BaseException) -> bool:
    """The channel to `create` broke: it went away before READY."""
    return isinstance(e, (BrokenPipeError, ConnectionResetError)) or (
        isinstance(e, ChildError) and str(e) == sync.PEER_GONE)


# --- stage 1: namespaces ---------------------------------------------------------


def stage1(chan: sync.Channel, plan: InitPlan, sys: LinuxSyscalls) -> None:
    """Join/create namespaces, then fork init into them.  Never returns."""
    code = 1
    try:
        if plan.stdio is not None:
            _take_stdio(plan.stdio, plan.spec)
        _at("preparing the process")
        # everything that needs the host's files (modules, libseccomp, the seccomp
        # listener socket) is loaded before joining the container's mount namespace; and
        # before GO: the parent is moving us into the container's cgroups meanwhile, a
        # write that waits out an RCU grace period (runc's init overlaps it the same way)
        proc = plan.process or plan.spec.process
        assert proc is not None
        prepared = _Prepared(plan, proc)
        sys.preload()
        if not plan.is_exec:
            from . import devices, mounts  # noqa: F401 - init's, used after pivot_root
        # Without a user namespace (whose id maps the parent writes) the namespaces are
        # made, and init forked, in the shadow of the cgroup attach too: init then waits
        # for GO (plan.py); a new cgroup namespace, rooted at the cgroup it is in when
        # made, is init's to make after GO.
        early = namespaces_before_go(plan)
        if early:
            _enter_namespaces(chan, plan, sys, prepared, deferred=CLONE_NEWCGROUP)
        else:
            chan.wait_for(sync.GO)
            if plan.is_exec and proc.oom_score_adj is not None:
                # here, not from the parent later: what the process forks at once inherits
                _set_oom_score_adj(proc.oom_score_adj)
            _enter_namespaces(chan, plan, sys, prepared)
        # init shares our end of the channel: it must not speak before INIT_PID is sent
        barrier_r, barrier_w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(barrier_w)
            if os.read(barrier_r, 1) != b"1":
                os._exit(1)  # stage 1 died: the parent already knows
            os.close(barrier_r)
            init(chan, plan, sys, prepared)  # never returns
        os.close(barrier_r)
        # with its start time, read while init is still our child (its pid cannot be
        # reused yet): the parent checks it before it moves that pid into the cgroups
        chan.send(sync.INIT_PID, pid=pid, start=_start_time(pid))
        os.write(barrier_w, b"1")
        os.close(barrier_w)
        code = 0
    except BaseException as e:
        _fail(chan, e)
    os._exit(code)


def _enter_namespaces(chan: sync.Channel, plan: InitPlan, sys: LinuxSyscalls,
                      prepared: _Prepared, deferred: int = 0) -> None:
    """Join and create the container's namespaces (but those in `deferred`), bring up lo,
    open the bind sources: everything stage 1 does before it forks init."""
    _at("joining namespaces")
    # From here on the process is about to enter namespaces the container can see:
    # it must not be ptrace-able or readable through /proc/<pid>/exe (CVE-2019-5736).
    sys.prctl(PR_SET_DUMPABLE, 0)
    fds = {}
    for ns_type, path in plan.join_namespaces:
        try:
            fds[ns_type] = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as e:
            raise ChildError(f"linux.namespaces: {ns_type} path {path}: {e.strerror}")
    # Nothing our caller left open may reach the container (CVE-2024-21626) or be seen
    # by it while we set it up: close it all here, before any container path is touched
    # and before a seccomp filter could deny close_range, so no close is left for the
    # moment between `start` and execve.
    _at("closing inherited descriptors")
    keep = {chan.fileno(), *fds.values(), *prepared.own_fds()}
    close_inherited(3 + plan.extra_fds, keep)
    flags = plan.new_namespaces
    unprivileged = os.geteuid() != 0  # rootless: the caller's own rights, no more
    if "user" in fds:
        sys.setns(fds.pop("user"), CLONE_NEWUSER)
        _become_root()
    elif flags & CLONE_NEWUSER:
        sys.unshare(CLONE_NEWUSER)
        # an unprivileged parent (or newuidmap) opens our /proc/<pid>/*_map only while
        # we are dumpable; nothing runs in the new namespace yet (runc does the same)
        if unprivileged:
            sys.prctl(PR_SET_DUMPABLE, 1)
        chan.send(sync.USERNS)
        chan.wait_for(sync.USERNS_DONE)
        if unprivileged:
            sys.prctl(PR_SET_DUMPABLE, 0)
        _become_root()
    for ns_type in JOIN_ORDER:
        if ns_type in fds:
            try:
                sys.setns(fds.pop(ns_type), NAMESPACE_FLAGS[ns_type])
            except OSError as e:
                raise ChildError(f"linux.namespaces: join {ns_type}: {e.strerror}")
    _at("creating namespaces")
    rest = flags & ~CLONE_NEWUSER & ~deferred
    if rest:
        sys.unshare(rest)
    if rest & CLONE_NEWNET:
        # as runc does: a new network namespace gets a working localhost, also for the
        # containers that join it later (podman --network container:X, ctr --with-ns)
        _at("bringing up lo")
        sys.link_up("lo")
        _at("creating namespaces")
    if flags & CLONE_NEWTIME and plan.spec.linux.time_offsets:
        _write_time_offsets(plan.spec.linux.time_offsets)
    if not plan.is_exec:
        # rootless: the namespace's root is the caller, so we reach what it reaches
        _open_bind_sources(chan, plan, bool(flags & CLONE_NEWUSER) and not unprivileged)


def _start_time(pid: int) -> int | None:
    from .state import proc_start_time  # loaded by the parent already

    return proc_start_time(pid)


def _open_bind_sources(chan: sync.Channel, plan: InitPlan, new_userns: bool) -> None:
    """Bind sources must be opened in the container's mount namespace (a bind of a mount
    from another namespace is EINVAL) but with the host's credentials: the container's root
    in a user namespace may not reach them.  Without a new user namespace both hold here;
    with one, the parent opens them from inside our mount namespace (as runc does)."""
    from . import mounts

    sources = mounts.bind_sources(plan.spec)
    if not sources:
        return
    if not new_userns:
        os.chdir(plan.bundle or "/")  # relative sources are relative to the bundle
        mounts.preopen(sources)
        return
    chan.send(sync.MOUNT_SOURCES)
    msg = chan.wait_for(sync.SOURCES)
    mounts.adopt(dict(zip(msg["paths"], msg["_fds"], strict=True)))


def close_inherited(first: int, keep: set[int], fd_dir: str = "/proc/self/fd") -> None:
    """Close every descriptor from `first` up except `keep`.  Only those that exist are
    touched: close_range over a sparse table is one syscall, but where it is refused
    CPython's closerange falls back to one close() per possible number."""
    try:
        names = os.listdir(fd_dir)
    except OSError:
        names = None
    if names is None:
        limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        bounds = [first - 1, *sorted(fd for fd in keep if fd >= first), max(limit, first)]
        for lo, hi in zip(bounds, bounds[1:], strict=False):
            os.closerange(lo + 1, hi)
        return
    for name in names:
        fd = int(name)
        if fd >= first and fd not in keep:
            try:
                os.close(fd)
            except OSError:
                pass  # the listing's own directory, closed already


def _no_fd_survives_exec(first: int, fd_dir: str = "/proc/self/fd") -> None:
    """Every descriptor from `first` up is close-on-exec (stage 1 closed the inherited
    ones; this holds it against anything opened inheritable since).  Runs before READY:
    nothing of it is left between `start` and execve."""
    try:
        names = os.listdir(fd_dir)
    except OSError:
        return  # no /proc in the container: what stage 1 left is all there is
    for name in names:
        if not name.isdigit():
            continue  # the container's own /proc may be anything
        fd = int(name)
        if fd >= first:
            try:
                if os.get_inheritable(fd):
                    os.set_inheritable(fd, False)
            except OSError:
                pass


def _become_root() -> None:
    try:
        os.setresgid(0, 0, 0)
        os.setresuid(0, 0, 0)
    except OSError:
        pass  # unmapped root: stay as we are, the container's user is set later


def _take_stdio(ends: tuple[int, int, int], spec: Spec) -> None:
    """The pipes of a foreground run/exec become stdio, owned by the container's root (as
    runc's are), so that the process can reopen /proc/self/fd/0..2 in a user namespace."""
    import fcntl

    # copies at 3 and up first: an end may itself sit at 0-2 (a caller without stdin)
    copies = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 3) for fd in ends]
    for target, fd in enumerate(copies):
        os.dup2(fd, target)
        os.close(fd)
    if spec.linux.namespace("user") is not None:
        uid, gid = _host_root(spec.linux.uid_mappings), _host_root(spec.linux.gid_mappings)
        for target in (0, 1, 2):
            os.fchown(target, uid, gid)


def _host_root(maps: Any) -> int:
    for m in maps:
        if m.container_id <= 0 < m.container_id + m.size:
            return int(m.host_id - m.container_id)
    return 0


def _set_oom_score_adj(value: int) -> None:
    try:
        with open("/proc/self/oom_score_adj", "w") as f:
            f.write(str(value))
    except OSError as e:
        raise ChildError(f"process.oomScoreAdj: failed to update /proc/self/oom_score_adj to "
                         f"{value}: {e.strerror}")


def _write_time_offsets(offsets: Any) -> None:
    lines = "".join(f"{clock} {secs} {nsecs}\n" for clock, (secs, nsecs) in offsets.items())
    try:
        with open("/proc/self/timens_offsets", "w") as f:
            f.write(lines)
    except OSError as e:
        raise ChildError(f"linux.timeOffsets: failed to write {lines.strip()!r} to "
                         f"/proc/self/timens_offsets: {e.strerror}")


# --- init: rootfs and process ----------------------------------------------------


def init(chan: sync.Channel, plan: InitPlan, sys: LinuxSyscalls, prepared: _Prepared) -> None:
    """Build the container from inside its namespaces, wait on the exec fifo, execve."""
    try:
        _init_body(chan, plan, sys, prepared)
    except BaseException as e:
        _fail(chan, e)
    os._exit(1)


def _init_body(chan: sync.Channel, plan: InitPlan, sys: LinuxSyscalls,
               prepared: _Prepared) -> None:
    # If `create` dies before READY, init sees EOF on the channel and exits: no pdeathsig,
    # since init's parent (stage 1) exits on purpose right after forking it.
    _at("starting init")
    os.setsid()
    if plan.is_exec:
        _exec_body(chan, plan, sys, prepared)
        return
    from . import devices, mounts

    spec = plan.spec
    proc = spec.process
    assert proc is not None
    if plan.keyring:
        try:
            sys.join_session_keyring(f"_ses.{plan.container_id}" if plan.container_id else None)
        except OSError:
            pass  # keyrings may be unavailable (e.g. in a user namespace); runc ignores that too
    fifo_fd = prepared.fifo_fd

    has_mount_ns = spec.linux.namespace("mount") is not None
    cgroup_ns = spec.linux.namespace("cgroup")
    new_cgroupns = cgroup_ns is not None and not cgroup_ns.path
    # Forked before GO (plan.namespaces_before_go): the rootfs is built while the parent
    # moves us into the container's cgroups, unless a new cgroup namespace, which is
    # rooted where we are when it is made, must come first (the cgroup mount shows it).
    waiting = namespaces_before_go(plan)
    if waiting and new_cgroupns:
        _await_cgroups(chan, sys)
        waiting = False
    if has_mount_ns:
        _at("preparing the rootfs")
        # (bind sources, relative to the bundle, were opened by stage 1 already)
        mounts.prepare_rootfs(spec, plan.rootfs, sys=sys, cgroup_paths=plan.cgroup_paths,
                              new_cgroupns=new_cgroupns)
    mounts.close_preopened()
    if waiting:
        _await_cgroups(chan, sys, new_cgroupns=False)

    state: dict[str, Any] = {}
    if needs_state_doc(spec):
        _at("waiting for create's hooks")
        chan.send(sync.HOOKS)
        state = chan.wait_for(sync.HOOKS_DONE)["state"]
    if spec.hooks.create_container:
        _at("running createContainer hooks")
        os.chdir(plan.rootfs)
        run_hooks(spec.hooks.create_container, state, "createContainer")
    _at("pivot_root")

    if has_mount_ns:
        mounts.pivot_root(plan.rootfs, sys=sys, no_pivot=plan.no_pivot)
        _make_cwd(proc.cwd)
    else:
        os.chroot(plan.rootfs)
        os.chdir("/")

    if proc.terminal:
        _at("setting up the terminal")
        slave = _send_pty(chan, proc)
        devices.mount_console("/", slave, sys=sys)
        console.become_session_leader_on(slave)

    _at("finishing the rootfs")
    # sysctls first: finalize_rootfs makes /proc/sys read-only
    if spec.linux.sysctl:
        mounts.write_sysctl(spec.linux.sysctl, sys=sys)
    if has_mount_ns:
        mounts.finalize_rootfs(spec, sys=sys)
    _at("setting the hostname")
    if spec.hostname:
        sys.sethostname(spec.hostname)
    if spec.domainname:
        sys.setdomainname(spec.domainname)
    _become_process(chan, plan, proc, prepared, state, fifo_fd, sys)


def _await_cgroups(chan: sync.Channel, sys: LinuxSyscalls, new_cgroupns: bool = True) -> None:
    """GO: the parent has put us in the container's cgroups (and set their limits)."""
    _at("waiting for the cgroups")
    chan.wait_for(sync.GO)
    if new_cgroupns:
        _at("creating namespaces")
        sys.unshare(CLONE_NEWCGROUP)


def _make_cwd(cwd: str) -> None:
    """As runc: a missing process.cwd is made (0755, by the container's root) once in the
    new root and before it may turn read-only.  Resolved inside the root, never following a
    link out of it; a failure is left to the chdir that reports it."""
    from .paths import open_in_root

    try:
        root = os.open("/", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.close(open_in_root(root, cwd, create="dir"))
        finally:
            os.close(root)
    except OSError:
        pass


def _exec_body(chan: sync.Channel, plan: InitPlan, sys: LinuxSyscalls,
               prepared: _Prepared) -> None:
    """`exec`: the namespaces (mount included) are joined already; only the process remains."""
    proc = plan.process
    assert proc is not None
    os.chdir("/")
    if proc.terminal:
        console.become_session_leader_on(_send_pty(chan, proc))
    _become_process(chan, plan, proc, prepared, {}, None, sys)


class _Prepared:
    """What must be looked up or loaded while the host filesystem is still reachable."""

    def __init__(self, plan: InitPlan, proc: Process) -> None:
        self.caps = CapabilityPlan(proc.capabilities)
        # opened with the host's credentials: in a user namespace the state dir may be
        # out of reach (runc passes this fd to its init the same way)
        self.fifo_fd = os.open(plan.fifo_path, os.O_PATH | os.O_CLOEXEC) if plan.fifo_path else None
        self.seccomp: Any = None
        self.listener: Any = None
        seccomp_doc = plan.spec.linux.seccomp
        if seccomp_doc is not None:
            from . import seccomp

            self.seccomp = seccomp.compile_filter(seccomp_doc)
            self.seccomp.prepare()  # the BPF program is generated now, not after `start`
            # the listener only matters when a rule notifies; connect before pivot_root
            if self.seccomp.uses_notify and self.seccomp.listener_path:
                self.listener = seccomp.connect_listener(self.seccomp.listener_path)

    def own_fds(self) -> list[int]:
        fds = [] if self.fifo_fd is None else [self.fifo_fd]
        if self.listener is not None:
            fds.append(self.listener.fileno())
        return fds


def _send_pty(chan: sync.Channel, proc: Process) -> str:
    master, slave = console.open_pty("/dev/ptmx")
    # the user owns its terminal; the group stays devpts' (gid= in its mount options)
    os.chown(slave, proc.user.uid, -1)
    if proc.console_size:
        console.set_size(master, proc.console_size.height, proc.console_size.width)
    chan.send(sync.CONSOLE, fds=[master])
    os.close(master)
    return slave


def _become_process(chan: sync.Channel, plan: InitPlan, proc: Process, prepared: _Prepared,
                    state: dict[str, Any], fifo_fd: int | None, sys: LinuxSyscalls) -> None:
    """Apparmor, user, capabilities, seccomp; report READY; wait for start; execve."""
    spec = plan.spec
    _at("preparing the process's stdio")
    _no_fd_survives_exec(3 + plan.extra_fds)
    _reopen_dev_null()
    _at("applying the process's security labels")
    if proc.apparmor_profile:
        _apparmor_exec(proc.apparmor_profile)
    if proc.selinux_label:
        _selinux_exec(proc.selinux_label)
    env = _environment(list(proc.env) + plan.extra_env, proc.user.uid)
    flt = prepared.seccomp
    if flt is not None and not proc.no_new_privileges:
        # Without no_new_privs, loading a filter needs CAP_SYS_ADMIN: do it while init still
        # has it (as runc does); the filter must then allow the few syscalls that follow.
        _at("loading the seccomp filter")
        _load_seccomp(flt, prepared.listener, state, spec)
        flt = None
    _at("setting up the process")
    _setup_process(proc, prepared.caps, sys)
    # after the cwd and the user are set (./start.sh is relative to process.cwd), before
    # READY, so that a missing executable fails `create` as in runc
    path = _look_path(proc.args[0], env)
    # Every signal at its default now, not in the window between `start` and execve; only
    # SIGPIPE stays ignored until execve, so that writing to a closed socket (READY, the
    # seccomp notify fd) fails with EPIPE instead of killing init without a word.
    _at("resetting signals")
    _unblock_signals(sys, keep_ignored=(signal.SIGPIPE,))

    _at("reporting ready")
    chan.send(sync.READY)
    _ready[0] = True
    chan.close()

    if fifo_fd is not None:
        # Blocks until `start` opens the fifo for reading.
        _at("waiting for start")
        fd = os.open(f"/proc/self/fd/{fifo_fd}", os.O_WRONLY | os.O_CLOEXEC)
        os.write(fd, b"0")
        os.close(fd)
        os.close(fifo_fd)

    if spec.hooks.start_container and not plan.is_exec:
        _at("running startContainer hooks")
        run_hooks(spec.hooks.start_container, state, "startContainer")
    _at("loading the seccomp filter")
    if proc.no_new_privileges:
        sys.prctl(PR_SET_NO_NEW_PRIVS, 1)
    if flt is not None:
        _load_seccomp(flt, prepared.listener, state, spec)
    # (no fd work here: stage 1 closed what we inherited, the rest is close-on-exec)
    _at("starting the container's process")
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    os.execve(path, list(proc.args), env)


def _reopen_dev_null() -> None:
    """stdio that is the host's /dev/null may be open read-only (containerd's --null-io):
    give the process the container's /dev/null read-write instead, as runc does."""
    null = None
    for fd in (0, 1, 2):
        try:
            st = os.fstat(fd)
        except OSError:
            continue
        if stat.S_ISCHR(st.st_mode) and st.st_rdev == DEV_NULL:
            if null is None:
                null = _open_dev_null()
                if null is None:
                    return  # not the real thing: keep the caller's /dev/null
            os.dup2(null, fd)
    if null is not None:
        os.close(null)


def _open_dev_null(path: str = "/dev/null") -> int | None:
    """The container's /dev/null, if it is the character device 1:3 itself: the container
    may have made it a symlink (to /proc/self/fd/N, say) or a FIFO."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY
                     | os.O_CLOEXEC)
    except OSError:
        return None
    st = os.fstat(fd)
    if not (stat.S_ISCHR(st.st_mode) and st.st_rdev == DEV_NULL):
        os.close(fd)
        return None
    os.set_blocking(fd, True)
    return fd


def _load_seccomp(flt: Any, listener: Any, state: dict[str, Any], spec: Spec) -> None:
    notify_fd = flt.load()
    if listener is not None and notify_fd is not None:
        from . import seccomp

        meta = str((spec.linux.seccomp or {}).get("listenerMetadata", ""))
        seccomp.send_listener_fd(listener, notify_fd, state, meta)
        os.close(notify_fd)
        listener.close()


def _selinux_exec(label: str) -> None:
    """The label the process gets at execve (validate.py refuses it where SELinux is off)."""
    for attr in ("/proc/thread-self/attr/exec", "/proc/self/attr/exec"):
        try:
            with open(attr, "w") as f:
                f.write(label)
            return
        except FileNotFoundError:
            continue
        except OSError as e:
            raise ChildError(f"process.selinuxLabel: failed to write {label!r} to {attr}: "
                             f"{e.strerror}")
    raise ConfigError("process.selinuxLabel", "SELinux is not available")


def _apparmor_exec(profile: str) -> None:
    for attr in ("/proc/self/attr/apparmor/exec", "/proc/self/attr/exec"):
        try:
            with open(attr, "w") as f:
                f.write(f"exec {profile}")
            return
        except FileNotFoundError:
            continue
    raise ConfigError("process.apparmorProfile", "AppArmor is not available")


def _environment(env: list[str], uid: int) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in env:
        k, sep, v = item.partition("=")
        if not sep:
            raise ConfigError("process.env", f"invalid entry {item!r}: expected KEY=value")
        out[k] = v
    if "HOME" not in out:
        out["HOME"] = _home_of(uid)
    return out


def _home_of(uid: int, passwd: str = "/etc/passwd") -> str:
    """HOME from the container's /etc/passwd, read only if it is a regular file of sane
    size: the container may have made it a symlink, a FIFO (open would block) or a link to
    /dev/zero (read would never end)."""
    try:
        fd = os.open(passwd, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY
                     | os.O_CLOEXEC)
    except OSError:
        return "/"
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return "/"
        data = os.read(fd, PASSWD_MAX)
    except OSError:
        return "/"
    finally:
        os.close(fd)
    for line in data.decode(errors="replace").splitlines():
        parts = line.strip().split(":")
        if len(parts) >= 6 and parts[2] == str(uid):
            return parts[5] or "/"
    return "/"


def _look_path(name: str, env: dict[str, str]) -> str:
    """Go's exec.LookPath as runc's init uses it, with its words: podman and docker read
    them to answer 126 (there, but not executable) or 127 (not there)."""
    quoted = '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if "/" in name:
        try:
            st = os.stat(name)
        except OSError as e:
            reason = e.strerror or "error"
            raise ChildError(f"exec: {quoted}: stat {name}: {reason[:1].lower()}{reason[1:]}")
        if not (stat.S_ISREG(st.st_mode) and st.st_mode & 0o111):
            raise ChildError(f"exec: {quoted}: permission denied")
        return name
    for d in env.get("PATH", DEFAULT_PATH).split(":"):
        cand = os.path.join(d or ".", name)
        try:
            st = os.stat(cand)
        except OSError:
            continue
        if stat.S_ISREG(st.st_mode) and st.st_mode & 0o111:
            return cand
    raise ChildError(f"exec: {quoted}: executable file not found in $PATH")


def rlimit_value(value: int) -> int:
    """config.json's rlimits are the kernel's unsigned 64-bit values (2^64-1 is RLIM_INFINITY,
    what `podman --ulimit core=-1` writes); Python's setrlimit takes a signed C long long,
    whose two's complement is the same bit pattern."""
    return value - (1 << 64) if value >= 1 << 63 else value


def _setup_process(proc: Any, caps: CapabilityPlan, sys: LinuxSyscalls) -> None:
    for rl in proc.rlimits:
        number = getattr(resource, rl.type, None)
        if number is None:
            raise ConfigError("process.rlimits", f"unknown rlimit {rl.type}")
        try:
            resource.setrlimit(number, (rlimit_value(rl.soft), rlimit_value(rl.hard)))
        except (OSError, ValueError, OverflowError) as e:
            reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
            raise ChildError(f"process.rlimits: {rl.type}: setrlimit soft {rl.soft} hard {rl.hard}: "
                             f"{reason}")
    try:
        os.chdir(proc.cwd)
        cwd_done = True
    except OSError:
        cwd_done = False  # retried as the container's user below
    caps.drop_bounding()
    sys.prctl(PR_SET_KEEPCAPS, 1)
    user = proc.user
    try:
        os.setgroups(list(user.additional_gids))
    except OSError as e:
        if user.additional_gids:
            raise ChildError(f"process.user.additionalGids: setgroups: {e.strerror}")
    try:
        os.setresgid(user.gid, user.gid, user.gid)
        os.setresuid(user.uid, user.uid, user.uid)
    except OSError as e:
        raise ChildError(f"process.user: cannot become {user.uid}:{user.gid}: {e.strerror}")
    caps.apply(sys)
    sys.prctl(PR_SET_KEEPCAPS, 0)
    os.umask(user.umask if user.umask is not None else 0o022)
    try:
        os.chdir(proc.cwd)
    except OSError as e:
        if not cwd_done:
            raise ChildError(f"process.cwd: {proc.cwd}: {e.strerror}")
    # A cwd like /proc/self/fd/N names whatever fd N is: a host directory inherited from
    # our caller, or a bind source we opened.  getcwd() fails for a directory that the
    # container's root cannot reach, which is exactly the escape (CVE-2024-21626).
    try:
        os.getcwd()
    except FileNotFoundError:
        raise ChildError(f"process.cwd: {proc.cwd}: outside the container's root")


def _unblock_signals(sys: LinuxSyscalls, keep_ignored: tuple[int, ...] = ()) -> None:
    """Ignored dispositions survive execve: CPython ignores SIGPIPE and SIGXFSZ, a caller may
    ignore more, and the container must start with every signal at its default."""
    for sig in range(1, signal.NSIG):
        if sig in (signal.SIGKILL, signal.SIGSTOP) or sig in keep_ignored:
            continue
        try:
            signal.signal(sig, signal.SIG_DFL)
        except (OSError, ValueError):
            try:
                sys.default_signal(sig)  # the real-time signals glibc keeps for itself
            except OSError:
                pass
    signal.pthread_sigmask(signal.SIG_SETMASK, [])

