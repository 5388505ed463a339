"""Signal names and numbers as runc's `kill` accepts them (KILL, SIGKILL, 9)."""

from __future__ import annotations

import _signal  # not `signal`: its enums cost more than the rest of `pyruntime kill`

from .errors import RuntimeErr

_BY_NAME = {name: getattr(_signal, name) for name in dir(_signal)
            if name.startswith("SIG") and not name.startswith("SIG_") and name.isupper()}


def parse_signal(text: str) -> int:
    t = text.strip().upper()
    if t.isdigit():
        n = int(t)
        if 0 <= n < _signal.NSIG:  # 0 only checks that the process exists, as kill(1)
            return n
        raise RuntimeErr(f"invalid signal: {text}")
    if not t.startswith("SIG"):
        t = "SIG" + t
    number = _BY_NAME.get(t)
    if not isinstance(number, int):
        raise RuntimeErr(f"invalid signal: {text}")
    return number
