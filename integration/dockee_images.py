"""Image fixtures for dockee-shim tests, shared by the image and container tests.

- debian_tarball(): a `docker export`-style Debian rootfs tarball made by bundles/debian.sh
  (debootstrap, minutes), built once per machine into the checkout's .cache/test/ under a
  name keyed on the recipe and the suite; concurrent callers wait on a file lock, and a
  failed build leaves nothing behind (it is retried once: mirrors have bad moments).
- busybox_tarball(): the busybox rootfs of conftest.busybox_rootfs() as a flat tarball, the
  way the seeds' users make one (`tar -C rootfs -cf busybox.tar .`).
- dockee(root, *args): runs the installed `dockee-shim --root ROOT ...` as a user would.
- umoci_layout(dir): an OCI layout built locally with umoci (no network): a base layer
  from busybox plus a second layer that deletes a file and replaces a directory.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import uuid
from pathlib import Path

from conftest import CACHE, REPO, busybox_rootfs

DEBIAN_RECIPE = REPO / "bundles" / "debian.sh"
DOCKEE = os.environ.get("DOCKEE_SHIM", shutil.which("dockee-shim") or str(REPO / ".venv" / "bin" / "dockee-shim"))


def _key(*parts: bytes) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(p)
        h.update(b"\0")
    return h.hexdigest()[:12]


def debian_tarball(suite: str = "bullseye") -> Path:
    """The cached Debian tarball, built now if missing (needs root and the apt mirror)."""
    out = CACHE / f"debian-{suite}-{_key(DEBIAN_RECIPE.read_bytes(), suite.encode())}.tar"
    if out.exists():
        return out
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / f".debian-{suite}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if out.exists():
            return out
        tmp = CACHE / f".debian-{uuid.uuid4().hex[:8]}.tar"
        last: subprocess.CalledProcessError | None = None
        for _ in range(2):
            try:
                subprocess.run(["bash", str(DEBIAN_RECIPE), str(tmp), suite], check=True, capture_output=True,
                               text=True, timeout=1200)
                os.replace(tmp, out)
                return out
            except subprocess.CalledProcessError as e:
                last = e
                tmp.unlink(missing_ok=True)
        assert last is not None
        raise RuntimeError(f"bundles/debian.sh failed twice:\n{last.stderr[-2000:]}")


def busybox_tarball() -> Path:
    """A flat busybox rootfs tarball (numeric owners), cached beside the rootfs it comes from."""
    rootfs = busybox_rootfs()
    out = rootfs.parent / f"{rootfs.name}.tar"
    if not out.exists():
        tmp = out.with_name(f".{out.name}.{uuid.uuid4().hex[:8]}")
        subprocess.run(["tar", "-C", str(rootfs), "--numeric-owner", "--exclude=./.ready", "-cf", str(tmp), "."],
                       check=True)
        os.replace(tmp, out)
    return out


def dockee(root: Path, *args: str, input: bytes | None = None, timeout: float = 300,
           check: bool = False) -> subprocess.CompletedProcess[str]:
    raw = subprocess.run([DOCKEE, "--root", str(root), *args], input=input, capture_output=True, timeout=timeout,
                         stdin=None if input is not None else subprocess.DEVNULL)
    p = subprocess.CompletedProcess(raw.args, raw.returncode, raw.stdout.decode(errors="replace"),
                                    raw.stderr.decode(errors="replace"))
    if check and p.returncode != 0:
        raise AssertionError(f"dockee-shim {' '.join(args)} -> {p.returncode}\n{p.stdout}\n{p.stderr}")
    return p


def umoci_layout(work: Path, tag: str = "v1") -> Path:
    """An OCI layout (gzip layers): busybox, then a layer that deletes /data/gone, replaces
    /data/dir (whiteouts) and adds /data/dir/new; config Cmd ["sh"], Env with PATH and A=1."""
    layout = work / "layout"

    def umoci(*args: str) -> None:
        subprocess.run(["umoci", *args], check=True, capture_output=True, text=True)

    umoci("init", "--layout", str(layout))
    umoci("new", "--image", f"{layout}:{tag}")
    b1 = work / "b1"
    umoci("unpack", "--image", f"{layout}:{tag}", str(b1))
    subprocess.run(["cp", "-a", f"{busybox_rootfs()}/.", str(b1 / "rootfs")], check=True)
    data = b1 / "rootfs" / "data"
    (data / "dir").mkdir(parents=True)
    (data / "gone").write_text("gone\n")
    (data / "dir" / "old").write_text("old\n")
    umoci("repack", "--image", f"{layout}:{tag}", str(b1))
    umoci("config", "--image", f"{layout}:{tag}", "--config.cmd", "sh",
          "--config.env", "PATH=/usr/sbin:/usr/bin:/sbin:/bin", "--config.env", "A=1")
    b2 = work / "b2"
    umoci("unpack", "--image", f"{layout}:{tag}", str(b2))
    data = b2 / "rootfs" / "data"
    (data / "gone").unlink()
    shutil.rmtree(data / "dir")
    (data / "dir").mkdir()
    (data / "dir" / "new").write_text("new\n")
    umoci("repack", "--image", f"{layout}:{tag}", str(b2))
    shutil.rmtree(b1)
    shutil.rmtree(b2)
    return layout
