"""Named volumes: <store>/volumes/<name>/_data plus a small record, created on first use by -v."""

from __future__ import annotations

import re
import secrets
import shutil
import time
from pathlib import Path
from typing import Any

from pyruntime.dockee.errors import Conflict, DockeeError, NotFound
from pyruntime.dockee.store import Store, atomic_write_json, read_json

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class Volumes:
    def __init__(self, store: Store) -> None:
        self.store = store

    def path(self, name: str) -> Path:
        return self.store.volumes / name

    def exists(self, name: str) -> bool:
        return (self.path(name) / "volume.json").exists()

    def create(self, name: str | None = None, anonymous: bool = False) -> dict[str, Any]:
        name = name or secrets.token_hex(32)
        if not _NAME.match(name):
            raise DockeeError(f"invalid volume name {name!r}: use letters, digits, '_', '.', '-'")
        with self.store.lock("volumes"):
            d = self.path(name)
            if self.exists(name):
                return self.inspect(name)
            (d / "_data").mkdir(parents=True, exist_ok=True)
            doc = {"Name": name, "Driver": "local", "Mountpoint": str(d / "_data"),
                   "CreatedAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "Anonymous": anonymous}
            atomic_write_json(d / "volume.json", doc)
            return doc

    def inspect(self, name: str) -> dict[str, Any]:
        try:
            doc: dict[str, Any] = read_json(self.path(name) / "volume.json")
        except (FileNotFoundError, NotADirectoryError):
            raise NotFound(f"no such volume: {name}") from None
        return doc

    def all(self) -> list[dict[str, Any]]:
        out = []
        if self.store.volumes.is_dir():
            for d in sorted(self.store.volumes.iterdir()):
                try:
                    out.append(read_json(d / "volume.json"))
                except (OSError, ValueError):
                    continue
        return out

    def remove(self, name: str, users: list[str], force: bool = False) -> None:
        self.inspect(name)
        if users and not force:
            raise Conflict(f"volume {name} is in use by container {users[0][:12]}")
        with self.store.lock("volumes"):
            shutil.rmtree(self.path(name), ignore_errors=True)
