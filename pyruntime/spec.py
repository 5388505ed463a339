"""config.json -> frozen dataclasses.  camelCase exists only in this module (the JSON edge).

Parsing assumes the document already passed `validate.validate_config`; it still fails
with a `ConfigError` naming the JSON path when a field has the wrong shape, so that a
caller who skips validation never gets a traceback.
"""

from __future__ import annotations

import os

from .errors import ConfigError
from .record import dataclass, field

# json, pathlib and typing cost milliseconds of every `create`; type names are for checkers
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

NAMESPACE_TYPES = ("pid", "network", "mount", "ipc", "uts", "user", "cgroup", "time")


@dataclass(frozen=True)
class User:
    uid: int = 0
    gid: int = 0
    umask: int | None = None
    additional_gids: tuple[int, ...] = ()


@dataclass(frozen=True)
class Rlimit:
    type: str
    hard: int
    soft: int


@dataclass(frozen=True)
class Capabilities:
    bounding: tuple[str, ...] | None = None
    effective: tuple[str, ...] | None = None
    inheritable: tuple[str, ...] | None = None
    permitted: tuple[str, ...] | None = None
    ambient: tuple[str, ...] | None = None


@dataclass(frozen=True)
class ConsoleSize:
    height: int
    width: int


@dataclass(frozen=True)
class Process:
    args: tuple[str, ...]
    cwd: str = "/"
    env: tuple[str, ...] = ()
    terminal: bool = False
    console_size: ConsoleSize | None = None
    user: User = field(default_factory=User)
    capabilities: Capabilities | None = None
    rlimits: tuple[Rlimit, ...] = ()
    no_new_privileges: bool = False
    apparmor_profile: str = ""
    selinux_label: str = ""
    oom_score_adj: int | None = None


@dataclass(frozen=True)
class Mount:
    destination: str
    type: str = ""
    source: str = ""
    options: tuple[str, ...] = ()


@dataclass(frozen=True)
class Hook:
    path: str
    args: tuple[str, ...] = ()
    env: tuple[str, ...] = ()
    timeout: int | None = None


@dataclass(frozen=True)
class Hooks:
    prestart: tuple[Hook, ...] = ()
    create_runtime: tuple[Hook, ...] = ()
    create_container: tuple[Hook, ...] = ()
    start_container: tuple[Hook, ...] = ()
    poststart: tuple[Hook, ...] = ()
    poststop: tuple[Hook, ...] = ()


@dataclass(frozen=True)
class Namespace:
    type: str
    path: str = ""


@dataclass(frozen=True)
class IDMapping:
    container_id: int
    host_id: int
    size: int


@dataclass(frozen=True)
class Device:
    type: str
    path: str
    major: int = 0
    minor: int = 0
    file_mode: int | None = None
    uid: int | None = None
    gid: int | None = None


@dataclass(frozen=True)
class Linux:
    namespaces: tuple[Namespace, ...] = ()
    uid_mappings: tuple[IDMapping, ...] = ()
    gid_mappings: tuple[IDMapping, ...] = ()
    time_offsets: Mapping[str, tuple[int, int]] = field(default_factory=dict)
    devices: tuple[Device, ...] = ()
    cgroups_path: str = ""
    resources: Mapping[str, Any] = field(default_factory=dict)
    rootfs_propagation: str = ""
    masked_paths: tuple[str, ...] = ()
    readonly_paths: tuple[str, ...] = ()
    sysctl: Mapping[str, str] = field(default_factory=dict)
    seccomp: Mapping[str, Any] | None = None
    mount_label: str = ""
    personality: Mapping[str, Any] | None = None

    def namespace(self, ns_type: str) -> Namespace | None:
        for ns in self.namespaces:
            if ns.type == ns_type:
                return ns
        return None


@dataclass(frozen=True)
class Spec:
    oci_version: str
    root_path: str
    root_readonly: bool = False
    process: Process | None = None
    hostname: str = ""
    domainname: str = ""
    mounts: tuple[Mount, ...] = ()
    hooks: Hooks = field(default_factory=Hooks)
    annotations: Mapping[str, str] = field(default_factory=dict)
    linux: Linux = field(default_factory=Linux)


# --- the JSON edge ---------------------------------------------------------------


def _get(d: Mapping[str, Any], key: str, kind: type | tuple[type, ...], where: str, default: Any) -> Any:
    value = d.get(key, default)
    if value is default:
        return value
    if kind is int and isinstance(value, bool):
        raise ConfigError(f"{where}.{key}", "expected integer")
    if not isinstance(value, kind):
        name = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
        raise ConfigError(f"{where}.{key}", f"expected {_json_type(name)}")
    return value


def _json_type(py: str) -> str:
    return {"dict": "object", "list": "array", "str": "string", "int": "integer", "bool": "boolean"}.get(py, py)


def _strs(d: Mapping[str, Any], key: str, where: str) -> tuple[str, ...]:
    items = _get(d, key, list, where, None) or []
    for i, s in enumerate(items):
        if not isinstance(s, str):
            raise ConfigError(f"{where}.{key}[{i}]", "expected string")
    return tuple(items)


def _obj(d: Mapping[str, Any], key: str, where: str) -> Mapping[str, Any]:
    return _get(d, key, dict, where, None) or {}


def _objs(d: Mapping[str, Any], key: str, where: str) -> list[tuple[str, Any]]:
    items = _get(d, key, list, where, None) or []
    out = []
    for i, item in enumerate(items):
        w = f"{where}.{key}[{i}]"
        if not isinstance(item, dict):
            raise ConfigError(w, "expected object")
        out.append((w, item))
    return out


def _caps(d: Mapping[str, Any], where: str) -> Capabilities | None:
    if "capabilities" not in d:
        return None
    c = _obj(d, "capabilities", where)
    w = f"{where}.capabilities"

    def one(k: str) -> tuple[str, ...] | None:
        return _strs(c, k, w) if k in c else None

    return Capabilities(one("bounding"), one("effective"), one("inheritable"),
                        one("permitted"), one("ambient"))


def parse_process(p: Mapping[str, Any], where: str = "process") -> Process:
    u = _obj(p, "user", where)
    uw = f"{where}.user"
    user = User(
        uid=_get(u, "uid", int, uw, 0),
        gid=_get(u, "gid", int, uw, 0),
        umask=_get(u, "umask", int, uw, None),
        additional_gids=tuple(_get(u, "additionalGids", list, uw, None) or ()),
    )
    rlimits = tuple(
        Rlimit(_get(r, "type", str, w, ""), _get(r, "hard", int, w, 0), _get(r, "soft", int, w, 0))
        for w, r in _objs(p, "rlimits", where)
    )
    cs = p.get("consoleSize")
    console_size = None
    if isinstance(cs, dict):
        console_size = ConsoleSize(_get(cs, "height", int, f"{where}.consoleSize", 0),
                                   _get(cs, "width", int, f"{where}.consoleSize", 0))
    args = _strs(p, "args", where)
    return Process(
        args=args,
        cwd=_get(p, "cwd", str, where, "/"),
        env=_strs(p, "env", where),
        terminal=_get(p, "terminal", bool, where, False),
        console_size=console_size,
        user=user,
        capabilities=_caps(p, where),
        rlimits=rlimits,
        no_new_privileges=_get(p, "noNewPrivileges", bool, where, False),
        apparmor_profile=_get(p, "apparmorProfile", str, where, ""),
        selinux_label=_get(p, "selinuxLabel", str, where, ""),
        oom_score_adj=_get(p, "oomScoreAdj", int, where, None),
    )


def _hooks(d: Mapping[str, Any]) -> Hooks:
    h = _obj(d, "hooks", "")

    def one(key: str) -> tuple[Hook, ...]:
        return tuple(
            Hook(path=_get(x, "path", str, w, ""), args=_strs(x, "args", w), env=_strs(x, "env", w),
                 timeout=_get(x, "timeout", int, w, None))
            for w, x in _objs(h, key, "hooks")
        )

    return Hooks(one("prestart"), one("createRuntime"), one("createContainer"),
                 one("startContainer"), one("poststart"), one("poststop"))


def _idmaps(d: Mapping[str, Any], key: str) -> tuple[IDMapping, ...]:
    return tuple(
        IDMapping(_get(m, "containerID", int, w, 0), _get(m, "hostID", int, w, 0), _get(m, "size", int, w, 0))
        for w, m in _objs(d, key, "linux")
    )


def _linux(d: Mapping[str, Any]) -> Linux:
    lx = _obj(d, "linux", "")
    namespaces = tuple(
        Namespace(_get(n, "type", str, w, ""), _get(n, "path", str, w, ""))
        for w, n in _objs(lx, "namespaces", "linux")
    )
    devices = tuple(
        Device(type=_get(x, "type", str, w, ""), path=_get(x, "path", str, w, ""),
               major=_get(x, "major", int, w, 0), minor=_get(x, "minor", int, w, 0),
               file_mode=_get(x, "fileMode", int, w, None), uid=_get(x, "uid", int, w, None),
               gid=_get(x, "gid", int, w, None))
        for w, x in _objs(lx, "devices", "linux")
    )
    offsets = {}
    for clock, off in _obj(lx, "timeOffsets", "linux").items():
        w = f"linux.timeOffsets.{clock}"
        if not isinstance(off, dict):
            raise ConfigError(w, "expected object")
        offsets[clock] = (_get(off, "secs", int, w, 0), _get(off, "nanosecs", int, w, 0))
    seccomp = lx.get("seccomp")
    return Linux(
        namespaces=namespaces,
        uid_mappings=_idmaps(lx, "uidMappings"),
        gid_mappings=_idmaps(lx, "gidMappings"),
        time_offsets=offsets,
        devices=devices,
        cgroups_path=_get(lx, "cgroupsPath", str, "linux", ""),
        resources=_obj(lx, "resources", "linux"),
        rootfs_propagation=_get(lx, "rootfsPropagation", str, "linux", ""),
        masked_paths=_strs(lx, "maskedPaths", "linux"),
        readonly_paths=_strs(lx, "readonlyPaths", "linux"),
        sysctl=dict(_obj(lx, "sysctl", "linux")),
        seccomp=seccomp if isinstance(seccomp, dict) else None,
        mount_label=_get(lx, "mountLabel", str, "linux", ""),
        personality=lx.get("personality") if isinstance(lx.get("personality"), dict) else None,
    )


def parse_spec(d: Mapping[str, Any]) -> Spec:
    if not isinstance(d, dict):
        raise ConfigError("config.json", "expected a JSON object")
    root = _obj(d, "root", "")
    process = parse_process(d["process"]) if isinstance(d.get("process"), dict) else None
    mounts = tuple(
        Mount(destination=_get(m, "destination", str, w, ""), type=_get(m, "type", str, w, ""),
              source=_get(m, "source", str, w, ""), options=_strs(m, "options", w))
        for w, m in _objs(d, "mounts", "")
    )
    return Spec(
        oci_version=_get(d, "ociVersion", str, "", ""),
        root_path=_get(root, "path", str, "root", ""),
        root_readonly=_get(root, "readonly", bool, "root", False),
        process=process,
        hostname=_get(d, "hostname", str, "", ""),
        domainname=_get(d, "domainname", str, "", ""),
        mounts=mounts,
        hooks=_hooks(d),
        annotations=dict(_obj(d, "annotations", "")),
        linux=_linux(d),
    )


def load_config(bundle: str | os.PathLike[str]) -> dict[str, Any]:
    """Read <bundle>/config.json; a missing or malformed file is a one-line ConfigError."""
    path = os.path.join(os.fspath(bundle), "config.json")
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        raise ConfigError(path, "no such file")
    except OSError as e:
        raise ConfigError(path, e.strerror or str(e))
    except UnicodeDecodeError as e:
        raise ConfigError(path, f"invalid JSON: {e}")
    from .fastjson import DecodeError, loads

    try:
        doc = loads(text)
    except DecodeError:
        import json  # only a malformed file pays for the module that words the error

        try:
            json.loads(text)
        except json.JSONDecodeError as e:
            raise ConfigError(path, f"invalid JSON at line {e.lineno} column {e.colno}: {e.msg}")
        raise
    if not isinstance(doc, dict):
        raise ConfigError(path, "expected a JSON object")
    return doc
