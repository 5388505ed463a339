"""Reading cgroup statistics into the JSON runc prints for `events --stats`.

The shape and key names follow runc's types.Stats, including which fields
are left out when zero (Go's omitempty), so tools that parse runc's output
parse ours. Missing files count as zero: a kernel without swap accounting
or a controller that is not mounted simply reports nothing there.
"""

from __future__ import annotations

import os

from pyruntime.cgroups.fs import CgroupFS, flat_keyed, join, read_or

TYPE_CHECKING = False  # typing and collections.abc cost milliseconds at import
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

__all__ = ["event", "flat_keyed", "v1_stats", "v2_stats"]

UINT64_MAX = 2**64 - 1


def event(container_id: str, data: dict[str, Any]) -> dict[str, Any]:
    return {"type": "stats", "id": container_id, "data": data}


def _int(fs: CgroupFS, path: str, default: int = 0) -> int:
    text = read_or(fs, path)
    if text is None:
        return default
    text = text.strip()
    if text == "max":
        return UINT64_MAX
    try:
        return int(text)
    except ValueError:
        return default


def _ints(fs: CgroupFS, path: str) -> list[int]:
    return [int(x) for x in (read_or(fs, path, "") or "").split() if x.isdigit()]


def _nonzero(d: dict[str, Any], *keys: str) -> dict[str, Any]:
    """Drop the omitempty keys whose value is zero or empty."""
    return {k: v for k, v in d.items() if k not in keys or v}


def _cpu_list(text: str | None) -> list[int]:
    out: list[int] = []
    for part in (text or "").strip().split(","):
        if not part:
            continue
        lo, _, hi = part.partition("-")
        try:
            out.extend(range(int(lo), int(hi or lo) + 1))
        except ValueError:
            return []
    return out


def _usage(total: int, percpu: list[int], pk: list[int], pu: list[int], k: int, u: int) -> dict:
    return _nonzero(
        {
            "total": total,
            "percpu": percpu,
            "percpu_kernel": pk,
            "percpu_user": pu,
            "kernel": k,
            "user": u,
        },
        "total",
        "percpu",
        "percpu_kernel",
        "percpu_user",
    )


def _throttling(periods: int, throttled: int, time_ns: int) -> dict:
    return _nonzero(
        {"periods": periods, "throttledPeriods": throttled, "throttledTime": time_ns},
        "periods",
        "throttledPeriods",
        "throttledTime",
    )


def _mem_entry(limit: int, usage: int, peak: int, failcnt: int) -> dict:
    return _nonzero(
        {"limit": limit, "usage": usage, "max": peak, "failcnt": failcnt}, "usage", "max"
    )


def _blkio_entry(major: int, minor: int, op: str, value: int) -> dict:
    return _nonzero(
        {"major": major, "minor": minor, "op": op, "value": value}, "major", "minor", "op", "value"
    )


def _empty_stats() -> dict[str, Any]:
    return {
        "cpu": {"usage": _usage(0, [], [], [], 0, 0), "throttling": {}},
        "cpuset": {},
        "memory": {
            "usage": _mem_entry(0, 0, 0, 0),
            "swap": _mem_entry(0, 0, 0, 0),
            "kernel": _mem_entry(0, 0, 0, 0),
            "kernelTCP": _mem_entry(0, 0, 0, 0),
        },
        "pids": {},
        "blkio": {},
        "hugetlb": {},
        "intel_rdt": {},
        "network_interfaces": None,
    }


# -- v1 --------------------------------------------------------------------


def _v1_cpu(fs: CgroupFS, cpuacct: str | None, cpu: str | None) -> dict[str, Any]:
    usage = _usage(0, [], [], [], 0, 0)
    if cpuacct is not None:
        kernel = _int(fs, join(cpuacct, "cpuacct.usage_sys"), -1)
        user = _int(fs, join(cpuacct, "cpuacct.usage_user"), -1)
        if kernel < 0 or user < 0:
            # Older kernels only give clock ticks in cpuacct.stat.
            ticks = flat_keyed(read_or(fs, join(cpuacct, "cpuacct.stat"), "") or "")
            hz = os.sysconf("SC_CLK_TCK")
            kernel = ticks.get("system", 0) * 1_000_000_000 // hz
            user = ticks.get("user", 0) * 1_000_000_000 // hz
        usage = _usage(
            _int(fs, join(cpuacct, "cpuacct.usage")),
            _ints(fs, join(cpuacct, "cpuacct.usage_percpu")),
            _ints(fs, join(cpuacct, "cpuacct.usage_percpu_sys")),
            _ints(fs, join(cpuacct, "cpuacct.usage_percpu_user")),
            kernel,
            user,
        )
    throttling: dict[str, Any] = {}
    if cpu is not None:
        st = flat_keyed(read_or(fs, join(cpu, "cpu.stat"), "") or "")
        throttling = _throttling(
            st.get("nr_periods", 0), st.get("nr_throttled", 0), st.get("throttled_time", 0)
        )
    return {"usage": usage, "throttling": throttling}


def _v1_mem_entry(fs: CgroupFS, d: str, prefix: str) -> dict:
    return _mem_entry(
        _int(fs, join(d, f"{prefix}.limit_in_bytes")),
        _int(fs, join(d, f"{prefix}.usage_in_bytes")),
        _int(fs, join(d, f"{prefix}.max_usage_in_bytes")),
        _int(fs, join(d, f"{prefix}.failcnt")),
    )


def _v1_memory(fs: CgroupFS, d: str) -> dict[str, Any]:
    raw = flat_keyed(read_or(fs, join(d, "memory.stat"), "") or "")
    return _nonzero(
        {
            "cache": raw.get("cache", 0),
            "usage": _v1_mem_entry(fs, d, "memory"),
            "swap": _v1_mem_entry(fs, d, "memory.memsw"),
            "kernel": _v1_mem_entry(fs, d, "memory.kmem"),
            "kernelTCP": _v1_mem_entry(fs, d, "memory.kmem.tcp"),
            "raw": raw,
        },
        "cache",
        "raw",
    )


def _pids(fs: CgroupFS, d: str) -> dict[str, Any]:
    limit = _int(fs, join(d, "pids.max"))
    # runc reports an unlimited pids.max as 0, i.e. leaves it out.
    return _nonzero(
        {"current": _int(fs, join(d, "pids.current")), "limit": 0 if limit == UINT64_MAX else limit},
        "current",
        "limit",
    )


def _v1_blkio_lines(text: str) -> list[dict]:
    out = []
    for line in text.splitlines():
        parts = line.split()
        # "8:0 Read 4096"; the lone "Total N" summary line has no device.
        if len(parts) != 3 or ":" not in parts[0]:
            continue
        major, _, minor = parts[0].partition(":")
        try:
            out.append(_blkio_entry(int(major), int(minor), parts[1], int(parts[2])))
        except ValueError:
            continue
    return out


def _v1_blkio(fs: CgroupFS, d: str) -> dict[str, Any]:
    # One source for all entries: CFQ's files if present, else BFQ's, else the
    # throttle layer's (which counts every I/O whatever the scheduler).
    for prefix in ("blkio.", "blkio.bfq.", "blkio.throttle."):
        if fs.exists(join(d, f"{prefix}io_serviced_recursive")):
            break
    else:
        return {}
    out = {
        "ioServiceBytesRecursive": _v1_blkio_lines(
            read_or(fs, join(d, f"{prefix}io_service_bytes_recursive"), "") or ""
        ),
        "ioServicedRecursive": _v1_blkio_lines(
            read_or(fs, join(d, f"{prefix}io_serviced_recursive"), "") or ""
        ),
    }
    if prefix == "blkio.":
        for key, file in (
            ("ioQueueRecursive", "io_queued_recursive"),
            ("ioServiceTimeRecursive", "io_service_time_recursive"),
            ("ioWaitTimeRecursive", "io_wait_time_recursive"),
            ("ioMergedRecursive", "io_merged_recursive"),
            ("ioTimeRecursive", "time_recursive"),
            ("sectorsRecursive", "sectors_recursive"),
        ):
            out[key] = _v1_blkio_lines(read_or(fs, join(d, f"blkio.{file}"), "") or "")
    return {k: v for k, v in out.items() if v}


def _hugetlb(fs: CgroupFS, d: str, v2: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    try:
        names = fs.listdir(d)
    except FileNotFoundError:
        return out
    for name in sorted(names):
        parts = name.split(".")
        if (
            len(parts) != 3
            or parts[0] != "hugetlb"
            or parts[2] != ("current" if v2 else "usage_in_bytes")
        ):
            continue
        size = parts[1]
        if v2:
            failcnt = flat_keyed(read_or(fs, join(d, f"hugetlb.{size}.events"), "") or "").get("max", 0)
            entry = {"usage": _int(fs, join(d, name)), "max": 0, "failcnt": failcnt}
        else:
            entry = {
                "usage": _int(fs, join(d, name)),
                "max": _int(fs, join(d, f"hugetlb.{size}.max_usage_in_bytes")),
                "failcnt": _int(fs, join(d, f"hugetlb.{size}.failcnt")),
            }
        out[size] = _nonzero(entry, "usage", "max")
    return out


def _v1_cpuset(fs: CgroupFS, d: str) -> dict[str, Any]:
    out: dict[str, Any] = {
        "cpus": _cpu_list(read_or(fs, join(d, "cpuset.cpus"))),
        "mems": _cpu_list(read_or(fs, join(d, "cpuset.mems"))),
    }
    for key in (
        "cpu_exclusive",
        "mem_hardwall",
        "mem_exclusive",
        "memory_migrate",
        "memory_spread_page",
        "memory_spread_slab",
        "memory_pressure",
        "sched_load_balance",
        "sched_relax_domain_level",
    ):
        out[key] = _int(fs, join(d, f"cpuset.{key}"))
    return _nonzero(out, "cpus", "mems")


def v1_stats(fs: CgroupFS, paths: Mapping[str, str]) -> dict[str, Any]:
    data = _empty_stats()
    data["cpu"] = _v1_cpu(fs, paths.get("cpuacct"), paths.get("cpu"))
    if "cpuset" in paths:
        data["cpuset"] = _v1_cpuset(fs, paths["cpuset"])
    if "memory" in paths:
        data["memory"] = _v1_memory(fs, paths["memory"])
    if "pids" in paths:
        data["pids"] = _pids(fs, paths["pids"])
    if "blkio" in paths:
        data["blkio"] = _v1_blkio(fs, paths["blkio"])
    if "hugetlb" in paths:
        data["hugetlb"] = _hugetlb(fs, paths["hugetlb"], v2=False)
    return data


# -- v2 --------------------------------------------------------------------


def _v2_memory(fs: CgroupFS, d: str) -> dict[str, Any]:
    raw = flat_keyed(read_or(fs, join(d, "memory.stat"), "") or "")
    current = _int(fs, join(d, "memory.current"))
    limit = _int(fs, join(d, "memory.max"), UINT64_MAX)
    # v1's failcnt counted hits of the limit; v2 counts them as "max" events.
    failcnt = flat_keyed(read_or(fs, join(d, "memory.events"), "") or "").get("max", 0)
    usage = _mem_entry(limit, current, _int(fs, join(d, "memory.peak")), failcnt)
    swap = _mem_entry(0, 0, 0, 0)
    if fs.exists(join(d, "memory.swap.current")):
        # runc reports v1's memory+swap here, so tools see the same meaning.
        swap_limit = _int(fs, join(d, "memory.swap.max"), UINT64_MAX)
        swap = _mem_entry(
            min(UINT64_MAX, swap_limit + limit),
            _int(fs, join(d, "memory.swap.current")) + current,
            0,
            0,
        )
    return _nonzero(
        {
            "cache": raw.get("file", 0),
            "usage": usage,
            "swap": swap,
            "kernel": _mem_entry(0, raw.get("kernel", 0), 0, 0),
            "kernelTCP": _mem_entry(0, 0, 0, 0),
            "raw": raw,
        },
        "cache",
        "raw",
    )


def _v2_io(fs: CgroupFS, d: str) -> dict[str, Any]:
    served_bytes, served = [], []
    for line in (read_or(fs, join(d, "io.stat"), "") or "").splitlines():
        parts = line.split()
        if not parts or ":" not in parts[0]:
            continue
        major_s, _, minor_s = parts[0].partition(":")
        try:
            major, minor = int(major_s), int(minor_s)
            kv = {k: int(v) for k, _, v in (p.partition("=") for p in parts[1:])}
        except ValueError:
            continue
        served_bytes += [
            _blkio_entry(major, minor, "Read", kv.get("rbytes", 0)),
            _blkio_entry(major, minor, "Write", kv.get("wbytes", 0)),
        ]
        served += [
            _blkio_entry(major, minor, "Read", kv.get("rios", 0)),
            _blkio_entry(major, minor, "Write", kv.get("wios", 0)),
        ]
    out = {"ioServiceBytesRecursive": served_bytes, "ioServicedRecursive": served}
    return {k: v for k, v in out.items() if v}


def v2_stats(fs: CgroupFS, d: str) -> dict[str, Any]:
    data = _empty_stats()
    st = flat_keyed(read_or(fs, join(d, "cpu.stat"), "") or "")
    data["cpu"] = {
        "usage": _usage(
            st.get("usage_usec", 0) * 1000,
            [],
            [],
            [],
            st.get("system_usec", 0) * 1000,
            st.get("user_usec", 0) * 1000,
        ),
        "throttling": _throttling(
            st.get("nr_periods", 0), st.get("nr_throttled", 0), st.get("throttled_usec", 0) * 1000
        ),
    }
    data["cpuset"] = _nonzero(
        {
            "cpus": _cpu_list(read_or(fs, join(d, "cpuset.cpus.effective"))),
            "mems": _cpu_list(read_or(fs, join(d, "cpuset.mems.effective"))),
        },
        "cpus",
        "mems",
    )
    data["memory"] = _v2_memory(fs, d)
    data["pids"] = _pids(fs, d)
    data["blkio"] = _v2_io(fs, d)
    data["hugetlb"] = _hugetlb(fs, d, v2=True)
    return data
