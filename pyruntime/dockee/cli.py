"""dockee-shim's command line: global flags, error reporting, and the verbs' registration.

Verbs live in their own modules and register themselves on the group:
    cli_containers.register(group)   run, ps, logs, exec, stop, kill, start, rm, commit, ...
    cli_images.register(group)       import, load, save, images, rmi, tag, image ..., inspect
    network.cli.register(group)      network create/ls/rm/inspect/prune
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass

import click

from pyruntime.dockee.errors import DockeeError
from pyruntime.dockee.store import DEFAULT_ROOT, Store


@dataclass
class Context:
    """What every verb gets as ctx.obj."""

    store: Store
    runtime: str  # the OCI runtime binary (a path or a name on PATH)
    runtime_root: str | None  # its --root, if one was given
    debug: bool


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--root", default=lambda: os.environ.get("DOCKEE_ROOT", DEFAULT_ROOT), show_default=DEFAULT_ROOT,
              help="the store's directory (also DOCKEE_ROOT)")
@click.option("--runtime", default=lambda: os.environ.get("DOCKEE_RUNTIME", "pyruntime"), show_default="pyruntime",
              help="an OCI runtime with runc's command line (also DOCKEE_RUNTIME)")
@click.option("--runtime-root", default=lambda: os.environ.get("DOCKEE_RUNTIME_ROOT"),
              help="the runtime's --root (its own default when absent; also DOCKEE_RUNTIME_ROOT)")
@click.option("--debug", is_flag=True, help="tracebacks on errors")
@click.version_option("0.1.0", prog_name="dockee-shim")
@click.pass_context
def cli(ctx: click.Context, root: str, runtime: str, runtime_root: str | None, debug: bool) -> None:
    """A daemonless docker-like front end for OCI runtimes."""
    if os.geteuid() != 0 and ctx.invoked_subcommand and not {"-h", "--help"} & set(sys.argv[1:]):
        # say it once, before a tar or mount fails somewhere deep inside (rootless is not supported)
        raise DockeeError("dockee-shim needs root (rootless containers are not supported): run it as root")
    ctx.obj = Context(Store(root), runtime, runtime_root, debug)


def _register() -> None:
    from pyruntime.dockee import cli_containers, cli_images
    from pyruntime.dockee.network import cli as network_cli

    for mod in (cli_containers, cli_images, network_cli):
        mod.register(cli)


def main(argv: list[str] | None = None) -> None:
    _register()
    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    try:
        cli.main(args=argv, prog_name="dockee-shim", standalone_mode=False)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
    except click.exceptions.Abort:
        sys.exit(130)
    except click.ClickException as e:
        e.show()
        sys.exit(125 if e.exit_code == 2 else e.exit_code)
    except DockeeError as e:
        if debug:
            raise
        print(f"dockee-shim: {e}", file=sys.stderr)
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
    except OSError as e:
        if debug:
            raise
        where = f"{e.filename}: " if e.filename else ""
        print(f"dockee-shim: {where}{e.strerror or e}", file=sys.stderr)
        sys.exit(125)
    sys.exit(0)
