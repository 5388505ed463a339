"""Phase marks for `make bench`'s per-verb breakdown; nothing at all unless asked for.

With PYRUNTIME_TRACE=FILE in the environment, each verb appends one line to FILE when it
ends: its pid, then `phase=ns:imp` for every mark: the time (CLOCK_MONOTONIC, the clock
of the bench's `time.monotonic_ns()`) and the time spent in import statements so far, which
the bench takes out of the phases the imports fell into and shows as a phase of its own.
A mark names the phase that just ended (interp, cli, config, cgroup, state, init,
container, ...); a name may come more than once and the bench adds the pieces up.

Without the variable, `mark` is one global lookup and a false test: the hot verbs pay
nothing for being measurable.
"""

from __future__ import annotations

import os
import time

_PATH = os.environ.get("PYRUNTIME_TRACE")
_marks: list[tuple[str, int, int]] = []
_import_ns = [0]


def mark(phase: str) -> None:
    if _PATH:
        _marks.append((phase, time.monotonic_ns(), _import_ns[0]))


def flush() -> None:
    """Append this process's marks to the trace file (once; a forked child never gets here)."""
    if not _PATH or not _marks:
        return
    line = f"{os.getpid()} " + " ".join(f"{p}={ns}:{imp}" for p, ns, imp in _marks) + "\n"
    _marks.clear()
    fd = os.open(_PATH, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def _time_imports() -> None:
    """Count the wall time of outermost import statements (nested ones are inside it)."""
    import builtins

    real = builtins.__import__
    depth = [0]

    def timed(*args, **kwargs):
        if depth[0]:
            return real(*args, **kwargs)
        depth[0] += 1
        t0 = time.monotonic_ns()
        try:
            return real(*args, **kwargs)
        finally:
            _import_ns[0] += time.monotonic_ns() - t0
            depth[0] -= 1

    builtins.__import__ = timed


if _PATH:
    mark("interp")
    _time_imports()
