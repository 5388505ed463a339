"""Lifecycle orchestration on the parent side: create, start, kill, delete.

Every verb loads facts from the Store, derives the status, and acts.  `create` records
what it is about to make (state dir, cgroup paths, then the init pid) *before* making it,
so that `delete --force` can always clean up after a runtime that was killed midway.
"""

from __future__ import annotations

import gc
import os
import select
import time

from . import state as st_mod
from . import trace
from .errors import (
    ChildError,
    ConfigError,
    ContainerExists,
    ContainerNotRunning,
    CorruptState,
    RuntimeErr,
    StateTransitionError,
)
from .record import dataclass
from .state import CREATED, CREATING, PAUSED, RUNNING, STOPPED, State, Store
from .syscalls.linux import LINUX, NAMESPACE_FLAGS, LinuxSyscalls

SIGKILL = 9  # not signal.SIGKILL: the signal module builds enums, a third of `start`'s imports

TYPE_CHECKING = False  # typing and spec are not needed by start/kill/delete
if TYPE_CHECKING:
    from typing import Any

    from .spec import Spec


@dataclass
class CreateOptions:
    bundle: str | os.PathLike[str]
    pid_file: str | None = None
    console_socket: str | None = None
    no_pivot: bool = False
    no_new_keyring: bool = False
    preserve_fds: int = 0
    keep_console: bool = False  # `run -t` without a console socket proxies the pty itself
    stdio: tuple[int, int, int] | None = None  # a foreground `run`'s pipes (see stdio.py)


def now_rfc3339() -> str:
    t = time.time_ns()
    secs, nanos = divmod(t, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{nanos:09d}Z"


def write_pid_file(path: str, pid: int) -> None:
    target = os.path.abspath(path)
    try:
        st_mod.atomic_write(target, str(pid).encode(), 0o644)
    except OSError as e:
        raise RuntimeErr(f"--pid-file {path}: {e.strerror}")


def _listen_fds() -> int:
    """fds passed by systemd socket activation to us are passed on, as runc does.  The
    contract: LISTEN_FDS counts for the process whose pid is LISTEN_PID, and only for it.
    A LISTEN_FDS inherited from elsewhere (or set without LISTEN_PID) would hand whatever
    the caller has open at 3, 4, ... to the container."""
    try:
        if int(os.environ.get("LISTEN_PID", "0")) != os.getpid():
            return 0
        return max(0, int(os.environ.get("LISTEN_FDS", "0")))
    except ValueError:
        return 0


class Runtime:
    def __init__(self, root: str | os.PathLike[str], sys: LinuxSyscalls = LINUX, warn: Any = None,
                 debug: Any = None, rootless: bool | None = None) -> None:
        self.store = Store(root)
        self.sys = sys
        self.warn = warn or (lambda msg: None)
        self.debug = debug or (lambda msg: None)
        # a non-root caller (rootless.py decides for it); --rootless true|false|auto says
        # only whether cgroups are best-effort, as runc's flag does
        self.unprivileged = os.geteuid() != 0
        self._rootless = rootless

    @property
    def rootless_cgroups(self) -> bool:
        """runc's rule: a non-root caller, or root of a user namespace (rootless podman)."""
        if self._rootless is None:
            from .rootless import in_user_namespace

            self._rootless = self.unprivileged or in_user_namespace()
        return self._rootless

    # --- create ------------------------------------------------------------------

    def create(self, cid: str, opts: CreateOptions) -> tuple[State, int | None]:
        """Returns the saved state and, with keep_console, the pty master."""
        from .spec import load_config, parse_spec

        bundle = os.path.abspath(opts.bundle)
        self.debug(f"create {cid}: bundle {bundle}")
        doc = load_config(bundle)
        self._validate(doc, bundle)
        from .labels import with_mount_labels

        spec = parse_spec(with_mount_labels(doc))
        if spec.process is None:
            raise ConfigError("process", "required to create a container")
        if spec.process.terminal and not opts.console_socket and not opts.keep_console:
            raise RuntimeErr("cannot allocate tty if runc will detach without setting console socket")
        if opts.console_socket and not spec.process.terminal:
            raise RuntimeErr("cannot use console socket if runc will not detach or allocate tty")
        rootfs = spec.root_path if os.path.isabs(spec.root_path) else os.path.join(bundle, spec.root_path)
        if not os.path.isdir(rootfs):
            raise ConfigError("root.path", f"{rootfs}: no such directory")
        trace.mark("config")
        if self.unprivileged:
            from .rootless import check_config

            check_config(spec)

        # the id is claimed (its state dir made: our lock against a concurrent create of the
        # same id) before anything looks at cgroups: a duplicate says only that it exists
        try:
            os.makedirs(self.store.root, mode=0o700, exist_ok=True)
        except OSError as e:
            raise RuntimeErr(f"--root {self.store.root}: {e.strerror}{self._root_hint()}") from e
        sdir = self.store.dir(cid)
        try:
            # a non-root owner's state, fifo and sockets are its alone
            os.mkdir(sdir, 0o700 if self.unprivileged else 0o711)
        except FileExistsError:
            raise ContainerExists(cid)
        except OSError as e:
            raise RuntimeErr(f"creating the state directory {sdir}: {e.strerror}"
                             f"{self._root_hint()}") from e
        try:
            ours = os.stat(sdir).st_ino
        except FileNotFoundError:  # a `delete --force` took it between mkdir and here
            raise RuntimeErr("container was deleted during create") from None
        try:
            cgroup, shared_cgroup = self._check_cgroup(spec, cid)
        except BaseException as e:
            deleted = st_mod.deleted_under_us(sdir, ours, False)
            try:
                if deleted in ("", st_mod.DELETING):  # still ours: not removed nor replaced
                    st_mod.remove_state_dir(sdir)
            except OSError:
                pass
            if deleted and isinstance(e, Exception):
                raise RuntimeErr("container was deleted during create") from e
            raise
        trace.mark("cgroup")
        st = State(id=cid, bundle=bundle, rootfs=rootfs, created="",
                   annotations=dict(spec.annotations), cgroup=cgroup.record(), config=doc)
        saved = False
        try:
            self.store.save(st)
            saved = True
            trace.mark("state")
            master = self._build(st, spec, sdir, cgroup, opts)
        except BaseException as e:
            deleted = st_mod.deleted_under_us(sdir, ours, saved)
            # a memory limit too small for the runtime's own setup kills our child without
            # a word (the channel just closes): the cgroup's OOM count says why
            oom = _oom_kills(cgroup) if isinstance(e, Exception) and not deleted else 0
            self._cleanup_failed(st, sdir, None if shared_cgroup else cgroup,
                                 keep_dir=deleted == st_mod.REPLACED)
            if deleted and isinstance(e, Exception):
                # a caller gave up on us (`delete --force` mid-create, as containerd does on
                # a timeout): whatever failed here failed because of that, so say that
                self.debug(f"create {cid}: failed after a delete: {e!r}")
                raise RuntimeErr("container was deleted during create") from e
            if oom:
                limit = (spec.linux.resources.get("memory") or {}).get("limit")
                raise ConfigError("linux.resources.memory.limit",
                                  f"{limit} bytes: the container's init was killed by the OOM "
                                  "killer while it was being set up") from e
            raise
        return st, master

    def _check_cgroup(self, spec: Spec, cid: str) -> tuple[Any, bool]:
        """The container's cgroup manager, and whether its cgroup existed already (shared)."""
        from .cgroups import new_manager

        cgroup = new_manager(spec.linux.cgroups_path, cid)
        if self.rootless_cgroups:
            from .rootless import usable_cgroups

            # root of a caller's user namespace (rootless podman) knows it has no cgroups:
            # only a user running us directly is told
            cgroup = usable_cgroups(cgroup, spec.linux.resources,
                                    self.warn if self.unprivileged else self.debug)
        shared_cgroup = cgroup.exists()
        if shared_cgroup:
            # a frozen cgroup would freeze init halfway through setup; a busy one is shared
            if cgroup.is_frozen():
                raise RuntimeErr("container's cgroup unexpectedly frozen")
            busy = cgroup.pids()
            if busy:
                self.warn(f"container's cgroup is not empty: {len(busy)} process(es) found")
        return cgroup, shared_cgroup

    def _root_hint(self) -> str:
        if not self.unprivileged:
            return ""
        from .rootless import root_hint

        return root_hint(self.store.root)

    def _validate(self, doc: dict[str, Any], bundle: str) -> None:
        from .validate import validate_config

        validate_config(doc, bundle)

    def _build(self, st: State, spec: Spec, sdir: str, cgroup: Any, opts: CreateOptions) -> int | None:
        from . import sync
        from .plan import InitPlan, namespaces, namespaces_before_go, needs_state_doc, run_child

        assert spec.process is not None
        fifo = os.path.join(sdir, st_mod.FIFO)
        os.mkfifo(fifo, 0o622)
        os.chmod(fifo, 0o622)  # mkfifo honours the umask; init may write as a non-root user
        new_flags, joins = namespaces(spec)
        listen = _listen_fds()
        plan = InitPlan(
            spec=spec, rootfs=st.rootfs, fifo_path=str(fifo), no_pivot=opts.no_pivot,
            new_namespaces=new_flags, join_namespaces=joins,
            extra_fds=listen + opts.preserve_fds,
            extra_env=[f"LISTEN_FDS={listen}", "LISTEN_PID=1"] if listen else [],
            cgroup_paths=cgroup.paths(), keyring=not opts.no_new_keyring, container_id=st.id,
            bundle=st.bundle, stdio=opts.stdio,
        )
        # The child imports init and what init needs itself, while we move it into the
        # container's cgroups: that write waits out an RCU grace period (milliseconds),
        # longer than the imports, which so still land in our memory cgroup, not the
        # container's (init must boot within a limit as small as runc's).
        early = namespaces_before_go(plan)
        # The directories, and the limits but memory and pids, before any child exists: an
        # early init binds the cgroup directories into its rootfs and makes device nodes
        # (which the device rules govern) while we attach it.  Memory once the child is in
        # (see _prepare_cgroup), pids once stage 1 and init both exist (as in runc:
        # `pids.limit` 1 must not stop the fork).
        later = self._prepare_cgroup(spec, cgroup)
        pids_limit = {"pids": later["pids"]} if "pids" in later else None
        parent, child = sync.Channel.pair()
        # The children are charged to the container's memory cgroup for every page they
        # touch: keep the collector from walking (and so copying) the inherited heap.
        collecting = gc.isenabled()
        gc.disable()
        gc.freeze()
        trace.mark("init")
        pid = os.fork()
        if pid == 0:
            parent.close()
            run_child(child, plan, self.sys)  # never returns
        trace.mark("fork")
        gc.unfreeze()
        if collecting:
            gc.enable()
        child.close()
        master = None
        try:
            cgroup.apply(pid)
            if "memory" in later:
                cgroup.set({"memory": later["memory"]})
            trace.mark("cgroup")
            if not early:
                parent.send(sync.GO)
        except BaseException as e:
            # the child prepares (seccomp, capabilities) while we attach it: if that failed
            # first, our failure (a dead pid to attach, a closed channel) is only its echo
            if pid:
                _kill_quietly(pid)
            child_error = parent.pending_error() if isinstance(e, Exception) else None
            parent.close()
            if child_error is not None:
                raise child_error from None
            raise
        try:
            if new_flags & NAMESPACE_FLAGS["user"]:
                parent.wait_for(sync.USERNS)
                if self.unprivileged:
                    from .rootless import write_id_maps

                    write_id_maps(pid, spec)
                else:
                    _write_id_maps(pid, spec)
                parent.send(sync.USERNS_DONE)
            msg, _fds = parent.recv()
            if msg["type"] == sync.MOUNT_SOURCES:
                _send_mount_sources(parent, pid, st.bundle, spec)
                msg = parent.wait_for(sync.INIT_PID)
            elif msg["type"] != sync.INIT_PID:
                raise sync.UnexpectedMessage(sync.INIT_PID, msg["type"])
            init_pid = msg["pid"]
            self.debug(f"create {st.id}: init pid {init_pid}")
            if early:
                # init may have been forked before stage 1 was moved: move it too (the
                # kernel's grace period is behind us now, so this write is quick), and
                # only then let it go on
                try:
                    start = msg.get("start")  # None where stage 1 saw another /proc
                    if start is not None and st_mod.proc_start_time(init_pid) != start:
                        # it died while we waited on the kernel: never move whatever
                        # process may have that pid now
                        raise RuntimeErr("container init exited unexpectedly")
                    cgroup.apply(init_pid)
                    if pids_limit:
                        cgroup.set(pids_limit)
                    parent.send(sync.GO)
                except Exception:
                    child_error = parent.pending_error()  # init failed first: its words
                    if child_error is not None:
                        _kill_quietly(init_pid)
                        raise child_error from None
                    raise
                trace.mark("cgroup")
            if pids_limit and not early:
                cgroup.set(pids_limit)
            os.waitpid(pid, 0)
            pid = 0
            trace.mark("init")
            st.pid = init_pid
            st.pid_start = st_mod.proc_start_time(init_pid) or 0
            st.created = now_rfc3339()
            self.store.save(st)
            trace.mark("state")
            if spec.process.oom_score_adj is not None:
                _set_oom_score_adj(init_pid, spec.process.oom_score_adj)
            if needs_state_doc(spec):
                parent.wait_for(sync.HOOKS)
                from .hooks import run_hooks

                state_doc = st_mod.oci_state(st, CREATING)
                run_hooks(spec.hooks.prestart, state_doc, "prestart")
                run_hooks(spec.hooks.create_runtime, state_doc, "createRuntime")
                parent.send(sync.HOOKS_DONE, state=state_doc)
            if spec.process.terminal:
                from .console import hand_over

                master = hand_over(opts.console_socket, parent.wait_for(sync.CONSOLE)["_fds"][0])
            parent.wait_for(sync.READY)
            trace.mark("init")
            self.debug(f"create {st.id}: init ready, waiting on the exec fifo")
            if opts.pid_file:
                write_pid_file(opts.pid_file, init_pid)
                trace.mark("state")
        except BaseException:
            if pid:
                _kill_quietly(pid)
            if master is not None:
                os.close(master)
            raise
        finally:
            parent.close()
        return master

    def _prepare_cgroup(self, spec: Spec, cgroup: Any) -> dict[str, Any]:
        """Make the container's cgroup directories and write its limits but memory and
        pids, which are returned for later."""
        cgroup.apply(-1)
        if not spec.linux.resources:
            return {}
        from .defaults import effective_resources

        resources = effective_resources(dict(spec.linux.resources))
        if self.rootless_cgroups:
            from .rootless import without_devices

            resources = without_devices(resources)
        for name in cgroup.unenforced(resources):
            self.warn(f"linux.resources.{name} is not enforced on this host's cgroups")
        # the memory limit once our child is in: a limit below what it already uses is
        # then refused by the kernel (EBUSY), a clear error, as in runc, where an empty
        # cgroup would take it and the child be OOM-killed without a word
        later = {k: resources.pop(k) for k in ("memory", "pids") if resources.get(k)}
        if resources:
            cgroup.set(resources)
        return later

    def _cleanup_failed(self, st: State, sdir: str, cgroup: Any,
                        keep_dir: bool = False) -> None:
        """Undo a failed create; `cgroup` is None when it existed before us (shared): then
        only our own init is killed and the cgroup stays, with its other processes.
        `keep_dir`: the state dir is another create's now (ours was deleted and the id
        reused), so it and the cgroups, which that create may share, stay."""
        if st.pid and st_mod.is_alive(st):
            _kill_quietly(st.pid)
            _wait_gone(st, 5.0)
        if keep_dir:
            return
        if cgroup is not None:
            try:
                if cgroup.exists():
                    cgroup.kill_all(SIGKILL)
                cgroup.destroy()
            except (OSError, RuntimeErr):
                pass
        try:
            st_mod.remove_state_dir(sdir)
        except OSError:
            pass  # a concurrent `delete --force` removes it

    # --- start / state -----------------------------------------------------------

    def load(self, cid: str) -> tuple[State, str]:
        st = self.store.load(cid)
        return st, st_mod.status(st, self.store.path(cid))

    def start(self, cid: str) -> None:
        st, stat = self.load(cid)
        if stat == STOPPED:
            raise StateTransitionError(cid, stat, "start")
        if stat != CREATED:
            raise RuntimeErr("cannot start an already running container" if stat in (RUNNING, PAUSED)
                             else f"cannot start a container in the {stat} state")
        fifo = os.path.join(self.store.path(cid), st_mod.FIFO)
        # The pidfd first: opening the fifo releases init, and a short command can run and
        # exit before a pidfd taken afterwards could be opened.
        try:
            pidfd = self.sys.pidfd_open(st.pid)
        except OSError:
            raise ContainerNotRunning(cid)
        try:
            if st_mod.proc_start_time(st.pid) != st.pid_start:
                raise ContainerNotRunning(cid)  # the pid was reused while we looked
            self.debug(f"start {cid}: releasing init {st.pid}")
            try:
                fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
            except FileNotFoundError:
                raise RuntimeErr("cannot start an already running container")
            trace.mark("state")
            try:
                self._await_fifo(fd, pidfd)
            finally:
                os.close(fd)
            trace.mark("init")
        finally:
            os.close(pidfd)
        try:
            os.unlink(fifo)
        except FileNotFoundError:
            pass
        if (st.config.get("hooks") or {}).get("poststart"):
            from .hooks import run_hooks_warn
            from .spec import parse_spec

            spec = parse_spec(st.config)
            run_hooks_warn(spec.hooks.poststart, st_mod.oci_state(st, RUNNING), "poststart", self.warn)

    @staticmethod
    def _await_fifo(fd: int, pidfd: int) -> None:
        """Read init's one byte; a dead init must not hang `start` (poll its pidfd too).
        The byte read is success, whatever init (or the command it became) did after."""
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        poller.register(pidfd, select.POLLIN)
        while True:
            events = dict(poller.poll())
            if fd in events:
                if _read_byte(fd):
                    return
                if events[fd] & select.POLLHUP and pidfd not in events:
                    # the writer came and went: another `start` took the byte
                    raise RuntimeErr("cannot start an already running container")
            if pidfd in events:
                # init is gone; a byte it wrote before going is still in the pipe
                if _read_byte(fd):
                    return
                raise RuntimeErr("container init exited before start")
            # POLLHUP with no data before the writer opened: keep waiting on the pidfd
            time.sleep(0.001)

    # --- kill --------------------------------------------------------------------

    def kill(self, cid: str, sig: int, all_procs: bool = False) -> None:
        st, stat = self.load(cid)
        if stat not in (CREATED, RUNNING, PAUSED) and not (all_procs and stat == STOPPED):
            raise ContainerNotRunning(cid)
        if all_procs and stat != STOPPED and st.cgroup and not (st.cgroup.get("paths") or {}):
            # rootless without a cgroup: the container's pid namespace holds its processes
            from .rootless import pidns_members

            for pid in pidns_members(st.pid):
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
        elif all_procs and st.cgroup:
            manager = _manager(st)
            if manager.exists():
                manager.kill_all(sig)
        else:
            self._signal_init(st, sig)
        # a frozen process cannot die: let it (runc thaws on SIGKILL too); the freezer is
        # read directly, so a plain kill never imports the cgroups package
        if sig == SIGKILL and stat != STOPPED and st.cgroup and st_mod.frozen(st.cgroup):
            try:
                _manager(st).thaw()
            except (OSError, RuntimeErr):
                pass  # the cgroup went away with the container: nothing left to thaw

    def _signal_init(self, st: State, sig: int) -> None:
        try:
            pidfd = self.sys.pidfd_open(st.pid)
        except ProcessLookupError:
            raise ContainerNotRunning(st.id)
        try:
            # the pidfd pins the process: check it is still ours, then signal it race-free
            if st_mod.proc_start_time(st.pid) != st.pid_start:
                raise ContainerNotRunning(st.id)
            self.sys.pidfd_send_signal(pidfd, sig)
        except ProcessLookupError:
            raise ContainerNotRunning(st.id)
        finally:
            os.close(pidfd)

    # --- delete ------------------------------------------------------------------

    def delete(self, cid: str, force: bool = False) -> None:
        try:
            st, stat = self.load(cid)
        except CorruptState:
            if not force:
                raise
            st_mod.remove_state_dir(self.store.path(cid))
            return
        sdir = self.store.path(cid)
        if stat in (RUNNING, PAUSED) and not force:
            raise RuntimeErr(f"cannot delete container {cid} that is not stopped: {stat}")
        if stat == CREATING and not force and st.pid and st_mod.is_alive(st):
            raise RuntimeErr(f"cannot delete container {cid} that is being created")
        if stat in (CREATING, CREATED):
            st_mod.mark_deleting(sdir)  # a create still running learns why it failed
        alive = stat in (CREATED, RUNNING, PAUSED, CREATING) and st.pid and st_mod.is_alive(st)
        trace.mark("state")
        manager = None
        if st.cgroup and (alive or not _remove_empty_cgroups(st.cgroup)):
            # something is still running in there: the full manager kills, thaws, retries
            from .cgroups import manager_from_record

            manager = manager_from_record(st.cgroup)
        if alive:
            if manager is not None and manager.exists():
                manager.kill_all(SIGKILL)
            self._signal_quietly(st)
            if manager is not None and _frozen(manager):
                manager.thaw()
            _wait_gone(st, 10.0)
        elif manager is not None and manager.exists() and manager.pids():
            # init is gone but it shared a pid namespace: stragglers die with the container
            manager.kill_all(SIGKILL)
        if st.config and st.created and (st.config.get("hooks") or {}).get("poststop"):
            from .hooks import run_hooks_warn
            from .spec import parse_spec

            spec = parse_spec(st.config)
            run_hooks_warn(spec.hooks.poststop, st_mod.oci_state(st, STOPPED), "poststop", self.warn)
        if manager is not None:
            manager.destroy()
        trace.mark("cgroup")
        st_mod.remove_state_dir(sdir)
        trace.mark("state")

    def _signal_quietly(self, st: State) -> None:
        try:
            self._signal_init(st, SIGKILL)
        except RuntimeErr:
            pass


def _read_byte(fd: int) -> bool:
    try:
        return bool(os.read(fd, 1))
    except BlockingIOError:
        return False


def _remove_empty_cgroups(record: dict[str, Any]) -> bool:
    """The common `delete`: the container has stopped and its cgroups are empty, so plain
    rmdirs (sub-cgroups first) finish the job without importing the cgroups package.
    False as soon as anything resists; the caller then uses the manager."""
    for top in sorted(set((record.get("paths") or {}).values())):
        if not os.path.isdir(top):
            continue
        for dirpath, _dirs, _files in os.walk(top, topdown=False):
            try:
                os.rmdir(dirpath)
            except FileNotFoundError:
                continue
            except OSError:
                return False
    return True


def _manager(st: State) -> Any:
    from .cgroups import manager_from_record

    return manager_from_record(st.cgroup)


def _frozen(manager: Any) -> bool:
    """A cgroup removed under us (a foreground `run` deleting its container) reads as
    ENODEV/ENOENT: it is not frozen."""
    try:
        return bool(manager.is_frozen())
    except (OSError, RuntimeErr):
        return False


def _oom_kills(cgroup: Any) -> int:
    """OOM kills the container's memory cgroup has counted (v1 memory.oom_control, v2
    memory.events); 0 when there is no such file."""
    paths = cgroup.paths()
    for key, name in (("memory", "memory.oom_control"), ("", "memory.events")):
        d = paths.get(key) if key else (paths.get("unified") or next(iter(paths.values()), None))
        if not d:
            continue
        try:
            with open(os.path.join(d, name)) as f:
                for line in f:
                    field, _, value = line.partition(" ")
                    if field == "oom_kill":
                        return int(value)
        except (OSError, ValueError):
            continue
    return 0


def _kill_quietly(pid: int) -> None:
    try:
        os.kill(pid, SIGKILL)
    except ProcessLookupError:
        pass
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def _wait_gone(st: State, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while st_mod.is_alive(st) and time.monotonic() < deadline:
        try:
            os.waitpid(st.pid, os.WNOHANG)  # when we are its subreaper (`run`)
        except ChildProcessError:
            pass
        time.sleep(0.002)


def _send_mount_sources(chan: Any, child: int, bundle: str, spec: Spec) -> None:
    """In a throw-away process (setns would change our own root and cwd): join the child's
    mount namespace, open the bind sources with our host credentials, send the fds."""
    from . import mounts, sync

    helper = os.fork()
    if helper == 0:
        code = 1
        try:
            fd = os.open(f"/proc/{child}/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)
            LINUX.setns(fd, NAMESPACE_FLAGS["mount"])
            os.chdir(bundle)
            opened = mounts.preopen(mounts.bind_sources(spec))
            chan.send(sync.SOURCES, fds=list(opened.values()), paths=list(opened))
            code = 0
        except BaseException as e:  # noqa: BLE001 - reported to the child, which fails create
            try:
                chan.error(f"opening bind sources: {e}")
            except OSError:
                pass
        os._exit(code)
    _, status = os.waitpid(helper, 0)
    if status != 0:
        raise ChildError("opening bind sources failed")


def _set_oom_score_adj(pid: int, value: int) -> None:
    path = f"/proc/{pid}/oom_score_adj"
    try:
        with open(path, "w") as f:
            f.write(str(value))
    except OSError as e:
        # lowering it needs CAP_SYS_RESOURCE (containerd's pause container asks for -998)
        raise RuntimeErr(f"process.oomScoreAdj: failed to update {path} to {value}: {e.strerror}")


def _write_id_maps(pid: int, spec: Spec) -> None:
    lx = spec.linux
    for field_name, name, maps in (("uidMappings", "uid_map", lx.uid_mappings),
                                   ("gidMappings", "gid_map", lx.gid_mappings)):
        text = "".join(f"{m.container_id} {m.host_id} {m.size}\n" for m in maps)
        try:
            with open(f"/proc/{pid}/{name}", "w") as f:
                f.write(text)
        except OSError as e:
            raise ChildError(f"linux.{field_name}: failed to write {text.strip()!r} to "
                             f"/proc/{pid}/{name}: {e.strerror}")
