"""The one table of runc's flags that pyruntime knows, global and per verb.

main.py's fast parser (the verbs containerd and podman call per container, without click)
and cli.py's click commands are both built from it, so a flag cannot exist in one parser
and not in the other.  This module imports nothing: the fast path reads it on every verb.

An option is a dict: names (long first), kind, dest (the parameter name), default, help,
and optionally choices, hidden, metavar.  Kinds: FLAG (no value), TEXT, COUNT (an integer
>= 0), MULTI (repeatable text), INTS (repeatable integer).  The fast parser takes FLAG,
TEXT and COUNT; a command line with anything else goes to click.
"""

from __future__ import annotations

FLAG, TEXT, COUNT, MULTI, INTS = "flag", "text", "count", "multi", "ints"
DEFAULT_ROOT = "/run/pyruntime"


def opt(*names: str, kind: str = TEXT, dest: str | None = None, default: object = None,
        help: str | None = None, choices: tuple[str, ...] | None = None,  # noqa: A002 - click's word
        hidden: bool = False, metavar: str | None = None) -> dict[str, object]:
    if default is None:
        default = {FLAG: False, COUNT: 0, MULTI: (), INTS: ()}.get(kind)
    return {"names": names, "kind": kind, "dest": dest or names[0].lstrip("-").replace("-", "_"),
            "default": default, "help": help, "choices": choices, "hidden": hidden,
            "metavar": metavar}


# keyed by the long name in the fast parser's result (main.state_root reads "--root")
GLOBAL = [
    opt("--root", help=f"state directory [default: {DEFAULT_ROOT}; $XDG_RUNTIME_DIR/pyruntime "
        "for a non-root user]"),
    opt("--log", dest="log_path", help="log file (default: stderr only)"),
    opt("--log-format", choices=("text", "json"), default="text"),
    opt("--debug", kind=FLAG, help="debug logging and tracebacks"),
    opt("--systemd-cgroup", kind=FLAG, help="use the systemd cgroup driver"),
    opt("--criu", hidden=True),
    opt("--rootless", metavar="true|false|auto",
        help="best-effort cgroups as an unprivileged user needs them [default: auto]"),
]

_CREATE = [
    opt("--bundle", "-b", default=".", help="bundle directory"),
    opt("--pid-file"),
    opt("--console-socket"),
    opt("--no-pivot", kind=FLAG),
    opt("--no-new-keyring", kind=FLAG),
    opt("--preserve-fds", kind=COUNT),
]

_EXEC = [
    opt("--process", "-p", dest="process_file", help="process.json to run"),
    opt("--tty", "-t", kind=FLAG),
    opt("--detach", "-d", kind=FLAG),
    opt("--cwd"),
    opt("--env", "-e", kind=MULTI),
    opt("--user", "-u", help="uid[:gid], numbers (as runc)"),
    opt("--additional-gids", "-g", kind=INTS),
    opt("--cap", "-c", kind=MULTI),
    opt("--no-new-privs", kind=FLAG),
    opt("--apparmor"),
    opt("--process-label"),
    opt("--pid-file"),
    opt("--console-socket"),
    opt("--preserve-fds", kind=COUNT),
    opt("--ignore-paused", kind=FLAG),
    opt("--cgroup", dest="cgroups", kind=MULTI,
        help="[controller[,controller]:]path below the container's cgroup"),
]

# verb -> (options, fewest and most positional arguments)
VERBS: dict[str, tuple[list[dict[str, object]], int, int]] = {
    "create": (_CREATE, 1, 1),
    "run": (_CREATE + [opt("--detach", "-d", kind=FLAG),
                       opt("--keep", kind=FLAG, help="do not delete the container after it exits")], 1, 1),
    "start": ([], 1, 1),
    "state": ([], 1, 1),
    "kill": ([opt("--all", "-a", kind=FLAG, dest="all_procs",
                  help="signal every process of the container")], 1, 2),
    "delete": ([opt("--force", "-f", kind=FLAG, help="kill the container first if it runs")], 1, 1),
    "exec": (_EXEC, 1, 1),  # the fast parser takes it with --process; a command line goes to click
    "list": ([opt("--quiet", "-q", kind=FLAG),
              opt("--format", "-f", dest="fmt", choices=("table", "json"), default="table")], 0, 0),
    "pause": ([], 1, 1),
    "resume": ([], 1, 1),
}
