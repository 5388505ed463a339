"""The user trial's findings (/work/notes/trial.md), each typed as a docker user types it.

One private store and runtime state dir for the module (pyruntime as the runtime); every test
force-removes what it made and checks nothing of it is left.
"""

from __future__ import annotations

import shutil
import subprocess
import tarfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_dockee_containers import Dockee, leftovers


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dockee]:
    base = tmp_path_factory.mktemp("dockee-trial")
    d = Dockee("pyruntime", base / "store", base / "rt")
    yield d
    for cid in d.ids():
        d("rm", "-f", cid)
    d("network", "rm", "dockee0")
    with open("/proc/self/mountinfo") as f:
        for line in f:
            mp = line.split()[4]
            if mp.startswith(str(base)):
                subprocess.run(["umount", "-l", mp], check=False)


@pytest.fixture
def dk(store: Dockee) -> Iterator[Dockee]:
    before = store.ids()
    yield store
    made = store.ids() - before
    for cid in made:
        store("rm", "-f", "-v", cid)
    for cid in made:
        assert leftovers(store, cid) == [], cid


def name() -> str:
    return f"t{uuid.uuid4().hex[:10]}"


def test_F1_every_busybox_applet_is_in_bin(dk: Dockee) -> None:
    p = dk("run", "--rm", "--net", "none", "--image", "busybox", "/bin/ip a")
    assert p.returncode == 0, p.stderr
    assert "lo" in p.stdout
    assert dk("run", "--rm", "--net", "none", "busybox", "/sbin/ip", "link").returncode == 0
