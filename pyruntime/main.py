"""Console-script entry point.

The verbs that containerd and podman call for every container (create, start, state,
kill, delete, run, exec with a process.json, list, pause, resume) are parsed here
without importing click, which alone costs more than runc's whole `state`.  Both this
parser and the click CLI in cli.py are built from verbs.py's one table of flags; a
command line this parser does not take (a flag of another kind, a bad value, another
verb) goes to click, which says what is wrong.
"""

from __future__ import annotations

import os
import sys

from . import trace  # its import marks the end of the interpreter's start-up
from .verbs import COUNT, FLAG, GLOBAL, TEXT, VERBS

TYPE_CHECKING = False  # typing costs milliseconds; only the type checker needs it
if TYPE_CHECKING:
    from typing import Any


class _Fallback(Exception):
    """The fast parser does not handle this command line: let click do it."""


def _split(arg: str) -> tuple[str, str | None]:
    if arg.startswith("--") and "=" in arg:
        k, v = arg.split("=", 1)
        return k, v
    return arg, None


def _index(options: list[dict[str, object]]) -> dict[str, dict[str, object]]:
    return {name: o for o in options for name in o["names"]}  # type: ignore[attr-defined]


def parse_global(argv: list[str]) -> dict[str, object]:
    """The global flags alone, leniently (for logging an error of any command line)."""
    try:
        return parse(argv)[0]
    except _Fallback:
        out: dict[str, object] = {}
        index = _index(GLOBAL)
        for i, arg in enumerate(argv[:-1]):
            key, val = _split(arg)
            if key in index and index[key]["kind"] != FLAG:
                out[key] = val if val is not None else argv[i + 1]
        return out


def parse(argv: list[str]) -> tuple[dict[str, object], str, dict[str, object], list[str]]:
    """(global options by long name, as given; verb; its options by dest, defaults filled
    in; positional arguments), from verbs.py's table; _Fallback for what click must do."""
    gopts: dict[str, object] = {}
    index = _index(GLOBAL)
    i = 0
    while i < len(argv) and argv[i].startswith("-"):
        o, val, i = _take(argv, i, index)
        gopts[o["names"][0]] = val  # type: ignore[index]
        i += 1
    if i >= len(argv) or argv[i] not in VERBS:
        raise _Fallback
    verb = argv[i]
    options, least, most = VERBS[verb]
    index = _index(options)
    opts: dict[str, object] = {str(o["dest"]): o["default"] for o in options}
    pos: list[str] = []
    i += 1
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            pos.extend(argv[i + 1:])
            break
        if arg.startswith("-") and len(arg) > 1 and not (verb == "kill" and pos and arg[1:].isdigit()):
            o, val, i = _take(argv, i, index)
            opts[str(o["dest"])] = val
        else:
            pos.append(arg)
        i += 1
    if not least <= len(pos) <= most:
        raise _Fallback
    if verb == "exec" and opts["process_file"] is None:
        raise _Fallback  # a command line: click builds the process from the exec flags
    return gopts, verb, opts, pos


def _take(argv: list[str], i: int, index: dict[str, dict[str, object]]) -> tuple[dict[str, object], object, int]:
    """The option at argv[i], its value, and the index of the last word it took."""
    key, val = _split(argv[i])
    o = index.get(key)
    if o is None:
        raise _Fallback
    kind = o["kind"]
    if kind == FLAG:
        if val is not None:
            raise _Fallback
        return o, True, i
    if kind != TEXT and kind != COUNT:
        raise _Fallback
    if val is None:
        i += 1
        if i >= len(argv):
            raise _Fallback
        val = argv[i]
    if kind == COUNT:
        if not (val.isascii() and val.isdigit()):
            raise _Fallback  # click's message for a bad number
        return o, int(val), i
    if o["choices"] and val not in o["choices"]:  # type: ignore[operator]
        raise _Fallback
    return o, val, i


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
        code = _dispatch(root, log, verb, opts, pos, rootless)
        trace.mark("verb")  # the verb's own work since its last mark
        return code
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
    trace.mark("cli")
    if verb == "state":
        from .fastjson import dumps
        from .state import Store, oci_state, status

        st = Store(root).load(pos[0])
        doc = oci_state(st, status(st, os.path.join(root, pos[0])))
        sys.stdout.write(dumps(doc, indent=2) + "\n")
        return 0
    if verb in ("list", "pause", "resume"):
        # they only read state (and write the freezer): no Runtime, whose module and
        # syscalls cost a millisecond more
        from .state import Reader

        reader = Reader(root)
        if verb == "list":
            from .listing import list_containers

            sys.stdout.write(list_containers(reader, bool(opts["quiet"]), str(opts["fmt"])))
        else:
            from . import control

            (control.pause if verb == "pause" else control.resume)(reader, pos[0])
        return 0
    from .container import CreateOptions, Runtime

    rt = Runtime(root, warn=log.warn, debug=log.debug, rootless=rootless)
    cid = pos[0]
    if verb == "start":
        rt.start(cid)
    elif verb == "kill":
        from .signals import parse_signal

        rt.kill(cid, parse_signal(pos[1] if len(pos) > 1 else "SIGTERM"), bool(opts["all_procs"]))
    elif verb == "exec":
        return _exec(rt, cid, opts)
    elif verb == "delete":
        from .errors import ContainerNotExist

        force = bool(opts["force"])
        try:
            rt.delete(cid, force)
        except ContainerNotExist:
            if not force:
                raise
    else:
        copts = CreateOptions(
            bundle=str(opts["bundle"]),
            pid_file=opts["pid_file"],  # type: ignore[arg-type]
            console_socket=opts["console_socket"],  # type: ignore[arg-type]
            no_pivot=bool(opts["no_pivot"]),
            no_new_keyring=bool(opts["no_new_keyring"]),
            preserve_fds=int(opts["preserve_fds"]),  # type: ignore[call-overload]
        )
        if verb == "create":
            rt.create(cid, copts)
        else:
            from .run import run_container

            return run_container(rt, cid, copts, detach=bool(opts["detach"]),
                                 keep=bool(opts["keep"]))
    return 0


def _exec(rt: Any, cid: str, opts: dict[str, object]) -> int:
    from .errors import RuntimeErr
    from .exec import ExecOptions, exec_process
    from .fastjson import loads

    path = str(opts["process_file"])
    try:
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError as e:
            raise RuntimeErr(f"--process {path}: {e.strerror}")
        try:
            proc_doc = loads(data)
        except ValueError:
            import json  # only to word the error as the click path does

            try:
                proc_doc = json.loads(data)
            except json.JSONDecodeError as e:
                raise RuntimeErr(f"--process {path}: invalid JSON at line {e.lineno} column {e.colno}: {e.msg}")
        eopts = ExecOptions(detach=bool(opts["detach"]),
                            pid_file=opts["pid_file"],  # type: ignore[arg-type]
                            console_socket=opts["console_socket"],  # type: ignore[arg-type]
                            preserve_fds=int(opts["preserve_fds"]),  # type: ignore[call-overload]
                            ignore_paused=bool(opts["ignore_paused"]))
        if opts["tty"]:
            proc_doc["terminal"] = True
        return exec_process(rt, cid, proc_doc, eopts)
    except RuntimeErr as e:
        e.exit_code = 255  # runc's status when the process could not be started
        raise


def _exit(code: int) -> None:
    """Exit without the interpreter's teardown (freeing every module and object one by
    one, milliseconds on `create`): flush what Python buffers, run atexit, and go."""
    import atexit

    try:
        sys.stdout.flush()
    finally:
        sys.stderr.flush()
        atexit._run_exitfuncs()
        os._exit(code)


def main() -> None:
    argv = sys.argv[1:]
    if os.environ.get("PYRUNTIME_SLOW_CLI") is None:
        # A verb lives for milliseconds and makes no garbage worth collecting: a collection
        # triggered by the imports alone costs about a millisecond of every create.
        import gc

        gc.disable()
        try:
            code = fast(argv)
        except _Fallback:
            gc.enable()  # click's verbs include long-lived ones (events)
        else:
            trace.flush()
            _exit(code)
    from .cli import entry

    code = entry()
    trace.flush()
    sys.exit(code)
