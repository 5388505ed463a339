"""Console-script entry point: `pyruntime` (imports stay lazy for the hot verbs)."""

from __future__ import annotations

import sys


def main() -> None:
    from .cli import entry

    sys.exit(entry())
