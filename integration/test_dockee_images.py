"""dockee-shim's image verbs typed as a user types them, against a private store per test.

What a user sees is checked: exit codes, docker's output lines and tables, and the image's
root as overlayfs shows it (its layers mounted read-only, whiteouts applied by the kernel).
Peers: podman (a private --root/--runroot/--tmpdir) and ctr (a private containerd and a
unique namespace) must load what `save` writes and run it.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import signal
import subprocess
import tarfile
import tempfile
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from dockee_images import DOCKEE, busybox_tarball, debian_tarball, dockee, umoci_layout

from pyruntime.dockee.images import ImageStore
from pyruntime.dockee.store import Store

ULIMITS = ["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"]


def layer_dirs(root: Path, ref: str) -> list[Path]:
    return ImageStore(Store(root)).resolve(ref).layer_dirs


@contextlib.contextmanager
def image_root(root: Path, ref: str, tmp: Path) -> Iterator[Path]:
    """The image's root as a container sees it: its layers as overlay lowerdirs (read-only)."""
    empty = tmp / f"empty-{uuid.uuid4().hex[:6]}"
    target = tmp / f"merged-{uuid.uuid4().hex[:6]}"
    empty.mkdir()
    target.mkdir()
    lower = ":".join(str(p) for p in reversed(layer_dirs(root, ref))) + f":{empty}"  # overlay wants >= 2
    subprocess.run(["mount", "-t", "overlay", "overlay", "-o", f"ro,lowerdir={lower}", str(target)], check=True)
    try:
        yield target
    finally:
        subprocess.run(["umount", str(target)], check=True)


def store_contents(root: Path) -> dict[str, list[str]]:
    out = {}
    for sub in ("layers", "tmp"):
        p = root / sub
        out[sub] = sorted(os.listdir(p)) if p.exists() else []
    p = root / "images"
    out["images"] = sorted(n for n in os.listdir(p) if n != "tags.json") if p.exists() else []
    return out


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "store"


def test_import_busybox_tarball_then_list_inspect_tag_rmi(root: Path, tmp_path: Path) -> None:
    p = dockee(root, "images")
    assert p.returncode == 0 and p.stdout.split() == ["REPOSITORY", "TAG", "IMAGE", "ID", "CREATED", "SIZE"]
    p = dockee(root, "import", str(busybox_tarball()), "bb", "--change", 'CMD ["sh"]', "-c", "ENV A=1",
               check=True)
    image_id = p.stdout.strip()
    assert image_id.startswith("sha256:") and len(image_id) == 71
    rows = dockee(root, "images", check=True).stdout.splitlines()
    assert rows[1].split()[:3] == ["bb", "latest", image_id[7:19]] and rows[1].endswith("MB")
    assert dockee(root, "images", "-q", check=True).stdout.split() == [image_id[7:19]]
    doc = json.loads(dockee(root, "image", "inspect", "bb", check=True).stdout)[0]
    assert doc["Id"] == image_id and doc["RepoTags"] == ["bb:latest"]
    assert doc["Config"] == {"Cmd": ["sh"], "Env": ["A=1"]} and doc["RootFS"]["Type"] == "layers"
    assert doc["Size"] > 1_000_000 and doc["Created"].endswith("Z")
    line = json.loads(dockee(root, "images", "--format", "json", check=True).stdout.splitlines()[0])
    assert (line["Repository"], line["Tag"], line["ID"]) == ("bb", "latest", image_id[7:19])
    with image_root(root, "bb", tmp_path) as r:
        assert (r / "bin/busybox").stat().st_size > 100_000 and os.readlink(r / "bin/sh") == "/bin/busybox"
    dockee(root, "tag", "bb", "bb:two", check=True)
    assert dockee(root, "rmi", "bb").stdout.strip() == "Untagged: bb:latest"  # bb:two keeps it
    out = dockee(root, "image", "rm", image_id[7:12], check=True).stdout.splitlines()
    assert out == ["Untagged: bb:two", f"Deleted: {image_id}"]
    assert store_contents(root) == {"layers": [], "tmp": [], "images": []}
    p = dockee(root, "rmi", "bb")
    assert p.returncode != 0 and p.stderr.strip() == "dockee-shim: no such image: bb"


def test_embedded_busybox_exists_on_first_use(root: Path, tmp_path: Path) -> None:
    assert dockee(root, "images", "-q", check=True).stdout == ""
    doc = json.loads(dockee(root, "image", "inspect", "busybox", check=True).stdout)[0]
    assert doc["RepoTags"] == ["busybox:latest"] and doc["Config"]["Cmd"] == ["sh"]
    with image_root(root, "busybox", tmp_path) as r:
        assert (r / "etc/passwd").read_text().startswith("root:x:0:0:")
        assert os.readlink(r / "bin/sh") == "/bin/busybox" and (r / "etc/group").exists()
        assert oct((r / "tmp").stat().st_mode & 0o7777) == "0o1777"
    again = ImageStore(Store(tmp_path / "other")).resolve("busybox")
    assert "sha256:" + again.id == doc["Id"], "same busybox, same image id"


def test_import_from_stdin_and_compressed(root: Path) -> None:
    data = subprocess.run(["gzip", "-c", str(busybox_tarball())], capture_output=True, check=True).stdout
    p = dockee(root, "import", "-", "piped:1", "-c", "WORKDIR /tmp", input=data, check=True)
    doc = json.loads(dockee(root, "image", "inspect", p.stdout.strip(), check=True).stdout)[0]
    assert doc["RepoTags"] == ["piped:1"] and doc["Config"]["WorkingDir"] == "/tmp"
    p = dockee(root, "import", str(busybox_tarball()), "x", "--change", "FROM debian")
    assert p.returncode != 0 and "--change" in p.stderr and len(p.stderr.strip().splitlines()) == 1


def test_import_debian_shows_bullseye(root: Path, tmp_path: Path) -> None:
    tarball = debian_tarball()
    dockee(root, "import", str(tarball), "debian:bullseye", check=True)
    with image_root(root, "debian:bullseye", tmp_path) as r:
        assert 'VERSION_CODENAME=bullseye' in (r / "etc/os-release").read_text()
        assert (r / "usr/lib/x86_64-linux-gnu/libc-2.31.so").exists() or list(r.glob("usr/lib/*/libc-2.31.so"))
        assert (r / "dev/null").is_char_device() or not (r / "dev/null").exists()
    assert dockee(root, "images", check=True).stdout.splitlines()[1].split()[:2] == ["debian", "bullseye"]


def test_load_oci_layout_docker_archive_and_oci_archive(root: Path, tmp_path: Path) -> None:
    layout = umoci_layout(tmp_path)
    da, oa = tmp_path / "docker.tar", tmp_path / "oci.tar"
    for dest in (f"docker-archive:{da}:local/app:v1", f"oci-archive:{oa}:local/app:v2"):
        subprocess.run(["skopeo", "copy", "-q", f"oci:{layout}:v1", dest], check=True, capture_output=True)
    assert dockee(root, "load", "-i", str(da), check=True).stdout.strip() == "Loaded image: local/app:v1"
    assert dockee(root, "image", "load", input=oa.read_bytes(), check=True).stdout.strip() == \
        "Loaded image: local/app:v2"
    out = dockee(root, "load", "-i", str(layout), check=True).stdout.strip()
    assert out.startswith("Loaded image ID: sha256:")  # umoci's ref name is a bare tag: no name
    ids = {json.loads(dockee(root, "image", "inspect", r, check=True).stdout)[0]["Id"]
           for r in ("local/app:v1", "local/app:v2", out.split()[-1])}
    assert len(ids) == 1, "three forms of one image are one image"
    doc = json.loads(dockee(root, "image", "inspect", "local/app:v1", check=True).stdout)[0]
    assert "A=1" in doc["Config"]["Env"] and doc["Config"]["Cmd"] == ["sh"]
    assert len(doc["RootFS"]["Layers"]) == 2
    with image_root(root, "local/app:v1", tmp_path) as r:
        assert not (r / "data/gone").exists(), "a whiteout hides the lower file"
        assert sorted(os.listdir(r / "data/dir")) == ["new"], "the replaced directory shows only its new files"
        assert (r / "bin/busybox").exists()
    assert len(store_contents(root)["layers"]) == 2 and store_contents(root)["tmp"] == []


def _podman(base: Path) -> list[str]:
    return ["podman", "--root", str(base / "root"), "--runroot", str(base / "run"), "--tmpdir", str(base / "tmp"),
            "--storage-driver", "overlay", "--cgroup-manager", "cgroupfs", "--events-backend", "none"]


def test_save_is_loaded_and_run_by_podman(root: Path, tmp_path: Path) -> None:
    if shutil.which("podman") is None:
        pytest.skip("needs podman")
    layout = umoci_layout(tmp_path)
    dockee(root, "load", "-i", str(layout), check=True)
    image_id = dockee(root, "images", "-q", check=True).stdout.strip()
    image_id_full = dockee(root, "images", "-q", "--no-trunc", check=True).stdout.strip()
    dockee(root, "tag", image_id, "app:1", check=True)
    archive = tmp_path / "saved.tar"
    dockee(root, "save", "-o", str(archive), "app:1", "busybox", check=True)
    with tarfile.open(archive) as tar:
        manifest = json.load(tar.extractfile("manifest.json"))  # type: ignore[arg-type]
    assert [m["RepoTags"] for m in manifest] == [["app:1"], ["busybox:latest"]]
    base = Path(tempfile.mkdtemp(prefix="dockee-podman-"))
    podman = _podman(base)
    try:
        p = subprocess.run([*podman, "load", "-i", str(archive)], capture_output=True, text=True, timeout=120)
        assert p.returncode == 0, p.stderr
        assert "app:1" in p.stdout and "busybox:latest" in p.stdout
        p = subprocess.run([*podman, "run", "--rm", "--pull", "never", "--net", "none", *ULIMITS, "localhost/app:1",
                            "sh", "-c", "ls /data /data/dir; cat /data/dir/new; echo A=$A"],
                           capture_output=True, text=True, timeout=120)
        assert p.returncode == 0, p.stderr
        assert p.stdout.split() == ["/data:", "dir", "/data/dir:", "new", "new", "A=1"]
        p = subprocess.run([*podman, "images", "--no-trunc", "--format", "{{.ID}}", "localhost/app:1"],
                           capture_output=True, text=True, timeout=60)
        assert p.stdout.strip() == image_id_full, "podman sees the same image id"
        # and back: what podman saves, in both of its formats, loads here as the same image
        for fmt in ("oci-archive", "docker-archive"):
            back = tmp_path / f"from-podman-{fmt}.tar"
            p = subprocess.run([*podman, "save", "--format", fmt, "-o", str(back), "localhost/app:1"],
                               capture_output=True, text=True, timeout=120)
            assert p.returncode == 0, p.stderr
            other = tmp_path / f"store-{fmt}"
            assert dockee(other, "load", "-i", str(back), check=True).stdout.strip() == "Loaded image: localhost/app:1"
            with image_root(other, "localhost/app:1", tmp_path) as r:
                assert sorted(os.listdir(r / "data/dir")) == ["new"] and not (r / "data/gone").exists()
    finally:
        subprocess.run([*podman, "rmi", "-a", "-f"], capture_output=True, timeout=120)
        mounts = [line.split()[1] for line in Path("/proc/self/mounts").read_text().splitlines()
                  if str(base) in line.split()[1]]
        for m in reversed(mounts):
            subprocess.run(["umount", "-l", m], capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


def test_save_is_imported_and_run_by_ctr(root: Path, tmp_path: Path) -> None:
    if shutil.which("containerd") is None or shutil.which("ctr") is None:
        pytest.skip("needs containerd and ctr")
    from harness import remove_tool_leftovers
    from test_containerd import Containerd

    archive = tmp_path / "saved.tar"
    dockee(root, "import", str(busybox_tarball()), "dockee-test/bb:1", "-c", 'CMD ["sh"]', check=True)
    dockee(root, "save", "-o", str(archive), "dockee-test/bb:1", check=True)
    c = Containerd(Path(tempfile.mkdtemp(prefix="dk-ctd-")))
    problems: list[str] = []
    name = "docker.io/dockee-test/bb:1"
    try:
        c.start()
        p = c.ctr("images", "import", str(archive))
        assert p.returncode == 0, p.stderr
        assert name in c.ctr("images", "ls", "-q", check=True).stdout.split()
        cid = c.new_id("dockee")
        p = c.ctr("run", "--rm", name, cid, "/bin/sh", "-c", "echo from-ctr; cat /etc/passwd | head -1")
        assert p.returncode == 0, p.stderr
        assert p.stdout.split() == ["from-ctr", "root:x:0:0:root:/root:/bin/sh"]
    finally:
        c.ctr("images", "rm", "--sync", name, timeout=30)
        problems += c.stop()
        problems += remove_tool_leftovers(c.tmp, c.ns, [Path("/run/containerd/runc") / c.ns])
    assert not problems, problems


def test_rmi_is_refused_while_a_container_uses_the_image(root: Path) -> None:
    dockee(root, "import", str(busybox_tarball()), "used:1", check=True)
    image_id = json.loads(dockee(root, "image", "inspect", "used:1", check=True).stdout)[0]["Id"]
    record = root / "containers" / "c0ffee" / "record.json"  # as the container verbs write it
    record.parent.mkdir(parents=True)
    record.write_text(json.dumps({"name": "web", "image_id": image_id}))
    p = dockee(root, "rmi", "used:1")
    assert p.returncode != 0 and "in use by container c0ffee" in p.stderr and len(p.stderr.splitlines()) == 1
    assert dockee(root, "image", "prune", "-a", "-f", check=True).stdout == ""
    p = dockee(root, "rmi", "-f", "used:1", check=True)
    assert p.stdout.strip() == "Untagged: used:1"
    assert len(store_contents(root)["layers"]) == 1, "the container's layers stay"
    assert dockee(root, "images", "-q", check=True).stdout.strip() == image_id[7:19]
    shutil.rmtree(record.parent)
    out = dockee(root, "image", "prune", "-f", check=True).stdout.splitlines()
    assert out == ["Deleted Images:", f"deleted: {image_id}"]
    assert store_contents(root) == {"layers": [], "tmp": [], "images": []}


def _evil_tar(path: Path, kind: str) -> None:
    with tarfile.open(path, "w") as tar:
        def add(name: str, data: bytes = b"x", **kw: object) -> None:
            ti = tarfile.TarInfo(name)
            for k, v in kw.items():
                setattr(ti, k, v)
            ti.size = len(data) if ti.type == tarfile.REGTYPE else 0
            tar.addfile(ti, io.BytesIO(data) if ti.type == tarfile.REGTYPE else None)
        add("ok/file")
        if kind == "dotdot":
            add("../../../../../tmp/dockee-evil-" + path.stem)
        elif kind == "symlink":
            add("ok/link", type=tarfile.SYMTYPE, linkname="/tmp")
            add("ok/link/dockee-evil-" + path.stem)
        elif kind == "hardlink":
            add("ok/hard", type=tarfile.LNKTYPE, linkname="../../../../etc/passwd")


@pytest.mark.parametrize("kind", ["dotdot", "symlink", "hardlink", "truncated"])
def test_malicious_or_broken_archives_leave_nothing(root: Path, tmp_path: Path, kind: str) -> None:
    bad = tmp_path / f"{kind}-{uuid.uuid4().hex[:6]}.tar"
    escaped = Path(f"/tmp/dockee-evil-{bad.stem}")  # where an unsafe extraction would write
    try:
        _check_refused(root, bad, kind, escaped)
    finally:
        escaped.unlink(missing_ok=True)


def _check_refused(root: Path, bad: Path, kind: str, escaped: Path) -> None:
    if kind == "truncated":
        bad.write_bytes(busybox_tarball().read_bytes()[:600_000])
    else:
        _evil_tar(bad, kind)
    for argv in (["import", str(bad), "evil:1"], ["load", "-i", str(bad)]):
        p = dockee(root, *argv)
        assert p.returncode != 0, argv
        assert len(p.stderr.strip().splitlines()) == 1 and p.stderr.startswith("dockee-shim: "), p.stderr
        assert "Traceback" not in p.stderr
    p = dockee(root, "import", str(bad), "evil:1")
    assert {"dotdot": "outside", "symlink": "symlink", "hardlink": "outside", "truncated": "truncated"}[kind] \
        in p.stderr
    assert not escaped.exists()
    contents = store_contents(root)
    assert contents["layers"] == [] and contents["tmp"] == [] and contents["images"] == []
    assert dockee(root, "images", "-q", check=True).stdout == ""


def test_load_with_a_missing_layer_or_a_wrong_digest_leaves_nothing(root: Path, tmp_path: Path) -> None:
    dockee(root, "import", str(busybox_tarball()), "src:1", check=True)
    good = tmp_path / "good.tar"
    dockee(root, "save", "-o", str(good), "src:1", check=True)
    other = tmp_path / "other-store"
    with tarfile.open(good) as tar:
        members = [(m, tar.extractfile(m).read() if m.isreg() else None)  # type: ignore[union-attr]
                   for m in tar.getmembers()]
    for case in ("missing", "mismatch"):
        bad = tmp_path / f"{case}.tar"
        with tarfile.open(bad, "w") as out:
            for m, data in members:
                if m.name.endswith("layer.tar"):
                    if case == "missing":
                        continue
                    assert data is not None
                    with tarfile.open(fileobj=io.BytesIO(data)) as layer:
                        at = next(x.offset_data for x in layer.getmembers() if x.isreg() and x.size > 0)
                    data = data[:at] + bytes([data[at] ^ 1]) + data[at + 1:]  # still a valid tar
                out.addfile(m, io.BytesIO(data) if data is not None else None)
        p = dockee(other, "load", "-i", str(bad))
        assert p.returncode != 0 and len(p.stderr.strip().splitlines()) == 1
        assert ("missing" if case == "missing" else "digest mismatch") in p.stderr, p.stderr
        assert store_contents(other) == {"layers": [], "tmp": [], "images": []}


def test_concurrent_imports_of_one_layer_share_it(root: Path) -> None:
    tarball = str(busybox_tarball())
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda i: dockee(root, "import", tarball, f"c{i}:1"), range(4)))
    assert all(p.returncode == 0 for p in results), [p.stderr for p in results]
    assert len(store_contents(root)["layers"]) == 1 and store_contents(root)["tmp"] == []
    assert len(dockee(root, "images", check=True).stdout.splitlines()) == 5


def test_import_killed_midway_leaves_what_prune_cleans(root: Path) -> None:
    proc = subprocess.Popen([DOCKEE, "--root", str(root), "import", str(debian_tarball()), "killed:1"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            staged = list((root / "tmp").glob("layer-*/diff/usr")) if (root / "tmp").exists() else []
            if staged:
                break
            time.sleep(0.02)
        assert proc.poll() is None, "the import ended before it could be killed"
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    assert dockee(root, "images", "-q", check=True).stdout == ""
    p = dockee(root, "image", "inspect", "killed:1")
    assert p.returncode != 0 and "no such image" in p.stderr
    dockee(root, "image", "prune", "-f", check=True)
    assert store_contents(root) == {"layers": [], "tmp": [], "images": []}


def test_commit_of_a_real_overlay_upper_dir(root: Path, tmp_path: Path) -> None:
    """The kernel writes the upper dir (whiteouts, opaque dirs); commit makes a layer of it."""
    images = ImageStore(Store(root))
    base = images.resolve("busybox")
    upper, work, merged = (tmp_path / n for n in ("upper", "work", "merged"))
    for d in (upper, work, merged):
        d.mkdir()
    lower = ":".join(str(p) for p in reversed(base.layer_dirs))
    subprocess.run(["mount", "-t", "overlay", "overlay", "-o", f"lowerdir={lower},upperdir={upper},workdir={work}",
                    str(merged)], check=True)
    try:
        (merged / "etc/passwd").unlink()  # a whiteout
        shutil.rmtree(merged / "usr/sbin")  # a directory removed, then made again: opaque
        (merged / "usr/sbin").mkdir()
        (merged / "usr/sbin/mine").write_text("mine\n")
        (merged / "root/note").write_text("committed\n")
    finally:
        subprocess.run(["umount", str(merged)], check=True)
    new = images.commit(upper, base, "committed:1", changes=["CMD cat /root/note"], message="from a test")
    doc = json.loads(dockee(root, "image", "inspect", "committed:1", check=True).stdout)[0]
    assert doc["Config"]["Cmd"] == ["/bin/sh", "-c", "cat /root/note"] and doc["Comment"] == "from a test"
    assert len(doc["RootFS"]["Layers"]) == 2 and doc["Id"] == f"sha256:{new.id}"
    with image_root(root, "committed:1", tmp_path) as r:
        assert not (r / "etc/passwd").exists() and (r / "etc/group").exists()
        assert os.listdir(r / "usr/sbin") == ["mine"]
        assert (r / "root/note").read_text() == "committed\n"
    archive = tmp_path / "c.tar"
    dockee(root, "save", "-o", str(archive), "committed:1", check=True)
    other = tmp_path / "other"
    dockee(other, "load", "-i", str(archive), check=True)
    assert json.loads(dockee(other, "image", "inspect", "committed:1", check=True).stdout)[0]["Id"] == doc["Id"], \
        "layers made here save byte for byte: the id survives save and load"
