"""Whiteouts in overlay form and back, and commit of an upper dir (needs root: mknod of 0/0
character devices and trusted.* xattrs; skipped otherwise)."""

from __future__ import annotations

import io
import os
import stat
import tarfile
from pathlib import Path

import pytest
from test_dockee_images_units import d, extractor, f, tar_bytes, unpack  # noqa: F401 (both extractors)

from pyruntime.dockee.errors import DockeeError
from pyruntime.dockee.images import ImageStore
from pyruntime.dockee.layers import OPAQUE_XATTR, write_tar
from pyruntime.dockee.store import Store

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="mknod and trusted.* xattrs need root")


def is_whiteout(p: Path) -> bool:
    st = os.lstat(p)
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def test_whiteouts_become_overlay_whiteouts(tmp_path: Path) -> None:
    data = tar_bytes([d("etc"), f("etc/.wh.gone", b""), d("var/cache"), f("var/cache/.wh..wh..opq", b""),
                      f("var/cache/new"), f(".wh.toplevel", b"")])
    out = unpack(tmp_path, data)
    assert is_whiteout(out / "etc/gone") and is_whiteout(out / "toplevel")
    assert os.getxattr(out / "var/cache", OPAQUE_XATTR) == b"y"
    assert (out / "var/cache/new").exists()
    assert not any(p.name.startswith(".wh.") for p in out.rglob("*"))


def test_overlay_xattrs_from_an_archive_are_dropped(tmp_path: Path) -> None:
    ti = tarfile.TarInfo("dir")
    ti.type, ti.mode = tarfile.DIRTYPE, 0o755
    ti.pax_headers = {"SCHILY.xattr.trusted.overlay.redirect": "/etc", "SCHILY.xattr.user.ok": "1"}
    out = unpack(tmp_path, tar_bytes([(ti, None)]))
    assert OPAQUE_XATTR not in os.listxattr(out / "dir")
    assert "trusted.overlay.redirect" not in os.listxattr(out / "dir")
    assert os.getxattr(out / "dir", "user.ok") == b"1"


def _upper(tmp: Path) -> Path:
    upper = tmp / "upper"
    (upper / "etc").mkdir(parents=True)
    (upper / "etc/added").write_text("added\n")
    os.mknod(upper / "etc/removed", stat.S_IFCHR, os.makedev(0, 0))
    (upper / "opaque").mkdir()
    os.setxattr(upper / "opaque", OPAQUE_XATTR, b"y")
    (upper / "opaque/only").write_text("1\n")
    return upper


def test_write_tar_turns_an_upper_dir_into_whiteout_entries(tmp_path: Path) -> None:
    buf = io.BytesIO()
    write_tar(_upper(tmp_path), buf, upper=True)
    with tarfile.open(fileobj=io.BytesIO(buf.getvalue())) as tar:
        names = tar.getnames()
    assert "etc/.wh.removed" in names and "opaque/.wh..wh..opq" in names and "etc/added" in names
    assert "etc/removed" not in names


def test_write_tar_refuses_a_redirected_directory(tmp_path: Path) -> None:
    upper = tmp_path / "upper"
    (upper / "moved").mkdir(parents=True)
    os.setxattr(upper / "moved", "trusted.overlay.redirect", b"/orig")
    with pytest.raises(DockeeError, match="redirect"):
        write_tar(upper, io.BytesIO(), upper=True)


def test_commit_adds_a_layer_on_the_base_image(tmp_path: Path) -> None:
    images = ImageStore(Store(tmp_path / "store"))
    base = images.resolve("busybox")  # the embedded image, built from the host's busybox-static
    new = images.commit(_upper(tmp_path), base, "mine:1", changes=["ENV X=1", "CMD [\"cat\", \"/etc/added\"]"],
                        author="me", message="hello")
    assert new.tags == ["mine:1"] and images.resolve("mine:1").id == new.id
    assert new.layer_dirs[:-1] == base.layer_dirs and len(new.layer_dirs) == 2
    top = new.layer_dirs[-1]
    assert is_whiteout(top / "etc/removed") and os.getxattr(top / "opaque", OPAQUE_XATTR) == b"y"
    assert new.config["Cmd"] == ["cat", "/etc/added"] and "X=1" in new.config["Env"]
    assert any(e.startswith("PATH=") for e in new.config["Env"])
    assert new.raw["author"] == "me" and images.inspect(new)["Comment"] == "hello"
    assert images.inspect(new)["RootFS"]["Layers"] == base.diff_ids + [new.diff_ids[-1]]
