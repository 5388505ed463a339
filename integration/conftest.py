"""Shared fixtures for root tests on the real kernel.

Every container gets a unique id, a private --root and a relative cgroupsPath (so its
cgroups sit under this test process's own cgroup); the fixtures delete whatever a test
made, also when the test fails.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from harness import PYRUNTIME, REPO, base_config, run_captured, wait_status

__all__ = ["PYRUNTIME", "REPO", "Runtime", "base_config", "busybox_rootfs"]

# inside the checkout (git-ignored), so that tests leave nothing elsewhere on the machine
CACHE = Path(os.environ.get("PYRUNTIME_TEST_CACHE", str(REPO / ".cache" / "test")))
RECIPE = REPO / "bundles" / "busybox.sh"
BUSYBOX = Path(os.environ.get("BUSYBOX", "/bin/busybox"))
# an exception that escaped every verb (errors.describe's last line of defence) or a
# traceback: never what a user may see from pyruntime, whatever error a test provokes
ESCAPED = re.compile(r"internal error: [A-Za-z_][\w.]*(:|(Error|Exception|Exit|Interrupt|Iteration)\b)"
                     r"|Traceback \(most recent call last\)")
_escaped: list[str] = []  # what Runtime saw during the current test (and its teardown)


def pytest_collection_modifyitems(config: Any, items: list[Any]) -> None:
    here = Path(__file__).resolve().parent
    for item in items:
        if here in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.integration)
            if os.geteuid() != 0:
                item.add_marker(pytest.mark.skip(reason="needs root"))


def _rootfs_key() -> str:
    """The cache key: the recipe and the busybox binary it copies (a new busybox-static
    or a changed recipe builds a new rootfs)."""
    h = hashlib.sha256(RECIPE.read_bytes())
    h.update(BUSYBOX.read_bytes())
    return h.hexdigest()[:16]


def busybox_rootfs() -> Path:
    """A busybox rootfs built once per recipe and busybox binary, copied into each bundle."""
    base = CACHE / f"busybox-{_rootfs_key()}"
    ready = base / ".ready"
    if not ready.exists():
        tmp = CACHE / f".building-{uuid.uuid4().hex[:8]}"
        tmp.mkdir(parents=True)
        try:
            subprocess.run(["bash", str(RECIPE), str(tmp)], check=True,
                           env={**os.environ, "PYRUNTIME": PYRUNTIME, "BUSYBOX": str(BUSYBOX)})
            (tmp / ".ready").touch()
            try:
                os.rename(tmp, base)  # atomic: a concurrent builder's result is as good
            except OSError:
                pass
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return base / "rootfs"


class Runtime:
    """Runs a runtime binary with a private --root; remembers what to clean."""

    def __init__(self, binary: str, root: Path, tmp: Path) -> None:
        self.binary = binary
        self.root = root
        self.tmp = tmp
        self.ids: list[str] = []

    def __call__(self, *args: str, check: bool = False, timeout: float = 60,
                 input: str | None = None, **kw: Any) -> subprocess.CompletedProcess[str]:
        # files, not pipes: a created container's init holds its stdio open until it exits
        p = run_captured([self.binary, "--root", str(self.root), *args], timeout=timeout,
                         input=input, check=check, **kw)
        if os.path.basename(self.binary) != "runc" and "--debug" not in args and p.stderr \
                and ESCAPED.search(p.stderr):
            _escaped.append(f"pyruntime {' '.join(args)} -> {p.returncode}:\n{p.stderr.rstrip()}")
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

    def wait_status(self, cid: str, want: str, timeout: float = 20) -> dict[str, Any]:
        return wait_status(self, cid, want, timeout)

    def run(self, config: dict[str, Any], *extra: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        b = self.bundle(config)
        return self("run", "--bundle", str(b), *extra, self.new_id(), timeout=timeout)

    def cleanup(self) -> None:
        for cid in self.ids:
            self("delete", "--force", cid, timeout=30)


def _conmon_parents() -> set[Path]:
    """podman (cgroupfs) moves conmon into libpod_parent/conmon of every controller directory,
    and makes that path as a plain directory where a controller is not mounted."""
    return set(Path("/sys/fs/cgroup").glob("*/libpod_parent"))


@pytest.fixture(scope="session", autouse=True)
def podman_conmon_parents() -> Iterator[None]:
    """Remove the libpod_parent trees that the session's podman runs made (best effort: a
    concurrent podman may be using them, and then they stay)."""
    before = _conmon_parents()
    yield
    for top in _conmon_parents() - before:
        if os.path.ismount(top.parent):  # a real hierarchy: empty cgroups, deepest first
            for d in sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)) + [top]:
                try:
                    d.rmdir()
                except OSError:
                    pass
        else:  # a plain directory on /sys/fs/cgroup's tmpfs, with conmon's `tasks` file in it
            shutil.rmtree(top, ignore_errors=True)


@pytest.fixture(autouse=True)
def no_escaped_exception() -> Iterator[None]:
    """Issue 10: every error path a test provokes through Runtime (its cleanup included:
    autouse, so torn down after `pyrt`) ends in one line, never an escaped exception."""
    del _escaped[:]
    yield
    found, _escaped[:] = list(_escaped), []
    if found:
        pytest.fail("pyruntime let an exception escape:\n" + "\n".join(found), pytrace=False)


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
