"""dockee's network plan (attach.plan_for/release) in real containers, under pyruntime and runc:
the OCI hooks run the plugin, containers reach each other by IP and by name, the host reaches them,
-p works from 127.0.0.1, and release / network rm leave nothing."""

from __future__ import annotations

import os
import shutil
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from netfix import free_port, free_subnet, link_exists, remove_store_networks, sh

from conftest import Runtime, base_config
from pyruntime.dockee.errors import Conflict, DockeeError, NotFound
from pyruntime.dockee.network import attach, networks
from pyruntime.dockee.network.cniconf import host_veth_name
from pyruntime.dockee.store import Store


class Dockee:
    """A private store with its own networks; removes what it made."""

    def __init__(self, tmp: Path, rt: Runtime) -> None:
        self.store = Store(tmp / "store").ensure()
        self.rt = rt
        self.cids: list[str] = []
        self.nets: list[str] = []

    def network(self, **kw: Any) -> networks.Network:
        name = f"n{uuid.uuid4().hex[:8]}"
        net = networks.create(self.store, name, subnet=str(free_subnet()), **kw)
        self.nets.append(name)
        return net

    def plan(self, net: str, name: str, **kw: Any) -> tuple[str, attach.NetworkPlan]:
        cid = uuid.uuid4().hex + uuid.uuid4().hex
        (self.store.containers / cid).mkdir(parents=True)
        self.cids.append(cid)
        plan = attach.plan_for(self.store, cid, name, net, ip=kw.pop("ip", None), ports=kw.pop("ports", []),
                               add_hosts=kw.pop("add_hosts", []), hostname=name, bundle=self.store.containers / cid)
        assert plan is not None
        return cid, plan

    def config(self, plan: attach.NetworkPlan, args: list[str]) -> dict[str, Any]:
        doc = base_config(args)
        doc["hooks"] = plan.hooks
        doc["mounts"] += plan.mounts
        for kind in ("bounding", "effective", "permitted"):
            doc["process"]["capabilities"][kind].append("CAP_NET_RAW")  # busybox ping
        return doc

    def start(self, plan: attach.NetworkPlan, args: list[str]) -> str:
        b = self.rt.bundle(self.config(plan, args))
        www = b / "rootfs" / "www"
        www.mkdir()
        (www / "index.html").write_text("hi\n")
        rid = self.rt.new_id()
        p = self.rt("create", "--bundle", str(b), rid)
        assert p.returncode == 0, p.stderr
        assert self.rt("start", rid).returncode == 0
        return rid

    def run(self, plan: attach.NetworkPlan, args: list[str]) -> Any:
        return self.rt.run(self.config(plan, args))

    def cleanup(self) -> None:
        self.rt.cleanup()
        self.rt.ids.clear()
        for cid in self.cids:
            attach.release(self.store, cid)
        for name in self.nets:
            try:
                networks.remove(self.store, name)
            except NotFound:
                pass
        remove_store_networks(self.store.root)
        shutil.rmtree(self.store.root, ignore_errors=True)


@pytest.fixture(params=["pyrt", "runc"])
def dk(request: Any, tmp_path: Path) -> Iterator[Dockee]:
    rt = request.getfixturevalue(request.param)
    d = Dockee(tmp_path, rt)
    yield d
    d.cleanup()


def http_get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as r:
        return str(r.read().decode())


def first_get(url: str) -> str:
    """The first request to a server just started: `start` returns before httpd listens."""
    import time

    deadline = time.monotonic() + 10
    while True:
        try:
            return http_get(url)
        except urllib.error.URLError as e:
            if not isinstance(e.reason, ConnectionRefusedError) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def test_two_containers_by_ip_and_name_host_and_published_port(dk: Dockee) -> None:
    net = dk.network()
    hp = free_port()
    web_id, web = dk.plan(net.name, "web", ports=[f"{hp}:80"])
    dk.start(web, ["httpd", "-f", "-p", "80", "-h", "/www"])
    assert web.ip == str(net.net.network_address + 2)
    # the host reaches the container directly, and through the published port on 127.0.0.1 and the bridge
    assert first_get(f"http://{web.ip}/") == "hi\n"
    assert http_get(f"http://127.0.0.1:{hp}/") == "hi\n"
    assert http_get(f"http://{net.gateway}:{hp}/") == "hi\n"
    # a container started later finds it by IP and by name, and through the published port
    cli_id, cli = dk.plan(net.name, "client")
    p = dk.run(cli, ["sh", "-c", f"ping -c1 -W2 {web.ip} && ping -c1 -W2 web && wget -qO- http://web/"
                                 f" && wget -qO- http://{net.gateway}:{hp}/ && cat /etc/hosts"])
    assert p.returncode == 0, p.stdout + p.stderr
    assert p.stdout.count("hi\n") == 2
    assert f"{web.ip}\tweb" in p.stdout
    # and the first container now knows the later one (its hosts file was rewritten in place)
    hosts = (dk.store.containers / web_id / "net" / "hosts").read_text()
    assert f"{cli.ip}\tclient" in hosts
    # after the client is released, its address, veth and name are gone
    attach.release(dk.store, cli_id)
    assert cli.ip not in hosts_of(dk, web_id)
    assert not (dk.store.networks / "ipam" / net.name / str(cli.ip)).exists()
    assert not link_exists(host_veth_name(cli_id, "eth0"))


def hosts_of(dk: Dockee, cid: str) -> str:
    return (dk.store.containers / cid / "net" / "hosts").read_text()


def test_release_removes_veth_rules_and_address_and_network_rm_the_bridge(dk: Dockee) -> None:
    net = dk.network()
    hp = free_port()
    cid, plan = dk.plan(net.name, "srv", ports=[f"127.0.0.1:{hp}:80"])
    rid = dk.start(plan, ["httpd", "-f", "-p", "80", "-h", "/www"])
    assert first_get(f"http://127.0.0.1:{hp}/") == "hi\n"
    veth = host_veth_name(cid, "eth0")
    assert link_exists(veth) and link_exists(net.bridge)
    with pytest.raises(Conflict, match="in use"):
        networks.remove(dk.store, net.name)
    # the container dies (SIGKILL), then rm: runtime delete (poststop hook) and release
    dk.rt("kill", rid, "KILL")
    dk.rt.wait_status(rid, "stopped")
    assert dk.rt("delete", "--force", rid).returncode == 0
    attach.release(dk.store, cid)
    shutil.rmtree(dk.store.containers / cid)
    assert not link_exists(veth)
    table = sh("nft", "list", "table", "ip", net.table).stdout
    assert str(hp) not in table
    assert [p for p in os.listdir(dk.store.networks / "ipam" / net.name) if p[0].isdigit()] == []
    networks.remove(dk.store, net.name)
    assert not link_exists(net.bridge)
    assert not (dk.store.networks / f"{net.name}.json").exists()


def test_fixed_ip_and_bad_input_leave_nothing(dk: Dockee) -> None:
    net = dk.network()
    want = str(net.net.network_address + 50)
    cid, plan = dk.plan(net.name, "fixed", ip=want)
    assert plan.ip == want
    p = dk.run(plan, ["ip", "-4", "-o", "addr", "show", "eth0"])
    assert p.returncode == 0, p.stderr
    assert f"inet {want}/24" in p.stdout
    assert want not in os.listdir(dk.store.networks / "ipam" / net.name)  # freed at its poststop (F11)
    holder, _ = dk.plan(net.name, "holder", ip=want)
    allocated = sorted(os.listdir(dk.store.networks / "ipam" / net.name))
    hp = free_port()
    for kw, err in (({"ip": want}, "already allocated"), ({"ip": "10.0.0.1"}, "not in network"),
                    ({"ports": ["99999:80"]}, "host port"), ({"ports": [f"{hp}:80", f"{hp}:81"]}, "twice"),
                    ({"add_hosts": ["nonsense"]}, "--add-host")):
        with pytest.raises(DockeeError, match=err):
            dk.plan(net.name, "bad", **kw)
        assert sorted(os.listdir(dk.store.networks / "ipam" / net.name)) == allocated
    with pytest.raises(NotFound):
        dk.plan("no-such-network", "x")
    assert sorted(networks.members(dk.store, net.name)) == sorted([cid, holder])
