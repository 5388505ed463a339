"""The on-disk store of dockee-shim: its layout, atomic record writes and file locks.

Layout under the root (default /var/lib/dockee, `--root` or DOCKEE_ROOT):
    layers/<diffid hex>/       one layer: diff/ (an overlay lowerdir, shared by images), layer.json,
                               tarsplit.gz (what `save` needs to rebuild the layer's tar byte for byte)
    images/<id>.json           the image config, byte for byte (id = its sha256)
    images/tags.json           NAME:TAG -> image id
    containers/<id>/           bundle (config.json), upper/ work/ merged/, logs, record.json
    volumes/<name>/_data       named volumes
    networks/<name>.json       network records
    locks/                     lock files (flock) for the store's critical sections
    tmp/                       staging for imports (same filesystem, so renames are atomic)

Every record is written atomically (temp file in the same directory, fsync, rename), so a
process killed at any moment leaves either the old or the new record.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

DEFAULT_ROOT = "/var/lib/dockee"


def atomic_write_bytes(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Write a file so that readers see the old content or the new, never a part."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_json(path: Path, doc: Any, mode: int = 0o644) -> None:
    atomic_write_bytes(path, (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode(), mode)


def read_json(path: Path) -> Any:
    with open(path, "rb") as f:
        return json.loads(f.read())


@contextlib.contextmanager
def locked(path: Path, shared: bool = False) -> Iterator[None]:
    """Hold flock on `path` (created if absent) for the duration of the block."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


class Store:
    """Paths of one dockee store; creating the directories is cheap and idempotent."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    @property
    def layers(self) -> Path:
        return self.root / "layers"

    @property
    def images(self) -> Path:
        return self.root / "images"

    @property
    def containers(self) -> Path:
        return self.root / "containers"

    @property
    def volumes(self) -> Path:
        return self.root / "volumes"

    @property
    def networks(self) -> Path:
        return self.root / "networks"

    @property
    def tmp(self) -> Path:
        return self.root / "tmp"

    def lock(self, name: str, shared: bool = False) -> contextlib.AbstractContextManager[None]:
        """A named store-wide lock, e.g. lock("images") around image record changes."""
        return locked(self.root / "locks" / name, shared)

    def ensure(self) -> Store:
        for d in (self.layers, self.images, self.containers, self.volumes, self.networks, self.tmp,
                  self.root / "locks"):
            d.mkdir(parents=True, exist_ok=True)
        return self
