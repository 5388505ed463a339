"""cgroup v1 (and hybrid): resources -> control-file writes, and the v1 Manager.

`plan` is pure: parsed resources plus `Facts` -> ordered `Write`s, one
directory per controller. `V1Manager` creates one directory per mounted
hierarchy; in hybrid mode it also joins the same path in the cgroup2 tree and
the name=systemd hierarchy, so the container's processes can be found,
frozen and killed (cgroup.kill) there as well.
"""

from __future__ import annotations

from pyruntime.cgroups import v2
from pyruntime.cgroups.base import (
    SIGKILL,
    Facts,
    Manager,
    Write,
    check_pid,
    parse_resources,
    run_writes,
)
from pyruntime.cgroups.detect import HYBRID, SYSTEMD, UNIFIED, V1_CONTROLLERS
from pyruntime.cgroups.fs import FIELD_PREFIX as PREFIX
from pyruntime.cgroups.fs import (
    CgroupFS,
    flat_keyed,
    join,
    make_levels,
    poll,
    read_checked,
    read_or,
    read_procs,
    remove_tree,
    write_checked,
)
from pyruntime.errors import CgroupError

TYPE_CHECKING = False  # typing and collections.abc cost milliseconds at import
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

    from pyruntime.cgroups.resources import BlockIO, Cpu, DeviceRule, Memory, Resources

FREEZE_TIMEOUT = 2.0


def _unsupported(field: str, why: str) -> CgroupError:
    return CgroupError(f"{PREFIX}.{field}: {why}")


# -- pure mapping ----------------------------------------------------------


def _cpu(cpu: Cpu, facts: Facts) -> list[Write]:
    out: list[Write] = []
    if cpu.cpus:
        out.append(Write("cpuset", "cpuset.cpus", cpu.cpus, "cpu.cpus"))
    if cpu.mems:
        out.append(Write("cpuset", "cpuset.mems", cpu.mems, "cpu.mems"))
    if cpu.shares is not None:
        out.append(Write("cpu", "cpu.shares", str(cpu.shares), "cpu.shares"))
    if cpu.period is not None:
        # Shortening the period can exceed a parent's quota ratio until the new
        # quota lands, so a refusal here is retried after it.
        out.append(
            Write("cpu", "cpu.cfs_period_us", str(cpu.period), "cpu.period", retry_later=True)
        )
    if cpu.burst is not None:
        if facts.has_file("cpu.cfs_burst_us"):
            # Burst may not exceed the quota: raising both needs quota first,
            # lowering both needs burst first; retrying covers either order.
            out.append(
                Write("cpu", "cpu.cfs_burst_us", str(cpu.burst), "cpu.burst", retry_later=True)
            )
        elif cpu.burst:
            raise _unsupported("cpu.burst", "not supported by this kernel (no cpu.cfs_burst_us)")
    if cpu.quota is not None:
        out.append(Write("cpu", "cpu.cfs_quota_us", str(cpu.quota), "cpu.quota"))
    # The runtime budget must fit the period, so the period goes first.
    for value, file, field in (
        (cpu.realtime_period, "cpu.rt_period_us", "cpu.realtimePeriod"),
        (cpu.realtime_runtime, "cpu.rt_runtime_us", "cpu.realtimeRuntime"),
    ):
        if value is None:
            continue
        if not facts.has_file(file):
            raise _unsupported(field, f"not supported by this kernel (no {file})")
        out.append(Write("cpu", file, str(value), field))
    if cpu.idle is not None:
        if facts.has_file("cpu.idle"):
            out.append(Write("cpu", "cpu.idle", str(cpu.idle), "cpu.idle"))
        elif cpu.idle:
            raise _unsupported("cpu.idle", "not supported by this kernel (no cpu.idle)")
    return out


MEMSW = "memory.memsw.limit_in_bytes"


def _memory(mem: Memory, facts: Facts) -> list[Write]:
    out: list[Write] = []
    limit, swap = mem.limit, mem.swap
    if limit == -1 and swap is None and facts.has_file(MEMSW):
        # Unlimited memory with swap left alone means unlimited memory+swap too;
        # otherwise an old memsw ceiling would keep limiting.
        swap = -1
    if swap is not None and not facts.has_file(MEMSW):
        if swap != -1:
            raise _unsupported("memory.swap", f"swap accounting is not enabled (no {MEMSW})")
        swap = None
    if swap is not None and swap != -1 and limit is not None and (limit == -1 or swap < limit):
        raise _unsupported(
            "memory.swap", f"memory+swap {swap} must not be below memory.limit {limit}"
        )
    if (
        mem.check_before_update
        and limit is not None
        and limit > 0
        and facts.memory_usage is not None
        and limit < facts.memory_usage
    ):
        raise _unsupported(
            "memory.limit",
            f"{limit} is below the current usage {facts.memory_usage} (checkBeforeUpdate)",
        )
    mem_write = Write("memory", "memory.limit_in_bytes", str(limit), "memory.limit")
    swap_write = Write("memory", MEMSW, str(swap), "memory.swap")
    if limit is not None and swap is not None:
        # The kernel keeps limit <= memsw at every step: when the new memsw is
        # above the current one, raise memsw first, otherwise lower the limit first.
        current = facts.memsw_limit
        if swap == -1 or (current is not None and current < swap):
            out += [swap_write, mem_write]
        else:
            out += [mem_write, swap_write]
    elif limit is not None:
        out.append(mem_write)
    elif swap is not None:
        out.append(swap_write)
    if mem.reservation is not None:
        out.append(
            Write(
                "memory", "memory.soft_limit_in_bytes", str(mem.reservation), "memory.reservation"
            )
        )
    if mem.swappiness is not None:
        out.append(Write("memory", "memory.swappiness", str(mem.swappiness), "memory.swappiness"))
    if mem.disable_oom_killer is not None:
        out.append(
            Write(
                "memory",
                "memory.oom_control",
                "1" if mem.disable_oom_killer else "0",
                "memory.disableOOMKiller",
            )
        )
    # kernel and kernelTCP are ignored, as runc 1.1 does: kmem limits are
    # deprecated and refused by current kernels (see unenforced()).
    return out


def _first_file(facts: Facts, field: str, *candidates: str) -> str:
    for name in candidates:
        if facts.has_file(name):
            return name
    raise _unsupported(
        field, f"not supported by this kernel's I/O scheduler (no {' or '.join(candidates)})"
    )


def _blkio(bio: BlockIO, facts: Facts) -> list[Write]:
    out: list[Write] = []
    if bio.weight is not None:
        file = _first_file(facts, "blockIO.weight", "blkio.weight", "blkio.bfq.weight")
        out.append(Write("blkio", file, str(bio.weight), "blockIO.weight"))
    if bio.leaf_weight is not None:
        file = _first_file(facts, "blockIO.leafWeight", "blkio.leaf_weight")
        out.append(Write("blkio", file, str(bio.leaf_weight), "blockIO.leafWeight"))
    for i, dev in enumerate(bio.weight_device):
        where = f"blockIO.weightDevice[{i}]"
        if dev.weight is not None:
            file = _first_file(facts, where, "blkio.weight_device", "blkio.bfq.weight_device")
            out.append(Write("blkio", file, f"{dev.major}:{dev.minor} {dev.weight}", where))
        if dev.leaf_weight is not None:
            file = _first_file(facts, where, "blkio.leaf_weight_device")
            out.append(Write("blkio", file, f"{dev.major}:{dev.minor} {dev.leaf_weight}", where))
    for devices, file, field in (
        (bio.throttle_read_bps_device, "blkio.throttle.read_bps_device", "throttleReadBpsDevice"),
        (
            bio.throttle_write_bps_device,
            "blkio.throttle.write_bps_device",
            "throttleWriteBpsDevice",
        ),
        (
            bio.throttle_read_iops_device,
            "blkio.throttle.read_iops_device",
            "throttleReadIOPSDevice",
        ),
        (
            bio.throttle_write_iops_device,
            "blkio.throttle.write_iops_device",
            "throttleWriteIOPSDevice",
        ),
    ):
        for i, t in enumerate(devices):
            out.append(
                Write("blkio", file, f"{t.major}:{t.minor} {t.rate}", f"blockIO.{field}[{i}]")
            )
    return out


def _pids_value(limit: int) -> str:
    return "max" if limit <= 0 else str(limit)


# -- devices ---------------------------------------------------------------


def kernel_device_rules(rule: DeviceRule) -> list[tuple[bool, str]]:
    """One OCI rule as (allow, text) lines the devices controller understands.

    The kernel reads any line starting with "a" as "everything", whatever
    follows, so "a 1:3 r" would open all devices: a partial "all types" rule is
    split into its char and block halves. FIFOs are not device-controlled.
    """
    if rule.type == "p":
        return []
    kind = "c" if rule.type == "u" else rule.type
    major = "*" if rule.major is None else str(rule.major)
    minor = "*" if rule.minor is None else str(rule.minor)
    if kind == "a":
        if major == "*" and minor == "*" and rule.access == "rwm":
            return [(rule.allow, "a")]
        return [(rule.allow, f"{k} {major}:{minor} {rule.access}") for k in ("c", "b")]
    return [(rule.allow, f"{kind} {major}:{minor} {rule.access}")]


def device_writes(rules: tuple[DeviceRule, ...]) -> list[Write]:
    """Deny everything first, then each rule in order."""
    out = []
    if not rules or kernel_device_rules(rules[0]) != [(False, "a")]:
        # unless the rules start with that deny-all themselves, as runc's spec does
        out.append(Write("devices", "devices.deny", "a", "devices"))
    for i, rule in enumerate(rules):
        for allow, text in kernel_device_rules(rule):
            file = "devices.allow" if allow else "devices.deny"
            out.append(Write("devices", file, text, f"devices[{i}]"))
    return out


def expected_device_list(rules: tuple[DeviceRule, ...]) -> tuple[str, ...]:
    """devices.list as the kernel shows it after `device_writes(rules)`.

    The kernel keeps a default (allow or deny all) and an ordered list of
    exceptions keyed by type and numbers; an allow in deny mode adds access
    bits to an exception, a deny removes them, and the other way round.
    """
    allow_all = False
    exceptions: dict[str, set[str]] = {}
    for rule in rules:
        for allow, text in kernel_device_rules(rule):
            if text == "a":
                allow_all, exceptions = allow, {}
                continue
            key, access = text.rsplit(" ", 1)
            if allow != allow_all:
                exceptions.setdefault(key, set()).update(access)
            elif key in exceptions:
                exceptions[key] -= set(access)
                if not exceptions[key]:
                    del exceptions[key]
    if allow_all:
        return ("a *:* rwm",)
    return tuple(f"{k} {''.join(c for c in 'rwm' if c in acc)}" for k, acc in exceptions.items())


def _devices(rules: tuple[DeviceRule, ...], facts: Facts) -> list[Write]:
    # Rewriting starts with "deny all", a window in which the running container
    # loses /dev/null; an update that changes nothing must not open it.
    if facts.devices_list is not None and facts.devices_list == expected_device_list(rules):
        return []
    return device_writes(rules)


def plan(res: Resources, facts: Facts) -> list[Write]:
    """Ordered writes for `res`; CgroupError names a field that cannot be applied."""
    if res.unified:
        raise _unsupported("unified", "invalid configuration: cgroup v2 key/values need cgroup v2 (this host is v1)")
    out: list[Write] = []
    if res.cpu is not None:
        out += _cpu(res.cpu, facts)
    if res.memory is not None:
        out += _memory(res.memory, facts)
    if res.pids_limit is not None:
        out.append(Write("pids", "pids.max", _pids_value(res.pids_limit), "pids.limit"))
    if res.block_io is not None:
        out += _blkio(res.block_io, facts)
    for i, h in enumerate(res.hugepage_limits):
        file = f"hugetlb.{h.page_size}.limit_in_bytes"
        field = f"hugepageLimits[{i}]"
        if "hugetlb" in facts.controllers and not facts.has_file(file):
            raise _unsupported(field, f"page size {h.page_size} is not supported ({file})")
        out.append(Write("hugetlb", file, str(h.limit), field))
    if res.network is not None:
        if res.network.class_id is not None:
            out.append(
                Write("net_cls", "net_cls.classid", str(res.network.class_id), "network.classID")
            )
        for i, (name, prio) in enumerate(res.network.priorities):
            out.append(
                Write(
                    "net_prio", "net_prio.ifpriomap", f"{name} {prio}", f"network.priorities[{i}]"
                )
            )
    for name, lim in sorted(res.rdma.items()):
        parts = []
        if lim.hca_handles is not None:
            parts.append(f"hca_handle={lim.hca_handles}")
        if lim.hca_objects is not None:
            parts.append(f"hca_object={lim.hca_objects}")
        if parts:
            out.append(Write("rdma", "rdma.max", f"{name} {' '.join(parts)}", f"rdma.{name}"))
    if res.devices is not None:
        out += _devices(res.devices, facts)
    for w in out:
        if w.controller not in facts.controllers:
            raise _unsupported(w.field, f"the {w.controller} controller is not mounted")
    return out


def unenforced(res: Resources) -> list[str]:
    out = []
    if res.memory is not None:
        if res.memory.kernel is not None:
            out.append(f"{PREFIX}.memory.kernel")
        if res.memory.kernel_tcp is not None:
            out.append(f"{PREFIX}.memory.kernelTCP")
    return out


# -- the manager -----------------------------------------------------------


def make_dir(fs: CgroupFS, mount: str, d: str) -> list[tuple[str, bool]]:
    """Create `d` level by level below an existing `mount`; (level, made now) for each."""
    return make_levels(fs, mount, d, "cgroup hierarchy is not mounted")


def inherit_cpuset(fs: CgroupFS, mount: str, levels: list[tuple[str, bool]]) -> None:
    """A fresh v1 cpuset has no cpus or mems and refuses tasks: copy the parent's.

    A level made just now is empty (or, with cgroup.clone_children, holds the parent's
    value already), so it is written without being read; the value written is the next
    level's parent value, read once per file rather than once per level.
    """
    for file in ("cpuset.cpus", "cpuset.mems"):
        parent, inherited = mount, None
        for level, made in levels:
            current = "" if made else read_checked(fs, join(level, file)).strip()
            if current:
                inherited = current
            else:
                if inherited is None:
                    inherited = read_checked(fs, join(parent, file)).strip()
                write_checked(fs, join(level, file), inherited)
            parent = level


class V1Manager(Manager):
    """v1 controllers, each in its own hierarchy; hybrid adds the cgroup2 tree."""

    @property
    def _unified(self) -> str | None:
        return self._paths.get(UNIFIED) if self.mode == HYBRID else None

    def apply(self, pid: int) -> None:
        check_pid(pid)
        for key, d in self._unique_dirs():
            mount = self._mounts[key]
            if key == UNIFIED:
                # Only for tracking and cgroup.kill: hybrid sets no limit in the
                # cgroup2 tree, so no controller is enabled on the way down.
                v2.make_dir(self.fs, mount, d, enable=False)
                continue
            levels = make_dir(self.fs, mount, d)
            if key == "cpuset":
                inherit_cpuset(self.fs, mount, levels)
        if pid > 0:
            for _, d in self._unique_dirs():
                write_checked(self.fs, join(d, "cgroup.procs"), str(pid))

    def _controllers(self) -> frozenset[str]:
        return frozenset(k for k in self._paths if k in V1_CONTROLLERS)

    def _facts(self, res: Resources) -> Facts:
        # Only the controllers whose optional files the plan asks about are listed
        # (a listdir per directory was most of an `update`'s and a create's syscalls).
        files: set[str] = set()
        for controller in _listed_controllers(res):
            d = self._paths.get(controller)
            if d is None:
                continue
            try:
                files.update(self.fs.listdir(d))
            except FileNotFoundError:
                raise _missing(d) from None
        memsw = usage = None
        devices = None
        mem_dir = self._paths.get("memory")
        if mem_dir is not None and res.memory is not None:
            if res.memory.limit is not None and res.memory.swap is not None:
                memsw = _read_int(self.fs, join(mem_dir, MEMSW))
            if res.memory.check_before_update:
                usage = _read_int(self.fs, join(mem_dir, "memory.usage_in_bytes"))
        dev_dir = self._paths.get("devices")
        if dev_dir is not None and res.devices is not None:
            text = read_or(self.fs, join(dev_dir, "devices.list"))
            devices = tuple(text.splitlines()) if text is not None else None
        return Facts(self._controllers(), frozenset(files), memsw, usage, devices)

    def set(self, resources: Mapping[str, Any]) -> None:
        res = parse_resources(resources)
        writes = plan(res, self._facts(res))
        try:
            run_writes(self.fs, writes, lambda controller: self._paths[controller])
        except CgroupError:
            # A missing directory, not a missing control file, when set precedes apply.
            for controller in sorted({w.controller for w in writes}):
                if not self.fs.is_dir(self._paths[controller]):
                    raise _missing(self._paths[controller]) from None
            raise

    def check(self, resources: Mapping[str, Any]) -> None:
        plan(parse_resources(resources), Facts(self._controllers()))

    def unenforced(self, resources: Mapping[str, Any]) -> list[str]:
        return unenforced(parse_resources(resources))

    def _freezer(self) -> str | None:
        return self._paths.get("freezer")

    def freeze(self) -> None:
        freezer = self._freezer()
        if freezer is None:
            if self._unified is not None:
                v2.freeze(self.fs, self._unified)
                return
            raise CgroupError("cannot freeze: the freezer controller is not mounted")
        state = join(freezer, "freezer.state")

        def frozen() -> bool:
            # Each write retries tasks that were busy in the kernel last time.
            write_checked(self.fs, state, "FROZEN")
            return read_checked(self.fs, state).strip() == "FROZEN"

        if not poll(self.fs, frozen, FREEZE_TIMEOUT):
            write_checked(self.fs, state, "THAWED")
            raise CgroupError(f"{state}: did not reach FROZEN within {FREEZE_TIMEOUT}s")

    def thaw(self) -> None:
        freezer = self._freezer()
        if freezer is None:
            if self._unified is not None:
                v2.thaw(self.fs, self._unified)
                return
            raise CgroupError("cannot thaw: the freezer controller is not mounted")
        write_checked(self.fs, join(freezer, "freezer.state"), "THAWED")

    def is_frozen(self) -> bool:
        freezer = self._freezer()
        if freezer is None:
            return self._unified is not None and v2.is_frozen(self.fs, self._unified)
        state = read_or(self.fs, join(freezer, "freezer.state"), "") or ""
        return state.strip() == "FROZEN"

    def kill_all(self, sig: int) -> None:
        unified = self._unified
        if sig == SIGKILL and unified is not None and v2.kill(self.fs, unified):
            # Anything that is in the v1 groups but left the unified one.
            inside = set(read_procs(self.fs, unified))
            if not set(self.pids()) - inside:
                return
        self._signal_all_frozen(sig)

    def stats(self) -> dict[str, Any]:
        if not self.exists():
            raise CgroupError(f"cgroups of container {self.container_id} do not exist")
        from pyruntime.cgroups import stats

        return stats.event(self.container_id, stats.v1_stats(self.fs, self._paths))

    def oom_kill_count(self) -> int:
        mem = self._paths.get("memory")
        if mem is None:
            return 0
        text = read_or(self.fs, join(mem, "memory.oom_control"), "") or ""
        return flat_keyed(text).get("oom_kill", 0)

    def destroy(self) -> None:
        errors = []
        # name=systemd and unified last: they only track, and stay findable longest.
        order = sorted(self._unique_dirs(), key=lambda kd: kd[0] in (SYSTEMD, UNIFIED))
        for _, d in order:
            try:
                remove_tree(self.fs, d)
            except CgroupError as e:
                errors.append(e)
        if errors:
            raise errors[0]


def _listed_controllers(res: Resources) -> list[str]:
    """Controllers whose directory listing `plan` consults (Facts.has_file) for `res`."""
    out = []
    if res.cpu is not None:
        out.append("cpu")
    if res.memory is not None:
        out.append("memory")
    if res.block_io is not None:
        out.append("blkio")
    if res.hugepage_limits:
        out.append("hugetlb")
    return out


def _missing(d: str) -> CgroupError:
    return CgroupError(f"{d}: cgroup does not exist (apply must come first)")


def _read_int(fs: CgroupFS, path: str) -> int | None:
    text = read_or(fs, path)
    try:
        return int(text.strip()) if text is not None else None
    except ValueError:
        return None
