"""Container records: <store>/containers/<id>/record.json, names, id prefixes, locks and status.

A record holds facts only (what was asked, when it started and finished, how it ended); the
status shown to users is derived from those facts plus the runtime's `state` and the monitor's
exit file, so a killed dockee-shim or monitor never leaves a stale "running" behind.

Per container directory (also the OCI bundle):
    record.json  config.json  upper/ work/ merged/   the container's layer and its root
    ctr.log                                         k8s-file log kept by the monitor
    exits/<id>  persist/exit  persist/oom           written by conmon when the container ends
    attach  ctl  winsz  conmon.pid  pidfile         conmon's sockets, fifos and pid files
"""

from __future__ import annotations

import contextlib
import os
import random
import re
import secrets
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pyruntime.dockee.errors import Conflict, DockeeError, NotFound
from pyruntime.dockee.store import Store, atomic_write_json, locked, read_json

_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")
_ADJ = ["brave", "calm", "eager", "gentle", "happy", "jolly", "keen", "lucid", "merry", "nifty",
        "proud", "quirky", "serene", "sharp", "tender", "upbeat", "vivid", "witty", "zen", "bold"]
_NOUN = ["turing", "hopper", "lovelace", "ritchie", "thompson", "torvalds", "knuth", "dijkstra",
         "hamilton", "curie", "noether", "shannon", "babbage", "liskov", "lamport", "kernighan"]


def new_id() -> str:
    return secrets.token_hex(32)


def boot_id() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return f.read().strip()
    except OSError:
        return ""


class Containers:
    def __init__(self, store: Store) -> None:
        self.store = store

    def dir(self, cid: str) -> Path:
        return self.store.containers / cid

    # ---- records ----
    def load(self, cid: str) -> dict[str, Any]:
        try:
            rec: dict[str, Any] = read_json(self.dir(cid) / "record.json")
        except (FileNotFoundError, NotADirectoryError):
            raise NotFound(f"no such container: {cid}") from None
        except ValueError:
            raise DockeeError(f"container {cid[:12]}: corrupt record; `rm -f {cid[:12]}` removes it") from None
        return rec

    def save(self, rec: dict[str, Any]) -> None:
        atomic_write_json(self.dir(rec["id"]) / "record.json", rec)

    def ids(self) -> list[str]:
        if not self.store.containers.is_dir():
            return []
        return [d.name for d in self.store.containers.iterdir()
                if not d.name.startswith(".") and (d / "record.json").exists()]

    def all(self) -> list[dict[str, Any]]:
        out = []
        for cid in self.ids():
            with contextlib.suppress(NotFound, DockeeError):
                out.append(self.load(cid))
        out.sort(key=lambda r: r.get("created", 0), reverse=True)
        return out

    def resolve(self, ref: str) -> str:
        """A full id, a name, or a unique id prefix -> the full id."""
        if not ref:
            raise NotFound("no such container: ''")
        ids = self.ids()
        if ref in ids:
            return ref
        for cid in ids:
            with contextlib.suppress(NotFound, DockeeError):
                if self.load(cid).get("name") == ref:
                    return cid
        matches = [cid for cid in ids if cid.startswith(ref)] if re.fullmatch(r"[0-9a-f]+", ref) else []
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise DockeeError(f"container id prefix {ref} is ambiguous: {len(matches)} containers match")
        # a directory without a record (a create killed early) is still reachable by full id for rm -f
        if (self.dir(ref)).is_dir() and re.fullmatch(r"[0-9a-f]{64}", ref):
            return ref
        raise NotFound(f"no such container: {ref}")

    def generate_name(self) -> str:
        taken = {r.get("name") for r in self.all()}
        for _ in range(100):
            name = f"{random.choice(_ADJ)}_{random.choice(_NOUN)}"
            if name not in taken:
                return name
        return f"dockee_{secrets.token_hex(4)}"

    def reserve(self, rec: dict[str, Any]) -> None:
        """Create the record; the name check and the write are one critical section."""
        name = rec.get("name") or ""
        if name and not _NAME.match(name):
            raise DockeeError(f"invalid container name {name!r} for --name: use letters, digits, '_', '.', '-'")
        with self.store.lock("containers"):
            if not name:
                rec["name"] = name = self.generate_name()
            for other in self.all():
                if other.get("name") == name:
                    raise Conflict(f"the container name {name!r} is already in use by container {other['id'][:12]}")
            # the directory appears with its record in one rename: a kill leaves no nameless dir
            tmp = self.store.containers / f".new-{rec['id']}"
            tmp.mkdir(parents=True)
            atomic_write_json(tmp / "record.json", rec)
            os.rename(tmp, self.dir(rec["id"]))

    def rename(self, cid: str, name: str) -> None:
        if not _NAME.match(name):
            raise DockeeError(f"invalid container name {name!r}: use letters, digits, '_', '.', '-'")
        with self.store.lock("containers"):
            for other in self.all():
                if other.get("name") == name:
                    raise Conflict(f"the container name {name!r} is already in use by container {other['id'][:12]}")
            with self.locked(cid):
                rec = self.load(cid)
                rec["name"] = name
                self.save(rec)

    @contextlib.contextmanager
    def locked(self, cid: str) -> Iterator[None]:
        with locked(self.store.root / "locks" / f"container-{cid}"):
            yield

    def forget(self, cid: str) -> None:
        shutil.rmtree(self.dir(cid), ignore_errors=True)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.store.root / "locks" / f"container-{cid}")

    # ---- monitor facts ----
    def exit_file(self, cid: str) -> Path:
        return self.dir(cid) / "exits" / cid

    def read_exit(self, cid: str) -> tuple[int, float] | None:
        """conmon's exit file: (status, its ctime as the finish time), or None."""
        p = self.exit_file(cid)
        try:
            st = p.stat()
            text = p.read_text().strip()
        except OSError:
            return None
        try:
            return int(text), st.st_ctime
        except ValueError:
            return None

    def oom_killed(self, cid: str) -> bool:
        d = self.dir(cid)
        return (d / "persist" / "oom").exists() or (d / "oom").exists()


def derive_status(rec: dict[str, Any], runtime_state: dict[str, Any] | None,
                  exit_info: tuple[int, float] | None) -> tuple[str, int | None, float | None]:
    """(status, exit code, finish time) from the record's facts and what runtime and monitor say.

    status is one of created, running, paused, exited. A container whose runtime state is gone
    (a reboot, `delete` behind our back) and that left no exit file is exited with code -1.
    """
    if not rec.get("started_at"):
        return "created", None, None
    if rec.get("finished_at") is not None and rec.get("finished_generation") == rec.get("generation"):
        return "exited", rec.get("exit_code"), rec["finished_at"]
    status = (runtime_state or {}).get("status")
    if status in ("running", "paused"):
        return str(status), None, None
    if status == "created":
        return "created", None, None
    if exit_info is not None:
        return "exited", exit_info[0], exit_info[1]
    return "exited", -1, rec.get("finished_at") or None


def human_duration(seconds: float) -> str:
    """docker's units.HumanDuration."""
    s = int(seconds)
    if s < 1:
        return "Less than a second"
    if s == 1:
        return "1 second"
    if s < 60:
        return f"{s} seconds"
    m = s // 60
    if m == 1:
        return "About a minute"
    if m < 60:
        return f"{m} minutes"
    h = round(s / 3600)
    if h == 1:
        return "About an hour"
    if h < 48:
        return f"{h} hours"
    if h < 24 * 7 * 2:
        return f"{h // 24} days"
    if h < 24 * 30 * 2:
        return f"{h // 24 // 7} weeks"
    if h < 24 * 365 * 2:
        return f"{h // 24 // 30} months"
    return f"{h // 24 // 365} years"


def status_text(status: str, exit_code: int | None, started: float | None, finished: float | None,
                now: float | None = None) -> str:
    """docker ps's STATUS column: 'Up 3 minutes', 'Exited (137) 5 seconds ago', 'Created'."""
    now = time.time() if now is None else now
    if status in ("running", "paused"):
        text = f"Up {human_duration(now - (started or now))}"
        return text + " (Paused)" if status == "paused" else text
    if status == "exited":
        code = -1 if exit_code is None else exit_code
        if finished:
            return f"Exited ({code}) {human_duration(now - finished)} ago"
        return f"Exited ({code})"
    return "Created"
