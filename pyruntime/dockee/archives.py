"""Image archives: `load` of docker-save archives and OCI image layouts, `save` as docker-save.

Sources (all untrusted): a tar file (plain, or gzip/bzip2/xz as a whole), stdin, or an
OCI layout directory.  A compressed archive or stdin is first spooled, decompressed, into
the store's tmp/ so members can be read in any order (docker save writes manifest.json
last).  Nothing of the outer archive is ever extracted: members are looked up by name,
symlinks between members (docker save links duplicate layer.tar files) resolved by name
inside the archive.

- docker save: `manifest.json` is authoritative, `[{Config, RepoTags, Layers}]` (docker 25+
  adds index.json and blobs/, which are then ignored).  The image id is the sha256 of the
  config; a config stored as `<hex>.json` or `blobs/sha256/<hex>` must match its name; each
  layer's DiffID must equal the config's rootfs.diff_ids entry.
- OCI layout (`oci-layout`, `index.json`, `blobs/<alg>/<hex>`), as skopeo, umoci and
  `podman save --format oci-archive` write it: index -> (nested index, picking this
  machine's platform) -> manifest -> config + layers; every blob must match its digest and
  size, each layer's DiffID its config entry.  Names come from the annotations
  io.containerd.image.name or org.opencontainers.image.ref.name (a bare tag names nothing).
Every layer and image of the archive is staged first and installed together at the end
(ImageStore.finish): a bad archive leaves nothing behind.

save writes the classic docker-save layout (`<chainid>/layer.tar` with VERSION and json,
`<config-id>.json`, `manifest.json`, `repositories`), which `docker load`, `podman load`
and `ctr images import` read.  Each layer's tar is rebuilt byte for byte from its tar-split
record and unpacked files (layers.rebuild_tar), so image ids survive save and load.  A
layer without a usable record is packed anew (layers.write_tar, deterministic); the saved
config then carries the new DiffIDs, so that image's saved id differs from the local one
while names, config and content stay the same.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import posixpath
import re
import shutil
import sys
import tarfile
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from pyruntime.dockee.errors import DockeeError
from pyruntime.dockee.images import (
    Image,
    ImageStore,
    config_bytes,
    goarch,
    normalize_ref,
)
from pyruntime.dockee.layers import BadArchive, Extracted, chain_ids, decompressed, rebuild_tar, write_tar

OnBytes = Callable[[int], None] | None
_DIGEST = re.compile(r"^(sha256|sha512):([0-9a-f]{64,128})$")
MT_OCI_INDEX = "application/vnd.oci.image.index.v1+json"
MT_DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MT_OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
LAYER_TYPES = {
    "application/vnd.oci.image.layer.v1.tar", "application/vnd.oci.image.layer.v1.tar+gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
    "application/vnd.docker.image.rootfs.diff.tar", "application/vnd.docker.image.rootfs.diff.tar.gzip",
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
}
ANNOTATION_NAME = "io.containerd.image.name"
ANNOTATION_REF = "org.opencontainers.image.ref.name"


# -- reading an archive ------------------------------------------------------------------------

class _Source:
    """Members of an archive (a tar or a directory) by name; never extracted."""

    what: str

    def exists(self, name: str) -> bool:
        raise NotImplementedError

    def open(self, name: str) -> tuple[IO[bytes], int]:
        raise NotImplementedError

    def read(self, name: str, limit: int = 64 << 20) -> bytes:
        f, size = self.open(name)
        if size > limit:
            raise BadArchive(f"{self.what}: {name}: {size} bytes, too large for metadata")
        with f:
            data = f.read()
        if len(data) != size:
            raise BadArchive(f"{self.what}: {name}: truncated")
        return data

    def close(self) -> None:
        pass


def _member_name(name: str) -> str:
    return posixpath.normpath(name.lstrip("/")) if name not in ("", ".") else "."


class _TarSource(_Source):
    def __init__(self, f: IO[bytes], what: str) -> None:
        self.what = what
        self.file = f
        try:
            self.tar = tarfile.open(fileobj=f, mode="r:")
            members = self.tar.getmembers()
        except (tarfile.TarError, EOFError) as e:
            raise BadArchive(f"{what}: not a tar archive or corrupt ({e})") from None
        self.members = {_member_name(m.name): m for m in members}

    def _resolve(self, name: str) -> tarfile.TarInfo:
        name = _member_name(name)
        for _ in range(16):
            m = self.members.get(name)
            if m is None:
                raise KeyError(name)
            if m.issym():
                name = _member_name(posixpath.join(posixpath.dirname(name), m.linkname))
            elif m.islnk():
                name = _member_name(m.linkname)
            else:
                return m
        raise BadArchive(f"{self.what}: {name}: too many levels of links")

    def exists(self, name: str) -> bool:
        try:
            return self._resolve(name).isreg()
        except KeyError:
            return False

    def open(self, name: str) -> tuple[IO[bytes], int]:
        try:
            m = self._resolve(name)
        except KeyError:
            raise BadArchive(f"{self.what}: missing entry {name!r}") from None
        f = self.tar.extractfile(m) if m.isreg() else None
        if f is None:
            raise BadArchive(f"{self.what}: entry {name!r} is not a file")
        return f, m.size

    def close(self) -> None:
        self.tar.close()
        self.file.close()


class _DirSource(_Source):
    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.what = str(root)

    def _path(self, name: str) -> Path:
        p = (self.root / _member_name(name)).resolve()
        if p != self.root and self.root not in p.parents:
            raise BadArchive(f"{self.what}: {name!r} leads outside the layout")
        return p

    def exists(self, name: str) -> bool:
        return self._path(name).is_file()

    def open(self, name: str) -> tuple[IO[bytes], int]:
        p = self._path(name)
        try:
            f = open(p, "rb")
        except FileNotFoundError:
            raise BadArchive(f"{self.what}: missing entry {name!r}") from None
        return f, os.fstat(f.fileno()).st_size


def _open_source(images: ImageStore, src: str) -> tuple[_Source, Path | None]:
    """The archive as a _Source, and a spool file to delete afterwards (if one was made)."""
    if src != "-" and os.path.isdir(src):
        return _DirSource(Path(src)), None
    what = "stdin" if src == "-" else src
    try:
        raw: IO[bytes] = sys.stdin.buffer if src == "-" else open(src, "rb")
    except OSError as e:
        raise DockeeError(f"{src}: {e.strerror}") from None
    head = b""
    if src != "-":
        head = raw.read(6)
        raw.seek(0)
        plain = not (head.startswith(b"\x1f\x8b") or head.startswith(b"BZh") or head.startswith(b"\xfd7zXZ"))
        if plain:
            return _TarSource(raw, what), None
    # a pipe or a compressed archive: spool it, decompressed, to read members in any order
    images.store.ensure()
    fd, spool = tempfile.mkstemp(prefix=f"load-{os.getpid()}-", dir=images.store.tmp)
    try:
        with os.fdopen(fd, "wb") as out, raw:
            stream = decompressed(raw)
            while True:
                try:
                    chunk = stream.read(1 << 20)
                except (EOFError, OSError, ValueError) as e:
                    raise BadArchive(f"{what}: truncated or corrupt archive ({e})") from None
                if not chunk:
                    break
                out.write(chunk)
        return _TarSource(open(spool, "rb"), what), Path(spool)
    except BaseException:
        os.unlink(spool)
        raise


# -- load --------------------------------------------------------------------------------------

@dataclass
class _Pending:
    staged: list[tuple[Path, Extracted]]
    configs: list[tuple[bytes, list[str]]]


def _json(data: bytes, what: str) -> Any:
    try:
        return json.loads(data)
    except ValueError as e:
        raise BadArchive(f"{what}: not JSON: {e}") from None


def _diff_ids(raw: Any, what: str) -> list[str]:
    if not isinstance(raw, dict):
        raise BadArchive(f"{what}: image config is not an object")
    ids = (raw.get("rootfs") or {}).get("diff_ids")
    if not isinstance(ids, list) or not all(isinstance(d, str) and _DIGEST.match(d) for d in ids):
        raise BadArchive(f"{what}: image config has no valid rootfs.diff_ids")
    return ids


def _tags(names: Any, what: str) -> list[str]:
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise BadArchive(f"{what}: RepoTags must be a list of names")
    out = []
    for n in names:
        try:
            out.append(normalize_ref(n))
        except DockeeError as e:
            raise BadArchive(f"{what}: {e}") from None
    return out


def _add_layers(images: ImageStore, source: _Source, pending: _Pending, layers: list[tuple[str, str, str | None]],
                on_bytes: OnBytes) -> None:
    """layers: (member name, expected DiffID, expected blob digest or None)."""
    staged_ids = {ex.diff_id for _, ex in pending.staged}
    for name, diff_id, blob_digest in layers:
        if images.has_layer(diff_id) or diff_id in staged_ids:
            if not source.exists(name):
                raise BadArchive(f"{source.what}: missing layer {name!r}")
            continue
        f, _ = source.open(name)
        with f:
            staging, ex = images.stage_layer(f, what=f"{source.what}: layer {name}", on_bytes=on_bytes)
        pending.staged.append((staging, ex))
        if blob_digest and ex.digest != blob_digest:
            raise BadArchive(f"{source.what}: layer {name}: digest mismatch (content is {ex.digest})")
        if ex.diff_id != diff_id:
            raise BadArchive(f"{source.what}: layer {name}: digest mismatch: config says {diff_id}, "
                             f"content is {ex.diff_id}")
        staged_ids.add(diff_id)


def _load_docker(images: ImageStore, source: _Source, pending: _Pending, on_bytes: OnBytes) -> None:
    manifest = _json(source.read("manifest.json"), f"{source.what}: manifest.json")
    if not isinstance(manifest, list) or not manifest:
        raise BadArchive(f"{source.what}: manifest.json: expected a non-empty list")
    for i, entry in enumerate(manifest):
        where = f"{source.what}: manifest.json[{i}]"
        if not isinstance(entry, dict) or not isinstance(entry.get("Config"), str) \
                or not isinstance(entry.get("Layers"), list):
            raise BadArchive(f"{where}: needs Config and Layers")
        cfg_name = entry["Config"]
        data = source.read(cfg_name)
        m = re.search(r"(?:^|/)(?:sha256/)?([0-9a-f]{64})(?:\.json)?$", cfg_name)
        if m and hashlib.sha256(data).hexdigest() != m.group(1):
            raise BadArchive(f"{source.what}: {cfg_name}: digest mismatch")
        diff_ids = _diff_ids(_json(data, f"{source.what}: {cfg_name}"), f"{source.what}: {cfg_name}")
        layer_names = entry["Layers"]
        if len(layer_names) != len(diff_ids) or not all(isinstance(x, str) for x in layer_names):
            raise BadArchive(f"{where}: {len(layer_names)} layers for {len(diff_ids)} diff_ids in the config")
        _add_layers(images, source, pending, [(n, d, None) for n, d in zip(layer_names, diff_ids, strict=True)],
                    on_bytes)
        pending.configs.append((data, _tags(entry.get("RepoTags") or [], where)))


def _blob_name(desc: Any, what: str) -> tuple[str, str]:
    digest = desc.get("digest") if isinstance(desc, dict) else None
    m = _DIGEST.match(digest) if isinstance(digest, str) else None
    if not m:
        raise BadArchive(f"{what}: descriptor without a valid digest")
    return f"blobs/{m.group(1)}/{m.group(2)}", digest  # type: ignore[return-value]


def _read_blob(source: _Source, desc: Any, what: str) -> bytes:
    name, digest = _blob_name(desc, what)
    data = source.read(name)
    alg, _, hexd = digest.partition(":")
    if hashlib.new(alg, data).hexdigest() != hexd:
        raise BadArchive(f"{source.what}: {name}: digest mismatch")
    if isinstance(desc.get("size"), int) and desc["size"] != len(data):
        raise BadArchive(f"{source.what}: {name}: size mismatch")
    return data


def _platform_ok(desc: dict[str, Any]) -> bool:
    p = desc.get("platform")
    return not isinstance(p, dict) or (p.get("os", "linux") == "linux" and p.get("architecture", goarch()) == goarch())


def _load_oci(images: ImageStore, source: _Source, pending: _Pending, on_bytes: OnBytes) -> None:
    index = _json(source.read("index.json"), f"{source.what}: index.json")
    if not isinstance(index, dict) or not isinstance(index.get("manifests"), list):
        raise BadArchive(f"{source.what}: index.json: no manifests")

    def manifests(idx: dict[str, Any], names: list[str], depth: int) -> None:
        if depth > 4:
            raise BadArchive(f"{source.what}: indexes nested too deeply")
        for desc in idx.get("manifests") or []:
            if not isinstance(desc, dict):
                raise BadArchive(f"{source.what}: index.json: bad descriptor")
            ann = desc.get("annotations")
            ann = ann if isinstance(ann, dict) else {}
            own = names
            name = ann.get(ANNOTATION_NAME) or ann.get(ANNOTATION_REF)
            if isinstance(name, str) and (":" in name or "/" in name or ann.get(ANNOTATION_NAME)):
                own = names + [name]
            mt = desc.get("mediaType")
            data = _read_blob(source, desc, f"{source.what}: index.json")
            doc = _json(data, f"{source.what}: {desc.get('digest')}")
            if not isinstance(doc, dict):
                raise BadArchive(f"{source.what}: {desc.get('digest')}: not a manifest or index")
            mt = mt or doc.get("mediaType")
            if mt in (MT_OCI_INDEX, MT_DOCKER_LIST) or (mt is None and "manifests" in doc):
                picked = [d for d in doc.get("manifests") or [] if isinstance(d, dict) and _platform_ok(d)]
                manifests({"manifests": picked[:1]}, own, depth + 1)
            elif mt in (MT_OCI_MANIFEST, MT_DOCKER_MANIFEST) or (mt is None and "layers" in doc):
                image(doc, own)
            else:
                raise BadArchive(f"{source.what}: {desc.get('digest')}: unsupported media type {mt!r}")

    def image(man: dict[str, Any], names: list[str]) -> None:
        what = f"{source.what}: manifest"
        cfg_desc = man.get("config")
        data = _read_blob(source, cfg_desc, what)
        diff_ids = _diff_ids(_json(data, f"{what} config"), f"{what} config")
        layers = man.get("layers")
        if not isinstance(layers, list) or len(layers) != len(diff_ids):
            raise BadArchive(f"{what}: {len(layers or [])} layers for {len(diff_ids)} diff_ids in the config")
        todo: list[tuple[str, str, str | None]] = []
        for desc, diff_id in zip(layers, diff_ids, strict=True):
            mt = desc.get("mediaType") if isinstance(desc, dict) else None
            if mt not in LAYER_TYPES:
                raise BadArchive(f"{what}: layer {desc.get('digest') if isinstance(desc, dict) else desc}: "
                                 f"unsupported media type {mt!r}")
            name, digest = _blob_name(desc, what)
            todo.append((name, diff_id, digest))
        _add_layers(images, source, pending, todo, on_bytes)
        pending.configs.append((data, _tags(names, what)))

    manifests(index, [], 0)


def load(images: ImageStore, src: str, *, on_bytes: OnBytes = None) -> list[tuple[Image, list[str]]]:
    """Load every image of the archive; returns (image, tags it got) per image."""
    source, spool = _open_source(images, src)
    pending = _Pending([], [])
    try:
        if source.exists("manifest.json"):
            _load_docker(images, source, pending, on_bytes)
        elif source.exists("index.json") and source.exists("oci-layout"):
            _load_oci(images, source, pending, on_bytes)
        else:
            raise BadArchive(f"{source.what}: neither a docker-save archive (manifest.json) nor an OCI layout "
                             "(oci-layout, index.json)")
        if not pending.configs:
            raise BadArchive(f"{source.what}: no image for this platform")
        loaded = images.finish(pending.staged, pending.configs)
    except (TypeError, AttributeError, KeyError) as e:
        # JSON of an unexpected shape that slipped past the checks: still one line, no traceback
        for staging, _ in pending.staged:
            shutil.rmtree(staging, ignore_errors=True)
        raise BadArchive(f"{source.what}: malformed metadata ({type(e).__name__}: {e})") from None
    except BaseException:
        for staging, _ in pending.staged:
            shutil.rmtree(staging, ignore_errors=True)
        raise
    finally:
        source.close()
        if spool:
            spool.unlink(missing_ok=True)
    return [(img, tags) for img, (_, tags) in zip(loaded, pending.configs, strict=True)]


# -- save --------------------------------------------------------------------------------------

class _HashingWriter:
    def __init__(self, out: IO[bytes], on_bytes: OnBytes) -> None:
        self.out = out
        self.sha = hashlib.sha256()
        self.size = 0
        self.on_bytes = on_bytes

    def write(self, data: bytes) -> int:
        self.out.write(data)
        self.sha.update(data)
        self.size += len(data)
        if self.on_bytes:
            self.on_bytes(len(data))
        return len(data)


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes, mtime: int) -> None:
    ti = tarfile.TarInfo(name)
    ti.size, ti.mode, ti.mtime = len(data), 0o644, mtime
    tar.addfile(ti, io.BytesIO(data))


def save(images: ImageStore, picked: list[tuple[Image, str]], output: str | None, *,
         on_bytes: OnBytes = None) -> None:
    """Write the images as one docker-save archive to output (a path) or stdout."""
    order: list[str] = []
    by_id: dict[str, Image] = {}
    tags: dict[str, list[str]] = {}
    for img, ref in picked:
        if img.id not in by_id:
            order.append(img.id)
            by_id[img.id] = img
            tags[img.id] = []
        try:
            t = normalize_ref(ref)
        except DockeeError:
            t = ""
        if t in img.tags and t not in tags[img.id]:
            tags[img.id].append(t)
    images.store.ensure()
    work = Path(tempfile.mkdtemp(prefix=f"save-{os.getpid()}-", dir=images.store.tmp))
    out_tmp: str | None = None
    try:
        regenerated: dict[str, tuple[str, Path]] = {}  # stored DiffID -> (new DiffID, tar file)
        for iid in order:
            for d in by_id[iid].diff_ids:
                if d in regenerated:
                    continue
                path = work / f"{len(regenerated)}.tar"
                split = images.layer_dir(d).parent / "tarsplit.gz"
                with open(path, "wb") as f:
                    w = _HashingWriter(f, on_bytes)
                    if split.exists() and rebuild_tar(split, images.layer_dir(d), w) \
                            and "sha256:" + w.sha.hexdigest() == d:
                        regenerated[d] = (d, path)
                        continue
                with open(path, "wb") as f:  # no record, or the files changed: pack anew
                    w = _HashingWriter(f, on_bytes)
                    write_tar(images.layer_dir(d), w)  # type: ignore[arg-type]
                regenerated[d] = ("sha256:" + w.sha.hexdigest(), path)
        if output is None:
            sink: IO[bytes] = sys.stdout.buffer
            tar = tarfile.open(fileobj=sink, mode="w|", format=tarfile.PAX_FORMAT)
        else:
            out_dir = os.path.dirname(os.path.abspath(output))
            fd, out_tmp = tempfile.mkstemp(prefix=f".{os.path.basename(output)}.", dir=out_dir)
            sink = os.fdopen(fd, "wb")
            tar = tarfile.open(fileobj=sink, mode="w", format=tarfile.PAX_FORMAT)
        manifest = []
        repositories: dict[str, dict[str, str]] = {}
        written: set[str] = set()
        with tar:
            for iid in order:
                img = by_id[iid]
                new_ids = [regenerated[d][0] for d in img.diff_ids]
                raw = dict(img.raw)
                if new_ids != img.diff_ids:
                    raw["rootfs"] = dict(raw.get("rootfs") or {}, type="layers", diff_ids=new_ids)
                    data = config_bytes(raw)
                else:
                    data = (images.images_dir / f"{iid}.json").read_bytes()
                config_id = hashlib.sha256(data).hexdigest()
                mtime = 0
                chains = [c.removeprefix("sha256:") for c in chain_ids(new_ids)]
                layer_names = []
                for n, (d, chain) in enumerate(zip(img.diff_ids, chains, strict=True)):
                    layer_names.append(f"{chain}/layer.tar")
                    if chain in written:
                        continue
                    written.add(chain)
                    dir_info = tarfile.TarInfo(chain)
                    dir_info.type, dir_info.mode, dir_info.mtime = tarfile.DIRTYPE, 0o755, mtime
                    tar.addfile(dir_info)
                    _add_bytes(tar, f"{chain}/VERSION", b"1.0", mtime)
                    legacy = {"id": chain} | ({"parent": chains[n - 1]} if n else {})
                    _add_bytes(tar, f"{chain}/json", json.dumps(legacy).encode(), mtime)
                    path = regenerated[d][1]
                    ti = tarfile.TarInfo(f"{chain}/layer.tar")
                    ti.size, ti.mode, ti.mtime = path.stat().st_size, 0o644, mtime
                    with open(path, "rb") as f:
                        tar.addfile(ti, f)
                if f"{config_id}.json" not in written:
                    written.add(f"{config_id}.json")
                    _add_bytes(tar, f"{config_id}.json", data, mtime)
                manifest.append({"Config": f"{config_id}.json", "RepoTags": tags[iid] or None,
                                 "Layers": layer_names})
                for t in tags[iid]:
                    name, _, tg = t.rpartition(":")
                    repositories.setdefault(name, {})[tg] = chains[-1] if chains else config_id
            _add_bytes(tar, "manifest.json", json.dumps(manifest).encode(), 0)
            if repositories:
                _add_bytes(tar, "repositories", json.dumps(repositories).encode(), 0)
        if output is not None and out_tmp is not None:
            sink.flush()
            os.fsync(sink.fileno())
            sink.close()
            os.chmod(out_tmp, 0o644)
            os.replace(out_tmp, output)
            out_tmp = None
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if out_tmp:
            sink.close()
            with contextlib.suppress(FileNotFoundError):
                os.unlink(out_tmp)
