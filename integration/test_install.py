"""The installed commands run for every user, not only for root (issue 12: the venv's base
interpreter must be one an unprivileged user may execute)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("command", ["pyruntime", "dockee-shim"])
def test_unprivileged_user_runs_the_installed_command(command: str) -> None:
    binary = REPO / ".venv" / "bin" / command
    p = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", str(binary), "--version"],
                       capture_output=True, text=True, timeout=30, cwd="/")
    assert p.returncode == 0, p.stderr
    assert "version" in p.stdout
