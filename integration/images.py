"""Container images built locally from the busybox rootfs, for containerd and podman.

No registry is ever contacted: the rootfs of conftest.busybox_rootfs() becomes one
uncompressed layer, described by an image config and a manifest, and is written either
as an OCI image layout tarball (``ctr images import``, ``podman load``) or as a plain
layer tarball (``podman import``).

Also the host-state helpers test_containerd.py and test_podman.py share to leave nothing
behind (HostSnapshot: new cgroups, /run directories, mounts, stray processes).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import platform
import shutil
import subprocess
import tarfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from conftest import busybox_rootfs

OCI_LAYOUT = {"imageLayoutVersion": "1.0.0"}
MT_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_INDEX = "application/vnd.oci.image.index.v1+json"
MT_CONFIG = "application/vnd.oci.image.config.v1+json"
MT_LAYER = "application/vnd.oci.image.layer.v1.tar"
# containerd takes an image's name from this annotation of an imported index entry
ANNOTATION_CONTAINERD_NAME = "io.containerd.image.name"
ANNOTATION_REF_NAME = "org.opencontainers.image.ref.name"
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def goarch() -> str:
    m = platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386",
            "ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64"}.get(m, m)


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def layer_tar(rootfs: Path | None = None) -> bytes:
    """An uncompressed layer: every file of ``rootfs`` owned by root, fixed mtimes.

    The bytes are the same every time for the same tree, so the layer's digest is stable.
    """
    root = rootfs or busybox_rootfs()
    buf = io.BytesIO()

    def reset(ti: tarfile.TarInfo) -> tarfile.TarInfo:
        ti.uid = ti.gid = 0
        ti.uname = ti.gname = "root"
        ti.mtime = 0
        return ti

    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            rel_dir = os.path.relpath(dirpath, root)
            for name in sorted(dirnames) + sorted(filenames):
                full = os.path.join(dirpath, name)
                arc = name if rel_dir == "." else os.path.join(rel_dir, name)
                tar.add(full, arcname=arc, recursive=False, filter=reset)
    return buf.getvalue()


def image_config(diff_id: str, cmd: list[str] | None = None) -> dict[str, Any]:
    return {
        "architecture": goarch(),
        "os": "linux",
        "config": {"Env": [f"PATH={DEFAULT_PATH}"], "Cmd": cmd or ["sh"], "WorkingDir": "/"},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created_by": "pyruntime integration/images.py: busybox-static"}],
    }


def write_oci_archive(dest: Path, name: str, rootfs: Path | None = None) -> Path:
    """Write an OCI image layout as a tarball holding one image named ``name``.

    ``name`` is used verbatim by containerd (``io.containerd.image.name``); keep it free
    of any registry host, e.g. ``pyruntime-test/busybox:1``.
    """
    layer = layer_tar(rootfs)
    layer_digest = _digest(layer)
    config = json.dumps(image_config(layer_digest), sort_keys=True).encode()
    manifest = json.dumps({
        "schemaVersion": 2,
        "mediaType": MT_MANIFEST,
        "config": {"mediaType": MT_CONFIG, "digest": _digest(config), "size": len(config)},
        "layers": [{"mediaType": MT_LAYER, "digest": layer_digest, "size": len(layer)}],
    }, sort_keys=True).encode()
    tag = name.rsplit(":", 1)[1] if ":" in name.rsplit("/", 1)[-1] else "latest"
    index = json.dumps({
        "schemaVersion": 2,
        "mediaType": MT_INDEX,
        "manifests": [{
            "mediaType": MT_MANIFEST, "digest": _digest(manifest), "size": len(manifest),
            "platform": {"architecture": goarch(), "os": "linux"},
            "annotations": {ANNOTATION_CONTAINERD_NAME: name, ANNOTATION_REF_NAME: tag},
        }],
    }, sort_keys=True).encode()

    files: list[tuple[str, bytes]] = [
        ("oci-layout", json.dumps(OCI_LAYOUT).encode()),
        ("index.json", index),
    ]
    for blob in (layer, config, manifest):
        files.append(("blobs/sha256/" + _digest(blob).split(":", 1)[1], blob))
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(dest, "w", format=tarfile.PAX_FORMAT) as tar:
        for d in ("blobs", "blobs/sha256"):
            ti = tarfile.TarInfo(d)
            ti.type = tarfile.DIRTYPE
            ti.mode = 0o755
            tar.addfile(ti)
        for path, data in files:
            ti = tarfile.TarInfo(path)
            ti.size = len(data)
            ti.mode = 0o644
            tar.addfile(ti, io.BytesIO(data))
    return dest


def write_layer_tar(dest: Path, rootfs: Path | None = None) -> Path:
    """The rootfs as a single tarball, for ``podman import``."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_bytes(layer_tar(rootfs))
    return dest


# --- host state: what containerd and podman leave behind --------------------------
#
# Both tools create things outside their own directories: cgroups (containerd under
# /<namespace>/<id>, podman with cgroupfs under /libpod_parent), directories in /run,
# mounts under their storage, shims/conmon/cleanup processes.  A HostSnapshot taken
# before the tool starts lets the fixture remove exactly what appeared since, and say
# what it could not remove.

CGROUP_ROOT = Path("/sys/fs/cgroup")


def cgroup_dirs() -> set[Path]:
    out: set[Path] = set()
    for dirpath, _dirnames, _files in os.walk(CGROUP_ROOT):
        out.add(Path(dirpath))
    return out


def mounts_under(prefix: Path) -> list[str]:
    """Mount points at or below `prefix` in our mount namespace, deepest first."""
    found = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            mp = line.split()[4].encode().decode("unicode_escape")
            if mp == str(prefix) or mp.startswith(str(prefix) + "/"):
                found.append(mp)
    return sorted(set(found), key=lambda p: p.count("/"), reverse=True)


def pids_matching(needle: str) -> list[int]:
    """Live (non-zombie) processes whose command line contains `needle`."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if needle in cmdline and state != "Z":
            pids.append(int(entry))
    return pids


def _kill(pid: int) -> None:
    try:
        os.kill(pid, 9)
    except ProcessLookupError:
        pass


def wait_gone(needle: str, timeout: float, kill: bool = True) -> list[int]:
    """Wait for processes mentioning `needle` to exit, then SIGKILL what remains."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pids_matching(needle):
            return []
        time.sleep(0.1)
    left = pids_matching(needle)
    if kill:
        for pid in left:
            _kill(pid)
    return left


def _on_cgroupfs(path: Path) -> bool:
    """Is `path` inside a mounted hierarchy (/sys/fs/cgroup/<name> is a mount point)?"""
    try:
        rel = path.relative_to(CGROUP_ROOT)
    except ValueError:
        return False
    return bool(rel.parts) and os.path.ismount(CGROUP_ROOT / rel.parts[0])


def rmdir_cgroup(path: Path) -> bool:
    """Remove one cgroup directory (its children first), killing anything still in it.

    /sys/fs/cgroup may also hold plain directories for controllers that are not mounted
    (here: hugetlb, net_cls, ...); conmon still makes libpod_parent/conmon/tasks in them.
    """
    if not _on_cgroupfs(path):
        shutil.rmtree(path, ignore_errors=True)
        return not path.exists()
    for child in sorted((p for p in path.iterdir() if p.is_dir()), reverse=True):
        rmdir_cgroup(child)
    for _ in range(50):
        try:
            path.rmdir()
            return True
        except FileNotFoundError:
            return True
        except OSError:
            try:
                procs = (path / "cgroup.procs").read_text().split()
            except OSError:
                procs = []
            for pid in procs:
                _kill(int(pid))
            freezer = path / "freezer.state"
            if freezer.exists():
                try:
                    freezer.write_text("THAWED")
                except OSError:
                    pass
            time.sleep(0.05)
    return False


def remove_empty_tree(path: Path) -> bool:
    """rmdir `path` and its empty subdirectories; files (someone else's state) stay."""
    if path.is_file() or path.is_symlink():
        path.unlink()
        return True
    for dirpath, _dirnames, _files in os.walk(path, topdown=False):
        try:
            os.rmdir(dirpath)
        except OSError:
            pass
    return not path.exists()


class HostSnapshot:
    """What existed before a tool ran: new cgroups, /run dirs and netns are ours to remove."""

    def __init__(self, watch_paths: list[Path]) -> None:
        self.cgroups = cgroup_dirs()
        self.watch = {p: p.exists() for p in watch_paths}
        self.netns = set(os.listdir("/run/netns")) if os.path.isdir("/run/netns") else set()

    def new_cgroups(self, predicate: Callable[[Path], bool]) -> list[Path]:
        return sorted((p for p in cgroup_dirs() - self.cgroups if predicate(p)),
                      key=lambda p: len(p.parts), reverse=True)

    def new_netns(self) -> set[str]:
        now = set(os.listdir("/run/netns")) if os.path.isdir("/run/netns") else set()
        return now - self.netns

    def cleanup(self, tmp: Path, cgroup_predicate: Callable[[Path], bool],
                extra_paths: Iterable[Path] = ()) -> list[str]:
        """Unmount under `tmp`, remove new cgroups, new watched paths and `tmp` itself;
        return a description of whatever could not be cleaned."""
        problems: list[str] = []
        for mp in mounts_under(tmp):
            if subprocess.run(["umount", "-l", mp], capture_output=True).returncode != 0:
                problems.append(f"cannot unmount {mp}")
        for cg in self.new_cgroups(cgroup_predicate):
            if not rmdir_cgroup(cg):
                problems.append(f"cannot remove cgroup {cg}")
        for p in extra_paths:
            shutil.rmtree(p, ignore_errors=True)
        for path, existed in self.watch.items():
            if not existed and path.exists() and not remove_empty_tree(path):
                problems.append(f"{path} was created and is not empty: {sorted(os.listdir(path))}")
        shutil.rmtree(tmp, ignore_errors=True)
        if tmp.exists():
            problems.append(f"cannot remove {tmp}")
        if self.new_netns():
            problems.append(f"network namespaces left: {sorted(self.new_netns())}")
        return problems
