"""Signal names and numbers as runc's `kill` accepts them (KILL, SIGKILL, 9)."""

from __future__ import annotations

import signal

from .errors import RuntimeErr


def parse_signal(text: str) -> int:
    t = text.strip().upper()
    if t.isdigit():
        n = int(t)
        if 0 <= n < signal.NSIG:  # 0 only checks that the process exists, as kill(1)
            return n
        raise RuntimeErr(f"invalid signal: {text}")
    if not t.startswith("SIG"):
        t = "SIG" + t
    try:
        return int(signal.Signals[t])
    except KeyError:
        raise RuntimeErr(f"invalid signal: {text}")
