"""`list --format json` as runc prints it: what scripts written against runc parse."""

from __future__ import annotations

import json
from pathlib import Path

from pyruntime.listing import list_containers
from pyruntime.state import Reader


def _container(root: Path, cid: str, annotations: dict[str, str]) -> None:
    (root / cid).mkdir(parents=True)
    (root / cid / "state.json").write_text(json.dumps({
        "id": cid, "bundle": "/b", "rootfs": "/b/rootfs", "created": "2026-01-01T00:00:00Z",
        "pid": 0, "annotations": annotations, "config": {}}))


def test_no_containers_is_null_as_in_runc(tmp_path: Path) -> None:
    assert list_containers(Reader(tmp_path / "none"), False, "json") == "null\n"
    assert list_containers(Reader(tmp_path / "none"), True, "table") == ""


def test_rows_have_runcs_keys_in_runcs_order(tmp_path: Path) -> None:
    _container(tmp_path, "a", {})
    _container(tmp_path, "b", {"io.kubernetes.cri.container-type": "sandbox"})
    rows = json.loads(list_containers(Reader(tmp_path), False, "json"))
    assert [list(r) for r in rows] == [
        ["ociVersion", "id", "pid", "status", "bundle", "rootfs", "created", "owner"],
        ["ociVersion", "id", "pid", "status", "bundle", "rootfs", "created", "annotations",
         "owner"]]
    assert rows[1]["annotations"] == {"io.kubernetes.cri.container-type": "sandbox"}
