#!/usr/bin/env python3
"""`make bench`: pyruntime against runc on the same busybox bundle, in one run (as root).

Builds one busybox bundle (bundles/busybox.sh) in a temporary directory and measures, for
each runtime with its own temporary --root:

1. `run` of `true` (median and p90 wall time),
2. a create/start/state/kill/delete cycle of a `sleep 100` container (whole and per verb),
3. `state` of a running container,
4. creating --list-count containers one after the other, then `list` of them all,
5. the smallest memory limit (swap = limit) at which `run` of `true` still succeeds,
6. the RSS of a created, not yet started, container's init,
7. the extra latency of `run` under podman's default seccomp profile,
8. the window from init's release (the exec fifo's byte read, what `start` does) to the
   container's process running, with podman's profile and with one that denies
   close_range: until execve pid 1 is the runtime, and the kernel drops a TERM sent to it,
9. with two containers running: `list`, `pause`, `resume`, and `exec` of `true` from a
   process.json (as containerd's shim and conmon call it).

The latency sections (1-4, 9) run in --rounds rounds, the runtimes alternating, so that a
machine whose load changes during the run weighs on both alike.  Each pyruntime call runs
with PYRUNTIME_TRACE (pyruntime/trace.py): its phase marks give a per-verb breakdown
(interpreter start, imports, argument parsing, config parse and validation, cgroups, state
files, init from fork to exec, the container's own run, teardown, exit) printed beside the
totals and runc's figure, so that a regression shows which part moved.

Every container gets a relative `linux.cgroupsPath` under one per-run prefix, so its
cgroups land below this process's own cgroup in each hierarchy, never at a hierarchy's
root; the prefix directories are removed at the end.  Containers, state directories and
the bundle are removed even on failure or Ctrl-C.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import errno
import json
import os
import platform
import secrets
import select
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

REPO = Path(__file__).resolve().parents[1]
KIB = 1 << 10
MIB = 1 << 20
MEM_LOW = 1 * MIB
MEM_HIGH = 64 * MIB
MEM_STEP = 256 * KIB
SECCOMP_PROFILE = Path("/usr/share/containers/seccomp.json")
RUNTIMES = ("pyruntime", "runc")

Results = dict[str, dict[str, float | None]]
# the phases of trace.py's marks, in the order the breakdown prints them
PHASES = ("interp", "imports", "cli", "config", "fork", "cgroup", "state", "init", "container",
          "teardown", "verb", "exit", "other")
BREAKDOWN_VERBS = ("run", "create", "start", "state", "kill", "delete", "list", "pause",
                   "resume", "exec")


class BenchError(Exception):
    """A measurement could not be taken (a runtime failed, timed out, said something odd)."""


# -- pure helpers (unit-tested in tests/test_bench_parse.py) ----------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """The q-quantile (0 <= q <= 1) with linear interpolation between closest ranks."""
    if not values:
        raise ValueError("percentile of no values")
    ordered = sorted(values)
    pos = q * (len(ordered) - 1)
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def median(values: Sequence[float]) -> float:
    if not values:
        raise ValueError("median of no values")
    return float(statistics.median(values))


def ns_to_ms(ns: float) -> float:
    return ns / 1e6


def parse_vmrss_kb(status_text: str) -> int:
    """VmRSS in kB from the text of /proc/PID/status."""
    for line in status_text.splitlines():
        if line.startswith("VmRSS:"):
            parts = line.split()
            if len(parts) >= 2 and parts[1].isdigit():
                return int(parts[1])
    raise ValueError("no VmRSS line (kernel thread or exited process?)")


def search_min_limit(works: Callable[[int], bool], low: int = MEM_LOW, high: int = MEM_HIGH,
                     step: int = MEM_STEP) -> int | None:
    """The smallest multiple of `step` in [low, high] for which `works` holds.

    Assumes `works` is monotonic (false below some threshold, true from it on).  None if even
    `high` fails.
    """
    lo, hi = -(-low // step), high // step  # in steps
    if lo > hi or not works(hi * step):
        return None
    if works(lo * step):
        return lo * step
    # invariant: lo fails, hi works
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if works(mid * step):
            hi = mid
        else:
            lo = mid
    return hi * step


def phases_from_trace(text: str, t_spawn: int, t_end: int) -> dict[str, float] | None:
    """Milliseconds per phase of one traced call, from trace.py's line(s) and the times the
    bench spawned and reaped the process; None without a line.

    Each mark ends the phase it names; the time spent importing within a phase is moved to
    `imports`; marks after `container` (a foreground run's delete) count as `teardown`; the
    time after the last mark (flush, interpreter exit, reaping) is `exit`; `verb` is what a
    verb did after its last finer mark (all of the work of those without any).
    """
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if not lines:
        return None
    out: dict[str, float] = {}
    prev_ns, prev_imp = t_spawn, 0
    after_container = False
    for item in lines[-1].split()[1:]:
        name, _, value = item.partition("=")
        ns_text, _, imp_text = value.partition(":")
        ns, imp = int(ns_text), int(imp_text or prev_imp)
        phase = "teardown" if after_container else (name if name in PHASES else "other")
        out[phase] = out.get(phase, 0.0) + ns_to_ms(ns - prev_ns - (imp - prev_imp))
        out["imports"] = out.get("imports", 0.0) + ns_to_ms(imp - prev_imp)
        after_container = after_container or name == "container"
        prev_ns, prev_imp = ns, imp
    out["exit"] = ns_to_ms(t_end - prev_ns)
    return out


def format_breakdown(breakdown: Mapping[str, Sequence[Mapping[str, float]]],
                     totals: Mapping[str, Mapping[str, float | None]]) -> str:
    """One line per verb: runc's and pyruntime's median totals, then pyruntime's median per
    phase (medians of each phase: they need not add up to the total)."""
    verbs = [v for v in BREAKDOWN_VERBS if breakdown.get(v)]
    if not verbs:
        return ""
    cols = [p for p in PHASES if any(p in s for v in verbs for s in breakdown[v])]
    header = ["verb", "runc", "pyrt", *cols]
    rows = []
    for v in verbs:
        rc = totals.get("runc", {}).get(v)
        py = totals.get("pyruntime", {}).get(v)
        cells = [v, _fmt(rc, 1), _fmt(py, 1)]
        for p in cols:
            vals = [s.get(p, 0.0) for s in breakdown[v]]
            cells.append(_fmt(median(vals), 1))
        rows.append(cells)
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["per-verb breakdown (ms, medians; pyruntime's phases from PYRUNTIME_TRACE marks):"]
    for r in [header, *rows]:
        lines.append("  " + r[0].ljust(widths[0]) + " "
                     + " ".join(c.rjust(w) for c, w in zip(r[1:], widths[1:], strict=True)))
    return "\n".join(lines)


def cgroup_dirs(mountinfo: str, proc_cgroup: str, relative: str) -> list[Path]:
    """Where a cgroupsPath `relative` to this process's own cgroups lands, per hierarchy.

    `mountinfo` is the text of /proc/self/mountinfo, `proc_cgroup` of /proc/self/cgroup.
    One path per mounted cgroup (v1) or cgroup2 hierarchy this process is in.
    """
    own_v1: list[tuple[set[str], str]] = []
    own_v2: str | None = None
    for line in proc_cgroup.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        hier_id, controllers, path = parts
        if hier_id == "0" and controllers == "":
            own_v2 = path
        else:
            own_v1.append((set(controllers.split(",")), path))
    out: list[Path] = []
    seen: set[str] = set()
    for line in mountinfo.splitlines():
        fields = line.split()
        if " - " not in line or len(fields) < 5:
            continue
        pre, post = line.split(" - ", 1)
        post_fields = post.split()
        if not post_fields or post_fields[0] not in ("cgroup", "cgroup2"):
            continue
        mount_root, mount_point = pre.split()[3], pre.split()[4]
        own: str | None = None
        if post_fields[0] == "cgroup2":
            own = own_v2
        else:
            opts = set(post_fields[2].split(",")) if len(post_fields) > 2 else set()
            for names, path in own_v1:
                if names & opts:
                    own = path
                    break
        if own is None or mount_point in seen:
            continue
        seen.add(mount_point)
        if mount_root != "/" and (own == mount_root or own.startswith(mount_root + "/")):
            own = own[len(mount_root):]
        mount_point = mount_point.replace("\\040", " ")
        out.append(Path(mount_point) / own.lstrip("/") / relative)
    return out


def convert_seccomp(profile: Mapping[str, Any], caps: Sequence[str]) -> tuple[dict[str, Any], str]:
    """OCI seccomp for this machine from a podman profile, by pyruntime's own converter."""
    from pyruntime.seccomp import containers_profile_to_oci

    result = containers_profile_to_oci(profile, caps=list(caps), machine=platform.machine(),
                                       kernel=platform.release())
    return result, "pyruntime.seccomp.containers_profile_to_oci"


# -- the table --------------------------------------------------------------------------------

# (key, label, unit, decimals)
ROWS: tuple[tuple[str, str, str, int], ...] = (
    ("run_median_ms", "run true, median", "ms", 1),
    ("run_p90_ms", "run true, p90", "ms", 1),
    ("cycle_median_ms", "create..delete cycle, median", "ms", 1),
    ("cycle_create_ms", "  create, median", "ms", 1),
    ("cycle_start_ms", "  start, median", "ms", 1),
    ("cycle_state_ms", "  state, median", "ms", 1),
    ("cycle_kill_ms", "  kill, median", "ms", 1),
    ("cycle_delete_ms", "  delete, median", "ms", 1),
    ("state_median_ms", "state (running), median", "ms", 1),
    ("list2_median_ms", "list of 2 running, median", "ms", 1),
    ("pause_median_ms", "pause, median", "ms", 1),
    ("resume_median_ms", "resume, median", "ms", 1),
    ("exec_median_ms", "exec true (--process), median", "ms", 1),
    ("list_create_total_s", "create N containers, total", "s", 2),
    ("list_median_ms", "list of N created, median", "ms", 1),
    ("min_memory_mib", "min memory limit for run true", "MiB", 2),
    ("init_rss_kb", "created init RSS (VmRSS)", "kB", 0),
    ("seccomp_plain_ms", "run true, no seccomp, median", "ms", 1),
    ("seccomp_run_ms", "run true, podman seccomp, median", "ms", 1),
    ("seccomp_extra_ms", "seccomp extra latency", "ms", 1),
    ("window_podman_ms", "fifo release -> execve, podman seccomp, median", "ms", 2),
    ("window_no_close_range_ms", "fifo release -> execve, close_range denied, median", "ms", 2),
)

# metric key -> highest acceptable pyruntime/runc ratio
TARGETS: dict[str, float] = {"run_median_ms": 1.0, "cycle_median_ms": 1.0,
                             "state_median_ms": 2.0, "list2_median_ms": 1.0,
                             "pause_median_ms": 1.0, "resume_median_ms": 1.0,
                             "exec_median_ms": 1.0, "list_create_total_s": 1.0,
                             "init_rss_kb": 1.0}
# metric key -> highest acceptable pyruntime value (ms), whatever runc's is
ABSOLUTE_TARGETS: dict[str, float] = {"window_podman_ms": 2.0, "window_no_close_range_ms": 2.0}
# allow everything but close_range, as a profile written before close_range existed may
DENY_CLOSE_RANGE: dict[str, Any] = {
    "defaultAction": "SCMP_ACT_ALLOW",
    "syscalls": [{"names": ["close_range"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}],
}


def ratio(results: Results, key: str) -> float | None:
    py = results.get("pyruntime", {}).get(key)
    rc = results.get("runc", {}).get(key)
    if py is None or rc is None or rc <= 0 or py < 0:
        return None
    return py / rc


def _fmt(value: float | None, decimals: int) -> str:
    return "-" if value is None else f"{value:.{decimals}f}"


def format_table(results: Results, list_count: int | None = None) -> str:
    header = ("metric", "pyruntime", "runc", "ratio (py/runc)")
    lines: list[tuple[str, str, str, str]] = []
    for key, label, unit, decimals in ROWS:
        py = results.get("pyruntime", {}).get(key)
        rc = results.get("runc", {}).get(key)
        if py is None and rc is None:
            continue
        if list_count is not None:
            label = label.replace(" N ", f" {list_count} ")
        r = ratio(results, key)
        lines.append((f"{label} [{unit}]", _fmt(py, decimals), _fmt(rc, decimals),
                      "-" if r is None else f"{r:.2f}"))
    widths = [max(len(row[i]) for row in [header, *lines]) for i in range(4)]

    def row(cells: Sequence[str]) -> str:
        first = cells[0].ljust(widths[0])
        rest = [c.rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True)]
        return " | ".join([first, *rest])

    out = [row(header), "-+-".join("-" * w for w in widths)]
    out += [row(cells) for cells in lines]
    return "\n".join(out)


def target_verdicts(results: Results) -> dict[str, dict[str, Any]]:
    verdicts: dict[str, dict[str, Any]] = {}
    for key, limit in TARGETS.items():
        r = ratio(results, key)
        verdicts[key] = {"ratio": r, "target": limit,
                         "met": None if r is None else r <= limit}
    for key, limit in ABSOLUTE_TARGETS.items():
        value = results.get("pyruntime", {}).get(key)
        verdicts[key] = {"value": value, "target": limit,
                         "met": None if value is None else value <= limit}
    return verdicts


def format_targets(verdicts: Mapping[str, Mapping[str, Any]]) -> str:
    names = {"run_median_ms": "run", "cycle_median_ms": "cycle", "state_median_ms": "state",
             "list2_median_ms": "list", "pause_median_ms": "pause", "resume_median_ms": "resume",
             "exec_median_ms": "exec", "list_create_total_s": "creates", "init_rss_kb": "rss"}
    out = ["targets (pyruntime/runc):"]
    for key, v in verdicts.items():
        mark = "n/a" if v["met"] is None else ("met" if v["met"] else "MISSED")
        if "value" in v:
            shown = "-" if v["value"] is None else f"{v['value']:.2f}"
            out.append(f"  {key} {shown} ms <= {v['target']:.1f} ms: {mark}")
            continue
        r = v["ratio"]
        shown = "-" if r is None else f"{r:.2f}"
        out.append(f"  {names.get(key, key):<7} ratio {shown:>6} <= {v['target']:.1f}: {mark}")
    return "\n".join(out)


# -- running the runtimes ---------------------------------------------------------------------


@dataclass
class Call:
    rc: int
    ns: int
    stdout: str
    stderr: str
    phases: dict[str, float] | None = None

    @property
    def ms(self) -> float:
        return ns_to_ms(self.ns)


@dataclass
class Runtime:
    name: str
    path: str
    root: Path
    timeout: float
    ids: set[str] = field(default_factory=set)  # possibly existing containers
    trace: Path | None = None  # pyruntime: where its phase marks go (PYRUNTIME_TRACE)

    def call(self, *args: str, capture: bool = False, timeout: float | None = None) -> Call:
        """Run the runtime once and time it; a timeout counts as rc -1.

        The exit is awaited on a pidfd, not by subprocess's timed wait, which polls with a
        doubling sleep (0.5, 1, 2 ... 50 ms) and so adds up to half a verb's own time to it;
        output goes to files, so no pipe can fill up and stall the runtime."""
        argv = [self.path, "--root", str(self.root), *args]
        env = None
        if self.trace is not None:
            self.trace.unlink(missing_ok=True)
            env = dict(os.environ, PYRUNTIME_TRACE=str(self.trace))
        with tempfile.TemporaryFile() as err, tempfile.TemporaryFile() as out:
            out_to: Any = out if capture else subprocess.DEVNULL
            t0 = time.monotonic_ns()  # trace.py's clock
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out_to, stderr=err,
                                    env=env)
            pidfd = os.pidfd_open(proc.pid)
            try:
                done = select.select([pidfd], [], [], self.timeout if timeout is None else timeout)[0]
            finally:
                os.close(pidfd)
            if done:
                rc = proc.wait()
            else:
                proc.kill()
                proc.wait()
                rc = -1
            t1 = time.monotonic_ns()
            ns = t1 - t0
            out.seek(0)
            stdout = out.read().decode(errors="replace") if capture and rc != -1 else ""
            err.seek(0)
            stderr = err.read().decode(errors="replace")
        if rc == -1:
            stderr = f"timed out after {self.timeout}s; {stderr}"
        phases = None
        if self.trace is not None and self.trace.exists():
            phases = phases_from_trace(self.trace.read_text(), t0, t1)
        return Call(rc, ns, stdout, stderr, phases)

    def ok(self, *args: str, capture: bool = False) -> Call:
        res = self.call(*args, capture=capture)
        if res.rc != 0:
            what = " ".join(args)
            raise BenchError(f"{self.name} {what}: exit {res.rc}: {res.stderr.strip()[-400:]}")
        return res

    def state(self, cid: str) -> dict[str, Any]:
        res = self.ok("state", cid, capture=True)
        try:
            doc = json.loads(res.stdout)
        except json.JSONDecodeError as e:
            raise BenchError(f"{self.name} state {cid}: not JSON ({e})") from None
        if not isinstance(doc, dict):
            raise BenchError(f"{self.name} state {cid}: not an object")
        return doc

    def force_delete(self, cid: str) -> bool:
        res = self.call("delete", "--force", cid, timeout=min(self.timeout, 30.0))
        err = res.stderr.lower()
        if res.rc == 0 or "not exist" in err or "no such" in err or "not found" in err:
            self.ids.discard(cid)
            return True
        return False

    def listed_ids(self) -> set[str]:
        found: set[str] = set()
        if self.root.is_dir():
            found |= {p.name for p in self.root.iterdir() if p.is_dir()}
        res = self.call("list", "-q", capture=True, timeout=30.0)
        if res.rc == 0:
            found |= {line.strip() for line in res.stdout.splitlines() if line.strip()}
        return found

    def version(self) -> str:
        res = self.call("--version", capture=True, timeout=30.0)
        first = res.stdout.strip().splitlines()
        return first[0] if res.rc == 0 and first else f"? (exit {res.rc})"


class ExecEvents:
    """The kernel's proc connector (netlink, root): it timestamps every execve with the
    same clock as time.monotonic_ns(), so a busy machine's scheduling of this process does
    not enter the measurement."""

    NETLINK_CONNECTOR, CN_IDX_PROC, CN_VAL_PROC = 11, 1, 1
    PROC_CN_MCAST_LISTEN, PROC_EVENT_EXEC, NLMSG_DONE = 1, 0x2, 3

    def __enter__(self) -> ExecEvents:
        import socket
        import struct

        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, self.NETLINK_CONNECTOR)
        try:
            self.sock.bind((0, self.CN_IDX_PROC))
            body = struct.pack("=IIIIHHI", self.CN_IDX_PROC, self.CN_VAL_PROC, 0, 0, 4, 0,
                               self.PROC_CN_MCAST_LISTEN)
            self.sock.send(struct.pack("=IHHII", 16 + len(body), self.NLMSG_DONE, 0, 0, 0) + body)
        except OSError:
            self.sock.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.sock.close()

    def exec_ns(self, pid: int, timeout: float) -> int:
        """CLOCK_MONOTONIC time of pid's next execve."""
        import struct

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                break
            off = 0
            while off + 16 <= len(data):
                length = struct.unpack_from("=I", data, off)[0]
                event = off + 16 + 20  # nlmsghdr, cn_msg
                if length >= 16 + 20 + 24:
                    what, _cpu, ts = struct.unpack_from("=IIQ", data, event)
                    if what == self.PROC_EVENT_EXEC:
                        _pid, tgid = struct.unpack_from("=ii", data, event + 16)
                        if tgid == pid:
                            return int(ts)
                off += (length + 3) & ~3 or len(data)
        raise BenchError(f"no execve of pid {pid} within {timeout}s")


def release_to_exec_ms(fifo: Path, pid: int, comm: str, timeout: float = 5.0) -> float:
    """Do what `start` does (open the exec fifo, read init's byte) and time until init's
    execve: by the kernel's exec event where there is one, else by polling pid's command
    (which a loaded machine inflates)."""
    try:
        events: ExecEvents | None = ExecEvents().__enter__()
    except OSError:
        events = None
    try:
        t0 = time.monotonic_ns()
        fd = os.open(fifo, os.O_RDONLY | os.O_CLOEXEC)  # init was blocked opening it to write
        try:
            if not os.read(fd, 1):
                raise BenchError(f"{fifo}: init exited without writing")
        finally:
            os.close(fd)
        if events is not None:
            return ns_to_ms(events.exec_ns(pid, timeout) - t0)
        want = comm.encode()
        deadline = t0 + int(timeout * 1e9)
        while True:
            try:
                with open(f"/proc/{pid}/comm", "rb") as f:
                    if f.read().strip() == want:
                        return ns_to_ms(time.monotonic_ns() - t0)
            except FileNotFoundError:
                raise BenchError(f"pid {pid} exited before running {comm}") from None
            if time.monotonic_ns() > deadline:
                raise BenchError(f"pid {pid} did not run {comm} within {timeout}s")
    finally:
        if events is not None:
            events.__exit__()


def wait_exit(pid: int, timeout: float = 10.0) -> None:
    """Until pid is gone or a zombie (the runtime sees it stopped then)."""
    deadline = time.monotonic() + timeout
    stat = Path(f"/proc/{pid}/stat")
    while time.monotonic() < deadline:
        try:
            text = stat.read_text()
        except (FileNotFoundError, ProcessLookupError):
            return
        if text.rsplit(")", 1)[-1].split()[0] in ("Z", "X"):
            return
        time.sleep(0.0005)
    raise BenchError(f"pid {pid} still alive {timeout}s after SIGKILL")


class Bench:
    def __init__(self, args: argparse.Namespace, work: Path) -> None:
        self.args = args
        self.work = work
        self.bundle = work / "bundle"
        self.config: dict[str, Any] = {}
        self.prefix = f"pyruntime-bench-{os.getpid()}-{secrets.token_hex(3)}"
        self.runtimes: list[Runtime] = []
        self.results: Results = {}
        # runtime -> key -> raw samples of the round-robin sections (medians at the end)
        self.samples: dict[str, dict[str, list[float]]] = {}
        # verb -> pyruntime's phases of each traced call
        self.breakdown: dict[str, list[dict[str, float]]] = {}
        self.errors: dict[str, dict[str, str]] = {}
        self.meta: dict[str, Any] = {}
        self._counter = 0
        self._seccomp: dict[str, Any] | None = None
        self.t0 = time.monotonic()

    def log(self, msg: str) -> None:
        if not self.args.quiet:
            print(f"[bench {time.monotonic() - self.t0:6.1f}s] {msg}", file=sys.stderr,
                  flush=True)

    # -- the bundle ---------------------------------------------------------------------------

    def build_bundle(self) -> None:
        script = REPO / "bundles" / "busybox.sh"
        bash = shutil.which("bash") or "/bin/bash"
        env = dict(os.environ, PYRUNTIME=self.args.pyruntime)
        proc = subprocess.run([bash, str(script), str(self.bundle), "true"], env=env,
                              capture_output=True, text=True, check=False, timeout=120)
        fallback = False
        if proc.returncode != 0:
            self.log(f"busybox.sh with pyruntime spec failed ({proc.stderr.strip()[-200:]}); "
                     "retrying with runc spec")
            env["PYRUNTIME"] = self.args.runc
            proc = subprocess.run([bash, str(script), str(self.bundle), "true"], env=env,
                                  capture_output=True, text=True, check=False, timeout=120)
            if proc.returncode != 0:
                raise BenchError(f"busybox.sh failed: {proc.stderr.strip()[-400:]}")
            fallback = True
        config = json.loads((self.bundle / "config.json").read_text())
        config.setdefault("process", {})["terminal"] = False
        config["process"]["args"] = ["true"]
        if fallback:
            config.setdefault("root", {})["readonly"] = False
        config.setdefault("linux", {})
        self.config = config
        self.meta["spec_from"] = "runc spec" if fallback else "pyruntime spec"

    def caps(self) -> list[str]:
        caps = (self.config.get("process", {}).get("capabilities") or {}).get("effective")
        return list(caps or [])

    def new_id(self, rt: Runtime, tag: str) -> str:
        self._counter += 1
        cid = f"bench-{os.getpid()}-{tag}-{self._counter}"
        rt.ids.add(cid)
        return cid

    def prepare(self, rt: Runtime, cid: str, args: Sequence[str], *, memory: int | None = None,
                seccomp: bool = False) -> None:
        """Write the bundle's config.json for one container (outside any timed section)."""
        cfg = json.loads(json.dumps(self.config))
        cfg["process"]["args"] = list(args)
        linux = cfg["linux"]
        linux["cgroupsPath"] = f"{self.prefix}/{rt.name}-{cid}"
        if memory is not None:
            linux.setdefault("resources", {})["memory"] = {"limit": memory, "swap": memory}
        if seccomp:
            linux["seccomp"] = self.seccomp_profile()
        else:
            linux.pop("seccomp", None)
        path = self.bundle / "config.json"
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(cfg, indent=1))
        os.replace(tmp, path)

    def seccomp_profile(self) -> dict[str, Any]:
        if self._seccomp is None:
            profile = json.loads(self.args.seccomp_profile.read_text())
            self._seccomp, how = convert_seccomp(profile, self.caps())
            self.meta["seccomp_converter"] = how
            self.meta["seccomp_rules"] = len(self._seccomp.get("syscalls") or ())
        return self._seccomp

    # -- the measurements -----------------------------------------------------------------------

    def put(self, rt: Runtime, **values: float | None) -> None:
        self.results.setdefault(rt.name, {}).update(values)

    def sample(self, rt: Runtime, key: str, res: Call | float) -> None:
        """One sample of `key`; a traced call's phases go to the breakdown of verb `key`."""
        if isinstance(res, Call):
            if res.phases is not None and key in BREAKDOWN_VERBS:
                self.breakdown.setdefault(key, []).append(res.phases)
            value = res.ms
        else:
            value = res
        self.samples.setdefault(rt.name, {}).setdefault(key, []).append(value)

    def finish_samples(self) -> None:
        """The round-robin sections' medians into the results table."""
        keys = {"run": "run_median_ms", "cycle": "cycle_median_ms", "create": "cycle_create_ms",
                "start": "cycle_start_ms", "kill": "cycle_kill_ms", "delete": "cycle_delete_ms",
                "cycle_state": "cycle_state_ms", "state": "state_median_ms",
                "list": "list2_median_ms", "pause": "pause_median_ms",
                "resume": "resume_median_ms", "exec": "exec_median_ms"}
        for name, by_key in self.samples.items():
            out = self.results.setdefault(name, {})
            for key, values in by_key.items():
                if key in keys and values:
                    out[keys[key]] = median(values)
            if by_key.get("run"):
                out["run_p90_ms"] = percentile(by_key["run"], 0.9)

    def verb_totals(self) -> dict[str, dict[str, float | None]]:
        """Median wall time per verb of the breakdown, per runtime."""
        out: dict[str, dict[str, float | None]] = {}
        for name, by_key in self.samples.items():
            for verb in BREAKDOWN_VERBS:
                vals = by_key.get(verb, []) + (by_key.get("cycle_state", []) if verb == "state" else [])
                out.setdefault(name, {})[verb] = median(vals) if vals else None
        return out

    def run_true(self, rt: Runtime, tag: str, *, seccomp: bool = False,
                 memory: int | None = None) -> Call:
        cid = self.new_id(rt, tag)
        self.prepare(rt, cid, ["true"], seccomp=seccomp, memory=memory)
        res = rt.call("run", "--bundle", str(self.bundle), cid)
        if res.rc == 0:
            rt.ids.discard(cid)  # run (without --detach/--keep) deletes it
        else:
            rt.force_delete(cid)
        return res

    def warm_up(self, rt: Runtime) -> None:
        res = self.run_true(rt, "warm")
        if res.rc != 0:
            raise BenchError(f"{rt.name} run true: exit {res.rc}: {res.stderr.strip()[-400:]}")

    def bench_run(self, rt: Runtime, n: int) -> None:
        for _ in range(n):
            res = self.run_true(rt, "run")
            if res.rc != 0:
                raise BenchError(f"run: exit {res.rc}: {res.stderr.strip()[-400:]}")
            self.sample(rt, "run", res)

    def start_sleeper(self, rt: Runtime, tag: str, *, start: bool = True) -> tuple[str, int]:
        cid = self.new_id(rt, tag)
        self.prepare(rt, cid, ["sleep", "100"])
        rt.ok("create", "--bundle", str(self.bundle), cid)
        if start:
            rt.ok("start", cid)
        pid = rt.state(cid).get("pid")
        if not isinstance(pid, int) or pid <= 0:
            raise BenchError(f"state {cid}: no pid")
        return cid, pid

    def bench_cycle(self, rt: Runtime, n: int) -> None:
        for _ in range(n):
            cid = self.new_id(rt, "cycle")
            self.prepare(rt, cid, ["sleep", "100"])
            t0 = time.perf_counter_ns()
            self.sample(rt, "create", rt.ok("create", "--bundle", str(self.bundle), cid))
            self.sample(rt, "start", rt.ok("start", cid))
            res = rt.ok("state", cid, capture=True)
            self.sample(rt, "cycle_state", res.ms)
            state = json.loads(res.stdout)
            if state.get("status") != "running":
                raise BenchError(f"state after start: status {state.get('status')!r}")
            self.sample(rt, "kill", rt.ok("kill", cid, "KILL"))
            wait_exit(int(state["pid"]))
            self.sample(rt, "delete", rt.ok("delete", cid))
            self.sample(rt, "cycle", ns_to_ms(time.perf_counter_ns() - t0))
            rt.ids.discard(cid)

    def bench_state(self, rt: Runtime, n: int) -> None:
        cid, _ = self.start_sleeper(rt, "state")
        try:
            for i in range(n):
                res = rt.ok("state", cid, capture=True)
                if i == 0 and json.loads(res.stdout).get("status") != "running":
                    raise BenchError("state: container not running")
                self.sample(rt, "state", res)
        finally:
            rt.force_delete(cid)

    def bench_verbs(self, rt: Runtime, n: int) -> None:
        """With two containers running: list, pause, resume, and exec of `true` from a
        process.json, as containerd's shim and conmon call it."""
        ids: list[str] = []
        try:
            for _ in range(2):
                ids.append(self.start_sleeper(rt, "verbs")[0])
            proc = dict(self.config["process"], args=["true"], terminal=False)
            proc_file = self.work / f"process-{rt.name}.json"
            proc_file.write_text(json.dumps(proc))
            for i in range(n):
                res = rt.ok("list", capture=True)
                if i == 0 and not all(c in res.stdout for c in ids):
                    raise BenchError("list misses a running container")
                self.sample(rt, "list", res)
                self.sample(rt, "pause", rt.ok("pause", ids[0]))
                self.sample(rt, "resume", rt.ok("resume", ids[0]))
                self.sample(rt, "exec", rt.ok("exec", "--process", str(proc_file), ids[1]))
        finally:
            self.delete_all(rt, ids)

    def bench_list(self, rt: Runtime) -> None:
        count = self.args.list_count
        ids: list[str] = []
        times: list[float] = []
        total = 0
        try:
            for _ in range(count):
                cid = self.new_id(rt, "list")
                self.prepare(rt, cid, ["sleep", "100"])
                ids.append(cid)
                total += rt.ok("create", "--bundle", str(self.bundle), cid).ns
            for i in range(self.args.list_iterations):
                res = rt.ok("list", capture=True)
                if i == 0:
                    missing = [c for c in ids if c not in res.stdout]
                    if missing:
                        raise BenchError(f"list misses {len(missing)} of {count} containers")
                times.append(res.ms)
        finally:
            self.delete_all(rt, ids)
        self.put(rt, list_create_total_s=total / 1e9, list_median_ms=median(times))

    def delete_all(self, rt: Runtime, ids: Iterable[str]) -> None:
        todo = [c for c in ids if c in rt.ids]
        if not todo:
            return
        with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(rt.force_delete, todo))

    def bench_memory(self, rt: Runtime) -> None:
        probes: list[str] = []

        def works(limit: int) -> bool:
            res = self.run_true(rt, "mem", memory=limit)
            probes.append(f"{limit // KIB}KiB:{'ok' if res.rc == 0 else 'fail'}")
            return res.rc == 0

        found = search_min_limit(works)
        self.meta.setdefault("memory_probes", {})[rt.name] = probes
        if found is None:
            raise BenchError(f"run true fails even at {MEM_HIGH // MIB} MiB")
        self.put(rt, min_memory_mib=found / MIB)

    def bench_rss(self, rt: Runtime) -> None:
        samples: list[float] = []
        for _ in range(3):
            cid, pid = self.start_sleeper(rt, "rss", start=False)
            try:
                samples.append(parse_vmrss_kb(Path(f"/proc/{pid}/status").read_text()))
            finally:
                rt.force_delete(cid)
        self.put(rt, init_rss_kb=median(samples))

    def bench_seccomp(self, rt: Runtime) -> None:
        self.seccomp_profile()
        plain: list[float] = []
        filtered: list[float] = []
        for _ in range(self.args.seccomp_iterations):
            for seccomp, into in ((False, plain), (True, filtered)):
                res = self.run_true(rt, "sc" if seccomp else "nosc", seccomp=seccomp)
                if res.rc != 0:
                    what = "with" if seccomp else "without"
                    raise BenchError(f"run {what} seccomp: exit {res.rc}: "
                                     f"{res.stderr.strip()[-400:]}")
                into.append(res.ms)
        self.put(rt, seccomp_plain_ms=median(plain), seccomp_run_ms=median(filtered),
                 seccomp_extra_ms=median(filtered) - median(plain))

    def bench_window(self, rt: Runtime) -> None:
        profiles: dict[str, dict[str, Any]] = {"window_no_close_range_ms": DENY_CLOSE_RANGE}
        if self.args.seccomp:
            profiles["window_podman_ms"] = self.seccomp_profile()
        for key, profile in profiles.items():
            times: list[float] = []
            for _ in range(self.args.seccomp_iterations):
                cid = self.new_id(rt, "win")
                self.prepare(rt, cid, ["sleep", "100"])
                cfg = json.loads((self.bundle / "config.json").read_text())
                cfg["linux"]["seccomp"] = profile
                cfg["process"]["noNewPrivileges"] = True  # the filter loads after the release
                (self.bundle / "config.json").write_text(json.dumps(cfg))
                rt.ok("create", "--bundle", str(self.bundle), cid)
                try:
                    pid = int(rt.state(cid)["pid"])
                    times.append(release_to_exec_ms(rt.root / cid / "exec.fifo", pid, "sleep"))
                finally:
                    rt.force_delete(cid)
            self.put(rt, **{key: median(times)})

    # -- driving ---------------------------------------------------------------------------------

    def round_robin(self) -> list[tuple[str, Callable[[Runtime, int], None], int]]:
        """Sections measured in rounds, the runtimes alternating: (name, fn, iterations)."""
        out = [("run", self.bench_run, self.args.iterations),
               ("cycle", self.bench_cycle, self.args.iterations),
               ("state", self.bench_state, self.args.state_iterations),
               ("verbs", self.bench_verbs, self.args.iterations)]
        return [s for s in out if self.wanted(s[0])]

    def wanted(self, section: str) -> bool:
        return not self.args.sections or section in self.args.sections

    def sections(self) -> list[tuple[str, Callable[[Runtime], None]]]:
        out: list[tuple[str, Callable[[Runtime], None]]] = []
        if self.args.list and self.args.list_count > 0:
            out.append(("list", self.bench_list))
        out += [("memory", self.bench_memory), ("rss", self.bench_rss)]
        if self.args.seccomp:
            out.append(("seccomp", self.bench_seccomp))
        out.append(("window", self.bench_window))
        return [s for s in out if self.wanted(s[0])]

    def measure(self) -> None:
        self.build_bundle()
        broken: set[str] = set()
        for rt in self.runtimes:
            self.meta.setdefault("versions", {})[rt.name] = rt.version()
            try:
                self.warm_up(rt)
            except BenchError as e:
                self.errors.setdefault(rt.name, {})["warm-up"] = str(e)
                broken.add(rt.name)
                self.log(f"{rt.name}: cannot run a container, skipping it: {e}")
        rounds = max(1, self.args.rounds)
        for section, rr_fn, total in self.round_robin():
            for k in range(rounds):
                n = total // rounds + (1 if k < total % rounds else 0)
                order = self.runtimes if k % 2 == 0 else self.runtimes[::-1]
                for rt in order:
                    if rt.name in broken or n == 0 or section in self.errors.get(rt.name, {}):
                        continue
                    self.log(f"{section} (round {k + 1}/{rounds}): {rt.name}")
                    try:
                        rr_fn(rt, n)
                    except (BenchError, OSError, ValueError, KeyError) as e:
                        self.errors.setdefault(rt.name, {})[section] = f"{type(e).__name__}: {e}"
                        self.log(f"{section}: {rt.name} failed: {e}")
        self.finish_samples()
        for section, fn in self.sections():
            for rt in self.runtimes:
                if rt.name in broken:
                    continue
                self.log(f"{section}: {rt.name}")
                try:
                    fn(rt)
                except (BenchError, OSError, ValueError, KeyError) as e:
                    self.errors.setdefault(rt.name, {})[section] = f"{type(e).__name__}: {e}"
                    self.log(f"{section}: {rt.name} failed: {e}")

    def cleanup(self) -> list[str]:
        """Delete every container, then the state dirs, cgroups and the work dir."""
        problems: list[str] = []
        for rt in self.runtimes:
            if not rt.root.exists():
                rt.ids.clear()  # never got as far as creating anything
                continue
            try:
                rt.ids |= rt.listed_ids()
            except OSError as e:
                problems.append(f"{rt.name}: listing containers: {e}")
            if rt.ids:
                self.log(f"cleanup: deleting {len(rt.ids)} {rt.name} container(s)")
                self.delete_all(rt, set(rt.ids))
                for cid in sorted(rt.ids):  # a second, one-at-a-time try
                    rt.force_delete(cid)
            try:
                still = rt.ids | rt.listed_ids()
            except OSError:
                still = set(rt.ids)
            if still:
                problems.append(f"{rt.name}: could not delete {', '.join(sorted(still))}")
        problems += self.remove_cgroups()
        for rt in self.runtimes:
            shutil.rmtree(rt.root, ignore_errors=True)
        shutil.rmtree(self.work, ignore_errors=True)
        if self.work.exists():
            problems.append(f"could not remove {self.work}")
        return problems

    def remove_cgroups(self) -> list[str]:
        problems: list[str] = []
        try:
            dirs = cgroup_dirs(Path("/proc/self/mountinfo").read_text(),
                               Path("/proc/self/cgroup").read_text(), self.prefix)
        except OSError as e:
            return [f"finding cgroups: {e}"]
        for top in dirs:
            if not top.is_dir():
                continue
            for dirpath, _, _ in sorted(os.walk(top, topdown=False),
                                        key=lambda w: -len(Path(w[0]).parts)):
                err = _rmdir_cgroup(Path(dirpath))
                if err:
                    problems.append(err)
        return problems


def _rmdir_cgroup(path: Path) -> str | None:
    """rmdir one of our cgroups; SIGKILL what still runs in it (only ours live there)."""
    for attempt in range(50):
        try:
            path.rmdir()
            return None
        except FileNotFoundError:
            return None
        except OSError as e:
            if e.errno != errno.EBUSY:
                return f"rmdir {path}: {e}"
        if attempt % 10 == 0:
            for name in ("cgroup.procs", "tasks"):
                with contextlib.suppress(OSError, ValueError):
                    for pid in Path(path, name).read_text().split():
                        with contextlib.suppress(ProcessLookupError, PermissionError):
                            os.kill(int(pid), signal.SIGKILL)
        time.sleep(0.02)
    return f"rmdir {path}: still busy"


# -- main -------------------------------------------------------------------------------------


def _abs_runtime(given: str | None, default: str) -> str:
    cand = given or default
    found = cand if os.sep in cand else shutil.which(cand)
    if not found or not os.access(found, os.X_OK):
        raise SystemExit(f"bench: runtime {cand!r} not found or not executable")
    return str(Path(found).absolute())


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--iterations", "-n", type=int, default=20,
                   help="run and cycle iterations (default 20)")
    p.add_argument("--state-iterations", type=int, default=50, help="default 50")
    p.add_argument("--rounds", type=int, default=4,
                   help="the latency sections in this many rounds, runtimes alternating (default 4)")
    p.add_argument("--list", action=argparse.BooleanOptionalAction, default=True,
                   help="measure create+list of many containers (default on)")
    p.add_argument("--list-count", type=int, default=100,
                   help="containers created for the list test (default 100)")
    p.add_argument("--list-iterations", type=int, default=10, help="default 10")
    p.add_argument("--seccomp", action=argparse.BooleanOptionalAction, default=True,
                   help="measure run with podman's seccomp profile (default on)")
    p.add_argument("--seccomp-iterations", type=int, default=None,
                   help="runs each with and without seccomp (default: half --iterations)")
    p.add_argument("--seccomp-profile", type=Path, default=SECCOMP_PROFILE)
    p.add_argument("--pyruntime", default=None,
                   help="default: .venv/bin/pyruntime of this checkout")
    p.add_argument("--runc", default=None, help="default: runc from PATH")
    p.add_argument("--only", choices=RUNTIMES, action="append",
                   help="measure only this runtime (repeatable)")
    p.add_argument("--timeout", type=float, default=60.0,
                   help="seconds one runtime invocation may take (default 60)")
    p.add_argument("--json", type=Path, metavar="FILE", help="also save the results here")
    p.add_argument("--strict", nargs="*", metavar="TARGET", default=None,
                   help="exit 2 if a target is missed (only these, if named: e.g. "
                        "state_median_ms)")
    p.add_argument("--sections", nargs="+", metavar="SECTION",
                   choices=("run", "cycle", "state", "verbs", "list", "memory", "rss", "seccomp",
                            "window"),
                   help="measure only these sections (default: all)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress on stderr")
    args = p.parse_args(argv)
    if args.iterations < 1 or args.state_iterations < 1 or args.list_iterations < 1:
        p.error("iteration counts must be at least 1")
    if args.seccomp_iterations is None:
        args.seccomp_iterations = max(3, args.iterations // 2)
    if args.seccomp and not args.seccomp_profile.is_file():
        print(f"bench: {args.seccomp_profile} missing; skipping the seccomp test",
              file=sys.stderr)
        args.seccomp = False
    return args


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


@contextlib.contextmanager
def _signals_ignored() -> Iterator[None]:
    sigs = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    old = {s: signal.signal(s, signal.SIG_IGN) for s in sigs}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if os.geteuid() != 0:
        print("bench: must run as root", file=sys.stderr)
        return 1
    args.pyruntime = _abs_runtime(args.pyruntime, str(REPO / ".venv" / "bin" / "pyruntime"))
    args.runc = _abs_runtime(args.runc, "runc")
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGHUP, _interrupt)

    work = Path(tempfile.mkdtemp(prefix="pyruntime-bench."))
    bench = Bench(args, work)
    for name in RUNTIMES:
        if args.only and name not in args.only:
            continue
        path = args.pyruntime if name == "pyruntime" else args.runc
        bench.runtimes.append(Runtime(name, path, work / f"root-{name}", args.timeout,
                                      trace=work / "trace" if name == "pyruntime" else None))
    bench.meta.update({
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "kernel": platform.release(),
        "machine": platform.machine(), "cgroup_prefix": bench.prefix,
        "iterations": args.iterations, "state_iterations": args.state_iterations,
        "list_count": args.list_count if args.list else 0,
        "seccomp_iterations": args.seccomp_iterations if args.seccomp else 0,
        "paths": {rt.name: rt.path for rt in bench.runtimes},
    })
    interrupted = False
    problems: list[str] = []
    t_start = time.monotonic()
    try:
        bench.measure()
    except KeyboardInterrupt:
        interrupted = True
        print("\nbench: interrupted; cleaning up", file=sys.stderr)
    except BenchError as e:
        bench.errors.setdefault("bench", {})["setup"] = str(e)
        print(f"bench: {e}", file=sys.stderr)
    finally:
        with _signals_ignored():
            problems = bench.cleanup()
    bench.meta["elapsed_s"] = round(time.monotonic() - t_start, 1)

    verdicts = target_verdicts(bench.results)
    print()
    print(format_table(bench.results, args.list_count if args.list else None))
    breakdown = format_breakdown(bench.breakdown, bench.verb_totals())
    if breakdown:
        print()
        print(breakdown)
    print()
    print(format_targets(verdicts))
    for name, errs in bench.errors.items():
        for section, msg in errs.items():
            print(f"error: {name} {section}: {msg}")
    for msg in problems:
        print(f"cleanup: {msg}", file=sys.stderr)
    print(f"\n({bench.meta['elapsed_s']} s; versions: "
          + "; ".join(f"{k}: {v}" for k, v in bench.meta.get("versions", {}).items()) + ")")
    if args.json:
        doc = {"meta": bench.meta, "results": bench.results, "targets": verdicts,
               "breakdown": bench.breakdown,
               "errors": bench.errors, "cleanup_problems": problems, "interrupted": interrupted}
        args.json.write_text(json.dumps(doc, indent=2) + "\n")
    if interrupted:
        return 130
    if bench.errors or problems:
        return 1
    if args.strict is not None and any(v["met"] is False for k, v in verdicts.items()
                                       if not args.strict or k in args.strict):
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
