"""Validation of config.json, exec's process.json and state documents, before any side effect.

This module owns:
- loading pyruntime's own JSON Schemas from ``oci-schemas/`` and turning the most relevant
  schema error into one ``ConfigError(where, reason)``, ``where`` being a JSON path such as
  ``linux.namespaces[2].type``;
- the quick yes/no of ``pyruntime.schema`` first: jsonschema (~120 ms to import) is asked
  only for a document that fails, to name the best error;
- the semantic checks that a schema cannot express, as a list of small ``check_*(doc, bundle)``
  functions run in order, in the style of runc's libcontainer/configs/validate.

The checks assume a schema-valid document (types and enumerations are the schema's job) and
stop at the first problem.  They read the filesystem (the bundle's rootfs, namespace paths,
/sys and /proc).
"""

from __future__ import annotations

import os
from _json import encode_basestring_ascii as _quote  # json.dumps of a str, without json

from .errors import ConfigError, RuntimeErr

# json, pathlib, functools and typing cost milliseconds of every `create`: paths are str
# here, and the type names below exist only for type checkers.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping, Sequence
    from typing import Any

    Doc = Mapping[str, Any]
    Check = Callable[[Doc, str | os.PathLike[str]], None]

SCHEMA_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.realpath(__file__))), "oci-schemas")

# Module-level so that tests can point them at fixtures.
APPARMOR_ENABLED = "/sys/module/apparmor/parameters/enabled"
PROC_NS = "/proc/self/ns"

# config.json namespace type -> name under /proc/<pid>/ns
_PROC_NS_NAME = {"pid": "pid", "network": "net", "mount": "mnt", "ipc": "ipc", "uts": "uts",
                 "user": "user", "cgroup": "cgroup", "time": "time"}

# --- public entry points ----------------------------------------------------------


def validate_config(doc: Doc, bundle: str | os.PathLike[str]) -> None:
    """Raise ConfigError for the first problem in config.json; return None if it is usable."""
    if not isinstance(doc, dict):
        raise ConfigError("config.json", "expected a JSON object")
    if not _fast_valid("config-schema.json", doc):
        _check_schema("config-schema.json", doc, (), "config.json")
    for check in CONFIG_CHECKS:
        check(doc, bundle)


def validate_process(doc: Doc) -> None:
    """Validate exec's process.json (a config.json ``process`` object); paths read ``process.*``."""
    if not isinstance(doc, dict):
        raise ConfigError("process", "expected a JSON object")
    ref = "config-schema.json#/definitions/Process"
    if not _fast_valid(ref, doc):
        _check_schema(ref, doc, ("process",), "process")
    wrapped = {"process": doc}
    for check in PROCESS_CHECKS:
        check(wrapped, "/")


def validate_resources(doc: Doc) -> None:
    """`update --resources`: a linux.resources object."""
    ref = "defs-linux.json#/definitions/Resources"
    if not _fast_valid(ref, doc):
        _check_schema(ref, doc, ("linux", "resources"), "linux.resources")


def validate_state(doc: Doc) -> None:
    """Validate a state document (what ``state`` prints) against state-schema.json."""
    _check_schema("state-schema.json", doc, (), "state")


# --- the schema, loaded lazily ------------------------------------------------------


def _schema_files() -> list[str]:
    try:
        names = sorted(n for n in os.listdir(SCHEMA_DIR) if n.endswith(".json"))
    except OSError:
        names = []
    if not names:
        raise RuntimeErr(f"{SCHEMA_DIR}: no JSON schemas found (broken installation)")
    return [os.path.join(SCHEMA_DIR, n) for n in names]


_memo: dict[str, Any] = {}  # functools.cache without functools


def _validator(ref: str) -> Any:
    key = "validator:" + ref
    if key not in _memo:
        _memo[key] = _make_validator(ref)
    return _memo[key]


def _make_validator(ref: str) -> Any:
    # jsonschema (and referencing) cost ~120 ms to import: only here, only for a bad document.
    import json

    from jsonschema import Draft7Validator
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT7

    # The files refer to each other by bare file name ("defs.json#/definitions/uint32"),
    # which resolves against an empty base URI; so register them under their names.
    # Nothing is ever fetched from the network.
    resources = []
    for path in _schema_files():
        with open(path, encoding="utf-8") as f:
            contents = json.load(f)
        resources.append((os.path.basename(path),
                          Resource.from_contents(contents, default_specification=DRAFT7)))
    return Draft7Validator({"$ref": ref}, registry=Registry().with_resources(resources))


def _schema_set() -> Any:
    if "schema_set" not in _memo:
        from .schema import SchemaSet

        _memo["schema_set"] = SchemaSet(SCHEMA_DIR)
    return _memo["schema_set"]


def _fast_valid(ref: str, doc: Any) -> bool:
    """pyruntime.schema's quick yes/no; only a "no" pays for jsonschema and its message."""
    from .schema import Unsupported

    try:
        return bool(_schema_set().is_valid(ref, doc))
    except (Unsupported, KeyError, RecursionError):
        return False


def _check_schema(ref: str, doc: Any, prefix: Sequence[str | int], root_name: str) -> None:
    from jsonschema.exceptions import best_match

    # best_match prefers the shallowest error and descends into anyOf/allOf branches, which
    # gives the most useful single message; ties go to the first error found.
    error = best_match(_validator(ref).iter_errors(doc))
    if error is not None:
        raise _config_error(error, prefix, root_name)


def _config_error(error: Any, prefix: Sequence[str | int], root_name: str) -> ConfigError:
    path: list[str | int] = [*prefix, *error.absolute_path]
    kind, value, instance = error.validator, error.validator_value, error.instance
    if kind == "required":
        # Name the missing member itself: "process.args: required".
        missing = next((k for k in value if k not in instance), value[0])
        return ConfigError(_where([*path, missing]), "required")
    if "propertyNames" in error.relative_schema_path:
        # A bad key of a map (timeOffsets, annotations): the instance is the key.
        reason = "not a valid key"
        if kind == "enum":
            reason += f"; expected one of {', '.join(map(str, value))}"
        return ConfigError(_where([*path, instance]), reason)
    reason = _reason(kind, value, instance, error.message)
    if kind == "pattern" and isinstance(error.schema, dict) and "description" in error.schema:
        # A regex means little to a user; the schema's description says what was meant.
        reason = f"{_show(instance)}: expected {error.schema['description']}"
    return ConfigError(_where(path) or root_name, reason)


def _reason(kind: str, value: Any, instance: Any, message: str) -> str:
    if kind == "type":
        wanted = " or ".join(value) if isinstance(value, list) else value
        return f"expected {wanted}, got {_json_type(instance)}"
    if kind == "enum":
        if len(value) <= 9:
            return f"invalid value {_show(instance)}; expected one of {', '.join(map(str, value))}"
        return f"unknown value {_show(instance)}"
    if kind == "minimum":
        return f"must be >= {value}"
    if kind == "maximum":
        return f"must be <= {value}"
    if kind in ("minItems", "minLength") and value == 1:
        return "must not be empty"
    if kind == "maxLength":
        return f"longer than {value} characters"
    if kind == "pattern":
        return f"{_show(instance)} does not match {value}"
    return message


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    for kind, name in ((dict, "object"), (list, "array"), (str, "string"), (int, "integer"),
                       (float, "number")):
        if isinstance(value, kind):
            return name
    return "null" if value is None else type(value).__name__


def _show(value: Any) -> str:
    import json  # only errors show values

    text = json.dumps(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _where(parts: Iterable[str | int]) -> str:
    """JSON path for humans: linux.namespaces[2].type, linux.sysctl["net.ipv4.ip_forward"]."""
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part.isidentifier():
            out += f".{part}" if out else part
        else:
            out += f"[{_quote(part)}]"
    return out


# --- helpers for the semantic checks ---------------------------------------------------


def _linux(doc: Doc) -> Doc:
    return doc.get("linux") or {}


def _process(doc: Doc) -> Doc:
    return doc.get("process") or {}


def _namespace(doc: Doc, ns_type: str) -> Doc | None:
    for ns in _linux(doc).get("namespaces") or ():
        if ns.get("type") == ns_type:
            return ns
    return None


def _is_abs(path: str) -> bool:
    return path.startswith("/")


def _join(base: str, path: str) -> str:
    """pathlib's `Path(base) / path` as text: "." and empty components dropped."""
    full = path if path.startswith("/") else f"{base}/{path}"
    parts = [p for p in full.split("/") if p and p != "."]
    return ("/" if full.startswith("/") else "") + "/".join(parts) or "."


def _warn(message: str) -> None:
    # logging costs a few ms to import and is needed only on this rare path.
    import logging

    logging.getLogger("pyruntime").warning(message)


# --- semantic checks: config.json ------------------------------------------------------


def check_root(doc: Doc, bundle: str | os.PathLike[str]) -> None:
    """root.path (relative to the bundle) must be an existing directory."""
    path = (doc.get("root") or {}).get("path")
    if not path:
        raise ConfigError("root.path", "required")
    full = _join(os.fspath(bundle), path)
    if not os.path.isdir(full):
        reason = "not a directory" if os.path.exists(full) else "no such directory"
        raise ConfigError("root.path", f"{full}: {reason}")


def check_process(doc: Doc, bundle: str | os.PathLike[str]) -> None:
    """create needs a process with args, an absolute cwd and NAME=value env entries."""
    if "process" not in doc:
        raise ConfigError("process", "required to create a container")
    proc = _process(doc)
    if not proc.get("args"):
        raise ConfigError("process.args", "must not be empty")
    if not _is_abs(proc.get("cwd", "")):
        raise ConfigError("process.cwd", "must be an absolute path")
    # runc fails on these in init, after the namespaces exist; catch them before.
    for i, var in enumerate(proc.get("env") or ()):
        name, eq, _ = var.partition("=")
        if not eq:
            raise ConfigError(f"process.env[{i}]", "invalid environment variable: missing '='")
        if not name:
            raise ConfigError(f"process.env[{i}]", "invalid environment variable: empty name")
        if "\0" in var:
            raise ConfigError(f"process.env[{i}]", "invalid environment variable: NUL byte")


def check_rlimits(doc: Doc, bundle: str | os.PathLike[str]) -> None:
    """The spec forbids duplicate rlimit types; setrlimit(2) rejects soft > hard."""
    seen: set[str] = set()
    for i, rlimit in enumerate(_process(doc).get("rlimits") or ()):
        where = f"process.rlimits[{i}]"
        if rlimit["type"] in seen:
            raise ConfigError(f"{where}.type", f"duplicate rlimit {rlimit['type']}")
        seen.add(rlimit["type"])
        if rlimit["soft"] > rlimit["hard"]:
            raise ConfigError(f"{where}.soft", "soft limit is greater than hard limit")


def check_apparmor(doc: Doc, bundle: str | os.PathLike[str]) -> None:
    if _process(doc).get("apparmorProfile") and not _apparmor_enabled():
        raise ConfigError("process.apparmorProfile",
                          "apparmor profile specified but AppArmor is not enabled on this system")


def _apparmor_enabled() -> bool:
    try:
        with open(APPARMOR_ENABLED) as f:
            return f.read().startswith("Y")
    except OSError:
        return False


def check_selinux(doc: Doc, bundle: str | os.PathLike[str]) -> None:
    """Both labels alike where SELinux is off: an error, as in runc (labels.py says why)."""
    from .labels import labels_in, selinux_enabled

    fields = labels_in(doc)
    if fields and not selinux_enabled():
        raise ConfigError(fields[0], "selinux label is specified in config, "
                          "but selinux is disabled or not supported")


def check_scheduler(doc: Doc, bundle: str | os.PathLike[str]) -> None:
    """Field combinations that sched_setattr(2) rejects (runtime-spec 1.3 process.scheduler)."""
    sched = _process(doc).get("scheduler")
    if not sched:
        return
    policy = sched["policy"]
    priority = sched.get("priority", 0)
    if policy in ("SCHED_FIFO", "SCHED_RR"):
        if not 1 <= priority <= 99:
            raise ConfigError("process.scheduler.priority", f"must be 1..99 for {policy}")
    elif priority:
        raise ConfigError("process.scheduler.priority", "only valid for SCHED_FIFO and SCHED_RR")
    if policy != "SCHED_DEADLINE":
        for key in ("runtime", "deadline", "period"):
            if sched.get(key):
                raise ConfigError(f"process.scheduler.{key}", "only valid for SCHED_DEADLINE")


def check_namespaces(doc: Doc, bundle: str | os.PathLike[str]) -> None:
    """No duplicate types; a joined namespace's path must exist; a new one must be supported."""
    seen: set[str] = set()
    for i, ns in enumerate(_linux(doc).get("namespaces") or ()):
        where, ns_type, path = f"linux.namespaces[{i}]", ns["type"], ns.get("path")
        if ns_type in seen:
            raise ConfigError(f"{where}.type", f"duplicate namespace type {_show(ns_type)}")
        seen.add(ns_type)
        if path:
            if not _is_abs(path):
                raise ConfigError(f"{where}.path", "must be an absolute path")
            try:
                os.stat(path)
            except OSError as e:
                raise ConfigError(f"{where}.path", f"{path}: {e.strerror}")
        elif not os.path.exists(os.path.join(PROC_NS, _PROC_NS_NAME[ns_type])):
            raise ConfigError(f"{where}.type",
                              f"{ns_type} namespaces are not supported by this kernel")
    if "mount" not in seen and doc.get("process") is not None:
        # without one, pivot_root and every mount would act on the host's namespace
        raise ConfigError("linux.namespaces", "a mount namespace is required")


def check_user_namespace(doc: Doc, bundle: str | os.PathLike[str]) -> None:
    """Mappings need a user namespace, and a new user namespace needs both mappings."""
    lx = _linux(doc)
    userns = _namespace(doc, "user")
    for key in ("uidMappings", "gidMappings"):
        maps = lx.get(key) or []
        if userns is None:
            if maps:
                raise ConfigError(f"linux.{key}",
                                  "user namespace mappings specified, but no user namespace")
            continue
        if userns.get("path"):
            continue  # the joined namespace already has its mappings
        if not maps:
            raise ConfigError(f"linux.{key}", "a new user namespace needs mappings")
        _check_no_overlap(key, maps)


def _check_no_overlap(key: str, maps: Sequence[Doc]) -> None:
    # The kernel rejects a map whose ranges overlap on either side (user_namespaces(7)).
    for side in ("containerID", "hostID"):
        ranges = sorted((m[side], m[side] + m["size"], i) for i, m in enumerate(maps))
        for (_, end, _), (start, _, i) in zip(ranges, ranges[1:], strict=False):
            if start < end:
                raise ConfigError(f"linux.{key}[{i}]", f"{side} range overlaps another mapping")
        for _, stop, i in ranges:
            if stop > 1 << 32:
                raise ConfigError(f"linux.{key}[{i}]", f"{side} range goes past 4294967295")


def check_id_mappings_cover_user(doc: Doc, bundle: str | os.PathLike[str]) -> None:
    """In a new user namespace, the process's uid, gid and additional gids must be mapped."""
    userns = _namespace(doc, "user")
    if userns is None or userns.get("path") or "process" not in doc:
        return
    lx, user = _linux(doc), _process(doc).get("user") or {}

    def mapped(ident: int, maps: Sequence[Doc]) -> bool:
        return any(m["containerID"] <= ident < m["containerID"] + m["size"] for m in maps)

    uid_maps, gid_maps = lx.get("uidMappings") or [], lx.get("gidMappings") or []
    uid, gid = user.get("uid", 0), user.get("gid", 0)
    if not mapped(uid, uid_maps):
        raise ConfigError("process.user.uid", f"uid {uid} is not mapped by linux.uidMappings")
    if not mapped(gid, gid_maps):
        raise ConfigError("process.user.gid", f"gid {gid} is not mapped by linux.gidMappings")
    for i, extra in enumerate(user.get("additionalGids") or ()):
        if not mapped(extra, gid_maps):
            raise ConfigError(f"process.user.additionalGids[{i}]",
                              f"gid {extra} is not mapped by linux.gidMappings")


def check_uts(doc: Doc, bundle: str | os.PathLike[str]) -> None:
    # As runc: a uts entry (new or joined) is enough; without one we would rename the host.
    if _namespace(doc, "uts") is None:
        for key in ("hostname", "domainname"):
            if doc.get(key):
                raise ConfigError(key, f"unable to set {key} without a private UTS namespace")


def check_restricted_paths(doc: Doc, bundle: str | os.PathLike[str]) -> None:
    """maskedPaths/readonlyPaths are absolute, and need a mount namespace to stay private."""
    lx = _linux(doc)
    for key in ("maskedPaths", "readonlyPaths"):
        paths = lx.get(key) or []
        for i, path in enumerate(paths):
            if not _is_abs(path):
                raise ConfigError(f"linux.{key}[{i}]", "must be an absolute path")
        if paths and _namespace(doc, "mount") is None:
            raise ConfigError(f"linux.{key}",
                              "unable to restrict sys entries without a private MNT namespace")


# Prefixes of the sysctls that the ipc namespace owns (kernel/ipc + mqueue).
_IPC_SYSCTL_PREFIXES = ("kernel.msg", "kernel.sem", "kernel.shm", "fs.mqueue.")


def check_sysctl(doc: Doc, bundle: str | os.PathLike[str]) -> None:
    """Only namespaced sysctls, and only when the container has its own such namespace.

    Follows runc: kernel.hostname is refused even with a uts namespace because the
    ``hostname`` field owns it; kernel.domainname is allowed with a uts namespace.
    """
    for key in _linux(doc).get("sysctl") or {}:
        where = _where(["linux", "sysctl", key])
        name = key.replace("/", ".")  # net/ipv4/ip_forward is the same knob
        if name.startswith(_IPC_SYSCTL_PREFIXES):
            if _namespace(doc, "ipc") is None:
                raise ConfigError(where, "sysctl is not allowed in the host's ipc namespace")
            continue
        if name.startswith("net."):
            netns = _namespace(doc, "network")
            if netns is None or (netns.get("path") and _is_host_netns(netns["path"])):
                raise ConfigError(where, "sysctl is not allowed in the host's network namespace")
            continue
        if _namespace(doc, "uts") is not None:
            if name == "kernel.domainname":
                continue
            if name == "kernel.hostname":
                raise ConfigError(where, "conflicts with the 'hostname' field; use that instead")
        raise ConfigError(where, "sysctl is not in a separate kernel namespace")


def _is_host_netns(path: str) -> bool:
    try:
        ours, theirs = os.stat(os.path.join(PROC_NS, "net")), os.stat(path)
    except OSError:
        return False  # check_namespaces has already reported a missing path
    return (ours.st_dev, ours.st_ino) == (theirs.st_dev, theirs.st_ino)


def check_time_offsets(doc: Doc, bundle: str | os.PathLike[str]) -> None:
    """Offsets are written to a new time namespace before its first process; never joined ones."""
    if not _linux(doc).get("timeOffsets"):
        return
    timens = _namespace(doc, "time")
    if timens is None:
        raise ConfigError("linux.timeOffsets",
                          "unable to set time offsets without a private time namespace")
    if timens.get("path"):
        raise ConfigError("linux.timeOffsets",
                          "cannot set time offsets when joining an existing time namespace")


def check_cgroups_path(doc: Doc, bundle: str | os.PathLike[str]) -> None:
    # Refuse any "..": it could climb out of the cgroup hierarchy (or the systemd slice), and
    # refusing it outright spares the cgroup managers from normalising paths.
    path = _linux(doc).get("cgroupsPath") or ""
    if ".." in path.replace(":", "/").split("/"):
        raise ConfigError("linux.cgroupsPath", "must not contain '..'")


def check_mounts(doc: Doc, bundle: str | os.PathLike[str]) -> None:
    """Relative destinations: a warning, not an error, as in runc 1.1 (checked with 1.1.5).

    The spec says destinations MUST be absolute, but runc 1.1 still runs such configs (it
    logs "mount destination X is not absolute"), and callers rely on it; the mount code
    takes a relative destination as relative to the container's root.
    """
    for i, mount in enumerate(doc.get("mounts") or ()):
        dest = mount["destination"]
        if not _is_abs(dest):
            _warn(f"mounts[{i}].destination: {dest!r} is not absolute; "
                  "taken relative to the container's root")


def check_devices(doc: Doc, bundle: str | os.PathLike[str]) -> None:
    for i, dev in enumerate(_linux(doc).get("devices") or ()):
        where = f"linux.devices[{i}]"
        if not _is_abs(dev["path"]):
            raise ConfigError(f"{where}.path", "must be an absolute path")
        if dev["type"] != "p":  # the spec: major/minor REQUIRED unless type is p
            for key in ("major", "minor"):
                if key not in dev:
                    raise ConfigError(f"{where}.{key}",
                                      f"required for device type {_show(dev['type'])}")


HOOK_STAGES = ("prestart", "createRuntime", "createContainer", "startContainer", "poststart",
               "poststop")


def check_hooks(doc: Doc, bundle: str | os.PathLike[str]) -> None:
    """The spec extends execv(3): a hook's path MUST be absolute."""
    hooks = doc.get("hooks") or {}
    for stage in HOOK_STAGES:  # other keys are unknown properties: ignored, not validated
        for i, hook in enumerate(hooks.get(stage) or ()):
            if not _is_abs(hook["path"]):
                raise ConfigError(f"hooks.{stage}[{i}].path", "must be an absolute path")


def check_seccomp(doc: Doc, bundle: str | os.PathLike[str]) -> None:
    """Actions are enumerated by the schema; unknown syscall names are skipped later, as runc.

    SCMP_ACT_NOTIFY needs a listener to hand the notify fd to, may not be the default
    action, and may not cover write(2): the runtime itself writes after loading the filter.
    """
    seccomp = _linux(doc).get("seccomp")
    if not seccomp:
        return
    if seccomp["defaultAction"] == "SCMP_ACT_NOTIFY":
        raise ConfigError("linux.seccomp.defaultAction",
                          "SCMP_ACT_NOTIFY cannot be used as the default action")
    for i, rule in enumerate(seccomp.get("syscalls") or ()):
        if rule["action"] != "SCMP_ACT_NOTIFY":
            continue
        if "write" in rule["names"]:
            raise ConfigError(f"linux.seccomp.syscalls[{i}].names",
                              "SCMP_ACT_NOTIFY cannot be used for the write syscall")
        if not seccomp.get("listenerPath"):
            raise ConfigError("linux.seccomp.listenerPath", "required when SCMP_ACT_NOTIFY is used")


def check_memory(doc: Doc, bundle: str | os.PathLike[str]) -> None:
    """swap is memory+swap (cgroup v1 semantics): it needs a limit and cannot be below it."""
    memory = (_linux(doc).get("resources") or {}).get("memory") or {}
    limit, swap = memory.get("limit", 0), memory.get("swap", 0)
    if limit < -1:
        raise ConfigError("linux.resources.memory.limit", "must be -1 (unlimited) or >= 0")
    if swap in (0, -1):
        return
    where = "linux.resources.memory.swap"
    if swap < -1:
        raise ConfigError(where, "must be -1 (unlimited) or >= 0")
    if limit in (0, -1):
        raise ConfigError(where, "unable to set swap limit without memory limit")
    if swap < limit:
        raise ConfigError(where, "memory+swap limit must be >= memory limit")


# Order matters only for which error is reported first: runc's order, roughly.
CONFIG_CHECKS: tuple[Check, ...] = (
    check_root,
    check_process,
    check_rlimits,
    check_apparmor,
    check_selinux,
    check_scheduler,
    check_namespaces,
    check_user_namespace,
    check_id_mappings_cover_user,
    check_uts,
    check_restricted_paths,
    check_sysctl,
    check_time_offsets,
    check_cgroups_path,
    check_mounts,
    check_devices,
    check_hooks,
    check_seccomp,
    check_memory,
)

# The subset that applies to exec's process.json (wrapped as {"process": ...}).
PROCESS_CHECKS: tuple[Check, ...] = (
    check_process,
    check_rlimits,
    check_apparmor,
    check_selinux,
    check_scheduler,
)
