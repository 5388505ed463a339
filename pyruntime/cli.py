"""The runc-compatible command line: global flags into ctx.obj, one thin function per verb."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import click

from . import OCI_VERSION, __version__
from .errors import RuntimeErr
from .signals import parse_signal
from .verbs import COUNT, DEFAULT_ROOT, FLAG, GLOBAL, INTS, MULTI, VERBS


class Ctx:
    def __init__(self, root: str, log: Any, systemd_cgroup: bool,
                 rootless: bool | None = None) -> None:
        self.root = Path(root)
        self.log = log
        self.systemd_cgroup = systemd_cgroup
        self.rootless = rootless

    def runtime(self) -> Any:
        from .container import Runtime

        if self.systemd_cgroup:
            if not os.path.isdir("/run/systemd/system"):
                raise RuntimeErr("--systemd-cgroup: systemd is not running on this host")
            raise RuntimeErr("--systemd-cgroup: the systemd cgroup driver is not supported "
                             "(use cgroupfs paths)")
        return Runtime(self.root, warn=self.log.warn, debug=self.log.debug, rootless=self.rootless)


VERSION_TEXT = f"pyruntime version {__version__}\ncommit: {__version__}\nspec: {OCI_VERSION}"


def _options(options: list[dict[str, Any]]) -> Any:
    """click options from verbs.py's table (which main.py's fast parser reads too)."""
    def apply(f: Any) -> Any:
        for o in reversed(options):
            kind = o["kind"]
            kw: dict[str, Any] = {"help": o["help"], "hidden": o["hidden"]}
            if kind == FLAG:
                kw["is_flag"] = True
            else:
                kw["default"] = o["default"]
                if kind == COUNT:
                    kw["type"] = click.IntRange(min=0)
                elif kind in (MULTI, INTS):
                    kw["multiple"] = True
                    kw["type"] = int if kind == INTS else None
                elif o["choices"]:
                    kw["type"] = click.Choice(list(o["choices"]))
                if o["metavar"]:
                    kw["metavar"] = o["metavar"]
            f = click.option(*o["names"], o["dest"], **kw)(f)
        return f
    return apply


class _Group(click.Group):
    def resolve_command(self, ctx: click.Context, args: list[str]) -> Any:
        name = args[0] if args else ""
        if name and self.get_command(ctx, name) is None and any(a in ("-h", "--help") for a in args[1:]):
            # what runc (urfave/cli) says, and what its tests and users look for
            raise click.UsageError(f"No help topic for '{name}'", ctx)
        return super().resolve_command(ctx, args)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "-v", "--version", message=VERSION_TEXT, prog_name="pyruntime")
@_options(GLOBAL)
@click.pass_context
def main(ctx: click.Context, root: str | None, log_path: str | None, log_format: str, debug: bool,
         systemd_cgroup: bool, criu: str | None, rootless: str | None) -> None:
    """pyruntime: an OCI container runtime, command-line compatible with runc."""
    from .log import Logger
    from .main import state_root

    log = Logger(log_path, log_format, debug)
    _LOGGER[:] = [log]
    if ctx.invoked_subcommand in ("spec", "features"):
        root, flag = root or DEFAULT_ROOT, None  # they touch no state
    else:
        root, flag = state_root({"--root": root, "--rootless": rootless})
    ctx.obj = Ctx(root, log, systemd_cgroup, flag)


def _create_opts(bundle: str, pid_file: str | None, console_socket: str | None, no_pivot: bool,
                 no_new_keyring: bool, preserve_fds: int, keep_console: bool = False) -> Any:
    from .container import CreateOptions

    return CreateOptions(bundle=Path(bundle), pid_file=pid_file, console_socket=console_socket,
                         no_pivot=no_pivot, no_new_keyring=no_new_keyring,
                         preserve_fds=preserve_fds, keep_console=keep_console)


@main.command()
@_options(VERBS["create"][0])
@click.argument("container_id")
@click.pass_obj
def create(obj: Ctx, container_id: str, bundle: str, pid_file: str | None,
           console_socket: str | None, no_pivot: bool, no_new_keyring: bool,
           preserve_fds: int) -> None:
    """Create a container (its process waits for `start`)."""
    obj.runtime().create(container_id, _create_opts(bundle, pid_file, console_socket, no_pivot,
                                                    no_new_keyring, preserve_fds))


@main.command()
@click.argument("container_id")
@click.pass_obj
def start(obj: Ctx, container_id: str) -> None:
    """Run the user process of a created container."""
    obj.runtime().start(container_id)


@main.command()
@click.argument("container_id")
@click.pass_obj
def state(obj: Ctx, container_id: str) -> None:
    """Print the container's state as runtime-spec JSON."""
    from .state import oci_state

    st, stat = obj.runtime().load(container_id)
    click.echo(json.dumps(oci_state(st, stat), indent=2))


@main.command()
@_options(VERBS["kill"][0])
@click.argument("container_id")
@click.argument("sig", default="SIGTERM")
@click.pass_obj
def kill(obj: Ctx, container_id: str, sig: str, all_procs: bool) -> None:
    """Send a signal (name or number, default SIGTERM) to the container's init."""
    obj.runtime().kill(container_id, parse_signal(sig), all_procs)


@main.command()
@_options(VERBS["delete"][0])
@click.argument("container_id")
@click.pass_obj
def delete(obj: Ctx, container_id: str, force: bool) -> None:
    """Delete a container and everything create made for it."""
    from .errors import ContainerNotExist

    try:
        obj.runtime().delete(container_id, force)
    except ContainerNotExist:
        if not force:
            raise


@main.command()
@_options(VERBS["run"][0])
@click.argument("container_id")
@click.pass_obj
def run(obj: Ctx, container_id: str, bundle: str, pid_file: str | None, console_socket: str | None,
        no_pivot: bool, no_new_keyring: bool, preserve_fds: int, detach: bool, keep: bool) -> None:
    """Create and start a container; in the foreground, exit with its exit code."""
    from .run import run_container

    opts = _create_opts(bundle, pid_file, console_socket, no_pivot, no_new_keyring, preserve_fds)
    code = run_container(obj.runtime(), container_id, opts, detach=detach, keep=keep)
    sys.exit(code)


@main.command(name="exec", context_settings={"ignore_unknown_options": True,
                                             "allow_interspersed_args": False})
@_options(VERBS["exec"][0])
@click.argument("container_id")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@click.pass_obj
def exec_cmd(obj: Ctx, container_id: str, command: tuple[str, ...], process_file: str | None,
             tty: bool, detach: bool, cwd: str | None, env: tuple[str, ...], user: str | None,
             additional_gids: tuple[int, ...], cap: tuple[str, ...], no_new_privs: bool,
             apparmor: str | None, process_label: str | None, pid_file: str | None,
             console_socket: str | None, preserve_fds: int, ignore_paused: bool,
             cgroups: tuple[str, ...]) -> None:
    """Run a new process inside a running container."""
    try:
        code = _exec(obj, container_id, command, process_file, tty, detach, cwd, env, user,
                     additional_gids, cap, no_new_privs, apparmor, pid_file, console_socket,
                     preserve_fds, ignore_paused, cgroups)
    except RuntimeErr as e:
        e.exit_code = 255  # runc's status when the process could not be started
        raise
    sys.exit(code)


def _exec(obj: Ctx, container_id: str, command: tuple[str, ...], process_file: str | None,
          tty: bool, detach: bool, cwd: str | None, env: tuple[str, ...], user: str | None,
          additional_gids: tuple[int, ...], cap: tuple[str, ...], no_new_privs: bool,
          apparmor: str | None, pid_file: str | None, console_socket: str | None,
          preserve_fds: int, ignore_paused: bool, cgroups: tuple[str, ...]) -> int:
    from .exec import ExecOptions, exec_process, process_from_flags

    rt = obj.runtime()
    if process_file:
        proc_doc = _read_json(process_file, "--process")
    else:
        st, _ = rt.load(container_id)
        proc_doc = process_from_flags(st.config, list(command), tty=tty, cwd=cwd,
                                      env=list(env), user=user,
                                      additional_gids=list(additional_gids), caps=list(cap),
                                      no_new_privs=no_new_privs, apparmor=apparmor)
    opts = ExecOptions(detach=detach, pid_file=pid_file, console_socket=console_socket,
                       preserve_fds=preserve_fds, ignore_paused=ignore_paused, cgroups=cgroups)
    return exec_process(rt, container_id, proc_doc, opts)


def _read_json(path: str, what: str) -> Any:
    try:
        with (sys.stdin if path == "-" else open(path)) as f:
            return json.load(f)
    except OSError as e:
        raise RuntimeErr(f"{what} {path}: {e.strerror}")
    except json.JSONDecodeError as e:
        raise RuntimeErr(f"{what} {path}: invalid JSON at line {e.lineno} column {e.colno}: {e.msg}")


@main.command(name="list")
@_options(VERBS["list"][0])
@click.pass_obj
def list_cmd(obj: Ctx, quiet: bool, fmt: str) -> None:
    """List containers."""
    from .listing import list_containers

    click.echo(list_containers(obj.runtime(), quiet, fmt), nl=False)


@main.command()
@click.argument("container_id")
@click.pass_obj
def pause(obj: Ctx, container_id: str) -> None:
    """Freeze every process of the container."""
    from .control import pause as do_pause

    do_pause(obj.runtime(), container_id)


@main.command()
@click.argument("container_id")
@click.pass_obj
def resume(obj: Ctx, container_id: str) -> None:
    """Thaw a paused container."""
    from .control import resume as do_resume

    do_resume(obj.runtime(), container_id)


@main.command(context_settings={"ignore_unknown_options": True})
@click.option("--format", "-f", "fmt", type=click.Choice(["table", "json"]), default="table")
@click.argument("container_id")
@click.argument("ps_args", nargs=-1, type=click.UNPROCESSED)
@click.pass_obj
def ps(obj: Ctx, container_id: str, fmt: str, ps_args: tuple[str, ...]) -> None:
    """List the processes of a container (json: their pids)."""
    from .control import ps as do_ps

    click.echo(do_ps(obj.runtime(), container_id, fmt, list(ps_args)), nl=False)


def _update_options(f: Any) -> Any:
    from .control import UPDATE_FLAGS

    for name in reversed(list(UPDATE_FLAGS)):
        f = click.option("--" + name.replace("_", "-"), name, default=None)(f)
    return f


@main.command()
@click.option("--resources", "-r", "resources_file", default=None,
              help="linux.resources JSON file, or - for stdin")
@_update_options
@click.argument("container_id")
@click.pass_obj
def update(obj: Ctx, container_id: str, resources_file: str | None, **flags: str | None) -> None:
    """Change the resource limits of a running container."""
    from .control import update as do_update

    doc = _read_json(resources_file, "--resources") if resources_file else None
    do_update(obj.runtime(), container_id, doc, flags)


@main.command()
@click.option("--stats", "stats_once", is_flag=True, help="print one stats event and exit")
@click.option("--interval", default="5s", help="stats interval (e.g. 5s, 500ms)")
@click.argument("container_id")
@click.pass_obj
def events(obj: Ctx, container_id: str, stats_once: bool, interval: str) -> None:
    """Stream stats and OOM events as JSON lines."""
    from .control import events as do_events

    do_events(obj.runtime(), container_id, stats_once, _duration(interval))


def _duration(text: str) -> float:
    import re

    m = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m|h)?", text.strip())
    if not m or float(m.group(1)) <= 0:
        raise RuntimeErr(f"--interval: invalid duration {text!r}")
    scale = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}[m.group(2) or "s"]
    return float(m.group(1)) * scale


@main.command()
def features() -> None:
    """Print what this runtime supports (runtime-spec features JSON)."""
    from .features import features as build

    click.echo(json.dumps(build(), indent=2))


@main.command()
@click.option("--bundle", "-b", default=".")
@click.option("--rootless", is_flag=True)
def spec(bundle: str, rootless: bool) -> None:
    """Write a default config.json into the bundle."""
    from .defaults import default_spec

    path = Path(bundle) / "config.json"
    if path.exists():
        raise RuntimeErr(f"File {path} exists. Remove it first")
    path.write_text(json.dumps(default_spec(rootless), indent="\t") + "\n")


def entry(argv: list[str] | None = None) -> int:
    """Run the CLI; errors become one line on stderr (and in --log) unless --debug."""
    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args
    try:
        main.main(args=args, prog_name="pyruntime", standalone_mode=False)
        return 0
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else 0
    except click.exceptions.Exit as e:
        return e.exit_code
    except click.ClickException as e:
        e.show()
        return e.exit_code
    except click.exceptions.Abort:
        return 130
    except RuntimeErr as e:
        _report(str(e), debug)
        return e.exit_code
    except KeyboardInterrupt:
        return 130
    except BaseException as e:  # noqa: BLE001 - the last line of defence: still one line
        if debug:
            raise
        from .errors import describe

        _report(describe(e), debug)
        return 1


def _report(msg: str, debug: bool) -> None:
    if debug:
        import traceback

        traceback.print_exc()
    # the group callback ran (or not) in a context that is gone by now: use what it made
    (_LOGGER[0] if _LOGGER else _fallback_logger()).error(msg)


def _fallback_logger() -> Any:
    """Errors before the group callback ran (a usage error) still go to --log."""
    from .log import Logger
    from .main import parse_global

    g = parse_global(sys.argv[1:])
    return Logger(g.get("--log"), str(g.get("--log-format", "text")), bool(g.get("--debug")))  # type: ignore[arg-type]


_LOGGER: list[Any] = []

