"""`--change` values (Dockerfile instructions) applied to an image's config.

Accepted, as `docker import --change` and `docker commit --change` accept them:
    CMD / ENTRYPOINT   JSON array (exec form) or shell form (-> ["/bin/sh", "-c", TEXT])
    ENV K=V [K2=V2 ...] or ENV K V        WORKDIR DIR        USER U[:G]
    EXPOSE 80 [443/tcp 53/udp]            LABEL k=v [k2="v 2" ...]
    VOLUME /a [/b] or VOLUME ["/a"]       STOPSIGNAL SIG
apply_changes() is pure: it returns a new config dict with docker's key names.
"""

from __future__ import annotations

import json
import shlex
from typing import Any

from pyruntime.dockee.errors import DockeeError


class BadChange(DockeeError):
    pass


def _json_or_shell(value: str, what: str) -> list[str]:
    text = value.strip()
    if text.startswith("["):
        try:
            doc = json.loads(text)
        except ValueError:
            doc = None
        if isinstance(doc, list) and all(isinstance(x, str) for x in doc):
            return doc
    if not text:
        raise BadChange(f"--change {what}: needs a value")
    return ["/bin/sh", "-c", text]


def _words(value: str, what: str) -> list[str]:
    try:
        return shlex.split(value)
    except ValueError as e:
        raise BadChange(f"--change {what}: {e}") from None


def _pairs(value: str, what: str) -> list[tuple[str, str]]:
    words = _words(value, what)
    if not words:
        raise BadChange(f"--change {what}: needs KEY=VALUE")
    if "=" not in words[0]:
        # the old form: ENV KEY rest of the line
        key, _, rest = value.strip().partition(" ")
        return [(key, rest.strip())]
    out = []
    for w in words:
        key, eq, val = w.partition("=")
        if not eq or not key:
            raise BadChange(f"--change {what}: {w!r} is not KEY=VALUE")
        out.append((key, val))
    return out


def apply_changes(config: dict[str, Any], changes: list[str]) -> dict[str, Any]:
    cfg = dict(config)
    for change in changes:
        instr, _, value = change.strip().partition(" ")
        what = instr.upper()
        value = value.strip()
        if what == "CMD":
            cfg["Cmd"] = _json_or_shell(value, what)
        elif what == "ENTRYPOINT":
            cfg["Entrypoint"] = _json_or_shell(value, what)
        elif what == "ENV":
            env = list(cfg.get("Env") or [])
            for key, val in _pairs(value, what):
                env = [e for e in env if e.partition("=")[0] != key] + [f"{key}={val}"]
            cfg["Env"] = env
        elif what == "LABEL":
            labels = dict(cfg.get("Labels") or {})
            labels.update(_pairs(value, what))
            cfg["Labels"] = labels
        elif what == "WORKDIR":
            if not value:
                raise BadChange("--change WORKDIR: needs a directory")
            cfg["WorkingDir"] = value
        elif what == "USER":
            if not value:
                raise BadChange("--change USER: needs a user")
            cfg["User"] = value
        elif what == "EXPOSE":
            ports = dict(cfg.get("ExposedPorts") or {})
            for p in _words(value, what):
                num, _, proto = p.partition("/")
                if not num.isdigit() or not 0 < int(num) < 65536 or proto not in ("", "tcp", "udp", "sctp"):
                    raise BadChange(f"--change EXPOSE: bad port {p!r}")
                ports[f"{int(num)}/{proto or 'tcp'}"] = {}
            cfg["ExposedPorts"] = ports
        elif what == "VOLUME":
            vols = dict(cfg.get("Volumes") or {})
            paths = _json_or_shell(value, what)
            if paths[:2] == ["/bin/sh", "-c"]:
                paths = _words(value, what)
            for v in paths:
                vols[v] = {}
            cfg["Volumes"] = vols
        elif what == "STOPSIGNAL":
            if not value:
                raise BadChange("--change STOPSIGNAL: needs a signal")
            cfg["StopSignal"] = value
        else:
            raise BadChange(f"--change: unsupported instruction {instr!r}")
    return cfg
