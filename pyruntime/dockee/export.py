"""`export` and `cp`: a container's root filesystem as the container sees it, running or not.

A running container's merged dir is already mounted; otherwise a read-only overlay of its upper
dir over its image layers is mounted for the moment (no workdir needed, nothing can change).
Paths inside the container are resolved like securejoin: symlinks are followed within the root,
never out of it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pyruntime.dockee import overlay
from pyruntime.dockee.errors import DockeeError


@contextlib.contextmanager
def container_root(cdir: Path, rec: dict[str, Any], writable: bool = False) -> Iterator[Path]:
    merged = cdir / "merged"
    if overlay.is_mounted(merged):
        yield merged
        return
    layers = [Path(p) for p in rec.get("layer_dirs") or []]
    if writable:  # cp into a stopped container: its own overlay, mounted for the copy only
        overlay.mount(layers, cdir / "upper", cdir / "work", merged)
        try:
            yield merged
        finally:
            overlay.unmount(merged)
        return
    (cdir / "upper").mkdir(exist_ok=True)
    lowers = [*layers, cdir / "upper"]
    if len(lowers) < 2:  # overlayfs needs two lowers without an upper
        (cdir / "empty").mkdir(exist_ok=True)
        lowers.insert(0, cdir / "empty")
    mnt = Path(tempfile.mkdtemp(prefix="export-", dir=cdir))
    try:
        lower = ":".join(str(p) for p in reversed(lowers))
        p = subprocess.run(["mount", "-t", "overlay", "overlay", "-o", f"ro,lowerdir={lower}", str(mnt)],
                           stdin=subprocess.DEVNULL, capture_output=True, text=True)
        if p.returncode != 0:
            raise DockeeError(f"overlay mount on {mnt}: {p.stderr.strip() or p.returncode}")
        try:
            yield mnt
        finally:
            overlay.unmount(mnt)
    finally:
        with contextlib.suppress(OSError):
            mnt.rmdir()


def write_tar(root: Path, out: str | None) -> None:
    """The whole root as a tar on `out` (a path) or stdout, owners numeric, xattrs kept."""
    argv = ["tar", "--numeric-owner", "--xattrs", "--xattrs-include=*", "-C", str(root), "-cf", "-", "."]
    if out is None:
        rc = subprocess.run(argv, stdin=subprocess.DEVNULL).returncode
        if rc not in (0, 1):  # 1: a file changed while it was read (a running container)
            raise DockeeError(f"export: tar exited {rc}")
        return
    tmp = f"{out}.tmp-{os.getpid()}"
    try:
        with open(tmp, "wb") as f:
            p = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=f, stderr=subprocess.PIPE, text=True)
        if p.returncode not in (0, 1):
            raise DockeeError(f"export: tar exited {p.returncode}: {p.stderr.strip()}")
        os.replace(tmp, out)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def resolve_in(root: Path, path: str, follow_last: bool = True) -> Path:
    """`path` inside the container -> a host path under root; symlinks stay inside root."""
    parts = [p for p in path.split("/") if p not in ("", ".")]
    cur: list[str] = []
    hops = 0
    while parts:
        part = parts.pop(0)
        if part == "..":
            if cur:
                cur.pop()
            continue
        host = root.joinpath(*cur, part)
        if os.path.islink(host) and (parts or follow_last):
            hops += 1
            if hops > 40:
                raise DockeeError(f"{path}: too many levels of symbolic links")
            target = os.readlink(host)
            if target.startswith("/"):
                cur = []
            parts = [p for p in target.split("/") if p not in ("", ".")] + parts
            continue
        cur.append(part)
    return root.joinpath(*cur)


def copy(src: Path, dst: Path) -> None:
    """docker cp's rule: into dst when it is a directory, else as dst."""
    if dst.is_dir() and not dst.is_symlink():
        dst = dst / src.name
    if src.is_dir() and not src.is_symlink():
        shutil.copytree(src, dst, symlinks=True, dirs_exist_ok=True)
    else:
        shutil.copy2(src, dst, follow_symlinks=False)
