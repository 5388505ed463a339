"""`list`: all containers under --root, as runc's table or JSON."""

from __future__ import annotations

import json
import pwd
from typing import Any

from .errors import RuntimeErr
from .state import oci_state


def list_containers(runtime: Any, quiet: bool, fmt: str) -> str:
    rows = []
    for cid in runtime.store.ids():
        try:
            st, stat = runtime.load(cid)
        except (RuntimeErr, OSError, ValueError):
            continue
        doc = oci_state(st, stat)
        doc["owner"] = _owner(runtime.store.dir(cid))
        rows.append(doc)
    if quiet:
        return "".join(f"{r['id']}\n" for r in rows)
    if fmt == "json":
        return json.dumps(rows, separators=(",", ":")) + "\n"
    table = [["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"]]
    table += [[r["id"], str(r["pid"]), r["status"], r["bundle"], r["created"], r["owner"]] for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    return "".join(
        "   ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() + "\n"
        for row in table
    )


def _owner(path: Any) -> str:
    try:
        return pwd.getpwuid(path.stat().st_uid).pw_name
    except (KeyError, OSError):
        return ""
