"""`dockee-shim network ...` as a user runs it (private --root): one-line errors, ls/list, inspect,
rm/remove refused while used, rm removing the bridge and the NAT elements, prune."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from netfix import REPO, free_subnet, link_exists, remove_store_networks, sh

from pyruntime.dockee.network import attach, bridge, networks
from pyruntime.dockee.store import Store

SHIM = str(REPO / ".venv" / "bin" / "dockee-shim")


class Shim:
    def __init__(self, root: Path) -> None:
        self.root = root

    def __call__(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([SHIM, "--root", str(self.root), *args], capture_output=True, text=True, timeout=60)


@pytest.fixture
def shim(tmp_path: Path) -> Iterator[Shim]:
    s = Shim(tmp_path / "store")
    yield s
    store = Store(s.root)
    for n in networks.list_all(store):
        for cid in networks.members(store, n.name):
            attach.release(store, cid)
        with bridge.iproute() as r:
            r.del_link(n.bridge)
    remove_store_networks(s.root)
    shutil.rmtree(s.root, ignore_errors=True)


def one_line_error(p: subprocess.CompletedProcess[str], needle: str) -> None:
    assert p.returncode != 0
    assert p.stderr.count("\n") == 1 and p.stderr.startswith("dockee-shim: ") and needle in p.stderr, p.stderr
    assert "Traceback" not in p.stderr


def test_create_ls_inspect_rm(shim: Shim) -> None:
    subnet = free_subnet()
    p = shim("network", "create", "--driver", "bridge", "--subnet", str(subnet), "bridge33")
    assert p.returncode == 0 and len(p.stdout.strip()) == 64, p.stderr
    for verb in ("ls", "list"):
        out = shim("network", verb).stdout
        assert "bridge33" in out and str(subnet) in out and "dockee0" in out
    doc = json.loads(shim("network", "inspect", "bridge33").stdout)[0]
    assert doc["Name"] == "bridge33" and doc["IPAM"]["Config"] == [{"Subnet": str(subnet),
                                                                   "Gateway": str(subnet[1])}]
    one_line_error(shim("network", "create", "--subnet", str(subnet), "again"), "overlaps network bridge33")
    one_line_error(shim("network", "create", "--subnet", "10.1.2.0/99", "bad"), "--subnet")
    one_line_error(shim("network", "create", "--gateway", "1.2.3.4", "--subnet", "10.251.7.0/24", "bad"),
                   "--gateway")
    one_line_error(shim("network", "create", "bridge33"), "already exists")
    one_line_error(shim("network", "rm", "nope"), "network nope not found")
    one_line_error(shim("network", "inspect", "nope"), "network nope not found")
    assert "bad" not in shim("network", "ls", "-q").stdout.split()
    assert shim("network", "remove", "bridge33").returncode == 0
    assert "bridge33" not in shim("network", "ls", "-q").stdout.split()


def test_rm_refused_while_used_then_removes_bridge_and_rules(shim: Shim) -> None:
    """A container's plan joins the network (and its ADD makes the bridge); rm waits for release."""
    subnet = free_subnet()
    assert shim("network", "create", "--subnet", str(subnet), "used").returncode == 0
    store = Store(shim.root)
    net = networks.load(store, "used")
    cid = uuid.uuid4().hex * 2
    (store.containers / cid).mkdir(parents=True)
    plan = attach.plan_for(store, cid, "c1", "used", ip=None, ports=["127.0.0.1:28099:80"], add_hosts=[],
                           hostname="c1", bundle=store.containers / cid)
    assert plan is not None
    ns = f"dkns{uuid.uuid4().hex[:8]}"
    sh("ip", "netns", "add", ns)
    try:
        hook = plan.hooks["createRuntime"][0]
        # the hook as a runtime runs it, for a process that lives in the netns
        proc = subprocess.Popen(["ip", "netns", "exec", ns, "sleep", "60"])
        try:
            # `ip netns exec` execs sleep once it is in the netns: wait for that, then hook its pid
            import time

            deadline = time.monotonic() + 10
            while os.readlink(f"/proc/{proc.pid}/ns/net") == os.readlink("/proc/self/ns/net"):
                assert time.monotonic() < deadline
                time.sleep(0.01)
            pid = proc.pid
            p = subprocess.run([hook["path"], *hook["args"][1:]], input=json.dumps({"pid": pid}),
                               capture_output=True, text=True, timeout=30, env={})
            assert p.returncode == 0, p.stderr
            assert link_exists(net.bridge)
            assert "28099" in sh("nft", "list", "table", "ip", net.table).stdout
            p = shim("network", "rm", "used")
            one_line_error(p, "in use by container(s): c1")
        finally:
            proc.kill()
            proc.wait()
    finally:
        sh("ip", "netns", "del", ns, check=False)
    attach.release(store, cid)
    shutil.rmtree(store.containers / cid)
    assert shim("network", "rm", "used").returncode == 0
    assert not link_exists(net.bridge)
    assert "28099" not in sh("nft", "list", "table", "ip", net.table, check=False).stdout


def test_prune_keeps_the_default_and_used_networks(shim: Shim) -> None:
    for name in ("p1", "p2"):
        assert shim("network", "create", "--subnet", str(free_subnet()), name).returncode == 0
    store = Store(shim.root)
    cid = uuid.uuid4().hex * 2
    (store.containers / cid).mkdir(parents=True)
    attach.plan_for(store, cid, "c", "p2", ip=None, ports=[], add_hosts=[], hostname="c",
                    bundle=store.containers / cid)
    p = shim("network", "prune", "-f")
    assert p.returncode == 0 and p.stdout.split() == ["p1"]
    assert sorted(shim("network", "ls", "-q").stdout.split()) == ["dockee0", "p2"]


def test_prune_removes_a_bridge_whose_record_is_gone(shim: Shim) -> None:
    """F48: the bridge names its store (ifalias), so a network whose record was lost (deleted by
    hand, a crash) still has its bridge found and removed by `network prune`."""
    assert shim("network", "create", "--subnet", str(free_subnet()), "lost").returncode == 0
    store = Store(shim.root)
    net = networks.load(store, "lost")
    assert link_exists(net.bridge)
    os.unlink(store.networks / "lost.json")
    assert shim("network", "prune", "-f").returncode == 0
    assert not link_exists(net.bridge)


def test_prune_removes_the_bridge_and_table_of_a_store_deleted_without_network_rm(shim: Shim,
                                                                                    tmp_path: Path) -> None:
    """F48: a store deleted with its networks still there left its bridge and nft table on the host
    for good; the bridge's ifalias names the store, so any store's `network prune` removes both."""
    from pyruntime.dockee.network import nat

    gone = Shim(tmp_path / "gone")
    assert gone("network", "create", "--subnet", str(free_subnet()), "g").returncode == 0
    net = networks.load(Store(gone.root), "g")
    nat.ensure_table(net.table)  # as the first container's ADD makes it
    try:
        shutil.rmtree(gone.root)
        assert shim("network", "prune", "-f").returncode == 0
        assert not link_exists(net.bridge)
        assert sh("nft", "list", "table", "ip", net.table, check=False).returncode != 0
    finally:
        if link_exists(net.bridge):
            sh("ip", "link", "del", net.bridge, check=False)
        sh("nft", "delete", "table", "ip", net.table, check=False)
