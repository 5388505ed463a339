"""Image config + `run` flags -> an OCI config.json: a pure function, no I/O.

Defaults follow runc's `spec` and docker/podman: the usual /proc, /dev, /sys mounts, masked and
read-only /proc paths, docker's 14 default capabilities, RLIMIT_NOFILE 1024, podman's seccomp
profile (when the caller found one) filtered for the architecture and the capabilities. The
flag parsers that can fail (sizes, CPUs, users) also live here, so that every refusal happens
before dockee-shim touches the disk.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from typing import Any

from pyruntime.dockee.errors import DockeeError

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# docker's and podman's default set (moby oci/caps/defaults.go)
DEFAULT_CAPS = [
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
]

ALL_CAPS = [
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER",
    "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE", "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE", "CAP_SYS_RESOURCE", "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE", "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
]

MASKED_PATHS = [
    "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
    "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware", "/proc/scsi",
]
READONLY_PATHS = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]

INIT_TARGET = "/run/dockee-init"  # where --init's binary appears (podman: /run/podman-init)

CPU_PERIOD = 100_000  # microseconds, the kernel's default CFS period

# the names podman's profile uses for the machine's architecture (Go's GOARCH) and libseccomp's
SECCOMP_ARCHES = {"x86_64": ("amd64", "SCMP_ARCH_X86_64"), "aarch64": ("arm64", "SCMP_ARCH_AARCH64")}


@dataclass
class RunFlags:
    """What `run`/`create` were told, already parsed into numbers and lists."""

    command: list[str] = field(default_factory=list)  # CMD... after the image (empty: the image's Cmd)
    entrypoint: str | None = None
    env: list[str] = field(default_factory=list)  # K=V, in order (later wins)
    workdir: str | None = None
    user: tuple[int, int, list[int]] | None = None  # resolved uid, gid, additional gids
    hostname: str = ""
    tty: bool = False
    stdin: bool = False
    read_only: bool = False
    privileged: bool = False
    cap_add: list[str] = field(default_factory=list)
    cap_drop: list[str] = field(default_factory=list)
    memory: int | None = None  # bytes
    memory_swap: int | None = None  # bytes of memory+swap, -1 unlimited
    oom_kill_disable: bool = False
    cpu_quota: int | None = None  # microseconds per CPU_PERIOD
    cpu_shares: int | None = None
    cpuset_cpus: str | None = None
    pids_limit: int | None = None
    net: str = "private"  # "host", "none" or "private" (a new netns; a plan may join it to a network)
    binds: list[dict[str, Any]] = field(default_factory=list)  # OCI mounts for -v
    extra_mounts: list[dict[str, Any]] = field(default_factory=list)  # from the network plan
    hooks: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # from the network plan
    cgroups_path: str = ""
    host_caps: list[str] | None = None  # the caller's bounding set: --privileged and ALL get no more
    ulimits: list[dict[str, Any]] = field(default_factory=list)  # OCI rlimits from --ulimit
    tmpfs: list[tuple[str, str]] = field(default_factory=list)  # (destination, options) from --tmpfs
    shm_size: int | None = None  # bytes
    pid_host: bool = False
    init_path: str | None = None  # --init: a static init (catatonit) bound at INIT_TARGET, run as pid 1
    devices: list[dict[str, Any]] = field(default_factory=list)  # OCI linux.devices (--device, --privileged)
    ipc_host: bool = False


# ---- flag parsers ---------------------------------------------------------------------------

_SIZE = re.compile(r"^(\d+(?:\.\d+)?)\s*([bkmgt]?)(?:i?b)?$", re.IGNORECASE)
_UNITS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def parse_size(value: str, flag: str) -> int:
    """docker's RAMInBytes: 64m, 1g, 512k, 1048576 (binary units)."""
    m = _SIZE.match(value.strip())
    if not m:
        raise DockeeError(f"invalid value {value!r} for {flag}: expected a size such as 64m or 1g")
    n = int(float(m.group(1)) * _UNITS[m.group(2).lower()])
    if n <= 0:
        raise DockeeError(f"invalid value {value!r} for {flag}: must be positive")
    return n


def parse_swap(value: str) -> int:
    if value.strip() == "-1":
        return -1
    return parse_size(value, "--memory-swap")


def parse_cpus(value: str, flag: str = "--cpus") -> int:
    """--cpus 0.5 -> a CFS quota in microseconds per 100 ms period."""
    try:
        n = float(value)
    except ValueError:
        raise DockeeError(f"invalid value {value!r} for {flag}: expected a number of CPUs such as 0.5") from None
    if not n > 0 or n > 1024:
        raise DockeeError(f"invalid value {value!r} for {flag}: must be greater than 0")
    return max(1000, round(n * CPU_PERIOD))


def parse_cpu_percent(value: str) -> int:
    """The seeds' --cpu PERCENT (of one CPU) -> a CFS quota."""
    try:
        n = float(value)
    except ValueError:
        raise DockeeError(f"invalid value {value!r} for --cpu: expected a percentage of one CPU") from None
    if not n > 0:
        raise DockeeError(f"invalid value {value!r} for --cpu: must be greater than 0")
    return max(1000, round(n / 100 * CPU_PERIOD))


_CPUSET = re.compile(r"^\d+(-\d+)?(,\d+(-\d+)?)*$")


def parse_cpuset(value: str) -> str:
    if not _CPUSET.match(value):
        raise DockeeError(f"invalid value {value!r} for --cpuset-cpus: expected a list such as 0-1,3")
    return value


def cpu_list(spec: str) -> set[int]:
    """0-2,5 -> {0, 1, 2, 5}."""
    out: set[int] = set()
    for part in filter(None, spec.strip().split(",")):
        lo, _, hi = part.partition("-")
        out.update(range(int(lo), int(hi or lo) + 1))
    return out


def online_cpus(path: str = "/sys/devices/system/cpu/online") -> str | None:
    try:
        with open(path) as f:
            return f.read().strip() or None
    except OSError:
        return None


ULIMITS = {"core", "cpu", "data", "fsize", "locks", "memlock", "msgqueue", "nice", "nofile", "nproc", "rss",
           "rtprio", "rttime", "sigpending", "stack", "as"}


def parse_ulimit(value: str) -> dict[str, Any]:
    """docker's --ulimit NAME=SOFT[:HARD] (-1: unlimited) -> an OCI rlimit."""
    name, sep, limits = value.partition("=")
    if not sep or name not in ULIMITS:
        raise DockeeError(f"invalid value {value!r} for --ulimit: expected NAME=SOFT[:HARD], NAME one of "
                          f"{', '.join(sorted(ULIMITS))}")
    soft_s, _, hard_s = limits.partition(":")
    try:
        soft, hard = (int(x) if x != "-1" else (1 << 64) - 1 for x in (soft_s, hard_s or soft_s))
    except ValueError:
        raise DockeeError(f"invalid value {value!r} for --ulimit: limits must be numbers") from None
    if soft > hard:
        raise DockeeError(f"invalid value {value!r} for --ulimit: soft limit {soft} is above hard limit {hard}")
    return {"type": f"RLIMIT_{name.upper()}", "soft": soft, "hard": hard}


def host_device(path: str, inside: str | None = None, perms: str = "rwm") -> dict[str, Any]:
    """A host device node -> an OCI linux.devices entry (same type, numbers, mode, owner)."""
    import os
    import stat as statmod

    try:
        st = os.stat(path)
    except OSError as e:
        raise DockeeError(f"--device {path}: {e.strerror}") from None
    if statmod.S_ISCHR(st.st_mode):
        kind = "c"
    elif statmod.S_ISBLK(st.st_mode):
        kind = "b"
    else:
        raise DockeeError(f"--device {path}: not a device node")
    return {"path": inside or path, "type": kind, "major": os.major(st.st_rdev), "minor": os.minor(st.st_rdev),
            "fileMode": statmod.S_IMODE(st.st_mode), "uid": st.st_uid, "gid": st.st_gid, "_access": perms}


def parse_device(value: str) -> dict[str, Any]:
    """docker's --device HOST[:CONTAINER[:PERMS]]."""
    parts = value.split(":")
    host = parts[0]
    inside = parts[1] if len(parts) > 1 and parts[1] else None
    perms = parts[2] if len(parts) > 2 else "rwm"
    if len(parts) == 2 and parts[1] and set(parts[1]) <= set("rwm"):
        inside, perms = None, parts[1]
    if not host.startswith("/") or (inside and not inside.startswith("/")) or not perms or set(perms) - set("rwm"):
        raise DockeeError(f"invalid value {value!r} for --device: expected HOST[:CONTAINER[:rwm]]")
    return host_device(host, inside, perms)


def host_devices(root: str = "/dev") -> list[dict[str, Any]]:
    """--privileged: every device node of the host's /dev (docker does the same), not pts/ or shm."""
    import os

    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in ("pts", "shm", "mqueue")]
        for f in sorted(filenames):
            path = os.path.join(dirpath, f)
            if os.path.islink(path) or path in ("/dev/console", "/dev/ptmx", "/dev/tty"):
                continue
            try:
                out.append(host_device(path))
            except DockeeError:
                continue
    return out


def parse_tmpfs(value: str) -> tuple[str, str]:
    dst, _, opts = value.partition(":")
    if not dst.startswith("/"):
        raise DockeeError(f"invalid value {value!r} for --tmpfs: the path must be absolute")
    return dst, opts


def normalize_cap(name: str, flag: str) -> str:
    cap = name.strip().upper()
    if cap == "ALL":
        return cap
    if not cap.startswith("CAP_"):
        cap = "CAP_" + cap
    if cap not in ALL_CAPS:
        raise DockeeError(f"unknown capability {name!r} for {flag}")
    return cap


def split_command(args: list[str]) -> list[str]:
    """The seeds' `--image IMG '/bin/ip a'`: a single argument holding spaces is a command line."""
    if len(args) == 1 and any(c.isspace() for c in args[0]):
        return shlex.split(args[0])
    return list(args)


def parse_env_file(text: str, host_env: dict[str, str]) -> list[str]:
    """docker's --env-file: K=V lines, # comments, a bare K takes the host's value if set."""
    out = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        out.extend(expand_env([line], host_env))
    return out


def expand_env(values: list[str], host_env: dict[str, str]) -> list[str]:
    out = []
    for v in values:
        if "=" in v:
            if v.startswith("="):
                raise DockeeError(f"invalid environment variable {v!r}: empty name")
            out.append(v)
        elif v in host_env:
            out.append(f"{v}={host_env[v]}")
    return out


def _lookup(text: str, key: str, by_name_field: int = 0) -> list[str] | None:
    for line in text.splitlines():
        parts = line.split(":")
        if len(parts) >= 3 and parts[by_name_field] == key:
            return parts
    return None


def resolve_user(spec: str, passwd: str, group: str) -> tuple[int, int, list[int]]:
    """`-u USER[:GROUP]` (names or numbers) against the image's /etc/passwd and /etc/group."""
    user, _, grp = spec.partition(":")
    uid: int
    gid = 0
    name = None
    if user.isdigit():
        uid = int(user)
        row = next((p for p in (line.split(":") for line in passwd.splitlines())
                    if len(p) >= 4 and p[2] == user), None)
        if row:
            name, gid = row[0], int(row[3]) if row[3].isdigit() else 0
    else:
        row = _lookup(passwd, user)
        if row is None or len(row) < 4:
            raise DockeeError(f"unable to find user {user}: no matching entries in the image's /etc/passwd")
        name, uid, gid = row[0], int(row[2]), int(row[3])
    if grp:
        if grp.isdigit():
            gid = int(grp)
        else:
            grow = _lookup(group, grp)
            if grow is None:
                raise DockeeError(f"unable to find group {grp}: no matching entries in the image's /etc/group")
            gid = int(grow[2])
    extra: list[int] = []
    if name:
        for line in group.splitlines():
            parts = line.split(":")
            if len(parts) >= 4 and name in parts[3].split(",") and parts[2].isdigit():
                g = int(parts[2])
                if g != gid and g not in extra:
                    extra.append(g)
    return uid, gid, extra


# ---- seccomp --------------------------------------------------------------------------------

def seccomp_from_profile(profile: dict[str, Any], caps: list[str], machine: str = "x86_64") -> dict[str, Any]:
    """podman's containers.conf-style profile -> the OCI linux.seccomp object for this machine.

    Entries limited to other architectures, or to capabilities the container lacks (or, for
    `excludes`, has), are dropped, the way podman's seccomp package filters them.
    """
    goarch, scmp_arch = SECCOMP_ARCHES.get(machine, ("amd64", "SCMP_ARCH_X86_64"))
    arches = [scmp_arch]
    for m in profile.get("archMap") or []:
        if m.get("architecture") == scmp_arch:
            arches += list(m.get("subArchitectures") or [])
    have = set(caps)
    out: dict[str, Any] = {"defaultAction": profile.get("defaultAction", "SCMP_ACT_ERRNO"),
                           "architectures": arches, "syscalls": []}
    if profile.get("defaultErrnoRet") is not None:
        out["defaultErrnoRet"] = profile["defaultErrnoRet"]
    for entry in profile.get("syscalls") or []:
        inc = entry.get("includes") or {}
        exc = entry.get("excludes") or {}
        if inc.get("arches") and goarch not in inc["arches"]:
            continue
        if exc.get("arches") and goarch in exc["arches"]:
            continue
        if inc.get("caps") and not all(c in have for c in inc["caps"]):
            continue
        if exc.get("caps") and any(c in have for c in exc["caps"]):
            continue
        names = entry.get("names") or ([entry["name"]] if entry.get("name") else [])
        if not names:
            continue
        rule: dict[str, Any] = {"names": list(names), "action": entry["action"]}
        if entry.get("errnoRet") is not None:
            rule["errnoRet"] = entry["errnoRet"]
        if entry.get("args"):
            rule["args"] = [{k: a[k] for k in ("index", "value", "valueTwo", "op") if k in a}
                            for a in entry["args"]]
        out["syscalls"].append(rule)
    return out


# ---- the spec -------------------------------------------------------------------------------

def caps_from_mask(mask: int) -> list[str]:
    """A CapBnd bit mask (/proc/self/status) -> names; bit n is ALL_CAPS[n]."""
    return [name for bit, name in enumerate(ALL_CAPS) if mask >> bit & 1]


def _capabilities(flags: RunFlags) -> list[str]:
    every = [c for c in ALL_CAPS if flags.host_caps is None or c in flags.host_caps]
    if flags.privileged:
        return every
    caps = [c for c in DEFAULT_CAPS if flags.host_caps is None or c in flags.host_caps]
    if "ALL" in flags.cap_drop:
        caps = []
    for c in flags.cap_drop:
        if c in caps:
            caps.remove(c)
    if "ALL" in flags.cap_add:
        caps = list(every)
    for c in flags.cap_add:
        if c != "ALL" and c not in caps:
            caps.append(c)
    return caps


def _merge_env(*lists: list[str]) -> list[str]:
    """Later lists override earlier ones by name; the order of first appearance is kept."""
    merged: dict[str, str] = {}
    for lst in lists:
        for kv in lst:
            k, _, v = kv.partition("=")
            merged[k] = v
    return [f"{k}={v}" for k, v in merged.items()]


def process_args(image_config: dict[str, Any], flags: RunFlags) -> list[str]:
    """docker's rule: ENTRYPOINT + (CMD given ? CMD : image Cmd); --entrypoint resets the image Cmd."""
    if flags.entrypoint is not None:
        entry = shlex.split(flags.entrypoint) if flags.entrypoint else []
        cmd = list(flags.command)
    else:
        entry = list(image_config.get("Entrypoint") or [])
        cmd = list(flags.command) if flags.command else list(image_config.get("Cmd") or [])
    args = entry + cmd
    if not args:
        raise DockeeError("no command specified: the image has no Cmd or Entrypoint; give one after the image")
    return args


def resources(flags: RunFlags) -> dict[str, Any]:
    res: dict[str, Any] = {"devices": [{"allow": flags.privileged, "access": "rwm"}] + [
        {"allow": True, "type": d["type"], "major": d["major"], "minor": d["minor"], "access": d["_access"]}
        for d in flags.devices]}
    mem: dict[str, Any] = {}
    if flags.memory is not None:
        mem["limit"] = flags.memory
        if flags.memory_swap is None:
            mem["swap"] = 2 * flags.memory  # docker: as much swap as memory
        elif flags.memory_swap != -1:
            if flags.memory_swap < flags.memory:
                raise DockeeError("--memory-swap must be at least as large as --memory")
            mem["swap"] = flags.memory_swap
        else:
            mem["swap"] = -1
    elif flags.memory_swap is not None:
        raise DockeeError("--memory-swap needs --memory")
    if flags.oom_kill_disable:
        mem["disableOOMKiller"] = True
    if mem:
        res["memory"] = mem
    cpu: dict[str, Any] = {}
    if flags.cpu_quota is not None:
        cpu["quota"] = flags.cpu_quota
        cpu["period"] = CPU_PERIOD
    if flags.cpu_shares is not None:
        cpu["shares"] = flags.cpu_shares
    if flags.cpuset_cpus is not None:
        cpu["cpus"] = flags.cpuset_cpus
    if cpu:
        res["cpu"] = cpu
    if flags.pids_limit is not None:
        res["pids"] = {"limit": flags.pids_limit}
    return res


def tmpfs_mounts(specs: list[tuple[str, str]]) -> list[dict[str, Any]]:
    """docker's --tmpfs defaults: noexec,nosuid,nodev, plus the given options."""
    return [{"destination": dst, "type": "tmpfs", "source": "tmpfs",
             "options": ["noexec", "nosuid", "nodev", *filter(None, opts.split(","))]} for dst, opts in specs]


def default_mounts(privileged: bool, shm_size: int | None = None) -> list[dict[str, Any]]:
    ro = [] if privileged else ["ro"]
    shm = f"size={shm_size // 1024}k" if shm_size else "size=65536k"
    return [
        {"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
         "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
        {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
         "options": ["nosuid", "noexec", "nodev", "mode=1777", shm]},
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", *ro]},
        {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
         "options": ["nosuid", "noexec", "nodev", "relatime", *ro]},
    ]


def build_spec(image_config: dict[str, Any], flags: RunFlags, *, root_path: str = "merged",
               seccomp_profile: dict[str, Any] | None = None, machine: str = "x86_64") -> dict[str, Any]:
    """The whole config.json for one container."""
    caps = _capabilities(flags)
    env = _merge_env([f"PATH={DEFAULT_PATH}"], list(image_config.get("Env") or []),
                     [f"HOSTNAME={flags.hostname}"] if flags.hostname else [],
                     ["TERM=xterm"] if flags.tty else [], flags.env)
    uid, gid, extra = flags.user if flags.user else (0, 0, [])
    user: dict[str, Any] = {"uid": uid, "gid": gid}
    if extra:
        user["additionalGids"] = extra
    process: dict[str, Any] = {
        "terminal": flags.tty,
        "user": user,
        "args": ([INIT_TARGET, "--"] if flags.init_path else []) + process_args(image_config, flags),
        "env": env,
        "cwd": flags.workdir or image_config.get("WorkingDir") or "/",
        "capabilities": {k: list(caps) for k in ("bounding", "effective", "permitted")},
        "rlimits": [r for r in [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}]
                    if r["type"] not in {u["type"] for u in flags.ulimits}] + list(flags.ulimits),
        "noNewPrivileges": False,
    }
    if not process["cwd"].startswith("/"):
        raise DockeeError(f"the working directory {process['cwd']!r} is not an absolute path (-w)")
    namespaces = [{"type": t} for t in ("pid", "ipc", "uts", "mount")
                  if not (t == "pid" and flags.pid_host) and not (t == "ipc" and flags.ipc_host)]
    if flags.net != "host":
        namespaces.append({"type": "network"})
    linux: dict[str, Any] = {
        "namespaces": namespaces,
        **({"devices": [{k: v for k, v in d.items() if not k.startswith("_")} for d in flags.devices]}
           if flags.devices else {}),
        "resources": resources(flags),
        "cgroupsPath": flags.cgroups_path,
    }
    if not flags.privileged:
        linux["maskedPaths"] = list(MASKED_PATHS)
        linux["readonlyPaths"] = list(READONLY_PATHS)
        if seccomp_profile is not None:
            linux["seccomp"] = seccomp_from_profile(seccomp_profile, caps, machine)
    spec: dict[str, Any] = {
        "ociVersion": "1.0.2",
        "process": process,
        "root": {"path": root_path, "readonly": flags.read_only},
        "hostname": flags.hostname,
        "mounts": default_mounts(flags.privileged, flags.shm_size)
        + by_depth(list(flags.extra_mounts) + list(flags.binds) + tmpfs_mounts(flags.tmpfs)
                   + ([bind_mount(flags.init_path, INIT_TARGET, True)] if flags.init_path else [])),
        "linux": linux,
    }
    if flags.hooks:
        spec["hooks"] = {k: list(v) for k, v in flags.hooks.items()}
    return spec


def by_depth(mounts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """docker's order: shallower destinations first (stable), so that -v x:/etc cannot hide the
    /etc/hosts, /etc/resolv.conf and /etc/hostname binds made on top of it."""
    def depth(m: dict[str, Any]) -> int:
        return len([p for p in str(m.get("destination", "")).split("/") if p not in ("", ".")])
    return sorted(mounts, key=depth)


def bind_mount(source: str, destination: str, readonly: bool) -> dict[str, Any]:
    return {"destination": destination, "type": "bind", "source": source,
            "options": ["rbind", "rprivate", *(["ro"] if readonly else ["rw"])]}
