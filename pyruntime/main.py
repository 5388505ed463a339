"""Console-script entry point.

The hot verbs that containerd and podman call for every container (state, start, kill,
delete, create, run) are parsed here without importing click, which alone costs more
than runc's whole `state`.  Any flag this parser does not know, and every other verb,
goes to the full click CLI in cli.py, which defines the same options.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # typing costs milliseconds; only the type checker needs it
if TYPE_CHECKING:
    from typing import Any

_GLOBAL_VALUE = {"--root", "--log", "--log-format", "--criu", "--rootless"}
_GLOBAL_FLAG = {"--debug", "--systemd-cgroup"}

_VERB_VALUE = {
    "create": {"--bundle", "-b", "--pid-file", "--console-socket", "--preserve-fds"},
    "run": {"--bundle", "-b", "--pid-file", "--console-socket", "--preserve-fds"},
    "kill": set(),
    "delete": set(),
    "start": set(),
    "state": set(),
    # what containerd's shim and conmon send; exec with a command line goes to click
    "exec": {"--process", "-p", "--pid-file", "--console-socket", "--preserve-fds"},
}
_VERB_FLAG = {
    "create": {"--no-pivot", "--no-new-keyring"},
    "run": {"--no-pivot", "--no-new-keyring", "--detach", "-d", "--keep"},
    "kill": {"--all", "-a"},
    "delete": {"--force", "-f"},
    "start": set(),
    "state": set(),
    "exec": {"--detach", "-d", "--tty", "-t", "--ignore-paused"},
}
_POSITIONAL = {"create": 1, "run": 1, "kill": 2, "delete": 1, "start": 1, "state": 1, "exec": 1}


class _Fallback(Exception):
    """The fast parser does not handle this command line: let click do it."""


def _split(arg: str) -> tuple[str, str | None]:
    if arg.startswith("--") and "=" in arg:
        k, v = arg.split("=", 1)
        return k, v
    return arg, None


def parse_global(argv: list[str]) -> dict[str, object]:
    """The global flags alone, leniently (for logging an error of any command line)."""
    try:
        return parse(argv)[0]
    except _Fallback:
        out: dict[str, object] = {}
        for i, arg in enumerate(argv[:-1]):
            key, val = _split(arg)
            if key in _GLOBAL_VALUE:
                out[key] = val if val is not None else argv[i + 1]
        return out


def parse(argv: list[str]) -> tuple[dict[str, object], str, dict[str, object], list[str]]:
    gopts: dict[str, object] = {}
    i = 0
    while i < len(argv) and argv[i].startswith("-"):
        key, val = _split(argv[i])
        if key in _GLOBAL_FLAG and val is None:
            gopts[key] = True
        elif key in _GLOBAL_VALUE:
            if val is None:
                i += 1
                if i >= len(argv):
                    raise _Fallback
                val = argv[i]
            gopts[key] = val
        else:
            raise _Fallback
        i += 1
    if i >= len(argv) or argv[i] not in _VERB_VALUE:
        raise _Fallback
    verb = argv[i]
    opts: dict[str, object] = {}
    pos: list[str] = []
    i += 1
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            pos.extend(argv[i + 1:])
            break
        if arg.startswith("-") and len(arg) > 1 and not (verb == "kill" and pos and arg[1:].isdigit()):
            key, val = _split(arg)
            if key in _VERB_FLAG[verb] and val is None:
                opts[key.lstrip("-")] = True
            elif key in _VERB_VALUE[verb]:
                if val is None:
                    i += 1
                    if i >= len(argv):
                        raise _Fallback
                    val = argv[i]
                opts[key.lstrip("-")] = val
            else:
                raise _Fallback
        else:
            pos.append(arg)
        i += 1
    if not 1 <= len(pos) <= _POSITIONAL[verb]:
        raise _Fallback
    if not str(opts.get("preserve-fds", "0")).isdigit():
        raise _Fallback
    if verb == "exec" and not ("process" in opts or "p" in opts):
        raise _Fallback
    return gopts, verb, opts, pos


def _opt(opts: dict[str, object], *names: str, default: object = None) -> object:
    for n in names:
        if n in opts:
            return opts[n]
    return default


def fast(argv: list[str]) -> int:
    gopts, verb, opts, pos = parse(argv)
    if gopts.get("--systemd-cgroup"):
        raise _Fallback
    from .errors import RuntimeErr
    from .log import Logger

    log = Logger(gopts.get("--log"), str(gopts.get("--log-format", "text")),  # type: ignore[arg-type]
                 bool(gopts.get("--debug")))
    try:
        root, rootless = state_root(gopts)
        return _dispatch(root, log, verb, opts, pos, rootless)
    except RuntimeErr as e:
        if gopts.get("--debug"):
            import traceback

            traceback.print_exc()
        log.error(str(e))
        return e.exit_code
    except KeyboardInterrupt:
        return 130
    except Exception as e:  # noqa: BLE001 - the last line of defence: still one line
        if gopts.get("--debug"):
            raise
        from .errors import describe

        log.error(describe(e))
        return 1


def state_root(gopts: dict[str, object]) -> tuple[str, bool | None]:
    """--root (runc's default for root; rootless.py's rule for anyone else) and --rootless."""
    root, flag = gopts.get("--root"), gopts.get("--rootless")
    if root is not None and flag is None:
        return str(root), None
    if root is None and flag is None and os.geteuid() == 0 and _host_root():
        return "/run/pyruntime", None
    from . import rootless

    if root is None:
        root, own = rootless.default_root()
        if own:
            rootless.prepare_root(root)
    return str(root), rootless.parse_flag(flag)


def _host_root() -> bool:
    """Root of the host's user namespace, not of one like rootless podman's (the few lines
    of rootless.in_user_namespace, kept here so that root's verbs import nothing more)."""
    try:
        with open("/proc/self/uid_map") as f:
            return f.read().split() == ["0", "0", "4294967295"]
    except OSError:
        return True


def _dispatch(root: str, log: Any, verb: str, opts: dict[str, object], pos: list[str],
              rootless: bool | None = None) -> int:
    if verb == "state":
        from .fastjson import dumps
        from .state import Store, oci_state, status

        st = Store(root).load(pos[0])
        doc = oci_state(st, status(st, os.path.join(root, pos[0])))
        sys.stdout.write(dumps(doc, indent=2) + "\n")
        return 0
    from .container import CreateOptions, Runtime

    rt = Runtime(root, warn=log.warn, debug=log.debug, rootless=rootless)
    cid = pos[0]
    if verb == "start":
        rt.start(cid)
    elif verb == "kill":
        from .signals import parse_signal

        rt.kill(cid, parse_signal(pos[1] if len(pos) > 1 else "SIGTERM"), bool(_opt(opts, "all", "a")))
    elif verb == "exec":
        return _exec(rt, cid, opts)
    elif verb == "delete":
        from .errors import ContainerNotExist

        force = bool(_opt(opts, "force", "f"))
        try:
            rt.delete(cid, force)
        except ContainerNotExist:
            if not force:
                raise
    else:
        from pathlib import Path

        copts = CreateOptions(
            bundle=Path(str(_opt(opts, "bundle", "b", default="."))),
            pid_file=_opt(opts, "pid-file"),  # type: ignore[arg-type]
            console_socket=_opt(opts, "console-socket"),  # type: ignore[arg-type]
            no_pivot=bool(_opt(opts, "no-pivot")),
            no_new_keyring=bool(_opt(opts, "no-new-keyring")),
            preserve_fds=int(str(_opt(opts, "preserve-fds", default=0))),
        )
        if verb == "create":
            rt.create(cid, copts)
        else:
            from .run import run_container

            return run_container(rt, cid, copts, detach=bool(_opt(opts, "detach", "d")),
                                 keep=bool(_opt(opts, "keep")))
    return 0


def _exec(rt: Any, cid: str, opts: dict[str, object]) -> int:
    import json

    from .errors import RuntimeErr
    from .exec import ExecOptions, exec_process

    path = str(_opt(opts, "process", "p"))
    try:
        try:
            with open(path) as f:
                proc_doc = json.load(f)
        except OSError as e:
            raise RuntimeErr(f"--process {path}: {e.strerror}")
        except json.JSONDecodeError as e:
            raise RuntimeErr(f"--process {path}: invalid JSON at line {e.lineno} column {e.colno}: {e.msg}")
        eopts = ExecOptions(detach=bool(_opt(opts, "detach", "d")),
                            pid_file=_opt(opts, "pid-file"),  # type: ignore[arg-type]
                            console_socket=_opt(opts, "console-socket"),  # type: ignore[arg-type]
                            preserve_fds=int(str(_opt(opts, "preserve-fds", default=0))),
                            ignore_paused=bool(_opt(opts, "ignore-paused")))
        if _opt(opts, "tty", "t"):
            proc_doc["terminal"] = True
        return exec_process(rt, cid, proc_doc, eopts)
    except RuntimeErr as e:
        e.exit_code = 255  # runc's status when the process could not be started
        raise


def main() -> None:
    argv = sys.argv[1:]
    if os.environ.get("PYRUNTIME_SLOW_CLI") is None:
        try:
            code = fast(argv)
        except _Fallback:
            pass
        else:
            sys.stdout.flush()
            sys.exit(code)
    from .cli import entry

    sys.exit(entry())
