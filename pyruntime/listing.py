"""`list`: all containers under --root, as runc's table or JSON."""

from __future__ import annotations

import os
import pwd

from .errors import RuntimeErr
from .fastjson import dumps
from .state import oci_state

TYPE_CHECKING = False  # `list` is called per pod sync: json and typing cost more than it
if TYPE_CHECKING:
    from typing import Any


def list_containers(runtime: Any, quiet: bool, fmt: str) -> str:
    rows = []
    for cid in runtime.store.ids():
        try:
            st, stat = runtime.load(cid)
        except (RuntimeErr, OSError, ValueError):
            continue
        doc = oci_state(st, stat)
        doc["owner"] = _owner(runtime.store.path(cid))
        rows.append(doc)
    if quiet:
        return "".join(f"{r['id']}\n" for r in rows)
    if fmt == "json":
        # runc's list JSON: annotations only when there are some (omitempty), owner last,
        # and `null`, not `[]`, for no containers (a Go nil slice)
        return dumps([_runc_row(r) for r in rows] or None) + "\n"
    table = [["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"]]
    table += [[r["id"], str(r["pid"]), r["status"], r["bundle"], r["created"], r["owner"]] for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    return "".join(
        "   ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() + "\n"
        for row in table
    )


def _runc_row(doc: dict[str, Any]) -> dict[str, Any]:
    row = {k: v for k, v in doc.items() if k not in ("owner", "annotations")}
    if doc.get("annotations"):
        row["annotations"] = doc["annotations"]
    row["owner"] = doc["owner"]
    return row


def _owner(path: str) -> str:
    try:
        return pwd.getpwuid(os.stat(path).st_uid).pw_name
    except (KeyError, OSError):
        return ""
