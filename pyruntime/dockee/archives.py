"""docker-save archives and OCI image layouts: load and save (being written)."""

from __future__ import annotations

from collections.abc import Callable

from pyruntime.dockee.errors import DockeeError
from pyruntime.dockee.images import Image, ImageStore


def load(images: ImageStore, src: str, *,
         on_bytes: Callable[[int], None] | None = None) -> list[tuple[Image, list[str]]]:
    raise DockeeError("load: not implemented yet")


def save(images: ImageStore, picked: list[tuple[Image, str]], output: str | None, *,
         on_bytes: Callable[[int], None] | None = None) -> None:
    raise DockeeError("save: not implemented yet")
