"""dockee images without root: ChainID, references, --change, the tar reader, safe extraction
(malicious tarballs built here), write_tar round trips, manifest/index parsing of load.

Archives are made with the test user's own uid/gid, so extraction needs no privilege;
whiteouts (mknod, trusted.* xattrs) are in test_dockee_images_whiteouts.py (root).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import subprocess
import tarfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

from pyruntime.dockee import archives
from pyruntime.dockee.changes import BadChange, apply_changes
from pyruntime.dockee.errors import DockeeError, NotFound
from pyruntime.dockee.images import ImageStore, config_bytes, normalize_ref
from pyruntime.dockee.layers import BadArchive, chain_ids, extract, write_tar
from pyruntime.dockee.store import Store
from pyruntime.dockee.tarstream import TarFormatError, TarReader

UID, GID = os.getuid(), os.getgid()


@pytest.fixture(autouse=True, params=["gnutar", "python"])
def extractor(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test runs with both extractors: GNU tar fed checked entries, and our own."""
    monkeypatch.setenv("DOCKEE_EXTRACTOR", request.param)
    return str(request.param)


# -- building archives -------------------------------------------------------------------------

def _ti(name: str, kind: bytes = tarfile.REGTYPE, **kw: Any) -> tarfile.TarInfo:
    ti = tarfile.TarInfo(name)
    ti.type = kind
    ti.uid, ti.gid, ti.mtime = UID, GID, 1_000_000
    ti.mode = 0o755 if kind == tarfile.DIRTYPE else 0o644
    for k, v in kw.items():
        setattr(ti, k, v)
    return ti


def tar_bytes(entries: Iterable[tuple[tarfile.TarInfo, bytes | None]], fmt: int = tarfile.PAX_FORMAT) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tar:
        for ti, data in entries:
            if data is not None:
                ti.size = len(data)
                tar.addfile(ti, io.BytesIO(data))
            else:
                tar.addfile(ti)
    return buf.getvalue()


def f(name: str, data: bytes = b"x\n", **kw: Any) -> tuple[tarfile.TarInfo, bytes | None]:
    return _ti(name, **kw), data


def d(name: str, **kw: Any) -> tuple[tarfile.TarInfo, bytes | None]:
    return _ti(name, tarfile.DIRTYPE, **kw), None


def sym(name: str, target: str) -> tuple[tarfile.TarInfo, bytes | None]:
    return _ti(name, tarfile.SYMTYPE, linkname=target, mode=0o777), None


def hard(name: str, target: str) -> tuple[tarfile.TarInfo, bytes | None]:
    return _ti(name, tarfile.LNKTYPE, linkname=target), None


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def unpack(tmp: Path, data: bytes, name: str = "layer") -> Path:
    dest = tmp / name
    dest.mkdir()
    extract(io.BytesIO(data), dest, what=name)
    return dest


# -- ChainID, references, changes ---------------------------------------------------------------

def test_chain_ids_follow_the_image_spec() -> None:
    a, b, c = (sha(x) for x in (b"a", b"b", b"c"))
    ab = sha(f"{a} {b}".encode())
    assert chain_ids([a, b, c]) == [a, ab, sha(f"{ab} {c}".encode())]
    assert chain_ids([]) == []


@pytest.mark.parametrize("ref, want", [
    ("busybox", "busybox:latest"), ("busybox:1.36", "busybox:1.36"),
    ("docker.io/library/debian:bullseye", "debian:bullseye"), ("docker.io/me/app", "me/app:latest"),
    ("localhost:5000/a/b:v2", "localhost:5000/a/b:v2"), ("localhost/x", "localhost/x:latest"),
])
def test_normalize_ref(ref: str, want: str) -> None:
    assert normalize_ref(ref) == want


@pytest.mark.parametrize("ref", ["Busybox", "a:b:c", "x:", "a//b", "x@sha256:00", "-a", "a:" + "t" * 200])
def test_bad_refs_are_refused(ref: str) -> None:
    with pytest.raises(DockeeError):
        normalize_ref(ref)


def test_changes_in_dockerfile_syntax() -> None:
    cfg = apply_changes({"Env": ["PATH=/bin", "A=0"]}, [
        'CMD ["echo", "hi"]', "ENTRYPOINT /bin/run --x", "ENV A=1 B='two words'", "env C 3 4",
        "WORKDIR /srv", "USER nobody:nogroup", "EXPOSE 80 53/udp", 'LABEL a=b "c d"=e', "VOLUME /data",
        "STOPSIGNAL SIGINT"])
    assert cfg["Cmd"] == ["echo", "hi"]
    assert cfg["Entrypoint"] == ["/bin/sh", "-c", "/bin/run --x"]
    assert cfg["Env"] == ["PATH=/bin", "A=1", "B=two words", "C=3 4"]
    assert (cfg["WorkingDir"], cfg["User"], cfg["StopSignal"]) == ("/srv", "nobody:nogroup", "SIGINT")
    assert cfg["ExposedPorts"] == {"80/tcp": {}, "53/udp": {}}
    assert cfg["Labels"] == {"a": "b", "c d": "e"}
    assert cfg["Volumes"] == {"/data": {}}


@pytest.mark.parametrize("change", ["FROM x", "EXPOSE http", "EXPOSE 70000", "WORKDIR", "ENV =x", "CMD"])
def test_bad_changes_name_the_instruction(change: str) -> None:
    with pytest.raises(BadChange, match="--change"):
        apply_changes({}, [change])


# -- the tar reader ------------------------------------------------------------------------------

def test_reader_handles_long_names_pax_and_gnu() -> None:
    long = "d/" + "p" * 90 + "/" + "n" * 60  # ustar: prefix + name; gnu: longname; pax: path
    for fmt in (tarfile.PAX_FORMAT, tarfile.GNU_FORMAT, tarfile.USTAR_FORMAT):
        data = tar_bytes([d("d"), f(long, b"hello"), sym("d/l", "/" + "t" * 120 if fmt != tarfile.USTAR_FORMAT
                                                         else "/t")], fmt)
        reader = TarReader(io.BytesIO(data), threaded=False)
        got = []
        for e in reader.entries():
            body = b"".join(bytes(v) for v in reader.data(e.size))
            got.append((e.name.rstrip("/"), e.type, body, e.uid))
        assert got[1] == (long, "0", b"hello", UID), fmt
        assert got[0][1] == "5" and got[2][1] == "2"


def test_reader_refuses_truncation_and_bad_checksums() -> None:
    data = tar_bytes([f("a", b"a" * 2000), f("b")])
    for cut in (100, 700, 1024 + 512 + 10, len(data) - 1024 * 10):
        with pytest.raises(TarFormatError, match="truncated|end-of-archive"):
            list(TarReader(io.BytesIO(data[:cut]), threaded=False).entries())
    bad = bytearray(data)
    bad[512 * 5 + 10] ^= 0xFF  # inside the second entry's header
    r = TarReader(io.BytesIO(bytes(bad)), threaded=False)
    with pytest.raises(TarFormatError, match="checksum"):
        for _ in r.entries():
            pass


# -- safe extraction ----------------------------------------------------------------------------

def test_extract_keeps_owners_modes_links_and_absolute_symlinks(tmp_path: Path) -> None:
    data = tar_bytes([d("etc", mode=0o750), f("etc/conf", b"c", mode=0o600), sym("etc/abs", "/etc/passwd"),
                      sym("etc/rel", "../etc/conf"), hard("etc/hard", "etc/conf"), f("bin/x", b"#!", mode=0o4755)])
    out = unpack(tmp_path, data)
    assert (out / "etc/conf").read_bytes() == b"c"
    assert os.readlink(out / "etc/abs") == "/etc/passwd"  # kept: it means something only inside the rootfs
    assert os.readlink(out / "etc/rel") == "../etc/conf"
    assert os.stat(out / "etc/hard").st_ino == os.stat(out / "etc/conf").st_ino
    assert (os.stat(out / "etc").st_mode & 0o7777, os.stat(out / "etc/conf").st_mode & 0o7777) == (0o750, 0o600)
    assert os.stat(out / "bin").st_mode & 0o777 == 0o755  # made for an entry without its directory
    assert int(os.stat(out / "etc/conf").st_mtime) == 1_000_000
    assert int(os.stat(out / "etc").st_mtime) == 1_000_000  # set after its children


@pytest.mark.parametrize("entries, word", [
    ([f("../evil")], "outside"),
    ([f("a/../../evil")], "outside"),
    ([f("/abs/evil")], "absolute"),
    ([sym("esc", "../../..")], "symlink target"),
    ([d("a"), sym("a/up", "../../x")], "symlink target"),
    ([sym("link", "@OUTSIDE@"), f("link/evil")], "is a symlink"),
    ([sym("link", "."), f("link/evil")], "is a symlink"),
    ([hard("h", "../../../etc/passwd")], "outside"),
    ([hard("h", "/etc/passwd")], "absolute"),
    ([hard("h", "missing")], "not in this layer"),
    ([sym("s", "/etc"), hard("h", "s/passwd")], "is a symlink"),
    ([f("x"), f("x/y")], "not a directory"),
], ids=["dotdot", "inner-dotdot", "absolute", "symlink-up", "symlink-up-nested", "through-abs-symlink",
        "through-dot-symlink", "hardlink-up", "hardlink-absolute", "hardlink-missing", "hardlink-through-symlink",
        "file-as-parent"])
def test_escaping_entries_are_refused_naming_the_entry(tmp_path: Path, entries: list[Any], word: str) -> None:
    outside = tmp_path / "evil"
    elsewhere = tmp_path / "elsewhere"  # where an absolute symlink of the archive points
    elsewhere.mkdir()
    for ti, _ in entries:
        ti.linkname = ti.linkname.replace("@OUTSIDE@", str(elsewhere))
    data = tar_bytes(entries)
    with pytest.raises(BadArchive, match=word) as e:
        unpack(tmp_path, data)
    assert "entry" in str(e.value)
    assert not outside.exists() and not (tmp_path.parent / "evil").exists() and not list(elsewhere.iterdir())


def test_compressed_layers_and_digests(tmp_path: Path) -> None:
    plain = tar_bytes([f("a", b"a")])
    gz = gzip.compress(plain)
    dest = tmp_path / "g"
    dest.mkdir()
    ex = extract(io.BytesIO(gz), dest)
    assert (ex.diff_id, ex.digest) == (sha(plain), sha(gz))
    assert (dest / "a").read_bytes() == b"a"
    dest2 = tmp_path / "z"
    dest2.mkdir()
    with pytest.raises(BadArchive, match="corrupt"):
        extract(io.BytesIO(gz[:-12]), dest2)


def test_write_tar_round_trip_is_deterministic(tmp_path: Path) -> None:
    data = tar_bytes([d("a"), f("a/f", b"1"), hard("a/g", "a/f"), sym("a/s", "/x"), f("b", b"2" * 3000)])
    first = unpack(tmp_path, data, "one")
    out1, out2 = io.BytesIO(), io.BytesIO()
    write_tar(first, out1)
    second = unpack(tmp_path, out1.getvalue(), "two")
    write_tar(second, out2)
    assert out1.getvalue() == out2.getvalue()
    assert os.stat(second / "a/g").st_ino == os.stat(second / "a/f").st_ino
    assert (second / "b").read_bytes() == b"2" * 3000


# -- load: docker save and OCI layouts ----------------------------------------------------------

def _docker_save(layers: list[bytes], tags: list[str], *, config: dict[str, Any] | None = None,
                 drop: str | None = None, extra: list[tuple[tarfile.TarInfo, bytes | None]] = ()) -> bytes:
    cfg = config or {"architecture": "amd64", "os": "linux", "config": {"Cmd": ["sh"]},
                     "rootfs": {"type": "layers", "diff_ids": [sha(x) for x in layers]}}
    cb = config_bytes(cfg)
    cid = hashlib.sha256(cb).hexdigest()
    entries = [f(f"{i}/layer.tar", x) for i, x in enumerate(layers)]
    entries.append(f(f"{cid}.json", cb))
    manifest = [{"Config": f"{cid}.json", "RepoTags": tags, "Layers": [f"{i}/layer.tar" for i in range(len(layers))]}]
    entries.append(f("manifest.json", json.dumps(manifest).encode()))
    entries = [e for e in entries if e[0].name != drop] + list(extra)
    return tar_bytes(entries)


def _store(tmp: Path) -> ImageStore:
    return ImageStore(Store(tmp / "store"))


def _load(images: ImageStore, tmp: Path, data: bytes) -> list[Any]:
    path = tmp / "archive.tar"
    path.write_bytes(data)
    return archives.load(images, str(path))


def _leftovers(images: ImageStore) -> list[str]:
    s = images.store.ensure()
    found = [str(p) for p in s.layers.iterdir()] + [str(p) for p in s.tmp.iterdir()]
    return found + [p.name for p in s.images.iterdir() if p.name != "tags.json"]


def test_load_docker_save_shares_layers_and_tags(tmp_path: Path) -> None:
    images = _store(tmp_path)
    l1, l2 = tar_bytes([f("etc/a", b"1")]), tar_bytes([f("etc/b", b"2")])
    loaded = _load(images, tmp_path, _docker_save([l1, l2], ["docker.io/library/app:1", "app:two"]))
    (img, tags), = loaded
    assert tags == ["app:1", "app:two"]
    assert images.resolve("app:1").id == img.id == hashlib.sha256(
        (images.images_dir / f"{img.id}.json").read_bytes()).hexdigest()
    assert [p.parent.name for p in img.layer_dirs] == [sha(l1)[7:], sha(l2)[7:]]
    assert (img.layer_dirs[1] / "etc/b").read_bytes() == b"2"
    _load(images, tmp_path, _docker_save([l1], ["base:1"]))
    assert sorted(p.name for p in images.store.layers.iterdir()) == sorted([sha(l1)[7:], sha(l2)[7:]])
    assert not list(images.store.tmp.iterdir())


@pytest.mark.parametrize("case, word", [
    ("missing layer", "missing entry"),
    ("diff mismatch", "digest mismatch"),
    ("config name mismatch", "digest mismatch"),
    ("escaping layer", "outside"),
    ("truncated layer", "truncated"),
    ("no manifest", "neither"),
    ("bad manifest", "Config and Layers"),
    ("layer count", "diff_ids"),
], ids=lambda v: v.replace(" ", "-"))
def test_bad_docker_archives_leave_nothing(tmp_path: Path, case: str, word: str) -> None:
    images = _store(tmp_path)
    good = tar_bytes([f("ok", b"1")])
    evil = tar_bytes([f("../../evil", b"x")])
    if case == "missing layer":
        data = _docker_save([good, tar_bytes([f("b")])], ["x:1"], drop="1/layer.tar")
    elif case == "diff mismatch":
        data = _docker_save([good], ["x:1"], config={"rootfs": {"type": "layers", "diff_ids": [sha(b"other")]}})
    elif case == "config name mismatch":
        data = tar_bytes([f("0" * 64 + ".json", b"{}"), f("0/layer.tar", good), f("manifest.json", json.dumps(
            [{"Config": "0" * 64 + ".json", "RepoTags": [], "Layers": ["0/layer.tar"]}]).encode())])
    elif case == "escaping layer":
        data = _docker_save([good, evil], ["x:1"])
    elif case == "truncated layer":
        data = _docker_save([good, good[:700]], ["x:1"], config={
            "rootfs": {"type": "layers", "diff_ids": [sha(good), sha(good[:700])]}})
    elif case == "no manifest":
        data = tar_bytes([f("hello")])
    elif case == "bad manifest":
        data = tar_bytes([f("manifest.json", b'[{"Layers": 3}]')])
    else:
        data = _docker_save([good], ["x:1"], config={"rootfs": {"type": "layers", "diff_ids": []}})
    with pytest.raises(DockeeError, match=word):
        _load(images, tmp_path, data)
    images.store.ensure()
    assert _leftovers(images) == []
    assert not (tmp_path / "evil").exists() and not (tmp_path.parent / "evil").exists()
    with pytest.raises(NotFound):
        images.resolve_existing("x:1")


def _oci_layout(root: Path, layers: list[bytes], name: str, gz: bool = True) -> None:
    blobs = root / "blobs" / "sha256"
    blobs.mkdir(parents=True)

    def put(data: bytes) -> dict[str, Any]:
        (blobs / sha(data)[7:]).write_bytes(data)
        return {"digest": sha(data), "size": len(data)}

    cfg = config_bytes({"architecture": "amd64", "os": "linux", "config": {"Env": ["A=1"]},
                        "rootfs": {"type": "layers", "diff_ids": [sha(x) for x in layers]}})
    layer_descs = [put(gzip.compress(x) if gz else x) | {
        "mediaType": "application/vnd.oci.image.layer.v1.tar" + ("+gzip" if gz else "")} for x in layers]
    man = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                      "config": put(cfg) | {"mediaType": "application/vnd.oci.image.config.v1+json"},
                      "layers": layer_descs}).encode()
    index = {"schemaVersion": 2, "manifests": [put(man) | {
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "annotations": {"org.opencontainers.image.ref.name": name}}]}
    (root / "index.json").write_text(json.dumps(index))
    (root / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')


@pytest.mark.parametrize("gz", [True, False])
def test_load_oci_layout_dir_and_archive(tmp_path: Path, gz: bool) -> None:
    images = _store(tmp_path)
    layout = tmp_path / "layout"
    l1 = tar_bytes([f("hello", b"oci")])
    _oci_layout(layout, [l1], "localhost/oci:v1", gz)
    (img, tags), = archives.load(images, str(layout))
    assert tags == ["localhost/oci:v1"] and img.config == {"Env": ["A=1"]}
    assert (img.layer_dirs[0] / "hello").read_bytes() == b"oci"
    # the same layout as an oci-archive (a tar of the directory) loads to the same image
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for p in sorted(layout.rglob("*")):
            tar.add(p, arcname=str(p.relative_to(layout)), recursive=False)
    (img2, _), = _load(images, tmp_path, buf.getvalue())
    assert img2.id == img.id


def test_oci_blob_digest_mismatch_leaves_nothing(tmp_path: Path) -> None:
    images = _store(tmp_path)
    layout = tmp_path / "layout"
    _oci_layout(layout, [tar_bytes([f("hello")])], "x:1")
    blob = next(p for p in (layout / "blobs/sha256").iterdir() if p.read_bytes()[:2] == b"\x1f\x8b")
    blob.write_bytes(gzip.compress(tar_bytes([f("tampered")])))
    with pytest.raises(BadArchive, match="digest mismatch"):
        archives.load(images, str(layout))
    assert _leftovers(images) == []


def test_save_then_load_round_trip(tmp_path: Path) -> None:
    images = _store(tmp_path)
    l1 = tar_bytes([d("etc"), f("etc/a", b"1"), sym("etc/s", "/etc/a")])
    (img, _), = _load(images, tmp_path, _docker_save([l1], ["app:1"]))
    out = tmp_path / "saved.tar"
    archives.save(images, [(img, "app:1")], str(out))
    with tarfile.open(out) as tar:
        manifest = json.load(tar.extractfile("manifest.json"))  # type: ignore[arg-type]
    assert manifest[0]["RepoTags"] == ["app:1"]
    other = ImageStore(Store(tmp_path / "other"))
    (back, tags), = archives.load(other, str(out))
    assert tags == ["app:1"] and back.config == img.config
    assert back.id == img.id, "the layer's tar is rebuilt byte for byte from its tar-split record"
    assert (back.layer_dirs[0] / "etc/a").read_bytes() == b"1"
    assert os.readlink(back.layer_dirs[0] / "etc/s") == "/etc/a"


def test_save_packs_a_layer_anew_when_its_files_changed(tmp_path: Path) -> None:
    images = _store(tmp_path)
    layer = tar_bytes([d("etc"), f("etc/a", b"1")], fmt=tarfile.GNU_FORMAT)
    (img, _), = _load(images, tmp_path, _docker_save([layer], ["app:1"]))
    (img.layer_dirs[0] / "etc/a").write_bytes(b"2")  # the record no longer matches the files
    out = tmp_path / "saved.tar"
    archives.save(images, [(img, "app:1")], str(out))
    other = ImageStore(Store(tmp_path / "other"))
    (back, _), = archives.load(other, str(out))
    assert back.id != img.id and back.config == img.config
    assert (back.layer_dirs[0] / "etc/a").read_bytes() == b"2"


def test_deep_paths_do_not_exhaust_the_stack(tmp_path: Path) -> None:
    deep = "d/" * 1100 + "f"  # deeper than Python's recursion limit, shorter than PATH_MAX
    try:
        out = unpack(tmp_path, tar_bytes([f(deep, b"deep")]))
        assert (out / deep).read_bytes() == b"deep"
    finally:
        # pytest's own clean-up (shutil.rmtree) recurses once per level and would hit the limit
        subprocess.run(["rm", "-rf", "--", *map(str, tmp_path.iterdir())], check=True)


def test_docker_sizes_and_ages() -> None:
    import datetime

    from pyruntime.dockee.cli_images import human_ago, human_size

    assert [human_size(n) for n in (0, 999, 1982374, 124296555, 1_200_000_000)] == \
        ["0B", "999B", "1.982MB", "124.3MB", "1.2GB"]
    now = datetime.datetime(2026, 11, 30, 12, 0, 0, tzinfo=datetime.UTC)
    ages = {"2026-11-30T11:59:59.5Z": "Less than a second ago", "2026-11-30T11:59:30Z": "30 seconds ago",
            "2026-11-30T11:58:30Z": "About a minute ago", "2026-11-30T11:00:00+00:00": "About an hour ago",
            "2026-11-30T09:00:00Z": "3 hours ago", "2026-11-20T12:00:00Z": "10 days ago",
            "2026-05-07T20:33:45Z": "6 months ago", "bogus": "N/A"}
    assert {t: human_ago(t, now) for t in ages} == ages


@pytest.mark.parametrize("pax", [{"uid": "x"}, {"size": "-1"}, {"mtime": "soon"}, {"path": "a\0/../../x"},
                                 {"linkpath": "b\0c"}], ids=["uid", "size", "mtime", "nul-path", "nul-link"])
def test_bad_pax_values_are_one_line_errors(tmp_path: Path, pax: dict[str, str]) -> None:
    ti = _ti("f", tarfile.SYMTYPE if "linkpath" in pax else tarfile.REGTYPE, linkname="t")
    ti.pax_headers = pax
    data = tar_bytes([(ti, None if "linkpath" in pax else b"x")])
    with pytest.raises(BadArchive, match="pax"):
        unpack(tmp_path, data)


@pytest.mark.parametrize("manifest", ['{"a": 1}', '[1]', '[{"Config": "c.json", "Layers": [], "RepoTags": "x:1"}]',
                                      '[{"Config": "c.json", "Layers": [7], "RepoTags": [3]}]', "[]", "nonsense"],
                         ids=["object", "number", "tags-str", "ints", "empty", "not-json"])
def test_odd_manifests_are_one_line_errors(tmp_path: Path, manifest: str) -> None:
    images = _store(tmp_path)
    data = tar_bytes([f("c.json", b'{"rootfs": {"type": "layers", "diff_ids": []}}'),
                      f("manifest.json", manifest.encode())])
    with pytest.raises(DockeeError):
        _load(images, tmp_path, data)
    assert _leftovers(images) == []


@pytest.mark.parametrize("index", ['{"manifests": [{"digest": "sha256:%s", "annotations": 5}]}',
                                   '{"manifests": "x"}', '[]'], ids=["annotations", "manifests-str", "list"])
def test_odd_oci_indexes_are_one_line_errors(tmp_path: Path, index: str) -> None:
    images = _store(tmp_path)
    layout = tmp_path / "layout"
    (layout / "blobs/sha256").mkdir(parents=True)
    blob = b"[1, 2]"
    (layout / "blobs/sha256" / sha(blob)[7:]).write_bytes(blob)
    (layout / "oci-layout").write_text("{}")
    (layout / "index.json").write_text(index.replace("%s", sha(blob)[7:]))
    with pytest.raises(DockeeError):
        archives.load(images, str(layout))
    assert _leftovers(images) == []
