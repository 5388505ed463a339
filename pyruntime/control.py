"""Verbs that act on a live container through its cgroup: pause, resume, ps, update, events."""

from __future__ import annotations

import sys
import time

from . import state as st_mod
from .errors import ContainerNotRunning, RuntimeErr
from .state import CREATED, PAUSED, RUNNING, STOPPED

TYPE_CHECKING = False  # pause and resume come here per container: only what they need
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any


def _manager(st: st_mod.State) -> Any:
    from .cgroups import manager_from_record

    if not st.cgroup:
        raise RuntimeErr(f"container {st.id} has no cgroup")
    return manager_from_record(st.cgroup)


def _no_cgroup(st: st_mod.State) -> bool:
    """Rootless without a delegated cgroup: the record holds no hierarchy at all."""
    return bool(st.cgroup) and not st.cgroup.get("paths")


def _need_freezer(st: st_mod.State, verb: str) -> None:
    paths = st.cgroup.get("paths") or {}
    if st.cgroup and "freezer" not in paths and "unified" not in paths:
        raise RuntimeErr(f"{verb}: container {st.id} has no writable freezer cgroup "
                         "(rootless without a delegated cgroup)")


def pause(rt: Any, cid: str) -> None:
    st, stat = rt.load(cid)
    if stat not in (RUNNING, CREATED):
        raise ContainerNotRunning(cid)
    _need_freezer(st, "pause")
    from .freezer import freeze

    freeze(st.cgroup)


def resume(rt: Any, cid: str) -> None:
    st, stat = rt.load(cid)
    if stat != PAUSED:
        raise RuntimeErr("container not paused")
    _need_freezer(st, "resume")
    from .freezer import thaw

    thaw(st.cgroup)


def ps(rt: Any, cid: str, fmt: str, ps_args: list[str]) -> str:
    st, stat = rt.load(cid)
    if _no_cgroup(st):
        from .rootless import pidns_members

        pids = pidns_members(st.pid) if stat != STOPPED else []
    else:
        manager = _manager(st)
        pids = sorted(manager.pids()) if stat != STOPPED and manager.exists() else []
    if fmt == "json":
        import json

        return json.dumps(pids) + "\n"
    import subprocess

    out = subprocess.run(["ps", *(ps_args or ["-ef"])], capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeErr(f"ps: {out.stderr.strip()}")
    lines = out.stdout.splitlines()
    if not lines:
        return ""
    header = lines[0].split()
    if "PID" not in header:
        raise RuntimeErr("ps: the output has no PID column")
    col = header.index("PID")
    keep = [lines[0]]
    wanted = set(pids)
    for line in lines[1:]:
        fields = line.split()
        if len(fields) > col and fields[col].isdigit() and int(fields[col]) in wanted:
            keep.append(line)
    return "\n".join(keep) + "\n"


_UNITS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def parse_bytes(text: str, flag: str) -> int:
    """runc's RAMInBytes: 100, 64k, 512M, 1g (binary units); -1 means unlimited."""
    if text.strip() == "-1":
        return -1
    import re

    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgtKMGT]?)(?:[iI]?[bB])?\s*", text)
    if not m:
        raise RuntimeErr(f"{flag}: invalid size {text!r}")
    return int(float(m.group(1)) * _UNITS[m.group(2).lower()])


UPDATE_FLAGS: dict[str, tuple[str, str, Callable[[str, str], Any]]] = {
    "memory": ("memory", "limit", parse_bytes),
    "memory_swap": ("memory", "swap", parse_bytes),
    "memory_reservation": ("memory", "reservation", parse_bytes),
    "kernel_memory": ("memory", "kernel", parse_bytes),
    "kernel_memory_tcp": ("memory", "kernelTCP", parse_bytes),
    "cpu_share": ("cpu", "shares", lambda v, f: _int(v, f)),
    "cpu_quota": ("cpu", "quota", lambda v, f: _int(v, f)),
    "cpu_period": ("cpu", "period", lambda v, f: _int(v, f)),
    "cpu_rt_period": ("cpu", "realtimePeriod", lambda v, f: _int(v, f)),
    "cpu_rt_runtime": ("cpu", "realtimeRuntime", lambda v, f: _int(v, f)),
    "cpu_burst": ("cpu", "burst", lambda v, f: _int(v, f)),
    "cpu_idle": ("cpu", "idle", lambda v, f: _int(v, f)),
    "cpuset_cpus": ("cpu", "cpus", lambda v, f: v),
    "cpuset_mems": ("cpu", "mems", lambda v, f: v),
    "pids_limit": ("pids", "limit", lambda v, f: _int(v, f)),
    "blkio_weight": ("blockIO", "weight", lambda v, f: _int(v, f)),
}


def _int(text: str, flag: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise RuntimeErr(f"{flag}: invalid number {text!r}")


def update(rt: Any, cid: str, resources_doc: dict[str, Any] | None, flags: dict[str, str | None]) -> None:
    st, stat = rt.load(cid)
    if stat == STOPPED:
        raise ContainerNotRunning(cid)
    if _no_cgroup(st):
        raise RuntimeErr(f"update: container {cid} has no cgroup (rootless without a delegated cgroup)")
    linux = st.config.setdefault("linux", {})
    import json

    current = json.loads(json.dumps(linux.get("resources") or {}))
    new: dict[str, Any] = {}
    if resources_doc is not None:
        if not isinstance(resources_doc, dict):
            raise RuntimeErr("--resources: expected a JSON object")
        new = resources_doc
    for name, raw in flags.items():
        if raw is None:
            continue
        section, key, conv = UPDATE_FLAGS[name]
        new.setdefault(section, {})[key] = conv(raw, "--" + name.replace("_", "-"))
    if not new:
        return
    from .validate import validate_resources

    validate_resources(new)
    mem = new.get("memory", {})
    if "limit" in mem and "swap" not in mem and (current.get("memory") or {}).get("swap") is not None:
        # keep limit <= swap valid, as runc does when only the memory flag is given
        old = current["memory"]
        if old.get("swap", 0) > 0 and old.get("limit") and old["swap"] < mem["limit"]:
            mem["swap"] = mem["limit"]
    manager = _manager(st)
    manager.set(new)
    for name in manager.unenforced(new):
        rt.warn(f"linux.resources.{name} is not enforced on this host's cgroups")
    for section, values in new.items():
        if isinstance(values, dict):
            current.setdefault(section, {}).update(values)
        else:
            current[section] = values
    linux["resources"] = current
    rt.store.save(st)


def events(rt: Any, cid: str, stats_once: bool, interval: float, out: Any = sys.stdout) -> None:
    st, stat = rt.load(cid)
    if stat == STOPPED:
        raise ContainerNotRunning(cid)
    if _no_cgroup(st):
        raise RuntimeErr(f"events: container {cid} has no cgroup (rootless without a delegated cgroup)")
    manager = _manager(st)

    import json

    def emit(doc: dict[str, Any]) -> None:
        out.write(json.dumps(doc, separators=(",", ":")) + "\n")
        out.flush()

    if stats_once:
        emit(manager.stats())
        return
    ooms = manager.oom_kill_count()
    next_stats = time.monotonic()
    while st_mod.is_alive(st):
        count = manager.oom_kill_count()
        if count > ooms:
            emit({"type": "oom", "id": cid})
            ooms = count
        if time.monotonic() >= next_stats:
            emit(manager.stats())
            next_stats = time.monotonic() + interval
        time.sleep(min(0.2, interval))
    if manager.exists() and manager.oom_kill_count() > ooms:
        emit({"type": "oom", "id": cid})
