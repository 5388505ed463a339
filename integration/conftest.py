"""Shared fixtures for root tests on the real kernel.

Every container gets a unique id, a private --root and a relative cgroupsPath (so its
cgroups sit under this test process's own cgroup); the fixtures delete whatever a test
made, also when the test fails.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
PYRUNTIME = str(REPO / ".venv" / "bin" / "pyruntime")
# inside the checkout (git-ignored), so that tests leave nothing elsewhere on the machine
CACHE = Path(os.environ.get("PYRUNTIME_TEST_CACHE", str(REPO / ".cache" / "test")))


def pytest_collection_modifyitems(config: Any, items: list[Any]) -> None:
    here = Path(__file__).resolve().parent
    for item in items:
        if here in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.integration)
            if os.geteuid() != 0:
                item.add_marker(pytest.mark.skip(reason="needs root"))


def busybox_rootfs() -> Path:
    """A busybox rootfs built once per machine and copied into each bundle."""
    ready = CACHE / "busybox.ready"
    base = CACHE / "busybox"
    if not ready.exists():
        shutil.rmtree(base, ignore_errors=True)
        base.mkdir(parents=True)
        subprocess.run(["bash", str(REPO / "bundles" / "busybox.sh"), str(base)], check=True,
                       env={**os.environ, "PYRUNTIME": PYRUNTIME})
        ready.touch()
    return base / "rootfs"


def base_config(args: list[str] | None = None) -> dict[str, Any]:
    from pyruntime.defaults import default_spec

    doc = default_spec()
    doc["process"]["terminal"] = False
    doc["process"]["args"] = args or ["true"]
    doc["root"]["readonly"] = False
    doc["linux"]["cgroupsPath"] = f"pyrt-test-{uuid.uuid4().hex[:10]}"
    return doc


class Runtime:
    """Runs a runtime binary with a private --root; remembers what to clean."""

    def __init__(self, binary: str, root: Path, tmp: Path) -> None:
        self.binary = binary
        self.root = root
        self.tmp = tmp
        self.ids: list[str] = []

    def __call__(self, *args: str, check: bool = False, timeout: float = 60,
                 input: str | None = None, **kw: Any) -> subprocess.CompletedProcess[str]:
        cmd = [self.binary, "--root", str(self.root), *args]
        # files, not pipes: a created container's init holds its stdio open until it exits
        with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
            p = subprocess.run(cmd, stdout=out, stderr=err, text=True, timeout=timeout,
                               input=input, **kw)
            out.seek(0)
            err.seek(0)
            p.stdout, p.stderr = out.read(), err.read()
        if check and p.returncode != 0:
            raise AssertionError(f"{' '.join(cmd)} -> {p.returncode}\n{p.stdout}\n{p.stderr}")
        return p

    def bundle(self, config: dict[str, Any], name: str | None = None) -> Path:
        b = self.tmp / (name or f"bundle-{uuid.uuid4().hex[:8]}")
        b.mkdir()
        shutil.copytree(busybox_rootfs(), b / "rootfs", symlinks=True)
        (b / "config.json").write_text(json.dumps(config))
        return b

    def new_id(self) -> str:
        cid = f"t{uuid.uuid4().hex[:12]}"
        self.ids.append(cid)
        return cid

    def state(self, cid: str) -> dict[str, Any]:
        return json.loads(self("state", cid, check=True).stdout)

    def run(self, config: dict[str, Any], *extra: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        b = self.bundle(config)
        return self("run", "--bundle", str(b), *extra, self.new_id(), timeout=timeout)

    def cleanup(self) -> None:
        for cid in self.ids:
            self("delete", "--force", cid, timeout=30)


@pytest.fixture
def pyrt(tmp_path: Path) -> Iterator[Runtime]:
    rt = Runtime(PYRUNTIME, tmp_path / "state", tmp_path)
    yield rt
    rt.cleanup()


@pytest.fixture
def runc(tmp_path: Path) -> Iterator[Runtime]:
    if shutil.which("runc") is None:
        pytest.skip("runc not installed")
    rt = Runtime("runc", tmp_path / "runc-state", tmp_path)
    yield rt
    rt.cleanup()
