"""The verbs containerd and podman call for every container load only an allow-list of
modules, children included (create's stage 1 and init, exec's stage 1).

tests/test_hot_imports.py holds state/list/pause/kill to their list without root; this
holds create, start, exec, kill, delete and run to theirs on a real container: a module
more costs milliseconds of every pod start (pathlib alone was ~15 ms of `create`), and no
timing test can say so reliably, so the list does.  Measured with -X importtime, whose
report every process of the verb writes to the same stderr.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path
from typing import Any

import pytest

from conftest import Runtime, base_config

REPO = Path(__file__).resolve().parents[1]
SITE = sysconfig.get_paths()["purelib"]  # python-prctl, as the launcher finds it

# what CPython -I -S loads before any of our code
STARTUP = {"_io", "marshal", "posix", "_frozen_importlib_external", "time", "zipimport",
           "_codecs", "codecs", "encodings.aliases", "encodings", "encodings.utf_8", "_signal",
           "_abc", "abc", "io", "__future__", "_stat", "stat", "_collections_abc",
           "genericpath", "posixpath", "os", "encodings.ascii", "encodings.latin_1"}
# C modules (and ctypes, for the syscalls Python 3.11 lacks), cheap to load
STDLIB = {"_ctypes", "ctypes", "ctypes._endian", "types", "_json", "_prctl", "_socket",
          "_struct", "struct", "atexit", "errno", "fcntl", "gc", "resource", "select", "pwd"}
NEVER = {"pathlib", "re", "typing", "enum", "json", "socket", "urllib", "urllib.parse",
         "ipaddress", "dataclasses", "functools", "collections", "contextlib", "signal",
         "fnmatch", "warnings", "copy", "subprocess", "shlex", "tempfile", "click",
         "pyruntime.cli", "array", "selectors", "threading", "inspect", "string"}
# what start, kill and delete may load: no config parsing, no cgroups package, no init
LEAN = {"pyruntime", "pyruntime.trace", "pyruntime.verbs", "pyruntime.main",
        "pyruntime.errors", "pyruntime.log", "pyruntime.record", "pyruntime.state",
        "pyruntime.fastjson", "pyruntime.syscalls", "pyruntime.syscalls.linux",
        "pyruntime.container", "pyruntime.signals", "pyruntime.freezer"}

SECCOMP = {"defaultAction": "SCMP_ACT_ALLOW",
           "syscalls": [{"names": ["mkdirat"], "action": "SCMP_ACT_ERRNO"}]}


class Verbs:
    def __init__(self, rt: Runtime, bundle: Path) -> None:
        self.root = rt.root
        self.bundle = bundle
        self.err = rt.tmp / "importtime.txt"

    def __call__(self, *argv: str) -> tuple[set[str], int, str]:
        """(modules every process of the verb imported, exit status, what it said)."""
        paths = [str(REPO), SITE]
        code = ("import sys\n"
                f"sys.path[0:0] = {paths!r}\n"
                f"sys.argv = ['pyruntime', '--root', {str(self.root)!r}, *{list(argv)!r}]\n"
                "from pyruntime.main import main\n"
                "main()\n")
        env = {k: v for k, v in os.environ.items() if k != "PYRUNTIME_SLOW_CLI"}
        # stdout to /dev/null, stderr to a file: a created init keeps both open
        with open(self.err, "w+") as err:
            rc = subprocess.run([sys.executable, "-I", "-S", "-X", "importtime", "-c", code],
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
                                cwd=self.bundle, env=env, timeout=60).returncode
            err.seek(0)
            text = err.read()
        names = {line.rsplit("|", 1)[-1].strip() for line in text.splitlines()
                 if line.startswith("import time:") and "imported package" not in line}
        said = "\n".join(ln for ln in text.splitlines() if not ln.startswith("import time:"))
        return names, rc, said


def _allowed(names: set[str], extra: set[str]) -> list[str]:
    return sorted(n for n in names
                  if n not in STARTUP | STDLIB | extra and n.split(".")[0] != "pyruntime")


@pytest.mark.parametrize("linux", [{}, {"seccomp": SECCOMP}], ids=["plain", "seccomp"])
def test_lifecycle_verbs_import_only_the_allow_list(pyrt: Runtime, linux: dict[str, Any]) -> None:
    doc = base_config(["sleep", "30"])
    doc["linux"].update(linux)
    v = Verbs(pyrt, pyrt.bundle(doc))
    cid, run_id = pyrt.new_id(), pyrt.new_id()  # pyrt deletes them at the end, whatever happens
    process = pyrt.tmp / "process.json"
    process.write_text(json.dumps({"args": ["true"], "cwd": "/", "env": ["PATH=/bin"],
                                   "user": {"uid": 0, "gid": 0}}))
    seen: dict[str, set[str]] = {}
    for verb, argv in (("create", ["create", cid]), ("start", ["start", cid]),
                       ("exec", ["exec", "--process", str(process), cid]),
                       ("kill", ["kill", cid, "KILL"]), ("delete", ["delete", "--force", cid]),
                       ("run", ["run", "--detach", run_id])):
        names, rc, said = v(*argv)
        assert rc == 0, f"{argv}: {said}"
        seen[verb] = names
    for verb, names in seen.items():
        assert "pyruntime.main" in names, f"{verb} did not run through main.py"
        assert not names & NEVER, (verb, sorted(names & NEVER))
        assert not _allowed(names, set()), (verb, _allowed(names, set()))
    for verb in ("start", "kill", "delete"):
        ours = {n for n in seen[verb] if n.startswith("pyruntime")}
        assert ours <= LEAN, (verb, sorted(ours - LEAN))
    # the children's imports are in the report too: create's stage 1 loads libc
    assert "ctypes" in seen["create"] and "ctypes" in seen["exec"]
    assert ("pyruntime.seccomp" in seen["create"]) == bool(linux)
