"""Container images built locally from the busybox rootfs, for containerd and podman.

No registry is ever contacted: the rootfs of conftest.busybox_rootfs() becomes one
uncompressed layer, described by an image config and a manifest, and is written either
as an OCI image layout tarball (``ctr images import``, ``podman load``) or as a plain
layer tarball (``podman import``).

(What containerd and podman leave on the host is removed by integration/harness.py.)
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import platform
import tarfile
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
