"""A container's life: create (record, rootfs, bundle), start (conmon + runtime start), finish,
stop, remove. The click verbs in cli_containers.py only parse flags and print.

Every step that makes something is undone when a later step fails, and every removal step is
best-effort and idempotent, so `rm -f` cleans whatever a killed dockee-shim or monitor left.
Locks: store.lock("containers") around names; a per-container flock around state changes,
never held while a foreground run waits for its container.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from pyruntime.dockee import bundle as bundlemod
from pyruntime.dockee import monitor, overlay
from pyruntime.dockee.containers import Containers, boot_id, derive_status, new_id
from pyruntime.dockee.errors import Conflict, DockeeError, NotFound, StateError
from pyruntime.dockee.export import resolve_in
from pyruntime.dockee.network import attach as netattach
from pyruntime.dockee.runtime import OCIRuntime, RuntimeFailure
from pyruntime.dockee.store import Store, atomic_write_json
from pyruntime.dockee.volumes import Volumes

SECCOMP_PROFILE = Path("/usr/share/containers/seccomp.json")
VOLUME_MODES = {"ro", "rw", "z", "Z", "nocopy", "shared", "rshared", "slave", "rslave", "private", "rprivate"}


def self_command() -> str:
    """Absolute path of this dockee-shim, for conmon's exit command."""
    me = os.path.abspath(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    if me and os.access(me, os.X_OK) and os.path.basename(me).startswith("dockee"):
        return me
    return shutil.which("dockee-shim") or "/usr/local/bin/dockee-shim"


def load_seccomp_profile(path: Path = SECCOMP_PROFILE) -> dict[str, Any] | None:
    try:
        with open(path) as f:
            doc = json.load(f)
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def host_capabilities() -> list[str] | None:
    """Our own bounding set: a container cannot be given more (a restricted host lacks some)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("CapBnd:"):
                    return bundlemod.caps_from_mask(int(line.split()[1], 16))
    except (OSError, ValueError):
        pass
    return None


def cgroup_dirs(relative: str, proc_cgroup: str | None = None, root: Path = Path("/sys/fs/cgroup")) -> list[Path]:
    """Where a runtime run from this process puts a relative cgroupsPath, in every hierarchy."""
    if not relative or relative.startswith("/") or ".." in relative.split("/"):
        return []
    if proc_cgroup is None:
        try:
            with open("/proc/self/cgroup") as f:
                proc_cgroup = f.read()
        except OSError:
            return []
    out = []
    for line in proc_cgroup.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, ctrls, path = parts
        names = [c.removeprefix("name=") for c in ctrls.split(",")] if ctrls else ["unified", ""]
        for name in names:
            base = root / name if name else root
            out.append(base / path.lstrip("/") / relative)
    return out


def _fill_volume(merged: Path, dst: str, data: str) -> None:
    """docker's copy-up: a new volume starts with what the image has at its destination."""
    src = resolve_in(merged, dst)
    if not src.is_dir() or src.is_symlink() or any(os.scandir(data)):
        return
    p = subprocess.run(["cp", "-a", "--", f"{src}/.", data], stdin=subprocess.DEVNULL, capture_output=True,
                       text=True)
    if p.returncode != 0:
        raise DockeeError(f"volume for {dst}: copying the image's content: {p.stderr.strip()}")


def remove_empty_cgroups(relative: str) -> None:
    """Best effort after the runtime's delete: a runtime killed mid-create leaks its cgroups (DESIGN).
    rmdir removes a cgroup only when no process is left in it."""
    for d in cgroup_dirs(relative):
        with contextlib.suppress(OSError):
            if d.is_dir():
                d.rmdir()


class Engine:
    def __init__(self, store: Store, runtime: str, runtime_root: str | None) -> None:
        # absolute: conmon, the runtime it runs and the exit command all work from the bundle
        self.store = store if store.root.is_absolute() else Store(store.root.absolute())
        self.containers = Containers(self.store)
        self.runtime_name = runtime
        self.runtime_root = os.path.abspath(runtime_root) if runtime_root else None
        self._listed: dict[tuple[str, str | None], dict[str, dict[str, Any]]] = {}

    def prefetch(self, recs: list[dict[str, Any]]) -> None:
        """One `list` per runtime instead of one `state` per container (ps, stats, prune)."""
        keys = {(r.get("runtime") or self.runtime_name, r.get("runtime_root")) for r in recs
                if r.get("started_at") and r.get("finished_generation") != r.get("generation")}
        for binary, root in keys:
            try:
                listed = OCIRuntime(binary, root).states()
            except DockeeError:
                listed = None
            if listed is not None:
                self._listed[(binary, root)] = listed

    def runtime_state(self, rec: dict[str, Any]) -> dict[str, Any] | None:
        listed = self._listed.get((rec.get("runtime") or self.runtime_name, rec.get("runtime_root")))
        if listed is not None:
            return listed.get(rec["id"])
        return self.runtime_for(rec).state(rec["id"])

    # ---- helpers ----
    def runtime_for(self, rec: dict[str, Any]) -> OCIRuntime:
        return OCIRuntime(rec.get("runtime") or self.runtime_name, rec.get("runtime_root"))

    def status(self, rec: dict[str, Any], settle: bool = True) -> tuple[str, int | None, float | None]:
        """Derived status; `settle` records an end nobody else will (never while holding its lock)."""
        cid = rec["id"]
        if not rec.get("started_at") or (rec.get("finished_at") is not None
                                         and rec.get("finished_generation") == rec.get("generation")):
            return derive_status(rec, None, None)
        info = self.containers.read_exit(cid)
        status = derive_status(rec, self.runtime_state(rec), info)
        if settle and status[0] == "exited" and info is None \
                and not monitor.conmon_alive(self.containers.dir(cid)):
            # it ended without its monitor (killed, or a reboot): nobody else will record that, so
            # record it now, which also frees its mount and runtime state
            done = self.finish(cid)
            if done is not None and done.get("finished_at") is not None:
                return derive_status(done, None, None)
        return status

    def resolve(self, ref: str) -> dict[str, Any]:
        return self.containers.load(self.containers.resolve(ref))

    # ---- create ----
    def create(self, image_ref: str, flags: bundlemod.RunFlags, *, name: str | None, user_spec: str | None,
               volumes: list[str], rm: bool, network: str, ip: str | None, ports: list[str],
               add_hosts: list[str], cgroup_parent: str | None, raw: dict[str, Any],
               runtime_name: str | None = None) -> dict[str, Any]:
        from pyruntime.dockee.images import ImageStore

        self.store.ensure()
        img = ImageStore(self.store).resolve(image_ref)
        mounts_plan = self._plan_volumes(volumes)  # refuses missing sources before anything exists
        runtime = OCIRuntime(runtime_name or self.runtime_name, self.runtime_root)
        cid = new_id()
        rec: dict[str, Any] = {
            "id": cid, "name": name or "", "image": image_ref, "image_id": img.id,
            "layer_dirs": [str(p) for p in img.layer_dirs], "created": time.time(),
            "runtime": runtime.binary, "runtime_root": runtime.root, "rm": rm,
            "tty": flags.tty, "stdin": flags.stdin, "network": network, "ports": list(ports), "ip": ip,
            "generation": 0, "started_at": None, "finished_at": None, "exit_code": None,
            "oom_killed": False, "pid": None, "host_config": raw, "volumes": [], "anon_volumes": [],
        }
        self.containers.reserve(rec)
        cdir = self.containers.dir(cid)
        try:
            binds = []
            fresh: list[tuple[str, str]] = []  # (volume dir, destination) of volumes made now
            vols = Volumes(self.store)
            for kind, src, dst, ro, modes in mounts_plan:
                if kind == "volume":
                    anonymous = src == ""
                    is_new = anonymous or not vols.exists(src)
                    doc = vols.create(src or None, anonymous=anonymous)
                    if is_new and "nocopy" not in modes:
                        fresh.append((doc["Mountpoint"], dst))
                    if anonymous:
                        rec["anon_volumes"].append(doc["Name"])
                    source = doc["Mountpoint"]
                    rec["volumes"].append({"Type": "volume", "Name": doc["Name"], "Source": source,
                                           "Destination": dst, "RW": not ro})
                else:
                    source = src
                    rec["volumes"].append({"Type": "bind", "Source": source, "Destination": dst, "RW": not ro})
                bind = bundlemod.bind_mount(source, dst, ro)
                prop = [m for m in modes if m.endswith(("shared", "slave", "private"))]
                if prop:
                    bind["options"] = ["rbind", prop[-1], *bind["options"][2:]]
                binds.append(bind)
            flags.binds = binds
            if network == "host" and not flags.hostname:
                flags.hostname = socket.gethostname()  # docker and podman: the host's name
            flags.hostname = flags.hostname or cid[:12]
            cdir.mkdir(parents=True, exist_ok=True)
            (cdir / "hostname").write_text(flags.hostname + "\n")
            flags.extra_mounts = [bundlemod.bind_mount(str(cdir / "hostname"), "/etc/hostname", False)]
            cg = f"dockee-{cid[:12]}"
            flags.cgroups_path = f"{cgroup_parent.rstrip('/')}/{cg}" if cgroup_parent else cg
            merged = cdir / "merged"
            overlay.mount(img.layer_dirs, cdir / "upper", cdir / "work", merged)
            for data, dst in fresh:
                _fill_volume(merged, dst, data)
            workdir = flags.workdir or str(img.config.get("WorkingDir") or "")
            if workdir.startswith("/"):  # docker and podman make a missing working directory
                with contextlib.suppress(OSError):
                    resolve_in(merged, workdir).mkdir(mode=0o755, parents=True, exist_ok=True)
            user = user_spec or str(img.config.get("User") or "")
            if user:
                flags.user = bundlemod.resolve_user(user, overlay.rootfs_file(merged, "/etc/passwd"),
                                                    overlay.rootfs_file(merged, "/etc/group"))
            if network not in ("none", "host"):
                plan = netattach.plan_for(self.store, cid, rec["name"], network, ip=ip, ports=ports,
                                          add_hosts=add_hosts, hostname=flags.hostname, bundle=cdir)
                if plan is not None:
                    flags.hooks = plan.hooks
                    flags.extra_mounts = plan.mounts + flags.extra_mounts
                    rec["ip"] = plan.ip
                    rec["ports"] = plan.ports
            flags.net = "host" if network == "host" else "private"
            flags.host_caps = host_capabilities()
            spec = bundlemod.build_spec(img.config, flags, seccomp_profile=load_seccomp_profile(),
                                        machine=platform.machine())
            atomic_write_json(cdir / "config.json", spec)
            rec["command"] = spec["process"]["args"][2 if flags.init_path else 0:]  # ps shows no init
            rec["config"] = {"Hostname": flags.hostname, "Env": spec["process"]["env"],
                             "Cmd": flags.command or img.config.get("Cmd"), "Image": image_ref,
                             "WorkingDir": spec["process"]["cwd"], "User": user,
                             "Entrypoint": ([flags.entrypoint] if flags.entrypoint is not None
                                            else img.config.get("Entrypoint")),
                             "Tty": flags.tty, "OpenStdin": flags.stdin, "Labels": raw.get("Labels") or {}}
            rec["flags"] = {k: v for k, v in asdict(flags).items() if k not in ("hooks", "extra_mounts", "binds")}
            rec["cgroups_path"] = flags.cgroups_path
            self.containers.save(rec)
        except BaseException:
            self._teardown(rec, volumes=True)
            raise
        return rec

    def _plan_volumes(self, specs: list[str]) -> list[tuple[str, str, str, bool, list[str]]]:
        """-v specs -> (kind, source, destination, read-only, modes); refusals before anything exists."""
        out = []
        for spec in specs:
            parts = spec.split(":")
            if "" in parts or len(parts) > 3:
                what = "empty section between colons" if "" in parts else "too many colons"
                raise DockeeError(f"invalid spec: {spec}: {what}")
            ro = False
            modes: list[str] = []
            if len(parts) == 3:
                modes = parts[2].split(",")
                for mode in modes:  # docker/podman: ro|rw, z|Z, nocopy, a propagation (SELinux: none here)
                    if mode not in VOLUME_MODES:
                        raise DockeeError(f"invalid mode {mode!r} in -v {spec}: use ro, rw, z, Z, nocopy or a "
                                          "propagation (shared, slave, private, r...)")
                if "ro" in modes and "rw" in modes:
                    raise DockeeError(f"invalid mode {parts[2]!r} in -v {spec}: ro and rw together")
                ro = "ro" in modes
                parts = parts[:2]
            if len(parts) == 1:
                if not parts[0].startswith("/"):
                    raise DockeeError(f"invalid -v {spec}: the container path must be absolute")
                out.append(("volume", "", parts[0], False, modes))
                continue
            if len(parts) != 2 or not parts[1].startswith("/"):
                raise DockeeError(f"invalid -v {spec}: expected HOST:CONTAINER[:ro] with an absolute container path")
            src, dst = parts
            if src.startswith("/") or src.startswith("."):
                src = os.path.abspath(src)
                if not os.path.exists(src):
                    raise DockeeError(f"-v {spec}: the source path {src} does not exist")
                out.append(("bind", src, dst, ro, modes))
            else:
                out.append(("volume", src, dst, ro, modes))
        return out

    # ---- start ----
    def start(self, ref: str, *, attach: bool = False, stdin: bool | None = None) -> int:
        """Start a created or stopped container. Attached: relay its stdio, return its exit code."""
        cid = self.containers.resolve(ref)
        with self.containers.locked(cid):
            rec = self.containers.load(cid)
            status, _, _ = self.status(rec, settle=False)
            if status in ("running", "paused"):
                if attach:
                    raise Conflict(f"container {rec['name']} is already running")
                return 0
            rt = self.runtime_for(rec)
            if rec.get("generation"):
                rt.delete(cid, force=True)  # the runtime's leftovers of the previous run, if any
            rec["ip"] = netattach.prepare_start(self.store, cid)  # released at its stop, as in docker
            cdir = self.containers.dir(cid)
            overlay.mount([Path(p) for p in rec["layer_dirs"]], cdir / "upper", cdir / "work", cdir / "merged")
            previous = {k: rec.get(k) for k in ("generation", "started_at", "finished_at", "finished_generation",
                                                 "exit_code", "oom_killed")}
            rec["generation"] = int(rec.get("generation") or 0) + 1
            rec["stopped_by_user"] = False  # a restart policy applies again
            rec["finished_at"] = None
            rec["exit_code"] = None
            rec["oom_killed"] = False
            self.containers.save(rec)
            spec = monitor.ConmonSpec(
                cid=cid, name=rec["name"], bundle=cdir, runtime=rt.binary, runtime_args=rt.global_args,
                log_path=cdir / "ctr.log", tty=bool(rec.get("tty")), stdin=bool(rec.get("stdin")),
                exit_command=[self_command(), "--root", str(self.store.root), "_exited", cid],
                # ^P^Q detaches and `attach` comes back: a terminal's shell must not see an EOF then;
                # piped input into -it still ends with an EOF
                extra=["--leave-stdin-open"] if rec.get("tty") and rec.get("stdin")
                and (not attach or os.isatty(0)) else [])
            try:
                rec["pid"] = monitor.launch(spec)
            except monitor.CreateFailed as e:
                self._record_failure(rec, e.exit_code, previous)
                if rec.get("rm"):
                    self._teardown(rec, volumes=True)
                raise
            sock = None
            try:
                if attach:
                    sock = monitor.connect_attach(cdir)
                    if rec.get("tty"):
                        size = monitor.terminal_size(0)
                        if size:
                            monitor.resize(cdir, *size)
                began = time.time()  # before the process can run, so never after its end (F2)
                rt.start(cid)
            except BaseException as e:
                if sock is not None:
                    sock.close()
                with contextlib.suppress(DockeeError):
                    rt.delete(cid, force=True)
                self._record_failure(rec, getattr(e, "exit_code", 125) if isinstance(e, DockeeError) else 125,
                                     previous)
                if rec.get("rm"):
                    self._teardown(rec, volumes=True)
                raise
            rec["started_at"] = began
            rec["boot_id"] = boot_id()
            self.containers.save(rec)
        if sock is None:
            return 0
        return self._attached(rec, sock, bool(rec.get("stdin") if stdin is None else stdin))

    def attach(self, ref: str, stdin: bool = True) -> int:
        """docker attach: the running container's terminal or output; ^P^Q detaches again."""
        rec = self.resolve(ref)
        status, _, _ = self.status(rec)
        if status not in ("running", "paused"):
            raise StateError(f"You cannot attach to a stopped container, start it first ({rec['name']})")
        cdir = self.containers.dir(rec["id"])
        sock = monitor.connect_attach(cdir)
        if rec.get("tty"):
            size = monitor.terminal_size(0)
            if size:
                monitor.resize(cdir, *size)
        return self._attached(rec, sock, stdin and bool(rec.get("stdin")))

    def _attached(self, rec: dict[str, Any], sock: Any, stdin: bool) -> int:
        """Relay until the container ends (its exit code) or the user detaches (0, it runs on)."""
        cid = rec["id"]
        cdir = self.containers.dir(cid)
        try:
            detached = monitor.relay(sock, stdin=stdin, tty=bool(rec.get("tty")), bundle=cdir,
                                     on_signal=lambda sig: self._forward(rec, sig))
        finally:
            sock.close()
        if detached:
            sys.stderr.write("\r\nread escape sequence\r\n")
            return 0
        monitor.wait_for_file(self.containers.exit_file(cid), 30, alive=lambda: monitor.conmon_alive(cdir))
        seen = self.containers.read_exit(cid)
        done = self.finish(cid)
        code = done.get("exit_code") if done else (seen[0] if seen else None)
        if done is None and code is None:
            return 137  # removed under us (rm -f kills with SIGKILL): docker says 137 too
        return 255 if code is None or code < 0 else int(code)

    def _forward(self, rec: dict[str, Any], sig: int) -> None:
        with contextlib.suppress(DockeeError):
            self.runtime_for(rec).kill(rec["id"], str(sig))

    def _record_failure(self, rec: dict[str, Any], code: int, previous: dict[str, Any] | None = None) -> None:
        """A start that failed. A container that had run before keeps its last exit (docker's
        `start` of a container whose port is now taken leaves `Exited (0)` as it was)."""
        if previous and previous.get("finished_at") is not None:
            rec.update(previous)
            with contextlib.suppress(OSError):
                self.containers.save(rec)
            with contextlib.suppress(DockeeError):
                overlay.unmount(self.containers.dir(rec["id"]) / "merged")
            return
        rec["started_at"] = rec.get("started_at") or time.time()
        rec["finished_at"] = time.time()
        rec["finished_generation"] = rec.get("generation")
        rec["exit_code"] = code
        with contextlib.suppress(Exception):
            netattach.stopped(self.store, rec["id"])  # a failed ADD claims no address
        rec["ip"] = None
        with contextlib.suppress(OSError):
            self.containers.save(rec)
        with contextlib.suppress(DockeeError):
            overlay.unmount(self.containers.dir(rec["id"]) / "merged")

    # ---- finish (conmon's exit command, a foreground run, stop) ----
    def finish(self, cid: str) -> dict[str, Any] | None:
        """Record how the container ended; remove it when it was run with --rm. Idempotent."""
        with self.containers.locked(cid):
            try:
                rec = self.containers.load(cid)
            except (NotFound, DockeeError):
                return None
            if rec.get("finished_at") is not None and rec.get("finished_generation") == rec.get("generation"):
                done = rec
            elif not rec.get("started_at"):
                return rec  # never started: nothing ended
            else:
                rt = self.runtime_for(rec)
                info = self.containers.read_exit(cid)
                if info is None or not rec.get("started_at"):
                    state = rt.state(cid)
                    if state is not None and state.get("status") in ("running", "paused", "created") \
                            and rec.get("started_at"):
                        return rec  # not over: a stale exit command, or asked too early
                if info is None and monitor.conmon_alive(self.containers.dir(cid)):
                    # the monitor is about to write the real exit status: never record a guess first
                    monitor.wait_for_file(self.containers.exit_file(cid), 10,
                                          alive=lambda: monitor.conmon_alive(self.containers.dir(cid)))
                    info = self.containers.read_exit(cid)
                rec["exit_code"], rec["finished_at"] = info if info else (-1, time.time())
                rec["finished_generation"] = rec.get("generation")
                rec["oom_killed"] = self.containers.oom_killed(cid)
                rec["ip"] = None  # its poststop DEL frees the address; the next start takes one
                self.containers.save(rec)
                if not rec.get("rm"):  # a --rm container's teardown below deletes it
                    rt.delete(cid, force=True)
                    with contextlib.suppress(DockeeError):
                        overlay.unmount(self.containers.dir(cid) / "merged")
                    with contextlib.suppress(Exception):
                        netattach.stopped(self.store, cid)
                done = rec
            if done.get("rm"):
                self._teardown(done, volumes=True)
            return done

    # ---- restart policy (conmon's exit command) ----
    def maybe_restart(self, rec: dict[str, Any]) -> bool:
        """docker's --restart: start again after an exit nobody asked for, with a doubling delay."""
        policy = (rec.get("host_config") or {}).get("RestartPolicy") or {}
        name = policy.get("Name") or "no"
        count = int(rec.get("restart_count") or 0)
        if name == "no" or rec.get("stopped_by_user") or rec.get("finished_at") is None:
            return False
        if name == "on-failure" and (rec.get("exit_code") == 0 or (
                policy.get("MaximumRetryCount") and count >= int(policy["MaximumRetryCount"]))):
            return False
        ran = float(rec.get("finished_at") or 0) - float(rec.get("started_at") or 0)
        time.sleep(0.1 if ran >= 10 else min(0.1 * 2 ** count, 10))
        cid = rec["id"]
        with self.containers.locked(cid):
            try:
                now = self.containers.load(cid)
            except DockeeError:
                return False
            if now.get("stopped_by_user") or now.get("generation") != rec.get("generation"):
                return False  # stopped, removed or started by someone meanwhile
            now["restart_count"] = count + 1
            self.containers.save(now)
        self.start(cid)
        return True

    def mark_stopped_by_user(self, cid: str) -> None:
        with self.containers.locked(cid):
            with contextlib.suppress(DockeeError):
                rec = self.containers.load(cid)
                rec["stopped_by_user"] = True
                self.containers.save(rec)

    # ---- stop / kill ----
    def stop(self, ref: str, timeout: float = 10, sig: str = "TERM") -> dict[str, Any]:
        rec = self.resolve(ref)
        cid = rec["id"]
        status, _, _ = self.status(rec)
        if status in ("running", "paused"):
            self.mark_stopped_by_user(cid)
            rt = self.runtime_for(rec)
            with contextlib.suppress(RuntimeFailure):
                rt.kill(cid, sig)
            if status == "paused":
                with contextlib.suppress(RuntimeFailure):
                    rt.resume(cid)
            if not self._wait_stopped(rt, cid, timeout):
                with contextlib.suppress(RuntimeFailure):
                    rt.kill(cid, "KILL", all_processes=True)
                self._wait_stopped(rt, cid, 10)
            monitor.wait_for_file(self.containers.exit_file(cid), 10,
                                  alive=lambda: monitor.conmon_alive(self.containers.dir(cid)))
        done = self.finish(cid)
        return done or rec

    def _wait_stopped(self, rt: OCIRuntime, cid: str, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while True:
            st = rt.state(cid)
            if st is None or st.get("status") == "stopped":
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)

    # ---- remove ----
    def remove(self, ref: str, *, force: bool = False, volumes: bool = False) -> str:
        cid = self.containers.resolve(ref)
        with self.containers.locked(cid):
            try:
                rec = self.containers.load(cid)
            except NotFound:
                rec = {"id": cid}
            except DockeeError:
                if not force:
                    raise
                rec = {"id": cid}
            if "name" in rec:
                status, _, _ = self.status(rec, settle=False)
                if status in ("running", "paused") and not force:
                    raise Conflict(f"container {rec['name']} is {status}: stop it first or use rm -f")
            self._teardown(rec, volumes=volumes)
        return cid

    def _teardown(self, rec: dict[str, Any], volumes: bool) -> None:
        """Everything a container made, each step best-effort and idempotent."""
        cid = rec["id"]
        cdir = self.containers.dir(cid)
        try:
            rt: OCIRuntime | None = self.runtime_for(rec)
        except DockeeError:
            rt = None
        deleted = True
        if rt is not None:
            try:
                deleted = rt.delete(cid, force=True)  # kills whatever still runs; a no-op when unknown
            except DockeeError:
                deleted = rt.state(cid) is None
        pid = monitor.conmon_pid(cdir)
        if pid and monitor.conmon_alive(cdir):
            with contextlib.suppress(OSError):
                os.kill(pid, 9)
        with contextlib.suppress(DockeeError):
            overlay.unmount(cdir / "merged")
        remove_empty_cgroups(rec.get("cgroups_path") or f"dockee-{cid[:12]}")
        with contextlib.suppress(Exception):
            netattach.release(self.store, cid)
        if volumes:
            vols = Volumes(self.store)
            for name in rec.get("anon_volumes") or []:
                with contextlib.suppress(DockeeError):
                    vols.remove(name, [], force=True)
        if overlay.is_mounted(cdir / "merged"):
            raise DockeeError(f"container {cid[:12]}: its root is still mounted at {cdir / 'merged'}")
        if not deleted:  # keep the only handle on its runtime state and cgroups: rm -f can retry
            raise DockeeError(f"container {cid[:12]}: the runtime could not delete it; it is kept, retry rm -f")
        self.containers.forget(cid)
