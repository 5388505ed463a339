"""Where an ADD or DEL spends its time: named marks, printed on stderr when DOCKEE_CNI_TIMING is set.

Marks are CLOCK_MONOTONIC readings (system-wide), so a caller that noted the clock before exec can
also attribute the interpreter's start.  scripts/bench_network.py prints the breakdown.  Disabled,
a mark costs one comparison; this module imports nothing that is not loaded already.
"""

from __future__ import annotations

import os
import sys
import time

ENV = "DOCKEE_CNI_TIMING"
_marks: list[tuple[str, float]] | None = [("start", time.monotonic())] if os.environ.get(ENV) else None


def mark(step: str) -> None:
    """The time since the previous mark was spent on `step`."""
    if _marks is not None:
        _marks.append((step, time.monotonic()))


def report() -> None:
    if _marks is not None:
        mark("exit")
        text = ",".join(f'["{name}",{t:.6f}]' for name, t in _marks)
        sys.stderr.write(f"dockee-cni-timing [{text}]\n")
