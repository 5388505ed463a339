"""A container's root filesystem: overlayfs with the image's layers as lowerdirs.

<container>/upper and <container>/work belong to the container; <container>/merged is what the
runtime gets as root.path. Mounting goes through util-linux's mount(8) (dockee-shim uses no
ctypes); each step is idempotent, so `start` after a reboot mounts again and `rm -f` always
unmounts.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from pyruntime.dockee.errors import DockeeError


def _unescape(field: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as octal
    if "\\" not in field:
        return field
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and i + 3 < len(field) and field[i + 1:i + 4].isdigit():
            out.append(chr(int(field[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def mount_points(mountinfo: str | None = None) -> list[str]:
    if mountinfo is None:
        with open("/proc/self/mountinfo") as f:
            mountinfo = f.read()
    return [_unescape(line.split()[4]) for line in mountinfo.splitlines() if len(line.split()) > 4]


def is_mounted(merged: Path) -> bool:
    return str(merged) in mount_points()


def options(lowers: list[Path], upper: Path, work: Path) -> str:
    """lowers are given lowest first (the image's order); overlayfs lists the top one first."""
    for p in (*lowers, upper, work):
        if any(c in str(p) for c in ",:"):
            raise DockeeError(f"overlay: path {p} holds ',' or ':', which overlayfs options cannot carry")
    lower = ":".join(str(p) for p in reversed(lowers))
    return f"lowerdir={lower},upperdir={upper},workdir={work}"


def mount(lowers: list[Path], upper: Path, work: Path, merged: Path) -> None:
    if is_mounted(merged):
        return
    for d in (upper, work, merged):
        d.mkdir(parents=True, exist_ok=True)
    if not lowers:
        empty = merged.parent / "empty"
        empty.mkdir(exist_ok=True)
        lowers = [empty]
    p = subprocess.run(["mount", "-t", "overlay", "overlay", "-o", options(lowers, upper, work), str(merged)],
                       stdin=subprocess.DEVNULL, capture_output=True, text=True)
    if p.returncode != 0:
        raise DockeeError(f"overlay mount on {merged}: {p.stderr.strip() or p.returncode}")


def unmount(merged: Path) -> None:
    """Idempotent; a busy mount is detached lazily so that `rm -f` never blocks on it."""
    for _ in range(8):  # a path may carry stacked mounts
        p = subprocess.run(["umount", str(merged)], stdin=subprocess.DEVNULL, capture_output=True, text=True)
        if not is_mounted(merged):
            return
        if p.returncode != 0:
            p = subprocess.run(["umount", "-l", str(merged)], stdin=subprocess.DEVNULL, capture_output=True,
                               text=True)
            if p.returncode != 0:
                raise DockeeError(f"unmount {merged}: {p.stderr.strip()}")
    raise DockeeError(f"unmount {merged}: still mounted")


def rootfs_file(merged: Path, rel: str) -> str:
    """Read a small file of the container's rootfs without following its symlinks out of it."""
    path = os.path.join(str(merged), rel.lstrip("/"))
    real = os.path.realpath(path)
    if not (real == str(merged) or real.startswith(str(merged) + "/")):
        return ""
    try:
        with open(real, errors="replace") as f:
            return f.read(1 << 20)
    except OSError:
        return ""
