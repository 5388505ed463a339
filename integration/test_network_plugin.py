"""dockee-cni-bridge driven as a CNI plugin (env + stdin) on namespaces made by `ip netns add`,
and compared with the reference bridge + host-local plugins of /usr/lib/cni on the same input."""

from __future__ import annotations

import copy
import errno
import json
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from netfix import REF_DIR, NetEnv, free_port, link_exists, ns_json, sh

MAC = "^([0-9a-f]{2}:){5}[0-9a-f]{2}$"
CIDR4 = r"^\d+\.\d+\.\d+\.\d+/\d+$"
IP4 = r"^\d+\.\d+\.\d+\.\d+$"

# the result format of the CNI spec (SPEC.md "Success"), 1.0.0; older versions add ips[].version
RESULT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["cniVersion", "interfaces", "ips"],
    "properties": {
        "cniVersion": {"type": "string"},
        "interfaces": {"type": "array", "items": {
            "type": "object", "required": ["name"], "additionalProperties": False,
            "properties": {"name": {"type": "string", "minLength": 1}, "mac": {"type": "string", "pattern": MAC},
                           "mtu": {"type": "integer"}, "sandbox": {"type": "string"},
                           "socketPath": {"type": "string"}, "pciID": {"type": "string"}}}},
        "ips": {"type": "array", "items": {
            "type": "object", "required": ["address"],
            "properties": {"address": {"type": "string", "pattern": CIDR4},
                           "gateway": {"type": "string", "pattern": IP4},
                           "interface": {"type": "integer", "minimum": 0}}}},
        "routes": {"type": "array", "items": {
            "type": "object", "required": ["dst"],
            "properties": {"dst": {"type": "string", "pattern": CIDR4}, "gw": {"type": "string", "pattern": IP4}}}},
        "dns": {"type": "object", "properties": {
            "nameservers": {"type": "array"}, "domain": {"type": "string"}, "search": {"type": "array"},
            "options": {"type": "array"}}},
    },
}


def result_schema(version: str) -> dict[str, Any]:
    schema = copy.deepcopy(RESULT_SCHEMA)
    if version != "1.0.0":
        item = schema["properties"]["ips"]["items"]
        item["required"] = ["version", "address"]
        item["properties"]["version"] = {"enum": ["4", "6"]}
    return schema


ERROR_SCHEMA = {"type": "object", "required": ["cniVersion", "code", "msg"],
                "properties": {"code": {"type": "integer"}, "msg": {"type": "string", "minLength": 1},
                               "details": {"type": "string"}}}


@pytest.fixture
def net(tmp_path: Path) -> Iterator[NetEnv]:
    env = NetEnv(tmp_path)
    yield env
    env.cleanup()


def with_prev(conf: dict[str, Any], result: Any) -> dict[str, Any]:
    return {**conf, "prevResult": result}


def ipam_files(net: NetEnv) -> list[str]:
    d = net.data_dir / net.network
    return sorted(p.name for p in d.iterdir() if re.match(IP4, p.name)) if d.is_dir() else []


def test_version_lists_supported_versions(net: NetEnv) -> None:
    for version in ("0.3.1", "0.4.0", "1.0.0"):
        rc, out, _ = net.cni("VERSION", {"cniVersion": version})
        assert rc == 0
        assert out["cniVersion"] == version
        assert {"0.3.1", "0.4.0", "1.0.0"} <= set(out["supportedVersions"])


def test_add_check_del(net: NetEnv) -> None:
    ns = net.add_netns()
    conf = net.conf()
    rc, res, err = net.cni("ADD", conf, ns)
    assert rc == 0, (res, err)
    jsonschema.validate(res, result_schema("1.0.0"))
    assert res["ips"][0]["address"] == f"{net.subnet.network_address + 2}/24"
    assert res["ips"][0]["gateway"] == str(net.gateway)
    assert res["interfaces"][2] | {"mac": ""} == {"name": "eth0", "mac": "", "sandbox": f"/var/run/netns/{ns}"}
    host_veth = res["interfaces"][1]["name"]
    assert link_exists(host_veth) and link_exists(net.bridge)
    # inside: the address, lo up, a default route via the bridge
    links = {link["ifname"]: link for link in ns_json(ns, "addr")}
    assert "UP" in links["lo"]["flags"] and "UP" in links["eth0"]["flags"]
    assert links["eth0"]["address"] == res["interfaces"][2]["mac"]
    assert [a["local"] for a in links["eth0"]["addr_info"] if a["family"] == "inet"] == [str(net.subnet[2])]
    routes = ns_json(ns, "route")
    assert {"dst": "default", "gateway": str(net.gateway)}.items() <= routes[0].items()
    # the host reaches a server in the namespace through the bridge
    port = free_port()
    net.serve(ns, port)
    assert net.talk(None, str(net.subnet[2]), port) == f"hello from {net.gateway}"
    # CHECK agrees, DEL removes everything, a second DEL is fine, CHECK then fails
    rc, out, _ = net.cni("CHECK", with_prev(conf, res), ns)
    assert rc == 0 and out is None
    rc, out, _ = net.cni("DEL", with_prev(conf, res), ns)
    assert rc == 0 and out is None
    assert not link_exists(host_veth)
    assert "eth0" not in {link["ifname"] for link in ns_json(ns, "link")}
    assert ipam_files(net) == []
    assert not (net.data_dir / net.network / "attachments" / "c1-eth0.json").exists()
    rc, _, _ = net.cni("DEL", with_prev(conf, res), ns)
    assert rc == 0
    rc, out, _ = net.cni("CHECK", with_prev(conf, res), ns)
    assert rc != 0
    jsonschema.validate(out, ERROR_SCHEMA)


@pytest.mark.parametrize("version", ["0.3.1", "0.4.0"])
def test_older_versions_carry_ip_version(net: NetEnv, version: str) -> None:
    ns = net.add_netns()
    rc, res, err = net.cni("ADD", net.conf(version), ns)
    assert rc == 0, err
    assert res["cniVersion"] == version
    jsonschema.validate(res, result_schema(version))
    rc, out, _ = net.cni("CHECK", with_prev(net.conf(version), res), ns)
    assert (rc == 0) == (version == "0.4.0")  # CHECK exists from 0.4.0 on
    assert net.cni("DEL", net.conf(version), ns)[0] == 0


def test_del_after_netns_is_gone(net: NetEnv) -> None:
    ns = net.add_netns()
    rc, res, _ = net.cni("ADD", net.conf(), ns)
    assert rc == 0
    sh("ip", "netns", "del", ns)
    net.netns.remove(ns)
    rc, out, err = net.cni("DEL", net.conf(), "")
    assert rc == 0, (out, err)
    assert not link_exists(res["interfaces"][1]["name"])
    assert ipam_files(net) == []


def test_second_add_for_same_container_fails_and_keeps_the_first(net: NetEnv) -> None:
    ns = net.add_netns()
    rc, res, _ = net.cni("ADD", net.conf(), ns)
    assert rc == 0
    rc, out, _ = net.cni("ADD", net.conf(), ns)
    assert rc != 0
    jsonschema.validate(out, ERROR_SCHEMA)
    assert link_exists(res["interfaces"][1]["name"])
    assert ipam_files(net) == [str(net.subnet[2])]
    assert net.cni("CHECK", with_prev(net.conf(), res), ns)[0] == 0


def test_fixed_ip_from_cni_args_and_runtime_config(net: NetEnv) -> None:
    a, b = net.add_netns(), net.add_netns()
    ip_a, ip_b = str(net.subnet[77]), str(net.subnet[78])
    rc, res, err = net.cni("ADD", net.conf(), a, cid="a", args=f"IgnoreUnknown=1;IP={ip_a}")
    assert rc == 0, err
    assert res["ips"][0]["address"] == f"{ip_a}/24"
    conf_b = net.conf(runtimeConfig={"ips": [f"{ip_b}/24"]})
    rc, res, err = net.cni("ADD", conf_b, b, cid="b")
    assert rc == 0, err
    assert res["ips"][0]["address"] == f"{ip_b}/24"
    # taken: one error object, nothing made for the newcomer
    c = net.add_netns()
    rc, out, _ = net.cni("ADD", net.conf(), c, cid="c", args=f"IP={ip_a}")
    assert rc != 0 and out["code"] == 101 and ip_a in out["msg"]
    assert ns_json(c, "link") == [link for link in ns_json(c, "link") if link["ifname"] == "lo"]
    assert ipam_files(net) == sorted([ip_a, ip_b])
    assert net.cni("DEL", net.conf(), a, cid="a")[0] == 0
    assert ipam_files(net) == [ip_b]


def test_exhausted_subnet_fails_and_leaves_nothing(net: NetEnv) -> None:
    net.subnet = net.subnet.subnets(new_prefix=30).__next__()  # gateway + one container
    first, second = net.add_netns(), net.add_netns()
    assert net.cni("ADD", net.conf(), first, cid="one")[0] == 0
    rc, out, _ = net.cni("ADD", net.conf(), second, cid="two")
    assert rc != 0 and out["code"] == 101 and "no IP addresses available" in out["msg"]
    assert [link["ifname"] for link in ns_json(second, "link")] == ["lo"]
    assert not (net.data_dir / net.network / "attachments" / "two-eth0.json").exists()
    from pyruntime.dockee.network.cniconf import host_veth_name

    assert not link_exists(host_veth_name("two", "eth0"))


@pytest.mark.parametrize("change, code, needle", [
    ({"ipam": {"type": "host-local", "subnet": "10.1.2.0/33"}}, 7, "ipam.subnet"),
    ({"ipam": {"type": "host-local", "subnet": "bogus"}}, 7, "ipam.subnet"),
    ({"cniVersion": "9.9.9"}, 1, "cniVersion"),
    ({"ipam": {"type": "dhcp"}}, 2, "ipam.type"),
    ({"mtu": "big"}, 7, "mtu"),
    ({"runtimeConfig": {"portMappings": [{"hostPort": 0, "containerPort": 80}]}}, 7, "hostPort"),
])
def test_bad_config_is_one_error_object(net: NetEnv, change: dict[str, Any], code: int, needle: str) -> None:
    ns = net.add_netns()
    rc, out, _ = net.cni("ADD", net.conf() | change, ns)
    assert rc != 0
    jsonschema.validate(out, ERROR_SCHEMA)
    assert out["code"] == code and needle in out["msg"]
    assert not link_exists(net.bridge)
    assert [link["ifname"] for link in ns_json(ns, "link")] == ["lo"]


def test_bad_environment(net: NetEnv) -> None:
    rc, out, _ = net.cni("ADD", net.conf(), "")  # no CNI_NETNS
    assert rc != 0 and out["code"] == 4
    rc, out, _ = net.cni("ADD", net.conf(), "/var/run/netns/dk-no-such-ns")
    assert rc != 0 and "dk-no-such-ns" in out["msg"]
    assert ipam_files(net) == []


def _netns_view(ns: str) -> dict[str, Any]:
    eth0 = [link for link in ns_json(ns, "addr") if link["ifname"] == "eth0"][0]
    return {"flags": sorted(eth0["flags"]), "mtu": eth0["mtu"],
            "addrs": [(a["local"], a["prefixlen"], a.get("broadcast")) for a in eth0["addr_info"]
                      if a["family"] == "inet"],
            "routes": [(r["dst"], r.get("gateway"), r["dev"]) for r in ns_json(ns, "route")]}


def test_same_result_as_reference_bridge_and_host_local(net: NetEnv) -> None:
    if not os.path.exists(f"{REF_DIR}/bridge"):
        pytest.skip("containernetworking-plugins not installed")
    views, results = [], []
    for label, plugin in (("ref", f"{REF_DIR}/bridge"), ("ours", net_plugin())):
        # the reference's masquerade goes to iptables; each its own (fresh) host-local directory
        conf = net.conf(type="bridge", ipMasq=False)
        conf["ipam"]["dataDir"] = str(net.data_dir / label)
        ns = net.add_netns()
        rc, res, err = net.cni("ADD", conf, ns, plugin=plugin)
        assert rc == 0, (plugin, res, err)
        jsonschema.validate(res, result_schema("1.0.0"))
        views.append(_netns_view(ns))
        bridge_addrs = [(a["local"], a["prefixlen"]) for link in json.loads(sh("ip", "-j", "addr", "show", "dev",
                        net.bridge).stdout) for a in link["addr_info"] if a["family"] == "inet"]
        assert bridge_addrs == [(str(net.gateway), 24)]
        results.append(res)
        assert net.cni("CHECK", with_prev(conf, res), ns, plugin=plugin)[0] == 0
        assert net.cni("DEL", with_prev(conf, res), ns, plugin=plugin)[0] == 0
        left = sorted(os.listdir(net.data_dir / label / net.network))
        assert left in (["last_reserved_ip.0", "lock"], ["attachments", "last_reserved_ip.0", "lock"])
    ref, ours = results
    assert views[0] == views[1]
    assert ref["cniVersion"] == ours["cniVersion"]
    assert ref["ips"] == ours["ips"]
    assert ref["routes"] == ours["routes"]
    assert ref["dns"] == ours["dns"]
    assert [sorted(i) for i in ref["interfaces"]] == [sorted(i) for i in ours["interfaces"]]
    for r, o in zip(ref["interfaces"], ours["interfaces"], strict=True):
        assert r.get("sandbox", "").rsplit("/", 1)[0] == o.get("sandbox", "").rsplit("/", 1)[0]
    assert [ref["interfaces"][i]["name"] for i in (0, 2)] == [ours["interfaces"][i]["name"] for i in (0, 2)]
    assert ours["interfaces"][1]["name"].startswith("veth")


def net_plugin() -> str:
    from netfix import PLUGIN

    return PLUGIN


def test_published_port_reached_from_loopback_bridge_and_other_namespace(net: NetEnv) -> None:
    a, b = net.add_netns(), net.add_netns()
    hp, cp, up = free_port(), free_port(), free_port("udp")
    conf_a = net.conf(runtimeConfig={"portMappings": [
        {"hostPort": hp, "containerPort": cp, "protocol": "tcp", "hostIP": ""},
        {"hostPort": up, "containerPort": cp, "protocol": "udp"}]})
    rc, res_a, err = net.cni("ADD", conf_a, a, cid="a")
    assert rc == 0, (res_a, err)
    rc, res_b, err = net.cni("ADD", net.conf(), b, cid="b")
    assert rc == 0, err
    ip_a, ip_b = str(net.subnet[2]), str(net.subnet[3])
    net.serve(a, cp)
    gw = str(net.gateway)
    assert net.talk(None, "127.0.0.1", hp) == f"hello from {gw}"  # masqueraded to the bridge address
    assert net.talk(None, gw, hp) == "hello from " + gw
    assert net.talk(b, gw, hp) == f"hello from {gw}"  # hairpin through the host, masqueraded
    assert net.talk(b, ip_a, cp) == f"hello from {ip_b}"  # plain bridging between the two
    assert net.talk(a, gw, hp) == f"hello from {gw}"  # a container reaching itself via its published port
    # udp too
    net.serve(a, cp, "udp")
    out = sh(os.environ.get("PYTHON", net_python()), "-c",
             "import socket,sys;s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);s.settimeout(5);"
             f"s.sendto(b'u',('127.0.0.1',{up}));print(s.recv(100).decode())").stdout.strip()
    assert out == f"u from {gw}"
    assert Path(f"/proc/sys/net/ipv4/conf/{net.bridge}/route_localnet").read_text().strip() == "1"
    # DEL takes exactly this container's elements away
    assert net.cni("DEL", conf_a, a, cid="a")[0] == 0
    text = net.nft_table_text()
    assert f"{hp} :" not in text and f"{up} :" not in text
    assert net.talk(None, "127.0.0.1", hp, timeout=1).startswith("FAILED")


def net_python() -> str:
    from netfix import PY

    return PY


def test_host_port_taken_fails_and_leaves_nothing(net: NetEnv) -> None:
    a, b, c = net.add_netns(), net.add_netns(), net.add_netns()
    hp = free_port()
    conf = net.conf(runtimeConfig={"portMappings": [{"hostPort": hp, "containerPort": 80, "protocol": "tcp"}]})
    rc, out, err = net.cni("ADD", conf, a, cid="a")
    assert rc == 0, (out, err)
    rc, out, _ = net.cni("ADD", conf, b, cid="b")  # published already
    assert rc != 0 and out["code"] == 102 and str(hp) in out["msg"]
    assert [link["ifname"] for link in ns_json(b, "link")] == ["lo"]
    assert ipam_files(net) == [str(net.subnet[2])]
    # in use by a host process
    busy = free_port()
    net.serve(None, busy)
    conf_c = net.conf(runtimeConfig={"portMappings": [{"hostPort": busy, "containerPort": 80}]})
    rc, out, _ = net.cni("ADD", conf_c, c, cid="c")
    assert rc != 0 and out["code"] == 102 and "in use" in out["msg"]
    assert ipam_files(net) == [str(net.subnet[2])]
    # the failed ADDs' DEL (CNI callers send one) must not take a's port away
    assert net.cni("DEL", conf, b, cid="b")[0] == 0
    assert f"{hp} : {net.subnet[2]}" in net.nft_table_text()


def test_loopback_of_the_host_is_not_reachable_from_a_container(net: NetEnv) -> None:
    """route_localnet on the bridge must not open the host's 127.0.0.1 services to containers."""
    a = net.add_netns()
    hp = free_port()
    conf = net.conf(runtimeConfig={"portMappings": [{"hostPort": hp, "containerPort": 80}]})
    assert net.cni("ADD", conf, a, cid="a")[0] == 0
    port = free_port()
    net.serve(None, port)  # a host service; 127.0.0.1 is one of its addresses
    # a hostile container (CAP_NET_ADMIN in its netns) routes 127.0.0.1 out through the bridge
    sh("ip", "-n", a, "addr", "flush", "dev", "lo")
    sh("ip", "-n", a, "link", "set", "lo", "down")
    sh("ip", "netns", "exec", a, "sysctl", "-qw", "net.ipv4.conf.eth0.route_localnet=1")
    sh("ip", "-n", a, "route", "add", "127.0.0.1/32", "via", str(net.gateway), "dev", "eth0")
    assert net.talk(a, "127.0.0.1", port, timeout=1).startswith("FAILED")
    # dropped by this table's guard (another dockee table on the host may guard its own bridges too)
    guard = [line for line in net.nft_table_text().splitlines() if "127.0.0.0/8" in line and "drop" in line]
    assert len(guard) == 1 and " packets 0 " not in guard[0], guard
    assert net.talk(None, "127.0.0.1", port) == "hello from 127.0.0.1"


def test_status_reports_ready(net: NetEnv) -> None:
    rc, out, _ = net.cni("STATUS", net.conf("1.1.0"))
    assert rc == 0 and out is None


def test_concurrent_adds_on_a_fresh_network(net: NetEnv) -> None:
    """Bridge, nft table and IPAM are made by whichever ADD comes first; the others must cope."""
    from concurrent.futures import ThreadPoolExecutor

    spaces = [net.add_netns() for _ in range(6)]
    hp = free_port()

    def add(i: int) -> tuple[int, Any, str]:
        extra = {"runtimeConfig": {"portMappings": [{"hostPort": hp + i, "containerPort": 80}]}} if i % 2 else {}
        return net.cni("ADD", net.conf(**extra), spaces[i], cid=f"c{i}")

    with ThreadPoolExecutor(6) as pool:
        results = list(pool.map(add, range(6)))
    assert [rc for rc, _, _ in results] == [0] * 6, results
    ips = {res["ips"][0]["address"] for _, res, _ in results}
    assert len(ips) == 6
    for i, ns in enumerate(spaces):
        conf = net.conf(**({"runtimeConfig": {"portMappings": [{"hostPort": hp + i, "containerPort": 80}]}}
                           if i % 2 else {}))
        assert net.cni("DEL", conf, ns, cid=f"c{i}")[0] == 0
    assert ipam_files(net) == []
    text = net.nft_table_text()
    assert not any(f"{hp + i} :" in text for i in range(6))


@pytest.mark.parametrize("delay", [0.03, 0.08, 0.13, 0.18, 0.25])
def test_add_killed_at_any_moment_is_cleaned_by_del(net: NetEnv, delay: float) -> None:
    """A plugin SIGKILLed midway (a runtime timing out its hook) leaves what DEL removes entirely."""
    import signal
    import time

    from netfix import PLUGIN

    ns = net.add_netns()
    hp = free_port()
    conf = net.conf(runtimeConfig={"portMappings": [{"hostPort": hp, "containerPort": 80}]})
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": os.environ.get("PYTHONPATH", ""),
           "CNI_COMMAND": "ADD", "CNI_CONTAINERID": "k1", "CNI_NETNS": f"/var/run/netns/{ns}",
           "CNI_IFNAME": "eth0"}
    p = subprocess.Popen([PLUGIN], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, env=env)
    assert p.stdin is not None
    p.stdin.write(json.dumps(conf).encode())
    p.stdin.close()
    time.sleep(delay)
    p.send_signal(signal.SIGKILL)
    p.wait()
    rc, out, err = net.cni("DEL", conf, ns, cid="k1")
    assert rc == 0, (out, err)
    from pyruntime.dockee.network.cniconf import host_veth_name

    assert not link_exists(host_veth_name("k1", "eth0"))
    assert [link["ifname"] for link in ns_json(ns, "link")] == ["lo"]
    assert ipam_files(net) == []
    d = net.data_dir / net.network / "attachments"
    assert not d.exists() or os.listdir(d) == []
    assert f"{hp} :" not in net.nft_table_text()


def test_masquerade_comes_back_after_the_table_is_deleted(net: NetEnv) -> None:
    """An ADD without ports runs nft only while the table lacks the network's elements: it remembers
    them by the table's kernel handle, so a table deleted (flushed ruleset, reboot) is filled again."""
    a, b = net.add_netns(), net.add_netns()
    assert net.cni("ADD", net.conf(), a, cid="a")[0] == 0
    assert str(net.subnet) in net.nft_table_text()
    sh("nft", "delete", "table", "ip", net.table)
    assert net.cni("ADD", net.conf(), b, cid="b")[0] == 0
    text = net.nft_table_text()
    assert "masquerade" in text and str(net.subnet) in text and net.bridge in text
    for ns, cid in ((a, "a"), (b, "b")):
        assert net.cni("DEL", net.conf(), ns, cid=cid)[0] == 0


def test_nfnetlink_elements_are_what_nft_shows_and_a_batch_is_all_or_nothing(net: NetEnv) -> None:
    """Ports go into the table over nfnetlink (nftnl.py): nft must read back exactly those elements,
    and a batch with one taken key must change nothing."""
    from pyruntime.dockee.network import nat, nftnl
    from pyruntime.dockee.network.rtnl import NetlinkError

    nat.ensure_table(net.table)
    with nftnl.Nftnl() as n:
        n.transaction([("create", net.table, "ports_tcp", nftnl.port_key(8081), nftnl.addr_port("10.1.2.3", 80)),
                       ("create", net.table, "addrports_udp", nftnl.addr_port("127.0.0.1", 5353),
                        nftnl.addr_port("10.1.2.4", 53))])
        want = {("tcp", "", 8081): ("10.1.2.3", 80), ("udp", "127.0.0.1", 5353): ("10.1.2.4", 53)}
        assert nat.published(net.table) == want
        assert n.get(net.table, "ports_tcp", nftnl.port_key(8081)) == nftnl.addr_port("10.1.2.3", 80)
        assert n.get(net.table, "ports_tcp", nftnl.port_key(8082)) is None
        with pytest.raises(NetlinkError) as e:
            n.transaction([("create", net.table, "ports_tcp", nftnl.port_key(8082), nftnl.addr_port("10.1.2.5", 80)),
                           ("create", net.table, "ports_tcp", nftnl.port_key(8081), nftnl.addr_port("10.1.2.5", 80))])
        assert e.value.errno == errno.EEXIST
        assert nat.published(net.table) == want
        n.transaction([("delete", net.table, "ports_tcp", nftnl.port_key(8081), None)])
        assert nat.published(net.table) == {("udp", "127.0.0.1", 5353): ("10.1.2.4", 53)}


@pytest.mark.parametrize("way", ["nsenter", "setns in process"])
def test_container_side_through_nsenter_and_without_it(net: NetEnv, way: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """insidens configures the interface from a helper born in the netns, or (no nsenter) by
    entering the netns itself: the same address, routes, lo and link state either way."""
    from pyruntime.dockee.network import insidens
    from pyruntime.dockee.network.cniversion import CNIError

    if way != "nsenter":
        monkeypatch.setattr(insidens, "find_nsenter", lambda: None)
    ns = net.add_netns()
    sh("ip", "-n", ns, "link", "add", "eth7", "type", "veth", "peer", "name", "eth7p")
    fd = os.open(f"/var/run/netns/{ns}", os.O_RDONLY | os.O_CLOEXEC)
    try:
        mac = insidens.configure(fd, "eth7", "10.77.0.5", 24, "10.77.0.255",
                                 [("0.0.0.0", 0, "10.77.0.1"), ("10.78.0.0", 16, "10.77.0.9")])
        with pytest.raises(CNIError, match="eth8 did not appear"):
            insidens.configure(fd, "eth8", "10.77.0.6", 24, "10.77.0.255", [])
    finally:
        os.close(fd)
    links = {link["ifname"]: link for link in ns_json(ns, "link")}
    assert links["eth7"]["address"] == mac and "UP" in links["eth7"]["flags"] and "UP" in links["lo"]["flags"]
    assert [(a["local"], a["prefixlen"]) for a in ns_json(ns, "-4", "addr", "show", "eth7")[0]["addr_info"]] == [
        ("10.77.0.5", 24)]
    routes = {(r["dst"], r.get("gateway")) for r in ns_json(ns, "-4", "route")}
    assert {("default", "10.77.0.1"), ("10.78.0.0/16", "10.77.0.9")} <= routes
