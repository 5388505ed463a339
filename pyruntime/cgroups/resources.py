"""linux.resources (raw OCI JSON) -> frozen dataclasses; the only place camelCase lives.

Types and ranges are checked here, before any cgroup file is touched; errors
name the field (``linux.resources.memory.limit: ...``). Unknown keys are
ignored, as a Go unmarshal would.

Zero means "not set" for the fields where runc cannot tell zero from absent
(memory limit/reservation/swap, cpu shares/quota/period/realtime*, blockIO
weight/leafWeight): configs in the wild write 0 there and rely on it being
harmless. Those fields come out as None.
"""

from __future__ import annotations

from pyruntime.cgroups.fs import FIELD_PREFIX as PREFIX
from pyruntime.errors import CgroupError
from pyruntime.record import dataclass, field

# create parses linux.resources on every run: no re, typing or collections.abc imports
# (milliseconds each); the syntax checks below are spelt out instead of regexes.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

_DIGITS = frozenset("0123456789")
_LOWER = frozenset("abcdefghijklmnopqrstuvwxyz_")
_LOWER_DIGITS = _LOWER | _DIGITS
_KNOB = _LOWER_DIGITS | frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ.")


def _is_number(text: str) -> bool:
    """One or more ASCII digits (str.isdigit also takes other scripts' digits)."""
    return bool(text) and all(c in _DIGITS for c in text)


def _is_cpu_list(text: str) -> bool:
    """A list like 0-3,5: numbers or number ranges, comma separated."""
    for item in text.split(","):
        parts = item.split("-")
        if len(parts) > 2 or not all(_is_number(p) for p in parts):
            return False
    return True


def _is_page_size(text: str) -> bool:
    """A size like 2MB or 1GB."""
    return text[-2:] in ("KB", "MB", "GB", "TB") and _is_number(text[:-2])


def _is_name(text: str, max_len: int = 0) -> bool:
    """No whitespace and no slash, as an interface or device name."""
    if not text or (max_len and len(text) > max_len):
        return False
    return not any(c.isspace() or c == "/" for c in text)


def _is_unified_key(key: str) -> bool:
    """"<controller>.<knob>", e.g. memory.high: never a path."""
    controller, dot, knob = key.partition(".")
    return (
        bool(dot and controller and knob)
        and controller[0] in _LOWER
        and all(c in _LOWER_DIGITS for c in controller)
        and all(c in _KNOB for c in knob)
    )


@dataclass(frozen=True)
class Memory:
    limit: int | None = None
    reservation: int | None = None
    #: memory+swap, as on v1 (converted for v2's memory.swap.max).
    swap: int | None = None
    kernel: int | None = None
    kernel_tcp: int | None = None
    swappiness: int | None = None
    disable_oom_killer: bool | None = None
    use_hierarchy: bool | None = None
    check_before_update: bool | None = None


@dataclass(frozen=True)
class Cpu:
    shares: int | None = None
    quota: int | None = None
    burst: int | None = None
    period: int | None = None
    realtime_runtime: int | None = None
    realtime_period: int | None = None
    cpus: str | None = None
    mems: str | None = None
    idle: int | None = None


@dataclass(frozen=True)
class WeightDevice:
    major: int
    minor: int
    weight: int | None = None
    leaf_weight: int | None = None


@dataclass(frozen=True)
class ThrottleDevice:
    major: int
    minor: int
    rate: int


@dataclass(frozen=True)
class BlockIO:
    weight: int | None = None
    leaf_weight: int | None = None
    weight_device: tuple[WeightDevice, ...] = ()
    throttle_read_bps_device: tuple[ThrottleDevice, ...] = ()
    throttle_write_bps_device: tuple[ThrottleDevice, ...] = ()
    throttle_read_iops_device: tuple[ThrottleDevice, ...] = ()
    throttle_write_iops_device: tuple[ThrottleDevice, ...] = ()


@dataclass(frozen=True)
class HugepageLimit:
    page_size: str
    limit: int


@dataclass(frozen=True)
class DeviceRule:
    allow: bool
    #: "a" (all), "b", "c", "u" (unbuffered char) or "p" (fifo).
    type: str = "a"
    #: None is the wildcard "*".
    major: int | None = None
    minor: int | None = None
    access: str = "rwm"


@dataclass(frozen=True)
class Network:
    class_id: int | None = None
    priorities: tuple[tuple[str, int], ...] = ()


@dataclass(frozen=True)
class RdmaLimit:
    hca_handles: int | None = None
    hca_objects: int | None = None


@dataclass(frozen=True)
class Resources:
    memory: Memory | None = None
    cpu: Cpu | None = None
    #: None: not set; <= 0: unlimited ("max").
    pids_limit: int | None = None
    block_io: BlockIO | None = None
    hugepage_limits: tuple[HugepageLimit, ...] = ()
    #: None: leave the device controller alone; () denies every device.
    devices: tuple[DeviceRule, ...] | None = None
    network: Network | None = None
    rdma: Mapping[str, RdmaLimit] = field(default_factory=dict)
    unified: Mapping[str, str] = field(default_factory=dict)


INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
UINT64_MAX = 2**64 - 1


def _fail(where: str, reason: str) -> CgroupError:
    return CgroupError(f"{PREFIX}.{where}: {reason}")


def _obj(parent: Mapping[str, Any], key: str, where: str) -> Mapping[str, Any] | None:
    value = parent.get(key)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise _fail(where, f"expected an object, got {type(value).__name__}")
    return value


def _list(parent: Mapping[str, Any], key: str, where: str) -> list[Any]:
    value = parent.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise _fail(where, f"expected an array, got {type(value).__name__}")
    return value


def _int(
    parent: Mapping[str, Any],
    key: str,
    where: str,
    lo: int = INT64_MIN,
    hi: int = UINT64_MAX,
    zero_unset: bool = False,
) -> int | None:
    value = parent.get(key)
    if value is None:
        return None
    # bool is an int in Python but never a valid JSON number here.
    if isinstance(value, bool) or not isinstance(value, int):
        raise _fail(where, f"expected an integer, got {value!r}")
    if not lo <= value <= hi:
        raise _fail(where, f"{value} is out of range [{lo}, {hi}]")
    if zero_unset and value == 0:
        return None
    return value


def _bool(parent: Mapping[str, Any], key: str, where: str) -> bool | None:
    value = parent.get(key)
    if value is None:
        return None
    if not isinstance(value, bool):
        raise _fail(where, f"expected true or false, got {value!r}")
    return value


def _str(parent: Mapping[str, Any], key: str, where: str) -> str | None:
    value = parent.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise _fail(where, f"expected a string, got {value!r}")
    # A newline would let one value smuggle a second line into a control file.
    if "\n" in value or "\0" in value:
        raise _fail(where, "must be a single line")
    return value


def _memory(raw: Mapping[str, Any]) -> Memory:
    w = "memory."
    swappiness = _int(raw, "swappiness", w + "swappiness", lo=-1)
    if swappiness is not None and swappiness > 100:
        raise _fail(w + "swappiness", f"{swappiness} is out of range [0, 100]")
    return Memory(
        limit=_int(raw, "limit", w + "limit", lo=-1, hi=INT64_MAX, zero_unset=True),
        reservation=_int(
            raw, "reservation", w + "reservation", lo=-1, hi=INT64_MAX, zero_unset=True
        ),
        swap=_int(raw, "swap", w + "swap", lo=-1, hi=INT64_MAX, zero_unset=True),
        kernel=_int(raw, "kernel", w + "kernel", lo=-1, hi=INT64_MAX),
        kernel_tcp=_int(raw, "kernelTCP", w + "kernelTCP", lo=-1, hi=INT64_MAX),
        # -1 is docker's old "unset".
        swappiness=None if swappiness == -1 else swappiness,
        disable_oom_killer=_bool(raw, "disableOOMKiller", w + "disableOOMKiller"),
        use_hierarchy=_bool(raw, "useHierarchy", w + "useHierarchy"),
        check_before_update=_bool(raw, "checkBeforeUpdate", w + "checkBeforeUpdate"),
    )


def _cpuset_list(raw: Mapping[str, Any], key: str, where: str) -> str | None:
    value = _str(raw, key, where)
    if value is not None and value.strip() and not _is_cpu_list(value.strip()):
        raise _fail(where, f"{value!r} is not a list like 0-3,5")
    return value


def _cpu(raw: Mapping[str, Any]) -> Cpu:
    w = "cpu."
    idle = _int(raw, "idle", w + "idle")
    if idle is not None and idle not in (0, 1):
        raise _fail(w + "idle", f"{idle} must be 0 or 1")
    return Cpu(
        shares=_int(raw, "shares", w + "shares", lo=0, zero_unset=True),
        quota=_int(raw, "quota", w + "quota", hi=INT64_MAX, zero_unset=True),
        burst=_int(raw, "burst", w + "burst", lo=0),
        period=_int(raw, "period", w + "period", lo=0, zero_unset=True),
        realtime_runtime=_int(
            raw, "realtimeRuntime", w + "realtimeRuntime", hi=INT64_MAX, zero_unset=True
        ),
        realtime_period=_int(raw, "realtimePeriod", w + "realtimePeriod", lo=0, zero_unset=True),
        cpus=_cpuset_list(raw, "cpus", w + "cpus"),
        mems=_cpuset_list(raw, "mems", w + "mems"),
        idle=idle,
    )


def _device_numbers(raw: Mapping[str, Any], where: str) -> tuple[int, int]:
    major = _int(raw, "major", where + ".major", lo=0, hi=2**32 - 1)
    minor = _int(raw, "minor", where + ".minor", lo=0, hi=2**32 - 1)
    if major is None or minor is None:
        raise _fail(where, "major and minor are required")
    return major, minor


def _throttle(raw: Mapping[str, Any], key: str) -> tuple[ThrottleDevice, ...]:
    out = []
    for i, item in enumerate(_list(raw, key, f"blockIO.{key}")):
        where = f"blockIO.{key}[{i}]"
        if not isinstance(item, dict):
            raise _fail(where, "expected an object")
        major, minor = _device_numbers(item, where)
        rate = _int(item, "rate", where + ".rate", lo=0)
        if rate is None:
            raise _fail(where, "rate is required")
        out.append(ThrottleDevice(major, minor, rate))
    return tuple(out)


def _block_io(raw: Mapping[str, Any]) -> BlockIO:
    w = "blockIO."
    devices = []
    for i, item in enumerate(_list(raw, "weightDevice", w + "weightDevice")):
        where = f"{w}weightDevice[{i}]"
        if not isinstance(item, dict):
            raise _fail(where, "expected an object")
        major, minor = _device_numbers(item, where)
        devices.append(
            WeightDevice(
                major,
                minor,
                weight=_int(item, "weight", where + ".weight", lo=0, hi=65535),
                leaf_weight=_int(item, "leafWeight", where + ".leafWeight", lo=0, hi=65535),
            )
        )
    return BlockIO(
        weight=_int(raw, "weight", w + "weight", lo=0, hi=65535, zero_unset=True),
        leaf_weight=_int(raw, "leafWeight", w + "leafWeight", lo=0, hi=65535, zero_unset=True),
        weight_device=tuple(devices),
        throttle_read_bps_device=_throttle(raw, "throttleReadBpsDevice"),
        throttle_write_bps_device=_throttle(raw, "throttleWriteBpsDevice"),
        throttle_read_iops_device=_throttle(raw, "throttleReadIOPSDevice"),
        throttle_write_iops_device=_throttle(raw, "throttleWriteIOPSDevice"),
    )


def _hugepages(items: list[Any]) -> tuple[HugepageLimit, ...]:
    out = []
    for i, item in enumerate(items):
        where = f"hugepageLimits[{i}]"
        if not isinstance(item, dict):
            raise _fail(where, "expected an object")
        size = _str(item, "pageSize", where + ".pageSize")
        if size is None or not _is_page_size(size):
            raise _fail(where + ".pageSize", f"{size!r} is not a size like 2MB or 1GB")
        limit = _int(item, "limit", where + ".limit", lo=0)
        if limit is None:
            raise _fail(where, "limit is required")
        out.append(HugepageLimit(size, limit))
    return tuple(out)


def _devices(items: list[Any]) -> tuple[DeviceRule, ...]:
    out = []
    for i, item in enumerate(items):
        where = f"devices[{i}]"
        if not isinstance(item, dict):
            raise _fail(where, "expected an object")
        allow = _bool(item, "allow", where + ".allow")
        if allow is None:
            raise _fail(where, "allow is required")
        kind = _str(item, "type", where + ".type") or "a"
        if kind not in ("a", "b", "c", "u", "p"):
            raise _fail(where + ".type", f"{kind!r} is not one of a, b, c, u, p")
        access = _str(item, "access", where + ".access") or "rwm"
        # runc ignores letters other than r, w and m (its own tests pass "rwa")
        # -1 in the spec is the wildcard as well.
        major = _int(item, "major", where + ".major", lo=-1, hi=2**32 - 1)
        minor = _int(item, "minor", where + ".minor", lo=-1, hi=2**32 - 1)
        out.append(
            DeviceRule(
                allow=allow,
                type=kind,
                major=None if major == -1 else major,
                minor=None if minor == -1 else minor,
                access="".join(c for c in "rwm" if c in access),
            )
        )
    return tuple(out)


def _network(raw: Mapping[str, Any]) -> Network:
    prios = []
    for i, item in enumerate(_list(raw, "priorities", "network.priorities")):
        where = f"network.priorities[{i}]"
        if not isinstance(item, dict):
            raise _fail(where, "expected an object")
        name = _str(item, "name", where + ".name")
        if name is None or not _is_name(name, 15):
            raise _fail(where + ".name", f"{name!r} is not an interface name")
        prio = _int(item, "priority", where + ".priority", lo=0, hi=2**32 - 1)
        if prio is None:
            raise _fail(where, "priority is required")
        prios.append((name, prio))
    return Network(
        class_id=_int(raw, "classID", "network.classID", lo=0, hi=2**32 - 1),
        priorities=tuple(prios),
    )


def _rdma(raw: Mapping[str, Any]) -> dict[str, RdmaLimit]:
    out = {}
    for name, item in raw.items():
        where = f"rdma.{name}"
        if not _is_name(name):
            raise _fail(where, "is not a device name")
        if not isinstance(item, dict):
            raise _fail(where, "expected an object")
        out[name] = RdmaLimit(
            hca_handles=_int(item, "hcaHandles", where + ".hcaHandles", lo=0, hi=2**32 - 1),
            hca_objects=_int(item, "hcaObjects", where + ".hcaObjects", lo=0, hi=2**32 - 1),
        )
    return out


# "<controller>.<knob>"; never a path, never cgroup.* core files we manage.
def _unified(raw: Mapping[str, Any]) -> dict[str, str]:
    out = {}
    for key, value in raw.items():
        where = f"unified.{key}"
        if not _is_unified_key(key) or key.startswith("cgroup."):
            raise _fail(where, "is not a controller file name like memory.high")
        if not isinstance(value, str):
            raise _fail(where, f"expected a string, got {value!r}")
        if "\0" in value:
            raise _fail(where, "contains a NUL byte")
        out[key] = value
    return out


def parse(raw: Mapping[str, Any] | None) -> Resources:
    """Parse linux.resources; CgroupError names the first bad field."""
    if raw is None:
        return Resources()
    if not isinstance(raw, dict):
        raise CgroupError(f"{PREFIX}: expected an object, got {type(raw).__name__}")
    memory = _obj(raw, "memory", "memory")
    cpu = _obj(raw, "cpu", "cpu")
    pids = _obj(raw, "pids", "pids")
    block_io = _obj(raw, "blockIO", "blockIO")
    network = _obj(raw, "network", "network")
    rdma = _obj(raw, "rdma", "rdma")
    unified = _obj(raw, "unified", "unified")
    devices = raw.get("devices")
    return Resources(
        memory=_memory(memory) if memory is not None else None,
        cpu=_cpu(cpu) if cpu is not None else None,
        pids_limit=_int(pids, "limit", "pids.limit", hi=INT64_MAX) if pids is not None else None,
        block_io=_block_io(block_io) if block_io is not None else None,
        hugepage_limits=_hugepages(_list(raw, "hugepageLimits", "hugepageLimits")),
        devices=_devices(_list(raw, "devices", "devices")) if devices is not None else None,
        network=_network(network) if network is not None else None,
        rdma=_rdma(rdma) if rdma is not None else {},
        unified=_unified(unified) if unified is not None else {},
    )
