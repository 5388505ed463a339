"""Container verbs of dockee-shim: run, create, start, ps, logs, exec, stop, kill, rm, commit, ...

Thin: each verb parses docker's flags (and the seeds' spellings: --image, --it, -idt, --cpu,
--cpuset, --memory, -k, and Go-style single-dash long flags such as -cpuset 0) and hands over to
lifecycle.Engine; the work lives there and in bundle/overlay/containers/monitor/runtime.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import re
import shlex
import shutil
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from pyruntime.dockee import bundle as bundlemod
from pyruntime.dockee import logs as logsmod
from pyruntime.dockee import overlay
from pyruntime.dockee.containers import human_duration, status_text
from pyruntime.dockee.errors import Conflict, DockeeError, NotFound, StateError
from pyruntime.dockee.lifecycle import Engine
from pyruntime.dockee.network.attach import DEFAULT_NETWORK
from pyruntime.dockee.runtime import RuntimeFailure
from pyruntime.dockee.volumes import Volumes


def engine(ctx: click.Context) -> Engine:
    o = ctx.obj
    return Engine(o.store, o.runtime, o.runtime_root)


# ---- run / create flags ---------------------------------------------------------------------

# Go's flag package (the seeds' dockee) accepts single-dash long flags: -cpuset 0 -cpu 20
_SINGLE_DASH = {"-cpuset", "-cpu", "-cpus", "-image", "-name", "-net", "-memory", "-network",
                "-rm", "-env", "-volume", "-hostname", "-workdir", "-user", "-entrypoint"}
_VALUE_OPTS = {"--name", "-e", "--env", "--env-file", "-v", "--volume", "-w", "--workdir", "-u", "--user",
               "--hostname", "-h", "--entrypoint", "-m", "--memory", "--memory-swap", "--cpus", "--cpu",
               "--cpu-shares", "-c", "--cpuset-cpus", "--cpuset", "--pids-limit", "--cap-add", "--cap-drop",
               "--net", "--network", "--ip", "-p", "--publish", "--add-host", "--image", "--cgroup-parent",
               "--runtime", "--ulimit", "--tmpfs", "--shm-size", "-l", "--label", "--pid", "--ipc", "--restart",
               "--device"}


def rewrite_seed_args(args: list[str]) -> list[str]:
    """`-cpuset 0` -> `--cpuset 0`, only among the options (never in the container's command)."""
    out: list[str] = []
    i = 0
    while i < len(args):
        a = args[i]
        if a == "--" or not a.startswith("-") or a == "-":
            out.extend(args[i:])
            break
        if a.split("=", 1)[0] in _SINGLE_DASH:
            a = "-" + a
        out.append(a)
        if a in _VALUE_OPTS and i + 1 < len(args):
            out.append(args[i + 1])
            i += 1
        i += 1
    return out


class RunCommand(click.Command):
    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        return super().parse_args(ctx, rewrite_seed_args(list(args)))


def run_options(f: Callable[..., Any]) -> Callable[..., Any]:
    opts = [
        click.option("-i", "--interactive", is_flag=True, help="keep stdin open"),
        click.option("-t", "--tty", is_flag=True, help="allocate a terminal"),
        click.option("--it", "it", is_flag=True, hidden=True, help="-i -t (the seeds' spelling)"),
        click.option("--rm", is_flag=True, help="remove the container when it exits"),
        click.option("--name", help="the container's name"),
        click.option("-e", "--env", multiple=True, help="K=V (or K: the host's value)"),
        click.option("--env-file", multiple=True, type=click.Path(), help="a file of K=V lines"),
        click.option("-v", "--volume", multiple=True, help="HOST:CTR[:ro], VOLUME:CTR or CTR"),
        click.option("-w", "--workdir", help="working directory inside the container"),
        click.option("-u", "--user", help="USER[:GROUP] (names or ids)"),
        click.option("--hostname", help="the container's hostname"),
        click.option("--entrypoint", help="override the image's entrypoint"),
        click.option("-m", "--memory", help="memory limit (64m, 1g)"),
        click.option("--memory-swap", help="memory+swap limit, -1 unlimited"),
        click.option("--oom-kill-disable", "-k", "oom_kill_disable", is_flag=True,
                     help="on OOM, pause instead of kill"),
        click.option("--cpus", help="CPUs (0.5 = half a CPU)"),
        click.option("--cpu", "cpu_percent", help="percent of one CPU (the seeds' spelling)"),
        click.option("-c", "--cpu-shares", type=int, help="relative CPU weight"),
        click.option("--cpuset-cpus", "--cpuset", "cpuset", help="CPUs allowed (0-1,3)"),
        click.option("--pids-limit", type=int, help="maximum number of processes"),
        click.option("--read-only", is_flag=True, help="mount the root filesystem read-only"),
        click.option("--cap-add", multiple=True),
        click.option("--cap-drop", multiple=True),
        click.option("--privileged", is_flag=True, help="all capabilities, no seccomp, no masked paths"),
        click.option("--net", "--network", "net", default=None, help="host, none, or a network name"),
        click.option("--ip", help="address on the network"),
        click.option("-p", "--publish", multiple=True, help="HOSTPORT:CTRPORT"),
        click.option("--add-host", multiple=True, help="HOST:IP for /etc/hosts"),
        click.option("--image", "image_opt", help="the image (then every argument is the command)"),
        click.option("--cgroup-parent", help="cgroup the container's cgroup goes under"),
        click.option("--runtime", "runtime_opt", help="the OCI runtime for this container (default: the global one)"),
        click.option("--ulimit", multiple=True, help="NAME=SOFT[:HARD], e.g. nofile=1024:1024"),
        click.option("--tmpfs", multiple=True, help="PATH[:OPTIONS] a tmpfs mount"),
        click.option("--shm-size", help="size of /dev/shm (64m)"),
        click.option("-l", "--label", multiple=True, help="KEY=VALUE metadata"),
        click.option("--pid", "pid_mode", type=click.Choice(["host", "private"]), default=None,
                     help="host: share the host's pid namespace"),
        click.option("--ipc", "ipc_mode", type=click.Choice(["host", "private", "shareable"]), default=None,
                     help="host: share the host's ipc namespace"),
        click.option("--restart", default="no", help="no, always, unless-stopped, on-failure[:N]"),
        click.option("--device", multiple=True, help="HOST[:CONTAINER[:rwm]] a host device"),
        click.option("--init", "use_init", is_flag=True, help="run an init (catatonit) as pid 1 that reaps zombies"),
        click.argument("args", nargs=-1, type=click.UNPROCESSED),
    ]
    for o in reversed(opts):
        f = o(f)
    return f


def _build(ctx: click.Context, kw: dict[str, Any], detach: bool) -> tuple[str, Any, dict[str, Any]]:
    """Parse every flag (all refusals happen here, before anything exists)."""
    args = list(kw["args"])
    if kw["image_opt"]:
        image = kw["image_opt"]
        command = bundlemod.split_command(args)
    else:
        if not args:
            raise DockeeError("run needs an image: dockee-shim run [OPTIONS] IMAGE [COMMAND...]")
        image, command = args[0], bundlemod.split_command(args[1:])
    tty = kw["tty"] or kw["it"]
    stdin = kw["interactive"] or kw["it"]
    flags = bundlemod.RunFlags(command=command, entrypoint=kw["entrypoint"], workdir=kw["workdir"],
                               hostname=kw["hostname"] or "", tty=tty, stdin=stdin, read_only=kw["read_only"],
                               privileged=kw["privileged"], oom_kill_disable=kw["oom_kill_disable"])
    if kw["workdir"] is not None and not kw["workdir"].startswith("/"):
        raise DockeeError(f"invalid value {kw['workdir']!r} for -w: must be an absolute path")
    env: list[str] = []
    for path in kw["env_file"]:
        try:
            with open(path) as f:
                env += bundlemod.parse_env_file(f.read(), dict(os.environ))
        except OSError as e:
            raise DockeeError(f"--env-file {path}: {e.strerror}") from None
    flags.env = env + bundlemod.expand_env(list(kw["env"]), dict(os.environ))
    if kw["memory"] is not None:
        flags.memory = bundlemod.parse_size(kw["memory"], "--memory")
        if flags.memory < 6 * 1024 * 1024:
            raise DockeeError(f"invalid value {kw['memory']!r} for --memory: the minimum is 6m")
    if kw["memory_swap"] is not None:
        flags.memory_swap = bundlemod.parse_swap(kw["memory_swap"])
    if kw["cpus"] is not None and kw["cpu_percent"] is not None:
        raise DockeeError("--cpus and --cpu cannot both be given")
    ncpu = os.cpu_count() or 1
    if kw["cpus"] is not None:
        flags.cpu_quota = bundlemod.parse_cpus(kw["cpus"])
        if flags.cpu_quota > ncpu * bundlemod.CPU_PERIOD:
            raise DockeeError(f"invalid value {kw['cpus']!r} for --cpus: range of CPUs is from 0.01 to "
                              f"{ncpu:.2f}, as there are only {ncpu} CPUs available")
    if kw["cpu_percent"] is not None:
        flags.cpu_quota = bundlemod.parse_cpu_percent(kw["cpu_percent"])
        if flags.cpu_quota > ncpu * bundlemod.CPU_PERIOD:
            raise DockeeError(f"invalid value {kw['cpu_percent']!r} for --cpu: the range is 1 to {ncpu * 100} "
                              f"(percent of one CPU), as there are only {ncpu} CPUs available")
    if kw["cpu_shares"] is not None:
        if kw["cpu_shares"] < 2:
            raise DockeeError(f"invalid value {kw['cpu_shares']} for --cpu-shares: the minimum is 2")
        flags.cpu_shares = kw["cpu_shares"]
    if kw["cpuset"] is not None:
        flags.cpuset_cpus = bundlemod.parse_cpuset(kw["cpuset"])
        online = bundlemod.online_cpus()
        if online is not None:
            missing = bundlemod.cpu_list(flags.cpuset_cpus) - bundlemod.cpu_list(online)
            if missing:
                raise DockeeError(f"--cpuset-cpus: requested CPUs are not available - requested "
                                  f"{flags.cpuset_cpus}, available: {online}")
    if flags.oom_kill_disable and kw["memory"] is None:
        click.echo("WARNING: Disabling the OOM killer on containers without setting a '-m/memory' limit "
                   "may be dangerous.", err=True)
    if kw["pids_limit"] is not None:
        if kw["pids_limit"] == 0 or kw["pids_limit"] < -1:
            raise DockeeError(f"invalid value {kw['pids_limit']} for --pids-limit")
        flags.pids_limit = kw["pids_limit"]
    flags.ulimits = [bundlemod.parse_ulimit(u) for u in kw["ulimit"]]
    flags.devices = [bundlemod.parse_device(d) for d in kw["device"]]
    if kw["use_init"]:
        flags.init_path = next((p for p in (shutil.which("catatonit"), "/usr/libexec/podman/catatonit",
                                            shutil.which("tini-static"), shutil.which("docker-init"))
                                if p and os.access(p, os.X_OK)), None)
        if flags.init_path is None:
            raise DockeeError("--init: no init binary found (apt-get install catatonit)")
    if flags.privileged:  # docker: every host device (losetup, mknod-free mkfs on /dev/loopN, ...)
        given = {d["path"] for d in flags.devices}
        flags.devices += [d for d in bundlemod.host_devices() if d["path"] not in given]
    flags.tmpfs = [bundlemod.parse_tmpfs(t) for t in kw["tmpfs"]]
    if kw["shm_size"] is not None:
        flags.shm_size = bundlemod.parse_size(kw["shm_size"], "--shm-size")
    flags.pid_host = kw["pid_mode"] == "host"
    flags.ipc_host = kw["ipc_mode"] == "host"
    labels = {}
    for lab in kw["label"]:
        k, _, v = lab.partition("=")
        if not k:
            raise DockeeError(f"invalid value {lab!r} for --label: expected KEY=VALUE")
        labels[k] = v
    restart = parse_restart(kw["restart"])
    if restart["Name"] != "no" and kw["rm"]:
        raise DockeeError("conflicting options: --restart and --rm")
    flags.cap_add = [bundlemod.normalize_cap(c, "--cap-add") for c in kw["cap_add"]]
    flags.cap_drop = [bundlemod.normalize_cap(c, "--cap-drop") for c in kw["cap_drop"]]
    bundlemod.resources(flags)  # refuses inconsistent memory/swap now
    net = kw["net"] or DEFAULT_NETWORK
    if net in ("bridge", "default"):
        net = DEFAULT_NETWORK
    if net in ("host", "none") and kw["publish"]:
        raise DockeeError(f"-p cannot be used with --net {net}")
    raw = {"Memory": flags.memory or 0, "MemorySwap": flags.memory_swap or 0,
           "NanoCpus": (flags.cpu_quota or 0) * 10_000, "CpuQuota": flags.cpu_quota or 0,
           "CpuPeriod": bundlemod.CPU_PERIOD if flags.cpu_quota else 0, "CpuShares": flags.cpu_shares or 0,
           "CpusetCpus": flags.cpuset_cpus or "", "PidsLimit": flags.pids_limit or 0,
           "OomKillDisable": flags.oom_kill_disable, "ReadonlyRootfs": flags.read_only,
           "Privileged": flags.privileged, "CapAdd": flags.cap_add, "CapDrop": flags.cap_drop,
           "NetworkMode": net, "AutoRemove": kw["rm"], "Binds": list(kw["volume"]),
           "CgroupParent": kw["cgroup_parent"] or "", "PortBindings": list(kw["publish"]),
           "ExtraHosts": list(kw["add_host"]), "RestartPolicy": restart, "ShmSize": flags.shm_size or 0,
           "PidMode": kw["pid_mode"] or "", "IpcMode": kw["ipc_mode"] or "", "Tmpfs": dict(flags.tmpfs),
           "Ulimits": [{"Name": u.partition("=")[0], "Soft": r["soft"], "Hard": r["hard"]}
                       for u, r in zip(kw["ulimit"], flags.ulimits, strict=True)], "Labels": labels}
    create_kw = dict(name=kw["name"], user_spec=kw["user"], volumes=list(kw["volume"]), rm=kw["rm"],
                     network=net, ip=kw["ip"], ports=list(kw["publish"]), add_hosts=list(kw["add_host"]),
                     cgroup_parent=kw["cgroup_parent"], raw=raw, runtime_name=kw["runtime_opt"])
    return image, flags, create_kw


def parse_restart(value: str) -> dict[str, Any]:
    name, _, count = value.partition(":")
    if name not in ("no", "always", "unless-stopped", "on-failure") or (count and name != "on-failure"):
        raise DockeeError(f"invalid restart policy {value!r}: use no, always, unless-stopped or on-failure[:N]")
    if count and not count.isdigit():
        raise DockeeError(f"invalid restart policy {value!r}: the maximum retry count must be a number")
    return {"Name": name, "MaximumRetryCount": int(count or 0)}


def _run_error(e: DockeeError) -> DockeeError:
    """docker run/create exit 125 for their own failures (an unknown image, a taken name), where
    other verbs exit 1; the container's command failures (126, 127) keep theirs."""
    if isinstance(e, (NotFound, Conflict, StateError)):
        e.exit_code = 125
    return e


@click.command("run", cls=RunCommand, context_settings={"allow_interspersed_args": False},
               help="Run a command in a new container.")
@click.option("-d", "--detach", is_flag=True, help="run in the background and print the id")
@run_options
@click.pass_context
def run(ctx: click.Context, detach: bool, **kw: Any) -> None:
    image, flags, create_kw = _build(ctx, kw, detach)
    eng = engine(ctx)
    try:
        rec = eng.create(image, flags, **create_kw)
    except DockeeError as e:
        raise _run_error(e) from None
    if detach:
        eng.start(rec["id"])
        click.echo(rec["id"])
        return
    code = eng.start(rec["id"], attach=True)
    sys.exit(code)


@click.command("create", cls=RunCommand, context_settings={"allow_interspersed_args": False},
               help="Create a container without starting it; print its id.")
@run_options
@click.pass_context
def create(ctx: click.Context, **kw: Any) -> None:
    image, flags, create_kw = _build(ctx, kw, False)
    try:
        rec = engine(ctx).create(image, flags, **create_kw)
    except DockeeError as e:
        raise _run_error(e) from None
    click.echo(rec["id"])


@click.command("start", help="Start stopped or created containers.")
@click.option("-a", "--attach", is_flag=True, help="attach to its output and return its exit code")
@click.option("-i", "--interactive", is_flag=True, help="attach stdin")
@click.argument("refs", nargs=-1, required=True)
@click.pass_context
def start(ctx: click.Context, attach: bool, interactive: bool, refs: tuple[str, ...]) -> None:
    eng = engine(ctx)
    if attach:
        if len(refs) != 1:
            raise DockeeError("start -a takes one container")
        sys.exit(eng.start(refs[0], attach=True, stdin=interactive or None))
    failed = _each(refs, lambda r: eng.start(r))
    sys.exit(1 if failed else 0)


def _each(refs: tuple[str, ...], fn: Callable[[str], Any], echo: bool = True) -> bool:
    """docker's multi-container verbs: go on after a failure, print each ref done, fail at the end."""
    failed = False
    for ref in refs:
        try:
            fn(ref)
        except DockeeError as e:
            click.echo(f"dockee-shim: {e}", err=True)
            failed = True
            continue
        if echo:
            click.echo(ref)
    return failed


# ---- ps / inspect ---------------------------------------------------------------------------

def _short_cmd(cmd: list[str], width: int = 20) -> str:
    text = " ".join(cmd or [])
    if len(text) > width:
        text = text[:width - 1] + "…"
    return f'"{text}"'


def published(eng: Engine, rec: dict[str, Any]) -> list[dict[str, Any]]:
    """The container's port mappings with the host ports really published (a `-p 80` gets a free
    one at create time): the network's record, else what -p said."""
    from pyruntime.dockee.network.attach import container_network

    net = container_network(eng.store, rec["id"])
    return list(net["ports"]) if net else []


def port_text(m: dict[str, Any]) -> str:
    """docker's PORTS form: 0.0.0.0:8089->80/tcp."""
    return f"{m.get('hostIP') or '0.0.0.0'}:{m['hostPort']}->{m['containerPort']}/{m.get('protocol') or 'tcp'}"


def _ports(eng: Engine, rec: dict[str, Any]) -> str:
    maps = published(eng, rec)
    if not maps:
        return ", ".join(rec.get("ports") or [])
    return ", ".join(port_text(m) for m in maps)


def docker_ports(maps: list[dict[str, Any]]) -> dict[str, list[dict[str, str]]]:
    """inspect's NetworkSettings.Ports: {"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8089"}]}."""
    out: dict[str, list[dict[str, str]]] = {}
    for m in maps:
        out.setdefault(f"{m['containerPort']}/{m.get('protocol') or 'tcp'}", []).append(
            {"HostIp": m.get("hostIP") or "0.0.0.0", "HostPort": str(m["hostPort"])})
    return out


def _row(eng: Engine, rec: dict[str, Any], now: float) -> dict[str, Any]:
    status, code, finished = eng.status(rec)
    return {
        "ID": rec["id"][:12], "Id": rec["id"], "Image": rec.get("image", ""),
        "Command": _short_cmd(rec.get("command") or []),
        "CreatedAt": time.strftime("%Y-%m-%d %H:%M:%S +0000 UTC", time.gmtime(rec.get("created", now))),
        "RunningFor": f"{human_duration(now - rec.get('created', now))} ago",
        "Status": status_text(status, code, rec.get("started_at"), finished, now),
        "State": status, "ExitCode": code if code is not None else 0,
        "Ports": _ports(eng, rec), "Names": rec.get("name", ""),
    }


_TEMPLATE = re.compile(r"\{\{\s*(json\s+)?\.([A-Za-z0-9_.]*)\s*\}\}")


def render_template(tmpl: str, doc: Any) -> str:
    def sub(m: re.Match[str]) -> str:
        value = doc
        for part in filter(None, m.group(2).split(".")):
            if not isinstance(value, dict) or part not in value:
                raise DockeeError(f"--format: no field {m.group(2)!r}")
            value = value[part]
        if m.group(1) or isinstance(value, (dict, list)):
            return json.dumps(value)
        if isinstance(value, bool):
            return "true" if value else "false"
        return str(value)
    rest = _TEMPLATE.sub("", tmpl)
    if "{{" in rest:  # never print an action we do not evaluate as if it were text
        action = rest[rest.index("{{"):].split("}}")[0] + "}}"
        raise DockeeError(f"--format: {action} is not supported (only {{{{.Field.Path}}}} and "
                          "{{json .Field}})")
    return _TEMPLATE.sub(sub, tmpl.replace("\\t", "\t").replace("\\n", "\n"))


@click.command("ps", help="List containers (running ones; -a: all).")
@click.option("-a", "--all", "all_", is_flag=True)
@click.option("-q", "--quiet", is_flag=True, help="ids only")
@click.option("--no-trunc", is_flag=True)
@click.option("--format", "fmt", help="json, table, or a template such as {{.Names}}")
@click.option("-f", "--filter", "filters", multiple=True, help="status=exited, name=web, id=abc, ancestor=busybox")
@click.option("-l", "--latest", is_flag=True, help="only the newest container")
@click.option("-n", "--last", type=int, default=None, help="only the newest N containers")
@click.pass_context
def ps(ctx: click.Context, all_: bool, quiet: bool, no_trunc: bool, fmt: str | None, filters: tuple[str, ...],
       latest: bool, last: int | None) -> None:
    eng = engine(ctx)
    now = time.time()
    rows = []
    wanted: dict[str, list[str]] = {}
    for f in filters:
        key, sep, value = f.partition("=")
        if not sep or key not in ("status", "name", "id", "ancestor"):
            raise DockeeError(f"invalid filter {f!r}: use status=, name=, id= or ancestor=")
        wanted.setdefault(key, []).append(value)
    recs = eng.containers.all()
    if latest or last is not None:
        recs = recs[:1 if latest else max(0, last or 0)]
        all_ = True
    eng.prefetch(recs)
    for rec in recs:
        row = _row(eng, rec, now)
        if not all_ and "status" not in wanted and row["State"] not in ("running", "paused"):
            continue
        if not all(any(_matches(key, v, rec, row) for v in values) for key, values in wanted.items()):
            continue
        if no_trunc:
            row["ID"] = rec["id"]
        rows.append(row)
    if quiet:
        for r in rows:
            click.echo(r["ID"])
        return
    if fmt == "json":
        for r in rows:
            click.echo(json.dumps(r))
        return
    if fmt and fmt.startswith("table") and fmt.strip() != "table":
        for line in format_table(fmt, rows, PS_HEADERS, render_template):
            click.echo(line)
        return
    if fmt and fmt != "table":
        for r in rows:
            click.echo(render_template(fmt, r))
        return
    cols = [("CONTAINER ID", "ID"), ("IMAGE", "Image"), ("COMMAND", "Command"), ("CREATED", "RunningFor"),
            ("STATUS", "Status"), ("PORTS", "Ports"), ("NAMES", "Names")]
    widths = [max([len(h)] + [len(str(r[k])) for r in rows]) for h, k in cols]
    click.echo("   ".join(h.ljust(w) for (h, _), w in zip(cols, widths, strict=True)).rstrip())
    for r in rows:
        click.echo("   ".join(str(r[k]).ljust(w) for (_, k), w in zip(cols, widths, strict=True)).rstrip())


PS_HEADERS = {"ID": "CONTAINER ID", "Id": "CONTAINER ID", "Image": "IMAGE", "Command": "COMMAND",
              "CreatedAt": "CREATED AT", "RunningFor": "CREATED", "Status": "STATUS", "State": "STATE",
              "ExitCode": "EXIT CODE", "Ports": "PORTS", "Names": "NAMES"}


def format_table(fmt: str, rows: list[dict[str, Any]], headers: dict[str, str],
                 render: Callable[[str, Any], str]) -> list[str]:
    """docker's `--format 'table {{.A}}\t{{.B}}'`: a header row of the fields' column names, then
    the rows, tab-separated cells aligned as docker's tabwriter does (3 spaces between)."""
    body = fmt.strip()[len("table"):].strip()
    header = render(body, {k: headers.get(k, k.upper()) for k in {**headers, **(rows[0] if rows else {})}})
    cells = [line.split("\t") for line in [header] + [render(body, r) for r in rows]]
    widths: dict[int, int] = {}
    for row in cells:
        for i, c in enumerate(row[:-1]):
            widths[i] = max(widths.get(i, 0), len(c))
    return ["   ".join(c.ljust(widths[i]) if i < len(row) - 1 else c for i, c in enumerate(row)).rstrip()
            for row in cells]


def _matches(key: str, value: str, rec: dict[str, Any], row: dict[str, Any]) -> bool:
    if key == "status":
        return row["State"] == value
    if key == "name":
        return value in rec.get("name", "")
    if key == "id":
        return str(rec["id"]).startswith(value)
    return rec.get("image") == value or str(rec.get("image_id", "")).startswith(value.removeprefix("sha256:"))


def _iso(t: float | None) -> str:
    if not t:
        return "0001-01-01T00:00:00Z"
    frac = f"{t % 1:.9f}"[1:]
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + frac + "Z"


def container_json(eng: Engine, rec: dict[str, Any]) -> dict[str, Any]:
    status, code, finished = eng.status(rec)
    cdir = eng.containers.dir(rec["id"])
    oom = rec.get("oom_killed") or (status == "exited" and eng.containers.oom_killed(rec["id"]))
    return {
        "Id": rec["id"], "Name": "/" + rec.get("name", ""), "Created": _iso(rec.get("created")),
        "Path": (rec.get("command") or [""])[0], "Args": (rec.get("command") or [])[1:],
        "State": {"Status": status, "Running": status in ("running", "paused"), "Paused": status == "paused",
                  "OOMKilled": bool(oom), "Dead": False,
                  "Pid": rec.get("pid") or 0 if status in ("running", "paused") else 0,
                  "ExitCode": code if code is not None else 0,
                  "StartedAt": _iso(rec.get("started_at")), "FinishedAt": _iso(finished)},
        "Image": f"sha256:{rec.get('image_id', '')}", "ImageName": rec.get("image", ""),
        "LogPath": str(cdir / "ctr.log"),
        "ResolvConfPath": str(cdir / "net" / "resolv.conf") if (cdir / "net" / "resolv.conf").exists() else "",
        "HostnamePath": str(cdir / "hostname") if (cdir / "hostname").exists() else "",
        "RestartCount": int(rec.get("restart_count") or 0),  # docker: restarts by a restart policy only
        "Driver": "overlay", "Platform": "linux",
        "GraphDriver": {"Name": "overlay", "Data": {
            "LowerDir": ":".join(reversed(rec.get("layer_dirs") or [])), "UpperDir": str(cdir / "upper"),
            "WorkDir": str(cdir / "work"), "MergedDir": str(cdir / "merged")}},
        "Mounts": rec.get("volumes") or [],
        "Config": rec.get("config") or {},
        "HostConfig": rec.get("host_config") or {},
        "NetworkSettings": {"Networks": {rec.get("network", ""): network_json(eng, rec)},
                            "IPAddress": rec.get("ip") or "", "Ports": docker_ports(published(eng, rec))},
        "OCIRuntime": rec.get("runtime", ""), "CgroupsPath": rec.get("cgroups_path", ""),
    }


def network_json(eng: Engine, rec: dict[str, Any]) -> dict[str, Any]:
    from pyruntime.dockee.network.attach import container_network

    net = container_network(eng.store, rec["id"]) or {}
    subnet = ""
    with contextlib.suppress(Exception):
        from pyruntime.dockee.network import networks

        subnet = networks.load(eng.store, rec.get("network", "")).subnet
    return {"IPAddress": rec.get("ip") or "", "Gateway": net.get("gateway") or "",
            "IPPrefixLen": int(subnet.split("/")[1]) if "/" in subnet else 0,
            "MacAddress": net.get("mac") or "", "NetworkID": rec.get("network", "")}


@click.command("inspect", help="Show containers (or images) as JSON.")
@click.option("-f", "--format", "fmt", help="a template such as {{.State.ExitCode}}")
@click.option("--type", "kind", type=click.Choice(["container", "image"]), default=None)
@click.argument("refs", nargs=-1, required=True)
@click.pass_context
def inspect(ctx: click.Context, fmt: str | None, kind: str | None, refs: tuple[str, ...]) -> None:
    eng = engine(ctx)
    docs = []
    missing: list[NotFound] = []
    for ref in refs:
        doc: dict[str, Any] | None = None
        if kind != "image":
            try:
                doc = container_json(eng, eng.resolve(ref))
            except NotFound as e:
                if kind == "container":
                    missing.append(e)
                    continue
        if doc is None:
            from pyruntime.dockee.images import ImageStore

            images = ImageStore(ctx.obj.store)
            try:
                doc = images.inspect(images.resolve(ref))
            except NotFound:
                missing.append(NotFound(f"no such object: {ref}"))
                continue
        docs.append(doc)
    # docker prints what it found, then an error line per missing ref, exit 1
    if fmt:
        for d in docs:
            click.echo(render_template(fmt, d))
    else:
        click.echo(json.dumps(docs, indent=4))
    if missing:
        for err in missing[:-1]:
            click.echo(f"dockee-shim: {err}", err=True)
        raise missing[-1]


# ---- logs -----------------------------------------------------------------------------------

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h)$")


def parse_log_time(value: str, flag: str) -> float:
    """docker's --since/--until: a duration ago (90s, 10m, 1.5h), Unix seconds, or an RFC 3339 time."""
    import datetime

    m = _DURATION.match(value)
    if m:
        return time.time() - float(m.group(1)) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[m.group(2)]
    with contextlib.suppress(ValueError):
        return float(value)
    try:
        dt = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise DockeeError(f"invalid value {value!r} for {flag}: a duration (10m), Unix seconds or "
                          "a time such as 2024-01-02T15:04:05Z") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=datetime.UTC)
    return dt.timestamp()


def entry_time(ts: str) -> float:
    """conmon's 2024-01-02T15:04:05.123456789+00:00 (nanoseconds) -> Unix seconds."""
    import datetime

    head, dot, rest = ts.partition(".")
    if dot:
        digits = "".join(c for c in rest if c.isdigit())
        ts = f"{head}.{digits[:6]}{rest[len(digits):]}"
    try:
        return datetime.datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0


def _emit_raw(e: logsmod.Entry, timestamps: bool) -> None:
    stream = sys.stdout.buffer if e.stream == "stdout" else sys.stderr.buffer
    if timestamps:  # docker prints UTC as Z; conmon writes +00:00
        ts = e.time[:-6] + "Z" if e.time.endswith("+00:00") else e.time
        stream.write(ts.encode() + b" ")
    stream.write(e.data)
    stream.flush()


@click.command("logs", help="Show a container's output (foreground and detached runs alike).")
@click.option("-f", "--follow", is_flag=True)
@click.option("-n", "--tail", default="all", help="number of lines from the end")
@click.option("-t", "--timestamps", is_flag=True)
@click.option("--since", help="only entries since a time (RFC 3339, Unix seconds) or a duration ago (10m)")
@click.option("--until", help="only entries before a time or a duration ago")
@click.argument("ref")
@click.pass_context
def logs(ctx: click.Context, follow: bool, tail: str, timestamps: bool, since: str | None, until: str | None,
         ref: str) -> None:
    eng = engine(ctx)
    lo = parse_log_time(since, "--since") if since else None
    hi = parse_log_time(until, "--until") if until else None
    if lo is not None or hi is not None:
        def emit_in_range(e: logsmod.Entry, ts: bool) -> None:
            t = entry_time(e.time)
            if (lo is None or t >= lo) and (hi is None or t < hi):
                _emit_raw(e, ts)
        emit: Callable[[logsmod.Entry, bool], None] = emit_in_range
    else:
        emit = _emit_raw
    rec = eng.resolve(ref)
    path = eng.containers.dir(rec["id"]) / "ctr.log"
    offset = logsmod.complete_end(path)
    start = 0
    n = -1
    if tail != "all":
        try:
            n = int(tail)
        except ValueError:
            raise DockeeError(f"invalid value {tail!r} for --tail: a number or 'all'") from None
        if n < 0:
            n = -1  # docker: a negative --tail is all
        start = logsmod.tail_start(path, n, offset) if n > 0 else (offset if n == 0 else 0)
    if n != 0:
        # streamed, and for --tail read from the end: a log of gigabytes costs no memory
        last: collections.deque[logsmod.Entry] = collections.deque(maxlen=n if n > 0 else None)
        with contextlib.suppress(BrokenPipeError):
            for e in logsmod.iter_entries(path, start, offset):
                if n > 0:
                    last.append(e)
                else:
                    emit(e, timestamps)
            for e in last:
                emit(e, timestamps)
    if not follow:
        return

    def running() -> bool:
        try:
            return eng.status(eng.containers.load(rec["id"]))[0] in ("running", "paused", "created") \
                and bool(eng.containers.load(rec["id"]).get("started_at"))
        except DockeeError:
            return False
    with contextlib.suppress(KeyboardInterrupt, BrokenPipeError):
        for e in logsmod.follow(path, running, start_at=offset):
            emit(e, timestamps)


# ---- exec -----------------------------------------------------------------------------------

@click.command("exec", context_settings={"allow_interspersed_args": False},
               help="Run a command in a running container.")
@click.option("-i", "--interactive", is_flag=True)
@click.option("-t", "--tty", is_flag=True)
@click.option("--it", "it", is_flag=True, hidden=True)
@click.option("-d", "--detach", is_flag=True)
@click.option("-e", "--env", multiple=True)
@click.option("-w", "--workdir")
@click.option("-u", "--user")
@click.argument("ref")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@click.pass_context
def exec_(ctx: click.Context, interactive: bool, tty: bool, it: bool, detach: bool, env: tuple[str, ...],
          workdir: str | None, user: str | None, ref: str, command: tuple[str, ...]) -> None:
    eng = engine(ctx)
    rec = eng.resolve(ref)
    status, _, _ = eng.status(rec)
    if status != "running":
        raise DockeeError(f"container {rec['name']} is not running ({status})")
    rt = eng.runtime_for(rec)
    uid = None
    if user:
        merged = eng.containers.dir(rec["id"]) / "merged"
        u, g, _ = bundlemod.resolve_user(user, overlay.rootfs_file(merged, "/etc/passwd"),
                                         overlay.rootfs_file(merged, "/etc/group"))
        uid = f"{u}:{g}"
    tty = (tty or it) and not detach
    argv = rt.exec_argv(rec["id"], bundlemod.split_command(list(command)), tty=tty, detach=detach,
                        env=bundlemod.expand_env(list(env), dict(os.environ)), cwd=workdir, user=uid)
    stdin = None if (interactive or it) else subprocess.DEVNULL
    if detach:
        p = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                           text=True)
        if p.returncode != 0:
            raise RuntimeFailure(f"exec: {p.stderr.strip().splitlines()[-1] if p.stderr.strip() else p.returncode}")
        return
    sys.exit(run_exec(argv, stdin))


def run_exec(argv: list[str], stdin: int | None) -> int:
    """Run the runtime's exec with our stdio; its stderr passes through a pipe so that a command
    that cannot start (the runtime's `exec: "X": ...` words, exit 255) exits 126/127 like docker."""
    import threading

    from pyruntime.dockee.monitor import command_exit_code

    proc = subprocess.Popen(argv, stdin=stdin, stderr=subprocess.PIPE)
    assert proc.stderr is not None
    tail = bytearray()
    # the runtime's own words (`pyruntime: exec: ...`) speak as dockee-shim, like every other error
    own = os.path.basename(argv[0]).encode() + b": "

    def copy() -> None:
        assert proc.stderr is not None
        out = sys.stderr.buffer
        first = True
        while chunk := os.read(proc.stderr.fileno(), 65536):
            if first and chunk.startswith(own):
                chunk = b"dockee-shim: " + chunk[len(own):]
            first = False
            out.write(chunk)
            out.flush()
            tail.extend(chunk)
            del tail[:-4096]
    t = threading.Thread(target=copy, daemon=True)
    t.start()
    try:
        rc = proc.wait()
    except KeyboardInterrupt:
        rc = proc.wait()
    t.join(5)
    if rc == 255:
        lines = tail.decode(errors="replace").strip().splitlines()
        code = command_exit_code(lines[-1]) if lines else None
        if code:
            return code
    return rc


# ---- stop / kill / rm / pause / restart / wait ----------------------------------------------

def check_signal(sig: str) -> str:
    sig = sig.upper().removeprefix("SIG")
    if not (sig.isdigit() and 0 < int(sig) < 65) and f"SIG{sig}" not in signal.Signals.__members__:
        raise DockeeError(f"invalid signal: {sig}")  # docker checks before touching any container
    return sig


@click.command("stop", help="Stop containers: SIGTERM (or -s), then SIGKILL after the timeout.")
@click.option("-t", "--time", "timeout", type=float, default=10, show_default=True)
@click.option("-s", "--signal", "sig", default="TERM", show_default=True, help="the signal to stop with")
@click.argument("refs", nargs=-1, required=True)
@click.pass_context
def stop(ctx: click.Context, timeout: float, sig: str, refs: tuple[str, ...]) -> None:
    eng = engine(ctx)
    sig = check_signal(sig)
    sys.exit(1 if _each(refs, lambda r: eng.stop(r, timeout, sig)) else 0)


@click.command("attach", help="Attach to a running container's terminal or output (^P^Q detaches).")
@click.option("--no-stdin", is_flag=True, help="do not attach stdin")
@click.argument("ref")
@click.pass_context
def attach(ctx: click.Context, no_stdin: bool, ref: str) -> None:
    sys.exit(engine(ctx).attach(ref, stdin=not no_stdin))


@click.command("rename", help="Rename a container.")
@click.argument("ref")
@click.argument("new_name")
@click.pass_context
def rename(ctx: click.Context, ref: str, new_name: str) -> None:
    eng = engine(ctx)
    eng.containers.rename(eng.containers.resolve(ref), new_name)


@click.command("version", help="Show dockee-shim's and its runtime's versions.")
@click.pass_context
def version(ctx: click.Context) -> None:
    o = ctx.obj
    try:
        p = subprocess.run([o.runtime, "--version"], capture_output=True, text=True, timeout=30)
        rt = (p.stdout.strip().splitlines() or ["unknown"])[0]
    except OSError:
        rt = "not found"
    import platform

    click.echo(f"Client: dockee-shim\n Version:     0.1.0\n OS/Arch:     linux/{platform.machine()}\n"
               f" Python:      {platform.python_version()}\n\nRuntime: {o.runtime}\n Version:     {rt}")


@click.command("info", help="Show the store's containers, images and the runtime.")
@click.pass_context
def info(ctx: click.Context) -> None:
    from pyruntime.dockee.images import ImageStore

    eng = engine(ctx)
    recs = eng.containers.all()
    eng.prefetch(recs)
    states = [eng.status(r)[0] for r in recs]
    images = ImageStore(ctx.obj.store).all() if ctx.obj.store.root.exists() else []
    click.echo(f"Containers: {len(recs)}\n Running: {states.count('running')}\n Paused: {states.count('paused')}\n"
               f" Stopped: {len(recs) - states.count('running') - states.count('paused')}\n"
               f"Images: {len({i.id for i in images})}\nStorage Driver: overlay\nDocker Root Dir: {eng.store.root}\n"
               f"Default Runtime: {ctx.obj.runtime}\nCPUs: {os.cpu_count()}\nKernel Version: {os.uname().release}")


@click.command("kill", help="Send a signal (default KILL) to containers.")
@click.option("-s", "--signal", "sig", default="KILL", show_default=True)
@click.argument("refs", nargs=-1, required=True)
@click.pass_context
def kill(ctx: click.Context, sig: str, refs: tuple[str, ...]) -> None:
    eng = engine(ctx)
    sig = check_signal(sig)

    def one(ref: str) -> None:
        rec = eng.resolve(ref)
        if eng.status(rec)[0] not in ("running", "paused"):
            raise StateError(f"Cannot kill container: {ref}: container {rec['name']} is not running")
        if sig in ("KILL", "TERM", "INT", "9", "15", "2"):  # docker: a manual stop disarms --restart
            eng.mark_stopped_by_user(rec["id"])
        eng.runtime_for(rec).kill(rec["id"], sig)
    sys.exit(1 if _each(refs, one) else 0)


@click.command("rm", help="Remove containers.")
@click.option("-f", "--force", is_flag=True, help="kill running ones first; clean whatever is left")
@click.option("-v", "--volumes", is_flag=True, help="also remove their anonymous volumes")
@click.argument("refs", nargs=-1, required=True)
@click.pass_context
def rm(ctx: click.Context, force: bool, volumes: bool, refs: tuple[str, ...]) -> None:
    eng = engine(ctx)
    sys.exit(1 if _each(refs, lambda r: eng.remove(r, force=force, volumes=volumes)) else 0)


@click.command("pause", help="Freeze every process of containers.")
@click.argument("refs", nargs=-1, required=True)
@click.pass_context
def pause(ctx: click.Context, refs: tuple[str, ...]) -> None:
    eng = engine(ctx)

    def one(ref: str) -> None:
        rec = eng.resolve(ref)
        status = eng.status(rec)[0]
        if status == "paused":
            raise StateError(f"Container {rec['name'] or ref} is already paused")
        if status != "running":
            raise StateError(f"Container {rec['name'] or ref} is not running")
        eng.runtime_for(rec).pause(rec["id"])
    sys.exit(1 if _each(refs, one) else 0)


@click.command("unpause", help="Thaw paused containers.")
@click.argument("refs", nargs=-1, required=True)
@click.pass_context
def unpause(ctx: click.Context, refs: tuple[str, ...]) -> None:
    eng = engine(ctx)

    def one(ref: str) -> None:
        rec = eng.resolve(ref)
        if eng.status(rec)[0] != "paused":
            raise StateError(f"Container {rec['name'] or ref} is not paused")
        eng.runtime_for(rec).resume(rec["id"])
    sys.exit(1 if _each(refs, one) else 0)


@click.command("restart", help="Stop, then start containers.")
@click.option("-t", "--time", "timeout", type=float, default=10, show_default=True)
@click.argument("refs", nargs=-1, required=True)
@click.pass_context
def restart(ctx: click.Context, timeout: float, refs: tuple[str, ...]) -> None:
    eng = engine(ctx)

    def one(ref: str) -> None:
        rec = eng.resolve(ref)
        if rec.get("rm"):
            raise DockeeError(f"container {rec['name']} was run with --rm and cannot be restarted")
        eng.stop(rec["id"], timeout)
        eng.start(rec["id"])
    sys.exit(1 if _each(refs, one) else 0)


@click.command("wait", help="Wait for containers to stop; print their exit codes.")
@click.argument("refs", nargs=-1, required=True)
@click.pass_context
def wait(ctx: click.Context, refs: tuple[str, ...]) -> None:
    eng = engine(ctx)
    for ref in refs:
        cid = eng.resolve(ref)["id"]
        delay = 0.02
        while True:
            try:
                rec = eng.containers.load(cid)
            except NotFound:
                click.echo("0")  # removed (--rm): docker answers too
                break
            status, code, _ = eng.status(rec)
            if status == "exited":
                click.echo(str(code if code is not None else -1))
                break
            time.sleep(delay)
            delay = min(0.25, delay * 1.5)


@click.command("_exited", hidden=True)
@click.argument("cid")
@click.pass_context
def exited(ctx: click.Context, cid: str) -> None:
    """conmon's exit command: record the exit; remove --rm containers; apply --restart."""
    eng = engine(ctx)
    with contextlib.suppress(NotFound):
        done = eng.finish(cid)
        if done is not None:
            eng.maybe_restart(done)


# ---- top / stats / commit -------------------------------------------------------------------

@click.command("top", context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False},
               help="Show a container's processes (extra arguments go to ps, e.g. -o pid,comm).")
@click.argument("ref")
@click.argument("ps_args", nargs=-1, type=click.UNPROCESSED)
@click.pass_context
def top(ctx: click.Context, ref: str, ps_args: tuple[str, ...]) -> None:
    eng = engine(ctx)
    rec = eng.resolve(ref)
    if eng.status(rec)[0] not in ("running", "paused"):
        raise DockeeError(f"container {rec['name']} is not running")
    pids = eng.runtime_for(rec).pids(rec["id"])
    if not pids:
        return
    fields = list(ps_args) if ps_args else ["-o", "user,pid,ppid,c,stime,tty,time,args"]
    p = subprocess.run(["ps", *fields, "-p", ",".join(map(str, pids))], capture_output=True, text=True)
    if p.returncode != 0 and not p.stdout:
        why = p.stderr.strip().splitlines()[-1] if p.stderr.strip() else p.returncode
        raise DockeeError(f"top: ps {' '.join(ps_args)}: {why}")
    click.echo(p.stdout, nl=False)


def _mem_total() -> int:
    with contextlib.suppress(OSError, ValueError, IndexError):
        with open("/proc/meminfo") as f:
            return int(f.readline().split()[1]) * 1024
    return 0


def stats_sample(data: dict[str, Any]) -> tuple[int, int, int, int]:
    """(cpu ns, memory used without inactive file cache, limit, pids) from runtime stats."""
    cpu = int((((data.get("cpu") or {}).get("usage") or {}).get("total")) or 0)
    mem = data.get("memory") or {}
    usage = int(((mem.get("usage") or {}).get("usage")) or 0)
    raw = mem.get("raw") or mem.get("stats") or {}
    inactive = int(raw.get("total_inactive_file", raw.get("inactive_file", 0)) or 0)
    used = max(0, usage - inactive)
    limit = int(((mem.get("usage") or {}).get("limit")) or 0)
    total = _mem_total()
    if not limit or (total and limit > total):
        limit = total
    pids = int(((data.get("pids") or {}).get("current")) or 0)
    return cpu, used, limit, pids


def _human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.1f}{unit}" if unit != "B" else f"{int(n)}B"
        n /= 1024
    return f"{n}"


def net_io(pid: int | None) -> tuple[int, int]:
    """Bytes received and sent by the container's interfaces but lo (its /proc/PID/net/dev)."""
    rx = tx = 0
    if not pid:
        return 0, 0
    with contextlib.suppress(OSError, ValueError, IndexError):
        with open(f"/proc/{pid}/net/dev") as f:
            for line in f.readlines()[2:]:
                iface, _, rest = line.partition(":")
                if iface.strip() != "lo":
                    fields = rest.split()
                    rx += int(fields[0])
                    tx += int(fields[8])
    return rx, tx


def block_io(data: dict[str, Any]) -> tuple[int, int]:
    """Bytes read and written, from the runtime's blkio stats."""
    rd = wr = 0
    for e in ((data.get("blkio") or {}).get("ioServiceBytesRecursive") or []):
        op = str(e.get("op", "")).lower()
        if op == "read":
            rd += int(e.get("value") or 0)
        elif op == "write":
            wr += int(e.get("value") or 0)
    return rd, wr


def _si_bytes(n: float) -> str:
    """docker's NET I/O and BLOCK I/O units (decimal): 1.2kB, 3.4MB."""
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{int(n)}{unit}" if unit == "B" else f"{n:.3g}{unit}"
        n /= 1000
    return f"{n}"


STATS_HEADERS = {"ID": "CONTAINER ID", "Container": "CONTAINER", "Name": "NAME", "CPUPerc": "CPU %",
                 "MemUsage": "MEM USAGE / LIMIT", "MemPerc": "MEM %", "NetIO": "NET I/O",
                 "BlockIO": "BLOCK I/O", "PIDs": "PIDS"}


@click.command("stats", help="Live CPU %, memory, network, block I/O and pids of running containers.")
@click.option("--no-stream", is_flag=True, help="print one table and exit")
@click.option("-a", "--all", "all_", is_flag=True)
@click.option("--format", "fmt", help="a template such as {{.Name}} {{.CPUPerc}}, or table ...")
@click.argument("refs", nargs=-1)
@click.pass_context
def stats(ctx: click.Context, no_stream: bool, all_: bool, fmt: str | None, refs: tuple[str, ...]) -> None:
    eng = engine(ctx)
    recs = [eng.resolve(r) for r in refs] if refs else eng.containers.all()
    prev: dict[str, tuple[float, int]] = {}

    def sample() -> list[dict[str, Any]]:
        rows = []
        for rec in recs:
            row = {"ID": rec["id"][:12], "Container": rec.get("name") or rec["id"][:12],
                   "Name": rec.get("name", ""), "CPUPerc": "0.00%", "MemUsage": "0B / 0B", "MemPerc": "0.00%",
                   "NetIO": "0B / 0B", "BlockIO": "0B / 0B", "PIDs": "0"}
            try:
                data = eng.runtime_for(rec).stats(rec["id"])
            except DockeeError:
                if all_ or refs:  # docker: a stopped container named or -a shows a row of zeros
                    rows.append(row)
                continue
            now = time.monotonic()
            cpu, used, limit, pids = stats_sample(data)
            before = prev.get(rec["id"])
            prev[rec["id"]] = (now, cpu)
            pct = (cpu - before[1]) / ((now - before[0]) * 1e9) * 100 if before and now > before[0] else 0.0
            rx, tx = net_io(rec.get("pid"))
            rd, wr = block_io(data)
            row.update(CPUPerc=f"{pct:.2f}%", MemUsage=f"{_human_bytes(used)} / {_human_bytes(limit)}",
                       MemPerc=f"{(used / limit * 100 if limit else 0):.2f}%", PIDs=str(pids),
                       NetIO=f"{_si_bytes(rx)} / {_si_bytes(tx)}", BlockIO=f"{_si_bytes(rd)} / {_si_bytes(wr)}")
            rows.append(row)
        return rows

    def render(rows: list[dict[str, Any]]) -> list[str]:
        if fmt and not fmt.startswith("table"):
            return [render_template(fmt, r) for r in rows]
        body = fmt if fmt and fmt.strip() != "table" else "table " + "\t".join(
            "{{." + k + "}}" for k in ("ID", "Name", "CPUPerc", "MemUsage", "MemPerc", "NetIO", "BlockIO", "PIDs"))
        return format_table(body, rows, STATS_HEADERS, render_template)

    sample()  # CPU % is a delta: the first sample only sets the baseline
    time.sleep(0.5)
    if no_stream:
        click.echo("\n".join(render(sample())))
        return
    tty = sys.stdout.isatty()
    with contextlib.suppress(KeyboardInterrupt, BrokenPipeError):
        while True:
            # each refresh as it happens, also into a pipe (docker clears the screen on a terminal)
            text = "\n".join(render(sample()))
            sys.stdout.write(("\x1b[2J\x1b[H" if tty else "") + text + "\n")
            sys.stdout.flush()
            time.sleep(1)


def commit_config(rec: dict[str, Any], image_config: dict[str, Any]) -> dict[str, Any]:
    """docker commits the container's Cmd/Entrypoint/Env/WorkingDir/User, not the image's."""
    flags = rec.get("flags") or {}
    out: dict[str, Any] = {}
    if flags.get("entrypoint") is not None:
        out["Entrypoint"] = shlex.split(flags["entrypoint"]) or None
        out["Cmd"] = list(flags.get("command") or []) or None
    elif flags.get("command"):
        out["Cmd"] = list(flags["command"])
    if flags.get("env"):
        merged = dict(e.partition("=")[::2] for e in image_config.get("Env") or [])
        merged.update(e.partition("=")[::2] for e in flags["env"])
        out["Env"] = [f"{k}={v}" for k, v in merged.items()]
    if flags.get("workdir"):
        out["WorkingDir"] = flags["workdir"]
    user = (rec.get("config") or {}).get("User")
    if user:
        out["User"] = user
    return out


def mount_points_made(cdir: Path) -> frozenset[str]:
    """The empty files the runtime made in the upper dir as targets of dockee's own binds
    (/etc/hosts, /etc/resolv.conf, /etc/hostname): docker keeps those out of images."""
    try:
        with open(cdir / "config.json") as f:
            mounts = json.load(f).get("mounts") or []
    except (OSError, ValueError):
        mounts = []
    out = set()
    for m in mounts:
        if m.get("type") == "bind" and str(m.get("source", "")).startswith(f"{cdir}/"):
            rel = str(m.get("destination", "")).strip("/")
            with contextlib.suppress(OSError):
                st = os.lstat(cdir / "upper" / rel)
                if stat.S_ISREG(st.st_mode) and st.st_size == 0:
                    out.add(rel)
    return frozenset(out)


@click.command("commit", help="Make an image of a container's changes.")
@click.option("-a", "--author", default="")
@click.option("-m", "--message", default="")
@click.option("-c", "--change", multiple=True, help="CMD, ENV, WORKDIR, ENTRYPOINT, USER instructions")
@click.option("-p/--pause", "pause_", default=True, hidden=True)
@click.argument("ref")
@click.argument("target", required=False)
@click.pass_context
def commit(ctx: click.Context, author: str, message: str, change: tuple[str, ...], pause_: bool, ref: str,
           target: str | None) -> None:
    from pyruntime.dockee.images import ImageStore

    eng = engine(ctx)
    rec = eng.resolve(ref)
    images = ImageStore(ctx.obj.store)
    base = images.resolve(rec["image_id"])
    rt = eng.runtime_for(rec)
    paused = False
    if pause_ and eng.status(rec)[0] == "running":
        with contextlib.suppress(RuntimeFailure):
            rt.pause(rec["id"])
            paused = True
    cdir = eng.containers.dir(rec["id"])
    try:
        img = images.commit(cdir / "upper", base, target, changes=list(change), author=author, message=message,
                            container_config=commit_config(rec, base.config),
                            exclude=mount_points_made(cdir))
    finally:
        if paused:
            with contextlib.suppress(RuntimeFailure):
                rt.resume(rec["id"])
    click.echo(f"sha256:{img.id}")


# ---- export / cp / port ---------------------------------------------------------------------

@click.command("export", help="Write a container's filesystem as a tar archive (to stdout or -o).")
@click.option("-o", "--output", help="write to this file instead of stdout")
@click.argument("ref")
@click.pass_context
def export(ctx: click.Context, output: str | None, ref: str) -> None:
    from pyruntime.dockee import export as exportmod

    eng = engine(ctx)
    rec = eng.resolve(ref)
    if output is None and sys.stdout.isatty():
        raise DockeeError("cowardly refusing to save to a terminal. Use the -o flag or redirect")
    with eng.containers.locked(rec["id"]), exportmod.container_root(eng.containers.dir(rec["id"]), rec) as root:
        exportmod.write_tar(root, output)


@click.command("cp", help="Copy files between a container and the host: CTR:SRC DEST or SRC CTR:DEST.")
@click.argument("src")
@click.argument("dst")
@click.pass_context
def cp(ctx: click.Context, src: str, dst: str) -> None:
    from pyruntime.dockee import export as exportmod

    def split(arg: str) -> tuple[str | None, str]:
        ref, sep, path = arg.partition(":")
        if sep and ref and not arg.startswith(("/", ".")):
            return ref, path or "/"
        return None, arg

    (sref, spath), (dref, dpath) = split(src), split(dst)
    if (sref is None) == (dref is None):
        raise DockeeError("cp: exactly one of SRC and DEST must be CONTAINER:PATH")
    eng = engine(ctx)
    rec = eng.resolve(sref or dref or "")
    cdir = eng.containers.dir(rec["id"])
    try:
        with eng.containers.locked(rec["id"]), \
                exportmod.container_root(cdir, rec, writable=dref is not None) as root:
            if sref is not None:
                inside = exportmod.resolve_in(root, spath)
                if not os.path.lexists(inside):
                    raise NotFound(f"Could not find the file {spath} in container {sref}")
                exportmod.copy(inside, Path(dpath))
            else:
                if not os.path.lexists(spath):
                    raise DockeeError(f"cp: {spath}: no such file or directory")
                exportmod.copy(Path(spath), exportmod.resolve_in(root, dpath))
    except OSError as e:
        raise DockeeError(f"cp: {e.filename or ''}: {e.strerror or e}") from None


@click.command("port", help="List a container's published ports (or the one for PRIVATE_PORT[/PROTO]).")
@click.argument("ref")
@click.argument("private", required=False)
@click.pass_context
def port(ctx: click.Context, ref: str, private: str | None) -> None:
    eng = engine(ctx)
    rec = eng.resolve(ref)
    maps = published(eng, rec)
    if private is not None:
        num, _, proto = private.partition("/")
        maps = [m for m in maps if str(m["containerPort"]) == num and (m.get("protocol") or "tcp") == (proto or "tcp")]
        if not maps:
            raise DockeeError(f"No public port '{num}/{proto or 'tcp'}' published for {rec['name'] or ref}")
        for m in maps:
            click.echo(f"{m.get('hostIP') or '0.0.0.0'}:{m['hostPort']}")
        return
    for m in maps:
        proto = m.get("protocol") or "tcp"
        click.echo(f"{m['containerPort']}/{proto} -> {m.get('hostIP') or '0.0.0.0'}:{m['hostPort']}")


# ---- volumes / prune ------------------------------------------------------------------------

@click.group("volume", help="Manage named volumes.")
def volume() -> None:
    pass


@volume.command("create", help="Create a named volume.")
@click.argument("name", required=False)
@click.pass_context
def volume_create(ctx: click.Context, name: str | None) -> None:
    ctx.obj.store.ensure()
    click.echo(Volumes(ctx.obj.store).create(name)["Name"])


def _volume_users(eng: Engine, name: str) -> list[str]:
    return [r["id"] for r in eng.containers.all() if any(v.get("Name") == name for v in r.get("volumes") or [])]


@volume.command("ls", help="List volumes.")
@click.option("-q", "--quiet", is_flag=True)
@click.pass_context
def volume_ls(ctx: click.Context, quiet: bool) -> None:
    vols = Volumes(ctx.obj.store).all()
    if not quiet:
        click.echo(f"{'DRIVER':<10}VOLUME NAME")
    for v in vols:
        click.echo(v["Name"] if quiet else f"{v.get('Driver', 'local'):<10}{v['Name']}")


@volume.command("rm", help="Remove volumes (-f: even in use).")
@click.option("-f", "--force", is_flag=True)
@click.argument("names", nargs=-1, required=True)
@click.pass_context
def volume_rm(ctx: click.Context, force: bool, names: tuple[str, ...]) -> None:
    eng = engine(ctx)
    vols = Volumes(ctx.obj.store)
    sys.exit(1 if _each(names, lambda n: vols.remove(n, _volume_users(eng, n), force)) else 0)


@volume.command("inspect", help="Show volumes as JSON.")
@click.argument("names", nargs=-1, required=True)
@click.pass_context
def volume_inspect(ctx: click.Context, names: tuple[str, ...]) -> None:
    vols = Volumes(ctx.obj.store)
    click.echo(json.dumps([vols.inspect(n) for n in names], indent=4))


@volume.command("prune", help="Remove volumes no container uses.")
@click.option("-f", "--force", is_flag=True)
@click.pass_context
def volume_prune(ctx: click.Context, force: bool) -> None:
    eng = engine(ctx)
    vols = Volumes(ctx.obj.store)
    for v in vols.all():
        if not _volume_users(eng, v["Name"]):
            vols.remove(v["Name"], [], True)
            click.echo(v["Name"])


@click.command("prune", help="Remove all stopped containers.")
@click.option("-f", "--force", is_flag=True, help="do not ask")
@click.pass_context
def container_prune(ctx: click.Context, force: bool) -> None:
    eng = engine(ctx)
    if eng.store.containers.is_dir():  # what a create killed before its rename left
        for d in eng.store.containers.glob(".new-*"):
            shutil.rmtree(d, ignore_errors=True)
    for rec in eng.containers.all():
        if eng.status(rec)[0] in ("exited", "created"):
            with contextlib.suppress(DockeeError):
                eng.remove(rec["id"], force=False)
                click.echo(rec["id"])


def register(group: click.Group) -> None:
    """Add this module's verbs to `group`."""
    for cmd in (run, create, start, ps, inspect, logs, exec_, stop, kill, rm, pause, unpause, restart, wait,
                exited, top, stats, commit, volume, export, cp, port, rename, version, info, attach):
        assert cmd.name is not None
        group.add_command(cmd, cmd.name)

    @group.group("container", help="Manage containers.")
    def container() -> None:
        pass

    for name, cmd in (("ls", ps), ("list", ps), ("prune", container_prune), ("rm", rm), ("inspect", inspect),
                      ("start", start), ("stop", stop), ("logs", logs), ("run", run), ("create", create),
                      ("exec", exec_), ("kill", kill), ("restart", restart), ("commit", commit), ("top", top),
                      ("stats", stats), ("wait", wait), ("pause", pause), ("unpause", unpause),
                      ("export", export), ("cp", cp), ("port", port), ("rename", rename),
                      ("attach", attach)):
        container.add_command(cmd, name)
