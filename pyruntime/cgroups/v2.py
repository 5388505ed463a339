"""cgroup v2: resources -> control-file writes, the v2 Manager, and the cgroup2
operations (create, freeze, kill) that hybrid mode borrows for its unified tree.

`plan` is pure. Device control on v2 needs an eBPF program, which pyruntime
does not load: `set` leaves devices alone and `unenforced` names them so the
CLI can warn. Likewise for fields v2 has no knob for (disableOOMKiller,
swappiness, blockIO leaf weights), which runc ignores too.
"""

from __future__ import annotations

from pyruntime.cgroups.base import (
    SIGKILL,
    Facts,
    Manager,
    Write,
    check_pid,
    parse_resources,
    run_writes,
)
from pyruntime.cgroups.detect import UNIFIED, V2
from pyruntime.cgroups.fs import FIELD_PREFIX as PREFIX
from pyruntime.cgroups.fs import (
    REAL,
    CgroupFS,
    flat_keyed,
    join,
    make_levels,
    poll,
    read_or,
    remove_tree,
    write_checked,
    write_failed,
)
from pyruntime.errors import CgroupError

TYPE_CHECKING = False  # typing and collections.abc cost milliseconds at import
if TYPE_CHECKING:
    import os
    from collections.abc import Mapping
    from typing import Any

    from pyruntime.cgroups.resources import BlockIO, Cpu, Memory, Resources

FREEZE_TIMEOUT = 2.0


def _unsupported(field: str, why: str) -> CgroupError:
    return CgroupError(f"{PREFIX}.{field}: {why}")


def _trunc_div(a: int, b: int) -> int:
    """Division rounding toward zero, as the conversions are usually specified."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b > 0) else -q


def shares_to_weight(shares: int) -> int:
    """cpu.shares (2..262144) -> cpu.weight (1..10000), the linear map runc uses."""
    return max(1, min(10000, 1 + _trunc_div((shares - 2) * 9999, 262142)))


def blkio_to_io_weight(weight: int) -> int:
    """blkio.weight (10..1000) -> io.weight (1..10000)."""
    return max(1, min(10000, 1 + _trunc_div((weight - 10) * 9999, 990)))


def _max(value: int) -> str:
    return "max" if value < 0 else str(value)


def swap_max(limit: int | None, swap: int | None) -> str | None:
    """OCI's memory+swap -> memory.swap.max (swap alone), or None to leave it."""
    if swap is None:
        # Unlimited memory means unlimited swap too, unless swap was given.
        return "max" if limit == -1 else None
    if swap == -1:
        return "max"
    if limit is None or limit == -1:
        raise _unsupported("memory.swap", "a swap limit needs a memory limit on cgroup v2")
    if swap < limit:
        raise _unsupported(
            "memory.swap", f"memory+swap {swap} must not be below memory.limit {limit}"
        )
    return str(swap - limit)


def _cpu(cpu: Cpu, facts: Facts) -> list[Write]:
    out: list[Write] = []
    if cpu.cpus:
        out.append(Write("cpuset", "cpuset.cpus", cpu.cpus, "cpu.cpus"))
    if cpu.mems:
        out.append(Write("cpuset", "cpuset.mems", cpu.mems, "cpu.mems"))
    if cpu.shares is not None:
        out.append(Write("cpu", "cpu.weight", str(shares_to_weight(cpu.shares)), "cpu.shares"))
    if cpu.burst is not None:
        if facts.has_file("cpu.max.burst"):
            # Burst may not exceed the quota: a refusal is retried after cpu.max.
            out.append(Write("cpu", "cpu.max.burst", str(cpu.burst), "cpu.burst", retry_later=True))
        elif cpu.burst:
            raise _unsupported("cpu.burst", "not supported by this kernel (no cpu.max.burst)")
    if cpu.quota is not None or cpu.period is not None:
        quota = "max" if cpu.quota is None or cpu.quota < 0 else str(cpu.quota)
        value = quota if cpu.period is None else f"{quota} {cpu.period}"
        out.append(Write("cpu", "cpu.max", value, "cpu.quota"))
    if cpu.idle is not None:
        if facts.has_file("cpu.idle"):
            out.append(Write("cpu", "cpu.idle", str(cpu.idle), "cpu.idle"))
        elif cpu.idle:
            raise _unsupported("cpu.idle", "not supported by this kernel (no cpu.idle)")
    if cpu.realtime_runtime is not None or cpu.realtime_period is not None:
        field = "cpu.realtimeRuntime" if cpu.realtime_runtime is not None else "cpu.realtimePeriod"
        raise _unsupported(field, "real-time scheduling budgets do not exist on cgroup v2")
    return out


def _memory(mem: Memory, facts: Facts) -> list[Write]:
    out: list[Write] = []
    if (
        mem.check_before_update
        and mem.limit is not None
        and mem.limit > 0
        and facts.memory_usage is not None
        and mem.limit < facts.memory_usage
    ):
        raise _unsupported(
            "memory.limit",
            f"{mem.limit} is below the current usage {facts.memory_usage} (checkBeforeUpdate)",
        )
    if mem.limit is not None:
        out.append(Write("memory", "memory.max", _max(mem.limit), "memory.limit"))
    swap = swap_max(mem.limit, mem.swap)
    if swap is not None:
        if facts.has_file("memory.swap.max"):
            out.append(Write("memory", "memory.swap.max", swap, "memory.swap"))
        elif swap != "max":
            raise _unsupported("memory.swap", "swap accounting is not enabled (no memory.swap.max)")
    if mem.reservation is not None:
        out.append(Write("memory", "memory.low", _max(mem.reservation), "memory.reservation"))
    return out


def _io(bio: BlockIO, facts: Facts) -> list[Write]:
    out: list[Write] = []
    bfq = facts.files is not None and "io.bfq.weight" in facts.files
    if bio.weight is not None:
        if bfq:
            # BFQ takes the blkio scale (1..1000) as is.
            out.append(Write("io", "io.bfq.weight", str(bio.weight), "blockIO.weight"))
        else:
            value = f"default {blkio_to_io_weight(bio.weight)}"
            out.append(Write("io", "io.weight", value, "blockIO.weight"))
    for i, dev in enumerate(bio.weight_device):
        if dev.weight is None:
            continue
        where = f"blockIO.weightDevice[{i}]"
        if bfq:
            out.append(Write("io", "io.bfq.weight", f"{dev.major}:{dev.minor} {dev.weight}", where))
        else:
            value = f"{dev.major}:{dev.minor} {blkio_to_io_weight(dev.weight)}"
            out.append(Write("io", "io.weight", value, where))
    for devices, key, field in (
        (bio.throttle_read_bps_device, "rbps", "throttleReadBpsDevice"),
        (bio.throttle_write_bps_device, "wbps", "throttleWriteBpsDevice"),
        (bio.throttle_read_iops_device, "riops", "throttleReadIOPSDevice"),
        (bio.throttle_write_iops_device, "wiops", "throttleWriteIOPSDevice"),
    ):
        for i, t in enumerate(devices):
            # 0 means "no limit" in the v1 files; io.max spells that "max".
            rate = "max" if t.rate == 0 else str(t.rate)
            out.append(
                Write("io", "io.max", f"{t.major}:{t.minor} {key}={rate}", f"blockIO.{field}[{i}]")
            )
    return out


def plan(res: Resources, facts: Facts) -> list[Write]:
    """Ordered writes for `res`; CgroupError names a field that cannot be applied."""
    out: list[Write] = []
    if res.cpu is not None:
        out += _cpu(res.cpu, facts)
    if res.memory is not None:
        out += _memory(res.memory, facts)
    if res.pids_limit is not None:
        value = "max" if res.pids_limit <= 0 else str(res.pids_limit)
        out.append(Write("pids", "pids.max", value, "pids.limit"))
    if res.block_io is not None:
        out += _io(res.block_io, facts)
    for i, h in enumerate(res.hugepage_limits):
        file = f"hugetlb.{h.page_size}.max"
        field = f"hugepageLimits[{i}]"
        if "hugetlb" in facts.controllers and not facts.has_file(file):
            raise _unsupported(field, f"page size {h.page_size} is not supported ({file})")
        out.append(Write("hugetlb", file, str(h.limit), field))
    if res.network is not None:
        if res.network.class_id is not None:
            raise _unsupported("network.classID", "net_cls does not exist on cgroup v2")
        if res.network.priorities:
            raise _unsupported("network.priorities", "net_prio does not exist on cgroup v2")
    for name, lim in sorted(res.rdma.items()):
        parts = []
        if lim.hca_handles is not None:
            parts.append(f"hca_handle={lim.hca_handles}")
        if lim.hca_objects is not None:
            parts.append(f"hca_object={lim.hca_objects}")
        if parts:
            out.append(Write("rdma", "rdma.max", f"{name} {' '.join(parts)}", f"rdma.{name}"))
    # unified goes last so its raw values win over the mapped ones, as in runc.
    for key, value in sorted(res.unified.items()):
        out.append(Write(key.split(".", 1)[0], key, value, f"unified.{key}"))
    for w in out:
        if w.controller not in facts.controllers:
            raise _unsupported(
                w.field, f"the {w.controller} controller is not enabled for this cgroup"
            )
    return out


def unenforced(res: Resources) -> list[str]:
    """Fields v2 accepts but does not enforce here."""
    out = []
    if res.devices:
        out.append(f"{PREFIX}.devices")
    mem = res.memory
    if mem is not None:
        if mem.disable_oom_killer:
            out.append(f"{PREFIX}.memory.disableOOMKiller")
        if mem.swappiness is not None:
            out.append(f"{PREFIX}.memory.swappiness")
        if mem.kernel is not None:
            out.append(f"{PREFIX}.memory.kernel")
        if mem.kernel_tcp is not None:
            out.append(f"{PREFIX}.memory.kernelTCP")
    bio = res.block_io
    if bio is not None:
        if bio.leaf_weight is not None:
            out.append(f"{PREFIX}.blockIO.leafWeight")
        for i, dev in enumerate(bio.weight_device):
            if dev.leaf_weight is not None:
                out.append(f"{PREFIX}.blockIO.weightDevice[{i}].leafWeight")
    return out


# -- cgroup2 operations, shared with hybrid mode ---------------------------


def _enable_controllers(fs: CgroupFS, parent: str) -> None:
    """Offer every controller `parent` has to its children.

    Failures are left for `set` to report against the field that needed the
    controller: with processes in `parent` (the no-internal-process rule) the
    kernel refuses, yet a container without limits still works.
    """
    available = (read_or(fs, join(parent, "cgroup.controllers"), "") or "").split()
    enabled = set((read_or(fs, join(parent, "cgroup.subtree_control"), "") or "").split())
    for controller in available:
        if controller not in enabled:
            try:
                fs.write(join(parent, "cgroup.subtree_control"), "+" + controller)
            except OSError:
                pass


def make_dir(fs: CgroupFS, mount: str, d: str, *, enable: bool = True) -> None:
    """Create `d` below `mount`, enabling controllers on the way down (if `enable`)."""
    before = (lambda parent: _enable_controllers(fs, parent)) if enable else None
    make_levels(fs, mount, d, "cgroup2 is not mounted", before)


def events(fs: CgroupFS, d: str) -> dict[str, int]:
    return flat_keyed(read_or(fs, join(d, "cgroup.events"), "") or "")


def is_frozen(fs: CgroupFS, d: str) -> bool:
    return events(fs, d).get("frozen") == 1


def freeze(fs: CgroupFS, d: str) -> None:
    if not fs.exists(join(d, "cgroup.freeze")):
        raise CgroupError(f"{d}: cannot freeze: no cgroup.freeze (kernel older than 5.2?)")
    write_checked(fs, join(d, "cgroup.freeze"), "1")
    # The write only asks; cgroup.events says when every task has stopped.
    if not poll(fs, lambda: is_frozen(fs, d), FREEZE_TIMEOUT):
        write_checked(fs, join(d, "cgroup.freeze"), "0")
        raise CgroupError(f"{d}: did not freeze within {FREEZE_TIMEOUT}s")


def thaw(fs: CgroupFS, d: str) -> None:
    write_checked(fs, join(d, "cgroup.freeze"), "0")


def kill(fs: CgroupFS, d: str) -> bool:
    """SIGKILL every task in `d` and below at once; False, with nothing done, where the
    kernel has no cgroup.kill (before 5.14) or the group is gone: signal one by one then."""
    path = join(d, "cgroup.kill")
    try:
        fs.write(path, "1")
    except FileNotFoundError:
        return False
    except OSError as e:
        raise write_failed(path, "1", "", e) from e
    return True


class V2Manager(Manager):
    """One directory in the unified tree."""

    def __init__(
        self,
        container_id: str,
        paths: Mapping[str, str | os.PathLike[str]],
        mounts: Mapping[str, str | os.PathLike[str]],
        fs: CgroupFS = REAL,
    ) -> None:
        if set(paths) != {UNIFIED}:
            raise CgroupError(f"a cgroup v2 manager needs exactly the {UNIFIED!r} path")
        super().__init__(container_id, V2, paths, mounts, fs)
        self._dir = self._paths[UNIFIED]
        self._mount = self._mounts[UNIFIED]

    def apply(self, pid: int) -> None:
        check_pid(pid)
        make_dir(self.fs, self._mount, self._dir)
        if pid > 0:
            write_checked(self.fs, join(self._dir, "cgroup.procs"), str(pid))

    def _controllers(self, d: str) -> frozenset[str]:
        return frozenset((read_or(self.fs, join(d, "cgroup.controllers"), "") or "").split())

    def set(self, resources: Mapping[str, Any]) -> None:
        res = parse_resources(resources)
        try:
            files = frozenset(self.fs.listdir(self._dir))
        except FileNotFoundError:
            raise CgroupError(
                f"{self._dir}: cgroup does not exist (apply must come first)"
            ) from None
        usage = None
        if res.memory is not None and res.memory.check_before_update:
            text = read_or(self.fs, join(self._dir, "memory.current"))
            usage = int(text) if text is not None and text.strip().isdigit() else None
        facts = Facts(
            controllers=self._controllers(self._dir),
            files=files,
            memory_usage=usage,
        )
        run_writes(self.fs, plan(res, facts), lambda _controller: self._dir)

    def check(self, resources: Mapping[str, Any]) -> None:
        # Before apply the directory may not exist: judge by what the tree offers.
        plan(parse_resources(resources), Facts(self._controllers(self._mount)))

    def unenforced(self, resources: Mapping[str, Any]) -> list[str]:
        return unenforced(parse_resources(resources))

    def freeze(self) -> None:
        freeze(self.fs, self._dir)

    def thaw(self) -> None:
        thaw(self.fs, self._dir)

    def is_frozen(self) -> bool:
        return is_frozen(self.fs, self._dir)

    def kill_all(self, sig: int) -> None:
        if sig == SIGKILL and kill(self.fs, self._dir):
            return
        self._signal_all_frozen(sig)

    def stats(self) -> dict[str, Any]:
        if not self.exists():
            raise CgroupError(f"cgroup of container {self.container_id} does not exist")
        from pyruntime.cgroups import stats

        return stats.event(self.container_id, stats.v2_stats(self.fs, self._dir))

    def oom_kill_count(self) -> int:
        text = read_or(self.fs, join(self._dir, "memory.events"), "") or ""
        return flat_keyed(text).get("oom_kill", 0)

    def destroy(self) -> None:
        remove_tree(self.fs, self._dir)
