"""Running as an unprivileged user: every decision that differs from root's lives here.

Nothing here is imported when the euid is 0 (the hot verbs pay for one geteuid()).

- `default_root`: runc's rule: `$XDG_RUNTIME_DIR/pyruntime` for a non-root caller, else
  /run/user/<uid>/pyruntime when that directory is the caller's, else /run/pyruntime
  (which then fails with a line saying what to set).
- `check_config`: before any side effect, the config may only map ids the user owns: its
  own uid/gid, and the ranges /etc/subuid and /etc/subgid give it (through the setuid
  newuidmap/newgidmap, which re-check the same files, so a rootless container never
  gains an id its user did not have).
- `write_id_maps`: a single mapping of the caller's own id is written directly (gid_map
  after "deny" to setgroups, as the kernel demands of an unprivileged writer); anything
  else goes through newuidmap/newgidmap.
- `usable_cgroups`: the hierarchies where the user may create the container's cgroup
  (delegated to it) are used; the rest are dropped.  With no limits asked for, that is
  one warning; limits that need a dropped controller are an error naming the field.
"""

from __future__ import annotations

import os

from .errors import ChildError, ConfigError, RuntimeErr

TYPE_CHECKING = False  # imported on every verb of a user in a user namespace: keep it light
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence
    from typing import Any

SUBUID = "/etc/subuid"
SUBGID = "/etc/subgid"
ROOT_DEFAULT = "/run/pyruntime"

# linux.resources fields and the cgroup v1 controllers that enforce them (on v2 every one
# is the unified directory); "devices" is left out on purpose: a user namespace cannot
# create device nodes anyway, and runc's rootless mode ignores device rules too.
_FIELD_CONTROLLERS: dict[str, tuple[str, ...]] = {
    "memory": ("memory",),
    "cpu": ("cpu", "cpuset"),
    "pids": ("pids",),
    "blockIO": ("blkio",),
    "hugepageLimits": ("hugetlb",),
    "network": ("net_cls", "net_prio"),
    "rdma": ("rdma",),
    "unified": ("unified",),
}


def in_user_namespace(uid_map: str = "/proc/self/uid_map") -> bool:
    """Whether we run in a user namespace other than the host's (rootless podman runs the
    runtime as root of its own): root there is not the host's root."""
    try:
        with open(uid_map) as f:
            return f.read().split() != ["0", "0", "4294967295"]
    except OSError:
        return False


def parse_flag(value: object) -> bool | None:
    """--rootless true|false|auto (runc's spellings); None is auto."""
    if value is None:
        return None
    text = str(value).strip().lower()
    if text in ("auto", ""):
        return None
    if text in ("true", "1", "t", "yes"):
        return True
    if text in ("false", "0", "f", "no"):
        return False
    raise RuntimeErr(f"--rootless: invalid value {value!r} (expected true, false or auto)")


def default_root(env: Mapping[str, str] | None = None, euid: int | None = None,
                 run_user: str = "/run/user") -> tuple[str, bool]:
    """The --root to use when none is given, and whether it is the caller's own runtime
    directory (then it is created 0700 with the sticky bit, which XDG asks for so that
    the directory is not pruned)."""
    env = os.environ if env is None else env
    euid = os.geteuid() if euid is None else euid
    # root of a user namespace that is not "root" by name (rootless podman's) is its user
    if euid == 0 and (not in_user_namespace() or env.get("USER", "") == "root"):
        return ROOT_DEFAULT, False
    xdg = env.get("XDG_RUNTIME_DIR", "")
    if xdg:
        return os.path.join(xdg, "pyruntime"), True
    mine = os.path.join(run_user, str(euid))
    try:
        if os.stat(mine).st_uid == euid:
            return os.path.join(mine, "pyruntime"), True
    except OSError:
        pass
    return ROOT_DEFAULT, False


def prepare_root(root: str) -> None:
    """Create the caller's own state root 0700 (+t); one line when it cannot."""
    try:
        os.makedirs(root, mode=0o700, exist_ok=True)
        os.chmod(root, 0o1700)
    except OSError as e:
        raise RuntimeErr(f"--root {root}: {e.strerror} (the path in $XDG_RUNTIME_DIR must be "
                         "writable by the user; or pass --root)") from e


def root_hint(root: str) -> str:
    """Appended to a --root error of a non-root caller that got the system default."""
    if root == ROOT_DEFAULT and os.geteuid() != 0:
        return " (set XDG_RUNTIME_DIR or pass --root)"
    return ""


# --- id mappings ------------------------------------------------------------------


class Range:
    __slots__ = ("start", "count")

    def __init__(self, start: int, count: int) -> None:
        self.start, self.count = start, count

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Range) and (self.start, self.count) == (other.start, other.count)

    def __repr__(self) -> str:
        return f"Range({self.start}, {self.count})"

    def covers(self, start: int, count: int) -> bool:
        return self.start <= start and start + count <= self.start + self.count


def sub_ranges(path: str, name: str, uid: int) -> list[Range]:
    """The subordinate ranges of `name` (or of its numeric uid) in /etc/subuid-style text."""
    try:
        with open(path) as f:
            text = f.read()
    except OSError:
        return []
    return parse_sub_ranges(text, name, uid)


def parse_sub_ranges(text: str, name: str, uid: int) -> list[Range]:
    out = []
    for line in text.splitlines():
        parts = line.strip().split(":")
        if len(parts) != 3 or parts[0] not in (name, str(uid)):
            continue
        try:
            start, count = int(parts[1]), int(parts[2])
        except ValueError:
            continue
        if count > 0 and start >= 0:
            out.append(Range(start, count))
    return out


def _user_name(uid: int) -> str:
    import pwd

    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def _is_own(maps: Sequence[Any], own: int) -> bool:
    return len(maps) == 1 and maps[0].host_id == own and maps[0].size == 1


def check_mappings(field_name: str, maps: Sequence[Any], own: int, subs: Iterable[Range],
                   subfile: str) -> bool:
    """Raise ConfigError for a mapping of ids the user does not own; True when the maps
    need the setuid helper (anything but the user's own id alone)."""
    if not maps:
        raise ConfigError(f"linux.{field_name}", "a rootless container needs at least one mapping")
    if _is_own(maps, own):
        return False
    subs = list(subs)
    for m in maps:
        if m.size == 1 and m.host_id == own:
            continue
        if not any(r.covers(m.host_id, m.size) for r in subs):
            last = m.host_id + m.size - 1
            raise ConfigError(f"linux.{field_name}",
                              f"host ids {m.host_id}-{last} are not the user's: only its own id "
                              f"({own}) and its ranges in {subfile} may be mapped")
    return True


def check_config(spec: Any, *, euid: int | None = None, egid: int | None = None,
                 subuid: str = SUBUID, subgid: str = SUBGID,
                 which: Any = None) -> None:
    """Everything a non-root caller cannot do, refused before any side effect."""
    euid = os.geteuid() if euid is None else euid
    egid = os.getegid() if egid is None else egid
    if which is None:
        from shutil import which
    lx = spec.linux
    userns = lx.namespace("user")
    if userns is None:
        raise ConfigError("linux.namespaces", "a rootless container needs a user namespace "
                          "(`pyruntime spec --rootless` writes one)")
    if not userns.path:
        name = _user_name(euid)
        helpers = []
        if check_mappings("uidMappings", lx.uid_mappings, euid,
                          sub_ranges(subuid, name, euid), subuid):
            helpers.append("newuidmap")
        if check_mappings("gidMappings", lx.gid_mappings, egid,
                          sub_ranges(subgid, name, euid), subgid):
            helpers.append("newgidmap")
        for helper in helpers:
            if which(helper) is None:
                raise ConfigError("linux.uidMappings" if helper == "newuidmap" else "linux.gidMappings",
                                  f"mapping more than the user's own id needs {helper} "
                                  "(Debian's uidmap package)")
    for m in spec.mounts:
        for opt in m.options:
            key, sep, value = opt.partition("=")
            if sep and key in ("uid", "gid") and value.isdigit():
                maps = lx.uid_mappings if key == "uid" else lx.gid_mappings
                if not userns.path and not any(mp.container_id <= int(value) < mp.container_id + mp.size
                                               for mp in maps):
                    raise ConfigError(f"mounts[{m.destination}]",
                                      f"option {opt}: that {key} is not mapped in the user namespace")


def write_id_maps(pid: int, spec: Any, *, euid: int | None = None, egid: int | None = None,
                  run: Any = None) -> None:
    """Write the child's maps as an unprivileged parent may (see the module docstring)."""
    euid = os.geteuid() if euid is None else euid
    egid = os.getegid() if egid is None else egid
    if run is None:
        from subprocess import run
    lx = spec.linux
    for field_name, name, maps, own, helper in (
            ("uidMappings", "uid_map", lx.uid_mappings, euid, "newuidmap"),
            ("gidMappings", "gid_map", lx.gid_mappings, egid, "newgidmap")):
        if _is_own(maps, own):
            if name == "gid_map":
                _write_proc(pid, "setgroups", "deny", "gidMappings")
            m = maps[0]
            _write_proc(pid, name, f"{m.container_id} {m.host_id} 1\n", field_name)
            continue
        args = [helper, str(pid)]
        for m in maps:
            args += [str(m.container_id), str(m.host_id), str(m.size)]
        try:
            p = run(args, capture_output=True, text=True, timeout=30)
        except OSError as e:
            raise ChildError(f"linux.{field_name}: {helper}: {e.strerror}") from e
        if p.returncode != 0:
            reason = (p.stderr or p.stdout).strip().splitlines()
            raise ChildError(f"linux.{field_name}: {' '.join(args)}: "
                             f"{reason[-1] if reason else f'exit status {p.returncode}'}")


def _write_proc(pid: int, name: str, text: str, field_name: str) -> None:
    path = f"/proc/{pid}/{name}"
    try:
        with open(path, "w") as f:
            f.write(text)
    except OSError as e:
        raise ChildError(f"linux.{field_name}: failed to write {text.strip()!r} to {path}: "
                         f"{e.strerror}") from e


# --- cgroups ----------------------------------------------------------------------


def asked_limits(resources: Mapping[str, Any]) -> list[str]:
    """The linux.resources fields that set a limit (empty objects and devices do not)."""
    out = []
    for key, value in resources.items():
        if key == "devices" or value in (None, {}, []):
            continue
        out.append(key)
    return out


def without_devices(resources: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in resources.items() if k != "devices"}


def writable_cgroup(target: str | os.PathLike[str], mount: str | os.PathLike[str], unified: bool,
                    self_dir: str | os.PathLike[str] | None, access: Any = os.access) -> bool:
    """Whether this user can make (or join) `target` in the hierarchy mounted at `mount`.

    The nearest existing ancestor must be writable (to mkdir), or `target` exist with a
    writable cgroup.procs; on cgroup2, moving a process also needs write access to
    cgroup.procs of the common ancestor of where it is and where it goes."""
    target, mount = os.path.normpath(target), os.path.normpath(mount)
    cur = target
    while not os.path.isdir(cur):
        if not cur.startswith(mount.rstrip("/") + "/"):  # reached (or never was under) mount
            return False
        cur = os.path.dirname(cur)
    if cur == target:
        if not access(os.path.join(target, "cgroup.procs"), os.W_OK):
            return False
    elif not access(cur, os.W_OK | os.X_OK):
        return False
    if unified and self_dir is not None:
        common = os.path.commonpath([os.fspath(self_dir), target])
        if common != target and not access(os.path.join(common, "cgroup.procs"), os.W_OK):
            return False
    return True


def _self_dirs(mounts: Mapping[str, str], proc_self_cgroup: str) -> dict[str, str]:
    """Where this process sits in each hierarchy (for the cgroup2 common-ancestor rule)."""
    out: dict[str, str] = {}
    for line in proc_self_cgroup.splitlines():
        parts = line.split(":", 2)
        if len(parts) == 3 and parts[0] == "0" and parts[1] == "" and "unified" in mounts:
            out["unified"] = os.path.normpath(os.path.join(mounts["unified"], parts[2].lstrip("/")))
    return out


def usable_cgroups(manager: Any, resources: Mapping[str, Any], warn: Any,
                   *, access: Any = os.access, proc_self_cgroup: str | None = None) -> Any:
    """The manager restricted to the hierarchies this user may use; an error when a
    limit asked for needs one of the others (runc's --rootless auto)."""
    from .cgroups import manager_from_record

    record = manager.record()
    paths: dict[str, str] = record["paths"]
    mounts: dict[str, str] = record["mounts"]
    if proc_self_cgroup is None:
        try:
            with open("/proc/self/cgroup") as f:
                proc_self_cgroup = f.read()
        except OSError:
            proc_self_cgroup = ""
    selves = _self_dirs(mounts, proc_self_cgroup)
    usable = {k: p for k, p in paths.items()
              if writable_cgroup(p, mounts[k], k == "unified", selves.get(k), access)}
    v2 = record.get("mode") == "v2"
    for fld in asked_limits(resources):
        needed = ("unified",) if v2 else _FIELD_CONTROLLERS.get(fld, ())
        missing = [c for c in needed if c in paths and c not in usable]
        if missing:
            where = paths[missing[0]]
            raise ConfigError(f"linux.resources.{fld}",
                              f"cannot set this limit as uid {os.geteuid()}: the cgroup {where} "
                              "is not delegated to the user (not writable)")
    if len(usable) < len(paths):
        skipped = sorted(k for k in paths if k not in usable)
        if not usable:
            warn(f"rootless: no cgroup is writable by uid {os.geteuid()}; the container runs "
                 "without one (no limits, no pause)")
        else:
            warn(f"rootless: cgroups not writable by uid {os.geteuid()} skipped: "
                 f"{', '.join(skipped)}")
    return manager_from_record({**record, "paths": usable,
                                "mounts": {k: mounts[k] for k in usable}})


# --- processes without a cgroup ---------------------------------------------------


def pidns_members(init_pid: int, proc: str = "/proc") -> list[int]:
    """The processes in init's pid namespace (init included) when it has one of its own;
    [init] otherwise.  What `ps` and `kill --all` use when no cgroup holds them."""
    try:
        ns = os.readlink(f"{proc}/{init_pid}/ns/pid")
    except OSError:
        return []
    try:
        if ns == os.readlink(f"{proc}/self/ns/pid"):
            return [init_pid]
    except OSError:
        pass
    out = []
    for name in os.listdir(proc):
        if name.isdigit():
            try:
                if os.readlink(f"{proc}/{name}/ns/pid") == ns:
                    out.append(int(name))
            except OSError:
                continue
    return sorted(out)
