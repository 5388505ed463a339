"""The cheap part of the CNI contract: versions, error codes, the error object, the config's head.

VERSION (which podman sends to every plugin before each use) needs nothing more, so the plugin
answers it without loading config parsing or ipaddress; a DEL that finds its record needs only the
head (version, network name, IPAM directory).
"""

from __future__ import annotations

from pyruntime.dockee.network import cnijson as json

# 0.1.0/0.2.0 have another result shape (ip4/ip6 objects); nobody we serve writes them.
SUPPORTED_VERSIONS = ("0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0")
CHECK_MIN = (0, 4, 0)
DEFAULT_DATA_DIR = "/var/lib/cni/networks"

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

# CNI well-known error codes (spec "Error" section) and ours (>= 100)
E_VERSION = 1
E_UNSUPPORTED_FIELD = 2
E_UNKNOWN_CONTAINER = 3
E_ENV = 4
E_IO = 5
E_DECODE = 6
E_CONFIG = 7
E_TRY_AGAIN = 11
E_UNAVAILABLE = 50  # STATUS: the plugin cannot serve ADDs
E_PLUGIN = 100
E_NO_ADDRESS = 101  # subnet exhausted, fixed IP taken or outside the range
E_PORT = 102  # host port published already or in use
E_ATTACHED = 103  # a second ADD for the same container and interface


class CNIError(Exception):
    """Printed as the CNI error object on stdout; the plugin then exits 1."""

    def __init__(self, code: int, msg: str, details: str = "") -> None:
        super().__init__(msg)
        self.code = code
        self.msg = msg
        self.details = details

    def to_json(self, version: str) -> dict[str, object]:
        doc: dict[str, object] = {"cniVersion": version, "code": self.code, "msg": self.msg}
        if self.details:
            doc["details"] = self.details
        return doc


class _Record:
    """A frozen record with positional or keyword fields and defaults: what the dataclasses here did,
    without importing dataclasses (inspect, ast: ~10 ms of every ADD and DEL)."""

    __slots__: tuple[str, ...] = ()
    _defaults: dict[str, Any] = {}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        names = self.__slots__
        if len(args) > len(names):
            raise TypeError(f"{type(self).__name__} takes {len(names)} fields, not {len(args)}")
        values = dict(zip(names, args, strict=False))
        for key, value in kwargs.items():
            if key not in names or key in values:
                raise TypeError(f"{type(self).__name__}: unexpected or repeated field {key}")
            values[key] = value
        for name in names:
            if name not in values:
                if name not in self._defaults:
                    raise TypeError(f"{type(self).__name__}: field {name} is missing")
                values[name] = self._defaults[name]
            object.__setattr__(self, name, values[name])

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"{type(self).__name__} is frozen")

    def _values(self) -> tuple[Any, ...]:
        return tuple(getattr(self, n) for n in self.__slots__)

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and self._values() == other._values()

    def __hash__(self) -> int:
        return hash(self._values())

    def __repr__(self) -> str:
        fields = ", ".join(f"{n}={getattr(self, n)!r}" for n in self.__slots__)
        return f"{type(self).__name__}({fields})"


class PortMapping(_Record):
    __slots__ = ("host_port", "container_port", "protocol", "host_ip")
    _defaults = {"protocol": "tcp", "host_ip": ""}
    host_port: int
    container_port: int
    protocol: str  # tcp | udp
    host_ip: str  # "" = every local address

    def describe(self) -> str:
        where = f"{self.host_ip}:" if self.host_ip else ""
        return f"{where}{self.host_port}/{self.protocol}"


class Env(_Record):
    __slots__ = ("command", "container_id", "netns", "ifname", "args", "path")
    command: str
    container_id: str
    netns: str
    ifname: str
    args: dict[str, str]
    path: str


def parse_env(environ: dict[str, str]) -> Env:
    command = environ.get("CNI_COMMAND", "")
    if not command:
        raise CNIError(E_ENV, "CNI_COMMAND is not set")
    args: dict[str, str] = {}
    for item in environ.get("CNI_ARGS", "").split(";"):
        if not item:
            continue
        key, sep, value = item.partition("=")
        if not sep:
            raise CNIError(E_ENV, f"CNI_ARGS: {item!r} is not KEY=VALUE")
        args[key] = value
    env = Env(command, environ.get("CNI_CONTAINERID", ""), environ.get("CNI_NETNS", ""),
              environ.get("CNI_IFNAME", ""), args, environ.get("CNI_PATH", ""))
    if command in ("ADD", "DEL", "CHECK"):
        if not env.container_id:
            raise CNIError(E_ENV, "CNI_CONTAINERID is not set")
        if not env.ifname:
            raise CNIError(E_ENV, "CNI_IFNAME is not set")
        if len(env.ifname) > 15 or "/" in env.ifname or env.ifname in (".", ".."):
            raise CNIError(E_ENV, f"CNI_IFNAME {env.ifname!r} is not a valid interface name")
        if command in ("ADD", "CHECK") and not env.netns:
            raise CNIError(E_ENV, "CNI_NETNS is not set")
    return env


def version_tuple(v: str) -> tuple[int, ...]:
    try:
        return tuple(int(p) for p in v.split("."))
    except ValueError:
        raise CNIError(E_VERSION, f"cniVersion {v!r} is not a version")


def config_version(raw: bytes) -> str:
    """cniVersion of stdin, for VERSION and for error objects; "1.0.0" when unreadable."""
    try:
        doc = json.loads(raw) if raw.strip() else {}
        return str(doc.get("cniVersion") or "1.0.0") if isinstance(doc, dict) else "1.0.0"
    except ValueError:
        return "1.0.0"


def parse_head(raw: bytes) -> dict[str, Any]:
    """The config as a dict, its cniVersion and name checked (what every command needs)."""
    try:
        doc = json.loads(raw)
    except ValueError as e:
        raise CNIError(E_DECODE, f"network config is not JSON: {e}")
    if not isinstance(doc, dict):
        raise CNIError(E_DECODE, "network config must be a JSON object")
    version = str(doc.get("cniVersion", ""))
    if not version:
        raise CNIError(E_CONFIG, "cniVersion is missing")
    if version not in SUPPORTED_VERSIONS:
        raise CNIError(E_VERSION, f"cniVersion {version} is not supported",
                       f"supported: {', '.join(SUPPORTED_VERSIONS)}")
    name = doc.get("name")
    if not isinstance(name, str) or not name or "/" in name or name.startswith("."):
        raise CNIError(E_CONFIG, f"name {name!r} is not a network name")
    doc["cniVersion"] = version
    return doc


def data_dir(doc: dict[str, Any]) -> str:
    """ipam.dataDir of a config that parse_head accepted (host-local's default when absent)."""
    ipam = doc.get("ipam")
    return str((ipam.get("dataDir") if isinstance(ipam, dict) else None) or DEFAULT_DATA_DIR)
