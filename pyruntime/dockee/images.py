"""Images of a dockee store: records, tags, layers, resolve, import, commit, remove.

The API the container verbs use:

    from pyruntime.dockee.images import ImageStore, Image
    images = ImageStore(store)        # store: pyruntime.dockee.store.Store
    img = images.resolve(ref)         # "name[:tag]", full id, "sha256:<id>" or a unique id
                                      # prefix; "busybox" builds the embedded image on first
                                      # use; errors.NotFound("no such image: REF") otherwise
    img.id                            # 64 hex digits (sha256 of the image config), no prefix
    img.tags                          # ["name:tag", ...], sorted
    img.config                        # docker's keys: Env, Cmd, Entrypoint, WorkingDir, User,
                                      # Labels, ExposedPorts, ... (missing keys absent or None)
    img.layer_dirs                    # list[Path], lowest layer first (lowerdir= wants reverse)
    img.created                       # RFC 3339
    images.commit(upper_dir, base, ref, *, changes=[], author="", message="") -> Image
        # an overlay upper dir becomes a new layer (0/0 char devices -> .wh.NAME, opaque
        # dirs -> .wh..wh..opq); the new image = base's layers + it, base's config + changes
    images.in_use(img) -> list[str]   # ids of containers whose record.json names the image
                                      # (key "image_id", with or without "sha256:")
Also: img.diff_ids, img.raw (the whole image config), img.size, img.short_id;
images.all(), import_tar(src, ref, changes=, message=), tag(img, ref), remove(ref, force)
(rmi's output lines), prune(all_unused), inspect(img) (docker's JSON), resolve_existing(ref)
(resolve without building busybox); archives.load/save for docker-save and OCI archives.

Store layout (under Store.root):
    images/<id>.json        the image config itself, byte for byte, so id = sha256(file)
                            (as docker's imagedb): config, rootfs.diff_ids, history, created
    images/tags.json        {"name:tag": id}; docker.io/library/ and docker.io/ are dropped
    layers/<diffhex>/diff/  one layer unpacked in overlay form (layers.py), an overlay lowerdir
    layers/<diffhex>/layer.json   {"diff_id", "size"}
    layers/<diffhex>/tarsplit.gz  every byte of the layer's tar but file content (tarstream),
                            so `save` writes the very tar that was loaded and ids survive
Layers are keyed by DiffID (sha256 of the uncompressed layer tar), not ChainID: with
whiteouts kept as overlay whiteouts a layer's unpacked form depends on its own tar alone,
so one directory serves every image with that layer whatever lies below it.

Concurrency and crashes: a layer is unpacked into tmp/layer-<pid>-*/ and renamed into place
under the "images" lock, together with the image record and tags; a layer already present
makes the staged copy go away.  Layers no image refers to are removed under the same lock.
A killed import leaves only tmp/ staging, which `image prune` removes once its pid is gone.

Removing an image a container uses is refused; with force its tags go and the record stays
(dangling, so the container's lowerdirs stay) until `image prune` finds it unused.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from pyruntime.dockee.changes import apply_changes
from pyruntime.dockee.errors import Conflict, DockeeError, NotFound
from pyruntime.dockee.store import Store, atomic_write_bytes, atomic_write_json, read_json

if TYPE_CHECKING:  # layers (tarfile, the tar reader) loads only for verbs that unpack or pack
    from pyruntime.dockee.layers import Extracted

DEFAULT_TAG = "latest"
_HEX = re.compile(r"^[0-9a-f]+$")
_NAME = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$")
_DOMAIN = re.compile(r"^(?:localhost|[a-zA-Z0-9-]+(?:\.[a-zA-Z0-9-]+)+|[a-zA-Z0-9-]+)(?::[0-9]+)?$")
_TAG = re.compile(r"^[\w][\w.-]{0,127}$")


def now_rfc3339() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat().replace("+00:00", "Z")


def goarch() -> str:
    m = os.uname().machine
    return {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386"}.get(m, m)


def normalize_ref(ref: str) -> str:
    """'busybox' -> 'busybox:latest'; 'docker.io/library/x:1' -> 'x:1'; invalid -> DockeeError."""
    if "@" in ref:
        raise DockeeError(f"{ref}: digest references are not supported")
    name, tag = ref, DEFAULT_TAG
    slash = ref.rfind("/")
    colon = ref.rfind(":")
    if colon > slash:
        name, tag = ref[:colon], ref[colon + 1:]
    for prefix in ("docker.io/library/", "index.docker.io/library/", "docker.io/", "index.docker.io/"):
        if name.startswith(prefix):
            name = name[len(prefix):]
            break
    first, _, rest = name.partition("/")
    path = name
    if rest and ("." in first or ":" in first or first == "localhost"):
        if not _DOMAIN.match(first):
            raise DockeeError(f"invalid reference format: {ref!r}")
        path = rest
    if not name or not _NAME.match(path) or not _TAG.match(tag):
        raise DockeeError(f"invalid reference format: {ref!r}")
    return f"{name}:{tag}"


def split_ref(ref: str) -> tuple[str, str]:
    name, _, tag = ref.rpartition(":")
    return name, tag


def config_bytes(cfg: dict[str, Any]) -> bytes:
    return json.dumps(cfg, separators=(",", ":")).encode()


@dataclass
class Image:
    id: str
    tags: list[str]
    raw: dict[str, Any]  # the whole image config (architecture, os, config, rootfs, history)
    layer_dirs: list[Path]
    diff_ids: list[str]
    size: int = 0
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def created(self) -> str:
        return str(self.raw.get("created") or "")

    @property
    def short_id(self) -> str:
        return self.id[:12]


class ImageStore:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.images_dir = store.images
        self.layers_dir = store.layers

    # -- reading -------------------------------------------------------------------------

    def _tags(self) -> dict[str, str]:
        try:
            doc = read_json(self.images_dir / "tags.json")
        except FileNotFoundError:
            return {}
        except ValueError as e:
            raise DockeeError(f"{self.images_dir / 'tags.json'}: corrupt: {e}") from None
        return {str(k): str(v) for k, v in doc.items()} if isinstance(doc, dict) else {}

    def _ids(self) -> list[str]:
        try:
            names = os.listdir(self.images_dir)
        except FileNotFoundError:
            return []
        return sorted(n[:-5] for n in names if n.endswith(".json") and len(n) == 69 and _HEX.match(n[:64]))

    def layer_dir(self, diff_id: str) -> Path:
        return self.layers_dir / diff_id.removeprefix("sha256:") / "diff"

    def _layer_size(self, diff_id: str) -> int:
        try:
            return int(read_json(self.layers_dir / diff_id.removeprefix("sha256:") / "layer.json").get("size", 0))
        except (OSError, ValueError, AttributeError):
            return 0

    def get(self, image_id: str, tags: dict[str, str] | None = None) -> Image:
        try:
            data = (self.images_dir / f"{image_id}.json").read_bytes()
            raw = json.loads(data)
        except FileNotFoundError:
            raise NotFound(f"no such image: {image_id}") from None
        except ValueError as e:
            raise DockeeError(f"image {image_id}: corrupt record: {e}") from None
        tags = self._tags() if tags is None else tags
        diff_ids = list((raw.get("rootfs") or {}).get("diff_ids") or [])
        return Image(
            id=image_id,
            tags=sorted(t for t, i in tags.items() if i == image_id),
            raw=raw,
            layer_dirs=[self.layer_dir(d) for d in diff_ids],
            diff_ids=diff_ids,
            size=sum(self._layer_size(d) for d in diff_ids),
            config=dict(raw.get("config") or {}),
        )

    def all(self) -> list[Image]:
        tags = self._tags()
        out = []
        for i in self._ids():
            with contextlib.suppress(DockeeError):  # a corrupt record hides one image, not all
                out.append(self.get(i, tags))
        return out

    def resolve(self, ref: str) -> Image:
        tags = self._tags()
        ids = None
        bare = ref.removeprefix("sha256:")
        if bare != ref or (_HEX.match(ref) and len(ref) == 64):
            if len(bare) == 64 and (self.images_dir / f"{bare}.json").exists():
                return self.get(bare, tags)
        try:
            norm: str | None = normalize_ref(ref)
        except DockeeError:
            norm = None
        if norm and norm in tags:
            return self.get(tags[norm], tags)
        if _HEX.match(bare):
            ids = [i for i in self._ids() if i.startswith(bare)]
            if len(ids) == 1:
                return self.get(ids[0], tags)
            if len(ids) > 1:
                raise Conflict(f"ambiguous image id prefix {ref!r}: {len(ids)} images match")
        if norm == f"busybox:{DEFAULT_TAG}":
            from pyruntime.dockee import embedded

            return embedded.ensure(self)
        raise NotFound(f"no such image: {ref}")

    def in_use(self, img: Image) -> list[str]:
        """Containers whose record.json names this image (the containers' own records)."""
        users = []
        try:
            entries = sorted(os.listdir(self.store.containers))
        except FileNotFoundError:
            return []
        for cid in entries:
            try:
                rec = read_json(self.store.containers / cid / "record.json")
            except (OSError, ValueError):
                continue
            if isinstance(rec, dict) and str(rec.get("image_id", "")).removeprefix("sha256:") == img.id:
                users.append(cid)
        return users

    # -- writing: layers -----------------------------------------------------------------

    def stage_layer(self, src: IO[bytes], *, what: str,
                    on_bytes: Callable[[int], None] | None = None) -> tuple[Path, Extracted]:
        """Unpack a layer tar into a private staging dir under tmp/ (install with finish())."""
        from pyruntime.dockee.layers import extract

        self.store.ensure()
        if not getattr(self, "_swept", False):  # a killed load's staging goes at the next one (trial F32)
            self._swept = True
            self.sweep_tmp()
        staging = Path(tempfile.mkdtemp(prefix=f"layer-{os.getpid()}-", dir=self.store.tmp))
        try:
            os.chmod(staging, 0o755)
            (staging / "diff").mkdir()
            ex = extract(src, staging / "diff", what=what, on_bytes=on_bytes, split=staging / "tarsplit.gz")
            atomic_write_json(staging / "layer.json", {"diff_id": ex.diff_id, "size": ex.size})
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return staging, ex

    def has_layer(self, diff_id: str) -> bool:
        return (self.layers_dir / diff_id.removeprefix("sha256:") / "layer.json").exists()

    def finish(self, staged: list[tuple[Path, Extracted]], configs: list[tuple[bytes, list[str]]]) -> list[Image]:
        """Install staged layers and image configs with their tags, all under the images lock.

        Every config's layers must be present afterwards (staged or already in the store).
        """
        self.store.ensure()
        try:
            with self.store.lock("images"):
                coming = {ex.diff_id for _, ex in staged}
                for data, _ in configs:  # all checked before anything moves: no orphans on failure
                    for d in (json.loads(data).get("rootfs") or {}).get("diff_ids") or []:
                        if d not in coming and not self.has_layer(d):
                            raise DockeeError(f"image config names layer {d} that is not in the store")
                for staging, ex in staged:
                    target = self.layers_dir / ex.diff_id.removeprefix("sha256:")
                    if target.exists():
                        shutil.rmtree(staging, ignore_errors=True)
                    else:
                        os.rename(staging, target)
                tags = self._tags()
                ids = []
                for data, new_tags in configs:
                    image_id = hashlib.sha256(data).hexdigest()
                    path = self.images_dir / f"{image_id}.json"
                    if not path.exists():
                        atomic_write_bytes(path, data)
                    for t in new_tags:
                        tags[t] = image_id
                    ids.append(image_id)
                self._write_tags(tags)
                self._gc_locked(tags)
                return [self.get(i, tags) for i in ids]
        finally:
            for staging, _ in staged:
                if staging.exists():
                    shutil.rmtree(staging, ignore_errors=True)

    def _write_tags(self, tags: dict[str, str]) -> None:
        atomic_write_json(self.images_dir / "tags.json", dict(sorted(tags.items())))

    def _gc_locked(self, tags: dict[str, str]) -> list[str]:
        """Remove layers no image refers to; the caller holds the images lock."""
        wanted: set[str] = set()
        for i in self._ids():
            try:
                raw = read_json(self.images_dir / f"{i}.json")
                wanted.update(d.removeprefix("sha256:") for d in (raw.get("rootfs") or {}).get("diff_ids") or [])
            except (OSError, ValueError):
                continue
        removed = []
        for name in os.listdir(self.layers_dir):
            if name not in wanted:
                # rename first: a half-removed layer must never look like a whole one
                trash = Path(tempfile.mkdtemp(prefix="trash-", dir=self.store.tmp))
                os.rename(self.layers_dir / name, trash / name)
                shutil.rmtree(trash, ignore_errors=True)
                removed.append(name)
        return removed

    # -- verbs ---------------------------------------------------------------------------

    def import_tar(self, src: IO[bytes], ref: str | None, *, changes: Sequence[str] = (), message: str = "",
                   what: str = "-", on_bytes: Callable[[int], None] | None = None) -> Image:
        """A `docker export`-style tarball (a flat rootfs) as a one-layer image."""
        tag = normalize_ref(ref) if ref else None
        config = apply_changes({}, list(changes))
        staging, ex = self.stage_layer(src, what=what, on_bytes=on_bytes)
        created = now_rfc3339()
        raw = {
            "architecture": goarch(),
            "os": "linux",
            "created": created,
            "config": config,
            "rootfs": {"type": "layers", "diff_ids": [ex.diff_id]},
            "history": [{"created": created, "created_by": "dockee-shim import", "comment": message}],
        }
        return self.finish([(staging, ex)], [(config_bytes(raw), [tag] if tag else [])])[0]

    def commit(self, upper_dir: Path, base: Image, ref: str | None, *, changes: Sequence[str] = (),
               author: str = "", message: str = "", container_config: dict[str, Any] | None = None,
               exclude: frozenset[str] = frozenset()) -> Image:
        """container_config: the container's Cmd, Env, ... (docker commits those, not the image's);
        exclude: upper-dir paths (relative) that never belong in the layer (mount points)."""
        from pyruntime.dockee.layers import write_tar

        tag = normalize_ref(ref) if ref else None
        config = apply_changes(dict(base.config) | (container_config or {}), list(changes))
        self.store.ensure()
        with tempfile.TemporaryFile(dir=self.store.tmp) as tmp:
            write_tar(upper_dir, tmp, upper=True, exclude=exclude)
            tmp.seek(0)
            staging, ex = self.stage_layer(tmp, what=f"commit of {upper_dir}")
        created = now_rfc3339()
        raw = {k: v for k, v in base.raw.items() if k not in ("created", "author", "config", "rootfs", "history")}
        raw.update({
            "architecture": base.raw.get("architecture", goarch()),
            "os": base.raw.get("os", "linux"),
            "created": created,
            "config": config,
            "rootfs": {"type": "layers", "diff_ids": base.diff_ids + [ex.diff_id]},
            "history": list(base.raw.get("history") or []) + [
                {"created": created, "created_by": "dockee-shim commit", "comment": message}
                | ({"author": author} if author else {})],
        })
        if author:
            raw["author"] = author
        return self.finish([(staging, ex)], [(config_bytes(raw), [tag] if tag else [])])[0]

    def tag(self, img: Image, ref: str) -> str:
        tag = normalize_ref(ref)
        with self.store.lock("images"):
            if not (self.images_dir / f"{img.id}.json").exists():
                raise NotFound(f"no such image: {img.id}")
            tags = self._tags()
            tags[tag] = img.id
            self._write_tags(tags)
        return tag

    def remove(self, ref: str, force: bool = False) -> list[str]:
        """rmi: docker's output lines, 'Untagged: name:tag' and 'Deleted: sha256:<id>'."""
        img = self.resolve_existing(ref)
        by_tag: str | None = None
        with contextlib.suppress(DockeeError):
            t = normalize_ref(ref)
            by_tag = t if t in img.tags else None
        out: list[str] = []
        with self.store.lock("images"):
            tags = self._tags()
            mine = sorted(t for t, i in tags.items() if i == img.id)
            if by_tag and len(mine) > 1:
                del tags[by_tag]  # other names keep the image
                self._write_tags(tags)
                return [f"Untagged: {by_tag}"]
            if len(mine) > 1 and not force:
                raise Conflict(f"image {img.short_id} is referenced by several tags ({', '.join(mine)}): "
                               "remove them by name or use -f")
            users = self.in_use(img)
            if users and not force:
                raise Conflict(f"image {ref} is in use by container {users[0][:12]}: stop and remove it "
                               "first, or use -f")
            for t in mine:
                del tags[t]
                out.append(f"Untagged: {t}")
            self._write_tags(tags)
            if users:
                return out  # the container's lowerdirs stay until prune finds the image unused
            os.unlink(self.images_dir / f"{img.id}.json")
            out.append(f"Deleted: sha256:{img.id}")
            self._gc_locked(tags)
        return out

    def resolve_existing(self, ref: str) -> Image:
        """resolve() without building the embedded image: rmi busybox must not create it."""
        tags = self._tags()
        with contextlib.suppress(DockeeError):
            t = normalize_ref(ref)
            if t in tags:
                return self.get(tags[t], tags)
        bare = ref.removeprefix("sha256:")
        if _HEX.match(bare):
            ids = [i for i in self._ids() if i.startswith(bare)]
            if len(ids) == 1:
                return self.get(ids[0], tags)
            if len(ids) > 1:
                raise Conflict(f"ambiguous image id prefix {ref!r}: {len(ids)} images match")
        raise NotFound(f"no such image: {ref}")

    def prune(self, all_unused: bool = False) -> list[str]:
        """Remove untagged images (all unused ones with all_unused) and stale staging."""
        out = []
        self.store.ensure()
        with self.store.lock("images"):
            tags = self._tags()
            for img in self.all():
                if (img.tags and not all_unused) or self.in_use(img):
                    continue
                for t in img.tags:
                    tags.pop(t, None)
                    out.append(f"Untagged: {t}")
                os.unlink(self.images_dir / f"{img.id}.json")
                out.append(f"Deleted: sha256:{img.id}")
            self._write_tags(tags)
            self._gc_locked(tags)
            self.sweep_tmp(trash=True)
        return out

    def sweep_tmp(self, trash: bool = False) -> None:
        """Remove what killed loads, imports, commits and saves left in tmp/ (their pid is gone);
        trash-* only under the images lock (a removal may be moving things there)."""
        with contextlib.suppress(OSError):
            for name in os.listdir(self.store.tmp):
                m = re.match(r"^(?:layer|save|load)-(\d+)-", name)
                if (m and int(m.group(1)) != os.getpid() and not os.path.exists(f"/proc/{m.group(1)}")) \
                        or (trash and name.startswith("trash-")):
                    p = self.store.tmp / name
                    shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)

    def inspect(self, img: Image) -> dict[str, Any]:
        history = img.raw.get("history") or []
        return {
            "Id": f"sha256:{img.id}",
            "RepoTags": img.tags,
            "RepoDigests": [],
            "Parent": "",
            "Comment": (history[-1].get("comment", "") if history and isinstance(history[-1], dict) else ""),
            "Created": img.created,
            "Author": img.raw.get("author", ""),
            "Config": img.config,
            "Architecture": img.raw.get("architecture", ""),
            "Os": img.raw.get("os", ""),
            "Size": img.size,
            "VirtualSize": img.size,
            "RootFS": {"Type": "layers", "Layers": img.diff_ids},
            "History": history,
        }
