"""dockee logs: --tail found reading backwards, entries streamed (trial F46)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pyruntime.dockee import logs


def _log(tmp_path: Path, lines: list[bytes]) -> Path:
    p = tmp_path / "ctr.log"
    p.write_bytes(b"".join(lines))
    return p


@pytest.mark.parametrize("n", [1, 2, 3, 5, 50])
def test_tail_start_gives_the_last_n_entries(tmp_path: Path, n: int) -> None:
    lines = [b"2024-01-01T00:00:00+00:00 stdout F first\n",
             b"2024-01-01T00:00:01+00:00 stdout P long-" + b"x" * 70000 + b"\n",
             b"2024-01-01T00:00:01+00:00 stderr F err\n",
             b"2024-01-01T00:00:02+00:00 stdout F end\n",
             b"2024-01-01T00:00:03+00:00 stdout F last\n",
             b"2024-01-01T00:00:04+00:00 stdout P half"]  # still being written: not shown
    p = _log(tmp_path, lines)
    end = logs.complete_end(p)
    assert end == p.stat().st_size - len(lines[-1])
    everything = [e.data for e in logs.iter_entries(p, 0, end)]
    assert everything == [b"first\n", b"err\n", b"long-" + b"x" * 70000 + b"end\n", b"last\n"]
    got = [e.data for e in logs.iter_entries(p, logs.tail_start(p, n, end), end)][-n:]
    assert got == everything[-n:]
