"""The cheap part of the CNI contract: versions, error codes and the error object.

VERSION (which podman sends to every plugin before each use) needs nothing more, so the plugin
answers it without loading config parsing, ipaddress or dataclasses.
"""

from __future__ import annotations

import json

# 0.1.0/0.2.0 have another result shape (ip4/ip6 objects); nobody we serve writes them.
SUPPORTED_VERSIONS = ("0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0")
CHECK_MIN = (0, 4, 0)

# CNI well-known error codes (spec "Error" section) and ours (>= 100)
E_VERSION = 1
E_UNSUPPORTED_FIELD = 2
E_UNKNOWN_CONTAINER = 3
E_ENV = 4
E_IO = 5
E_DECODE = 6
E_CONFIG = 7
E_TRY_AGAIN = 11
E_UNAVAILABLE = 50  # STATUS: the plugin cannot serve ADDs
E_PLUGIN = 100
E_NO_ADDRESS = 101  # subnet exhausted, fixed IP taken or outside the range
E_PORT = 102  # host port published already or in use
E_ATTACHED = 103  # a second ADD for the same container and interface


class CNIError(Exception):
    """Printed as the CNI error object on stdout; the plugin then exits 1."""

    def __init__(self, code: int, msg: str, details: str = "") -> None:
        super().__init__(msg)
        self.code = code
        self.msg = msg
        self.details = details

    def to_json(self, version: str) -> dict[str, object]:
        doc: dict[str, object] = {"cniVersion": version, "code": self.code, "msg": self.msg}
        if self.details:
            doc["details"] = self.details
        return doc


def version_tuple(v: str) -> tuple[int, ...]:
    try:
        return tuple(int(p) for p in v.split("."))
    except ValueError:
        raise CNIError(E_VERSION, f"cniVersion {v!r} is not a version")


def config_version(raw: bytes) -> str:
    """cniVersion of stdin, for VERSION and for error objects; "1.0.0" when unreadable."""
    try:
        doc = json.loads(raw) if raw.strip() else {}
        return str(doc.get("cniVersion") or "1.0.0") if isinstance(doc, dict) else "1.0.0"
    except ValueError:
        return "1.0.0"
