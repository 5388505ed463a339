"""dockee's side of networking without root: records, -p/--add-host parsing, hosts files, the plan
(hooks, mounts, reservations) and its release, and rtnl (pyroute2 messages) against a fake netlink socket."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from pyruntime.dockee.errors import Conflict, DockeeError, NotFound
from pyruntime.dockee.network import attach, hosts, networks
from pyruntime.dockee.network.cniconf import PortMapping, parse_config
from pyruntime.dockee.store import Store


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Store:
    # no host routes: the tests must not depend on this machine's addresses
    monkeypatch.setattr(networks, "host_routes", lambda: [])
    monkeypatch.setattr(networks, "make_bridge", lambda s, n: None)  # no bridges on the host from a unit test
    return Store(tmp_path / "store").ensure()


def test_create_list_and_names(store: Store) -> None:
    n = networks.create(store, "bridge33", subnet="192.168.33.0/24")
    assert (n.subnet, n.gateway, n.driver) == ("192.168.33.0/24", "192.168.33.1", "bridge")
    assert n.bridge.startswith("dk-") and len(n.bridge) <= 15
    assert n.table == networks.nft_table(store) != "dockee"  # a private store has its own table
    auto = networks.create(store, "auto")
    assert auto.subnet == "10.89.0.0/24"
    assert networks.create(store, "auto2").subnet == "10.89.1.0/24"
    assert [x.name for x in networks.list_all(store)] == ["auto", "auto2", "bridge33"]
    d = networks.ensure_default(store)
    assert d.name == "dockee0" and networks.ensure_default(store).id == d.id


@pytest.mark.parametrize("kw, err", [
    ({"subnet": "192.168.33.128/25"}, "overlaps network bridge33"),
    ({"subnet": "192.168.34.5/24"}, "not a subnet"),
    ({"subnet": "300.1.1.0/24"}, "not a subnet"),
    ({"subnet": "fd00::/64"}, "only IPv4"),
    ({"subnet": "10.0.0.0/30"}, "too small"),
    ({"subnet": "127.0.0.0/24"}, "not usable"),
    ({"subnet": "192.168.40.0/24", "gateway": "192.168.41.1"}, "--gateway"),
    ({"subnet": "192.168.40.0/24", "gateway": "192.168.40.0"}, "--gateway"),
    ({"driver": "overlay"}, "--driver"),
])
def test_create_refuses_bad_input(store: Store, kw: dict[str, str], err: str) -> None:
    networks.create(store, "bridge33", subnet="192.168.33.0/24")
    with pytest.raises(DockeeError, match=err):
        networks.create(store, "other", **kw)
    assert [x.name for x in networks.list_all(store)] == ["bridge33"]


def test_overlap_with_a_host_route_is_refused(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    import ipaddress

    monkeypatch.setattr(networks, "host_routes", lambda: [(ipaddress.IPv4Network("172.29.192.0/20"), "eth0")])
    with pytest.raises(Conflict, match="eth0"):
        networks.create(store, "x", subnet="172.29.199.0/24")


@pytest.mark.parametrize("name", ["", "-x", "a/b", "none", "host", "x" * 70])
def test_bad_names(store: Store, name: str) -> None:
    with pytest.raises(DockeeError, match="network name"):
        networks.create(store, name)


def test_duplicate_and_unknown(store: Store) -> None:
    networks.create(store, "a")
    with pytest.raises(Conflict, match="already exists"):
        networks.create(store, "a")
    with pytest.raises(NotFound, match="network nope not found"):
        networks.load(store, "nope")


def test_cni_config_is_valid_plugin_input(store: Store) -> None:
    n = networks.create(store, "a", subnet="10.44.0.0/24")
    c = parse_config(json.dumps(networks.cni_config(store, n, ports=[{"hostPort": 80, "containerPort": 8080,
                                                                      "protocol": "tcp"}], ip="10.44.0.9")).encode())
    assert str(c.fixed_ip) == "10.44.0.9" and c.port_mappings == (PortMapping(80, 8080, "tcp", ""),)
    assert c.is_default_gateway and c.ip_masq and c.bridge == n.bridge and c.nft_table == n.table


@pytest.mark.parametrize("spec, want", [
    ("8080:80", PortMapping(8080, 80, "tcp", "")),
    ("127.0.0.1:8080:80/udp", PortMapping(8080, 80, "udp", "127.0.0.1")),
    ("0.0.0.0:8080:80", PortMapping(8080, 80, "tcp", "")),
])
def test_parse_publish(spec: str, want: PortMapping) -> None:
    assert attach.parse_publish(spec) == want


def test_parse_publish_picks_a_free_host_port() -> None:
    m = attach.parse_publish("80")
    assert m.container_port == 80 and 1024 <= m.host_port < 65536
    assert attach.parse_publish("127.0.0.1::81").host_ip == "127.0.0.1"


@pytest.mark.parametrize("spec", ["8080:80/sctp", "x:80", "8080:0", "1.2.3:8080:80", "[::1]:80:80", "8080:"])
def test_parse_publish_refuses(spec: str) -> None:
    with pytest.raises(DockeeError, match="-p"):
        attach.parse_publish(spec)


def test_add_host_and_hosts_render() -> None:
    assert hosts.parse_add_host("db:10.0.0.5") == ("db", "10.0.0.5")
    assert hosts.parse_add_host("v6=fd00::1") == ("v6", "fd00::1")
    with pytest.raises(DockeeError, match="--add-host"):
        hosts.parse_add_host("db")
    text = hosts.render("10.0.0.3", ["me", "abc"], [("10.0.0.10", ["b"]), ("10.0.0.9", ["a"])], [("db", "1.2.3.4")])
    lines = text.splitlines()
    assert lines[0] == "127.0.0.1\tlocalhost"
    assert lines[-4:] == ["1.2.3.4\tdb", "10.0.0.3\tme abc", "10.0.0.9\ta", "10.0.0.10\tb"]


def test_hosts_rewrite_keeps_the_inode(tmp_path: Path) -> None:
    f = tmp_path / "hosts"
    hosts.write_in_place(f, "a long first version\n" * 3)
    ino = f.stat().st_ino
    hosts.write_in_place(f, "short\n")
    assert f.stat().st_ino == ino and f.read_text() == "short\n"


def test_resolv_conf_drops_loopback_nameservers(tmp_path: Path) -> None:
    f = tmp_path / "resolv.conf"
    f.write_text("nameserver 127.0.0.53\nnameserver 10.0.0.2\nsearch example\noptions edns0\n")
    assert hosts.resolv_conf(str(f)) == "nameserver 10.0.0.2\nsearch example\noptions edns0\n"


def plan(store: Store, net: str, name: str, **kw: object) -> tuple[str, attach.NetworkPlan]:
    cid = os.urandom(32).hex()
    (store.containers / cid).mkdir(parents=True)
    p = attach.plan_for(store, cid, name, net, ip=kw.get("ip"), ports=list(kw.get("ports", [])),  # type: ignore
                        add_hosts=list(kw.get("add_hosts", [])), hostname=name,  # type: ignore
                        bundle=store.containers / cid)
    assert p is not None
    return cid, p


def test_plan_hooks_mounts_and_names(store: Store) -> None:
    n = networks.create(store, "app", subnet="10.55.0.0/24")
    a_id, a = plan(store, "app", "alpha", add_hosts=["db:10.9.9.9"])
    b_id, b = plan(store, "app", "beta", ip="10.55.0.77")
    assert (a.ip, b.ip, a.gateway, a.network) == ("10.55.0.2", "10.55.0.77", "10.55.0.1", "app")
    hook = a.hooks["createRuntime"][0]
    assert os.path.isabs(hook["path"]) and hook["args"][1:3] == ["oci-hook", "add"]
    assert a.hooks["poststop"][0]["args"][1:3] == ["oci-hook", "del"]
    plan_file = json.loads(Path(hook["args"][3]).read_text())
    assert plan_file["containerId"] == a_id and plan_file["config"]["runtimeConfig"]["ips"] == ["10.55.0.2/24"]
    assert {m["destination"] for m in a.mounts} == {"/etc/hosts", "/etc/resolv.conf"}
    # the earlier container learns about the later one; both know themselves; --add-host stays private
    hosts_a = Path(next(m["source"] for m in a.mounts if m["destination"] == "/etc/hosts")).read_text()
    hosts_b = Path(next(m["source"] for m in b.mounts if m["destination"] == "/etc/hosts")).read_text()
    assert "10.55.0.77\tbeta" in hosts_a and f"10.55.0.2\talpha {a_id[:12]}" in hosts_a
    # (not `"db" not in hosts_b`: a random container id in it may hold those two letters)
    assert "10.55.0.2\talpha" in hosts_b and "10.9.9.9" not in hosts_b and "10.9.9.9\tdb" in hosts_a
    assert sorted(networks.members(store, "app")) == sorted([a_id, b_id])
    # release: address, member, name in the others' files
    attach.release(store, b_id)
    attach.release(store, b_id)
    assert "beta" not in Path(a.mounts[0]["source"]).read_text()
    assert not (store.networks / "ipam" / "app" / "10.55.0.77").exists()
    assert sorted(networks.members(store, "app")) == [a_id]
    assert n.name == "app"


def test_plan_refusals_leave_nothing(store: Store) -> None:
    networks.create(store, "app", subnet="10.55.0.0/24")
    cid, first = plan(store, "app", "one", ip="10.55.0.9")
    before = sorted(os.listdir(store.networks / "ipam" / "app"))
    for kw, err in (({"ip": "10.55.0.9"}, "already allocated"), ({"ip": "10.56.0.9"}, "not in network"),
                    ({"ip": "bogus"}, "--ip"), ({"ports": ["8080:80", "8080:81"]}, "twice"),
                    ({"ports": ["8080:80/icmp"]}, "protocol"), ({"add_hosts": ["x"]}, "--add-host")):
        with pytest.raises(DockeeError, match=err):
            plan(store, "app", "two", **kw)
        assert sorted(os.listdir(store.networks / "ipam" / "app")) == before
        assert sorted(networks.members(store, "app")) == [cid]
    with pytest.raises(NotFound):
        plan(store, "ghost", "x")
    assert first.ip == "10.55.0.9"


def test_default_network_is_made_on_first_use(store: Store) -> None:
    _cid, p = plan(store, attach.DEFAULT_NETWORK, "c")
    assert p.network == "dockee0" and p.subnet == "10.89.0.0/24"


def test_network_rm_refuses_while_used_and_cleans_leftovers(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    destroyed: list[str] = []
    monkeypatch.setattr(networks, "_destroy", lambda s, n: destroyed.append(n.name))
    networks.create(store, "app", subnet="10.55.0.0/24")
    cid, _p = plan(store, "app", "one")
    with pytest.raises(Conflict, match="in use by container.*one"):
        networks.remove(store, "app")
    # the container's directory vanished (a crash of dockee-shim): its membership is a leftover
    import shutil

    shutil.rmtree(store.containers / cid)
    networks.remove(store, "app")
    assert destroyed == ["app"] and networks.members(store, "app") == {}
    assert not (store.networks / "ipam" / "app" / "10.55.0.2").exists()


class FakeSocket:
    """Records what rtnl sends; answers with an ACK, or with the queued replies."""

    def __init__(self, replies: list[bytes] | None = None) -> None:
        self.sent: list[bytes] = []
        self.replies = replies or []

    def bind(self, addr: object) -> None:
        pass

    def send(self, data: bytes) -> int:
        self.sent.append(data)
        return len(data)

    def recv(self, size: int) -> bytes:
        import struct

        seq = struct.unpack_from("=I", self.sent[-1], 8)[0]
        if self.replies:
            data = bytearray(self.replies.pop(0))
            struct.pack_into("=I", data, 8, seq)
            return bytes(data)
        error = 0
        return struct.pack("=IHHIIi", 20, 2, 0, seq, 0, -error)

    def close(self) -> None:
        pass


def error_reply(code: int) -> bytes:
    import struct

    return struct.pack("=IHHIIi", 20, 2, 0, 0, 0, -code)


def pyroute2_messages() -> tuple[Any, Any, Any]:
    """pyroute2's own message classes: the independent decoder of what rtnl packs by hand."""
    from pyroute2.netlink.rtnl.ifaddrmsg import ifaddrmsg
    from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg
    from pyroute2.netlink.rtnl.rtmsg import rtmsg

    return ifinfmsg, ifaddrmsg, rtmsg


def test_rtnl_encodes_a_veth_born_in_the_netns() -> None:
    from pyruntime.dockee.network import rtnl

    ifinfmsg, _, _ = pyroute2_messages()
    sock = FakeSocket()
    r = rtnl.Rtnl(sock)  # type: ignore[arg-type]
    r.add_veth("vethabc", 1400, "eth0", 7, master=9, up=True)
    msg = ifinfmsg(sock.sent[0])
    msg.decode()
    assert msg["header"]["type"] == rtnl.RTM_NEWLINK
    assert msg["header"]["flags"] & (rtnl.NLM_F_CREATE | rtnl.NLM_F_EXCL | rtnl.NLM_F_ACK)
    assert msg.get_attr("IFLA_IFNAME") == "vethabc" and msg.get_attr("IFLA_MTU") == 1400
    assert msg.get_attr("IFLA_MASTER") == 9 and msg["flags"] & msg["change"] & 1
    info = msg.get_attr("IFLA_LINKINFO")
    assert info.get_attr("IFLA_INFO_KIND") == "veth"
    peer = info.get_attr("IFLA_INFO_DATA").get_attr("VETH_INFO_PEER")
    assert peer.get_attr("IFLA_IFNAME") == "eth0" and peer.get_attr("IFLA_NET_NS_FD") == 7


def test_rtnl_address_route_and_up() -> None:
    from pyruntime.dockee.network import rtnl

    ifinfmsg, ifaddrmsg, rtmsg = pyroute2_messages()
    sock = FakeSocket()
    r = rtnl.Rtnl(sock)  # type: ignore[arg-type]
    r.add_address(3, "10.1.2.3", 24, "10.1.2.255")
    r.add_route("0.0.0.0", 0, "10.1.2.1", 3)
    r.set_link(3, up=True, master=9)
    addr = ifaddrmsg(sock.sent[0])
    addr.decode()
    assert (addr["index"], addr["prefixlen"], addr.get_attr("IFA_LOCAL"), addr.get_attr("IFA_BROADCAST")) == (
        3, 24, "10.1.2.3", "10.1.2.255")
    route = rtmsg(sock.sent[1])
    route.decode()
    assert (route["dst_len"], route.get_attr("RTA_DST"), route.get_attr("RTA_GATEWAY"), route.get_attr("RTA_OIF"),
            route["table"]) == (0, None, "10.1.2.1", 3, 254)
    link = ifinfmsg(sock.sent[2])
    link.decode()
    assert (link["index"], link["flags"] & 1, link["change"] & 1, link.get_attr("IFLA_MASTER")) == (3, 1, 1, 9)


def test_rtnl_errors() -> None:
    import errno

    from pyruntime.dockee.network import rtnl

    r = rtnl.Rtnl(FakeSocket([error_reply(errno.ENODEV)]))  # type: ignore[arg-type]
    assert r.link("nope") is None
    r = rtnl.Rtnl(FakeSocket([error_reply(errno.ENODEV)]))  # type: ignore[arg-type]
    assert r.del_link("nope") is False
    r = rtnl.Rtnl(FakeSocket([error_reply(errno.EPERM)]))  # type: ignore[arg-type]
    with pytest.raises(rtnl.NetlinkError) as e:
        r.add_bridge("br0", 1500)
    assert e.value.errno == errno.EPERM


def test_rtnl_decodes_a_link_reply() -> None:
    from pyruntime.dockee.network import rtnl

    ifinfmsg, _, _ = pyroute2_messages()
    r = rtnl.Rtnl(FakeSocket())  # type: ignore[arg-type]
    msg = ifinfmsg()
    msg["index"], msg["flags"] = 5, 1
    msg["attrs"] = [["IFLA_IFNAME", "br9"], ["IFLA_ADDRESS", "aa:bb:cc:dd:ee:ff"], ["IFLA_OPERSTATE", "UP"],
                    ["IFLA_LINKINFO", {"attrs": [["IFLA_INFO_KIND", "bridge"]]}]]
    msg["header"]["type"] = rtnl.RTM_NEWLINK
    msg.encode()
    r.sock = FakeSocket([bytes(msg.data)])  # type: ignore[assignment]
    assert r.link("br9") == {"index": 5, "flags": 1, "name": "br9", "mac": "aa:bb:cc:dd:ee:ff", "master": None,
                             "operstate": "UP", "kind": "bridge"}


def test_rtnl_batch_is_one_send_and_reports_the_first_error() -> None:
    import errno
    import struct

    from pyruntime.dockee.network import rtnl

    class BatchSocket(FakeSocket):
        def recv(self, size: int) -> bytes:
            first = struct.unpack_from("=I", self.sent[-1], 8)[0]
            codes = (0, errno.EEXIST, errno.EPERM)
            return b"".join(struct.pack("=IHHIIi", 20, 2, 0, first + i, 0, -c) for i, c in enumerate(codes))

    ifinfmsg, ifaddrmsg, rtmsg = pyroute2_messages()
    sock = BatchSocket()
    r = rtnl.Rtnl(sock)  # type: ignore[arg-type]
    with pytest.raises(rtnl.NetlinkError) as e:
        r.batch([r.add_address_msg(4, "10.9.0.2", 16, "10.9.255.255"), r.set_link_msg(rtnl.LOOPBACK_INDEX, up=True),
                 r.add_route_msg("10.8.0.0", 16, "10.9.0.1", 4)])
    assert e.value.errno == errno.EEXIST and len(sock.sent) == 1
    data = sock.sent[0]
    first_len = struct.unpack_from("=I", data, 0)[0]
    addr = ifaddrmsg(data[:first_len])
    addr.decode()
    assert (addr["prefixlen"], addr.get_attr("IFA_BROADCAST")) == (16, "10.9.255.255")
    assert addr["header"]["flags"] & rtnl.NLM_F_ACK
    second_len = struct.unpack_from("=I", data, first_len)[0]
    route = rtmsg(data[first_len + second_len:])
    route.decode()
    assert (route.get_attr("RTA_DST"), route["dst_len"], route.get_attr("RTA_OIF")) == ("10.8.0.0", 16, 4)
