"""The embedded default image: `busybox`, built from the host's busybox-static on first use.

One layer: /bin/busybox, a symlink to it for every applet (`busybox --list-full`, without
one that would replace bin/busybox itself) and also as /bin/<applet> (the official busybox image
has every applet in /bin, so `/bin/ip a` works as under docker), the usual top-level directories, and an
/etc/passwd and /etc/group with root and nobody.  Times come from the binary's mtime and
entries are sorted, so the same busybox always gives the same layer and image id.
"""

from __future__ import annotations

import datetime
import io
import os
import subprocess
import tarfile
import tempfile
from pathlib import Path

from pyruntime.dockee.errors import DockeeError
from pyruntime.dockee.images import DEFAULT_TAG, Image, ImageStore, config_bytes, goarch

NAME = f"busybox:{DEFAULT_TAG}"
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
PASSWD = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
GROUP = "root:x:0:\ntty:x:5:\nnogroup:x:65534:\n"
DIRS = {"bin": 0o755, "dev": 0o755, "etc": 0o755, "home": 0o755, "proc": 0o555, "root": 0o700,
        "run": 0o755, "sbin": 0o755, "sys": 0o555, "tmp": 0o1777, "usr": 0o755, "usr/bin": 0o755,
        "usr/sbin": 0o755, "var": 0o755, "var/tmp": 0o1777}


def busybox_path() -> Path:
    return Path(os.environ.get("DOCKEE_BUSYBOX", "/bin/busybox"))


def layer_tar(busybox: Path, out: io.BufferedIOBase) -> int:
    """Write the layer tar to out; returns the mtime used for every entry."""
    try:
        st = os.stat(busybox)
        applets = subprocess.run([str(busybox), "--list-full"], capture_output=True, text=True,
                                 check=True).stdout.split()
    except (OSError, subprocess.CalledProcessError) as e:
        raise DockeeError(f"busybox: cannot use {busybox} (apt-get install busybox-static): {e}") from None
    mtime = int(st.st_mtime)
    entries: dict[str, tarfile.TarInfo] = {}

    def info(name: str, kind: bytes, mode: int) -> tarfile.TarInfo:
        ti = tarfile.TarInfo(name)
        ti.type, ti.mode, ti.mtime = kind, mode, mtime
        ti.uname = ti.gname = ""
        return ti

    for d, mode in DIRS.items():
        entries[d] = info(d, tarfile.DIRTYPE, mode)
    for a in applets:
        a = a.strip("/")
        if not a or a == "bin/busybox" or ".." in a.split("/"):
            continue
        parent = os.path.dirname(a)
        if parent and parent not in entries:
            entries[parent] = info(parent, tarfile.DIRTYPE, 0o755)
        for path in (a, "bin/" + os.path.basename(a)):
            if path != "bin/busybox" and path not in entries:
                link = info(path, tarfile.SYMTYPE, 0o777)
                link.linkname = "/bin/busybox"
                entries[path] = link
    files = {"etc/passwd": PASSWD.encode(), "etc/group": GROUP.encode()}
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in sorted(set(entries) | set(files) | {"bin/busybox"}):
            if name == "bin/busybox":
                ti = info(name, tarfile.REGTYPE, 0o755)
                ti.size = st.st_size
                with open(busybox, "rb") as f:
                    tar.addfile(ti, f)
            elif name in files:
                ti = info(name, tarfile.REGTYPE, 0o644)
                ti.size = len(files[name])
                tar.addfile(ti, io.BytesIO(files[name]))
            else:
                tar.addfile(entries[name])
    return mtime


def ensure(images: ImageStore) -> Image:
    """The busybox image, built now if the store has none."""
    store = images.store.ensure()
    with store.lock("embedded"):
        tags = images._tags()
        if NAME in tags:
            return images.get(tags[NAME], tags)
        with tempfile.TemporaryFile(dir=store.tmp) as tmp:
            mtime = layer_tar(busybox_path(), tmp)
            tmp.seek(0)
            staging, ex = images.stage_layer(tmp, what="embedded busybox")
        created = datetime.datetime.fromtimestamp(mtime, datetime.UTC).isoformat().replace("+00:00", "Z")
        raw = {
            "architecture": goarch(),
            "os": "linux",
            "created": created,
            "config": {"Env": [f"PATH={DEFAULT_PATH}"], "Cmd": ["sh"]},
            "rootfs": {"type": "layers", "diff_ids": [ex.diff_id]},
            "history": [{"created": created, "created_by": f"dockee-shim: embedded from {busybox_path()}"}],
        }
        return images.finish([(staging, ex)], [(config_bytes(raw), [NAME])])[0]
