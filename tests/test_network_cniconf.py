"""The CNI contract at the JSON edge: config and env parsing, results, errors, the plugin's dispatch."""

from __future__ import annotations

import ipaddress
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from pyruntime.dockee.network import cniconf, plugin
from pyruntime.dockee.network.cniconf import CNIError, PortMapping


def conf(**extra: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {"cniVersion": "1.0.0", "name": "n1", "type": "dockee-cni-bridge", "bridge": "br9",
                           "ipam": {"type": "host-local", "subnet": "10.9.8.0/24", "dataDir": "/tmp/x"}}
    doc.update(extra)
    return doc


def parse(doc: dict[str, Any], env: cniconf.Env | None = None) -> cniconf.NetConf:
    return cniconf.parse_config(json.dumps(doc).encode(), env)


def test_defaults_follow_host_local() -> None:
    c = parse(conf())
    assert c.range.subnet == ipaddress.IPv4Network("10.9.8.0/24")
    assert str(c.range.gateway) == "10.9.8.1"
    assert (str(c.range.start), str(c.range.end)) == ("10.9.8.1", "10.9.8.254")
    assert c.data_dir == "/tmp/x" and c.nft_table == "dockee" and c.mtu == 1500
    assert not c.is_gateway and not c.ip_masq and c.port_mappings == ()


def test_ranges_form_and_routes() -> None:
    c = parse(conf(ipam={"type": "host-local", "ranges": [[{"subnet": "10.1.0.0/16", "gateway": "10.1.0.254",
                                                             "rangeStart": "10.1.2.10", "rangeEnd": "10.1.2.20"}]],
                         "routes": [{"dst": "0.0.0.0/0"}, {"dst": "192.168.0.0/16", "gw": "10.1.0.9"}]}))
    assert (str(c.range.gateway), str(c.range.start), str(c.range.end)) == ("10.1.0.254", "10.1.2.10", "10.1.2.20")
    assert [str(r.dst) for r in c.routes] == ["0.0.0.0/0", "192.168.0.0/16"]
    assert str(c.routes[1].gw) == "10.1.0.9"


def test_is_default_gateway_implies_gateway_and_default_route() -> None:
    c = parse(conf(isDefaultGateway=True))
    assert c.is_gateway
    routes = cniconf.container_routes(c)
    assert [(str(r.dst), str(r.gw)) for r in routes] == [("0.0.0.0/0", "10.9.8.1")]


@pytest.mark.parametrize("change, code, needle", [
    ({"cniVersion": "0.2.0"}, 1, "cniVersion"),
    ({"cniVersion": ""}, 7, "cniVersion"),
    ({"name": ""}, 7, "name"),
    ({"bridge": "x" * 16}, 7, "bridge"),
    ({"ipam": {}}, 7, "ipam"),
    ({"ipam": {"type": "static"}}, 2, "ipam.type"),
    ({"ipam": {"type": "host-local"}}, 7, "ipam.subnet"),
    ({"ipam": {"type": "host-local", "subnet": "10.0.0.0/31"}}, 7, "no room"),
    ({"ipam": {"type": "host-local", "subnet": "fd00::/64"}}, 2, "IPv4"),
    ({"ipam": {"type": "host-local", "subnet": "10.0.0.0/24", "gateway": "10.0.1.1"}}, 7, "gateway"),
    ({"ipam": {"type": "host-local", "subnet": "10.0.0.0/24", "rangeStart": "10.0.0.9", "rangeEnd": "10.0.0.3"}},
     7, "rangeStart"),
    ({"ipam": {"type": "host-local", "ranges": [[{"subnet": "10.0.0.0/24"}], [{"subnet": "10.0.1.0/24"}]]}},
     2, "one IPv4 range"),
    ({"isGateway": "yes"}, 7, "isGateway"),
    ({"mtu": 10}, 7, "mtu"),
    ({"nftTable": "a b"}, 7, "nftTable"),
    ({"runtimeConfig": {"portMappings": [{"hostPort": 80, "containerPort": 70000}]}}, 7, "containerPort"),
    ({"runtimeConfig": {"portMappings": [{"hostPort": 80, "containerPort": 80, "protocol": "sctp"}]}}, 7,
     "protocol"),
    ({"runtimeConfig": {"ips": ["10.9.9.9/24"]}}, 101, "outside the range"),
    ({"runtimeConfig": {"ips": ["10.9.8.1/24"]}}, 101, "gateway"),
    ({"runtimeConfig": {"ips": ["10.9.8.5", "10.9.8.6"]}}, 7, "more than one"),
    ({"prevResult": []}, 7, "prevResult"),
])
def test_bad_config_names_the_field(change: dict[str, Any], code: int, needle: str) -> None:
    with pytest.raises(CNIError) as e:
        parse(conf(**change))
    assert e.value.code == code
    assert needle in e.value.msg


def test_not_json() -> None:
    with pytest.raises(CNIError) as e:
        cniconf.parse_config(b"{nope")
    assert e.value.code == 6


def test_port_mappings_and_fixed_ip_sources() -> None:
    c = parse(conf(runtimeConfig={"portMappings": [
        {"hostPort": 8080, "containerPort": 80, "protocol": "tcp", "hostIP": ""},
        {"hostPort": 8080, "containerPort": 80, "protocol": "tcp", "hostIP": "::"},  # podman's IPv6 twin
        {"hostPort": 53, "containerPort": 53, "protocol": "UDP", "hostIP": "127.0.0.1"}]}))
    assert c.port_mappings == (PortMapping(8080, 80, "tcp", ""), PortMapping(53, 53, "udp", "127.0.0.1"))
    env = cniconf.parse_env({"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "c", "CNI_NETNS": "/x", "CNI_IFNAME": "eth0",
                             "CNI_ARGS": "IgnoreUnknown=1;IP=10.9.8.7;K8S_POD_NAME=p"})
    assert str(parse(conf(), env).fixed_ip) == "10.9.8.7"
    assert str(parse(conf(args={"cni": {"ips": ["10.9.8.8"]}})).fixed_ip) == "10.9.8.8"
    assert str(parse(conf(runtimeConfig={"ips": ["10.9.8.9/24", "fd00::9/64"]})).fixed_ip) == "10.9.8.9"


@pytest.mark.parametrize("environ, needle", [
    ({}, "CNI_COMMAND"),
    ({"CNI_COMMAND": "ADD"}, "CNI_CONTAINERID"),
    ({"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "c"}, "CNI_IFNAME"),
    ({"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "c", "CNI_IFNAME": "eth0"}, "CNI_NETNS"),
    ({"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "c", "CNI_IFNAME": "a/b", "CNI_NETNS": "/x"}, "CNI_IFNAME"),
    ({"CNI_COMMAND": "DEL", "CNI_CONTAINERID": "c", "CNI_IFNAME": "eth0", "CNI_ARGS": "novalue"}, "CNI_ARGS"),
])
def test_bad_env(environ: dict[str, str], needle: str) -> None:
    with pytest.raises(CNIError) as e:
        cniconf.parse_env(environ)
    assert e.value.code == 4 and needle in e.value.msg


def test_del_needs_no_netns() -> None:
    env = cniconf.parse_env({"CNI_COMMAND": "DEL", "CNI_CONTAINERID": "c", "CNI_IFNAME": "eth0"})
    assert env.netns == ""


@pytest.mark.parametrize("version, with_ip_version", [("1.0.0", False), ("0.4.0", True), ("0.3.1", True)])
def test_result_shape_per_version(version: str, with_ip_version: bool) -> None:
    c = parse(conf(cniVersion=version, isDefaultGateway=True))
    r = cniconf.build_result(c, bridge_mac="aa:aa:aa:aa:aa:aa", host_veth="vethx", host_mac="bb:bb:bb:bb:bb:bb",
                             ifname="eth0", container_mac="cc:cc:cc:cc:cc:cc", sandbox="/proc/1/ns/net",
                             ip=ipaddress.IPv4Address("10.9.8.2"))
    assert r["cniVersion"] == version
    assert [i["name"] for i in r["interfaces"]] == ["br9", "vethx", "eth0"]
    assert r["interfaces"][2]["sandbox"] == "/proc/1/ns/net" and "sandbox" not in r["interfaces"][1]
    ip = {"address": "10.9.8.2/24", "gateway": "10.9.8.1", "interface": 2}
    assert r["ips"] == [{"version": "4", **ip} if with_ip_version else ip]
    assert r["routes"] == [{"dst": "0.0.0.0/0", "gw": "10.9.8.1"}]
    assert cniconf.result_address(r, "eth0") == (ipaddress.IPv4Address("10.9.8.2"), 24)
    assert cniconf.result_address(r, "eth1") is None


def test_host_veth_name_is_stable_and_short() -> None:
    a = cniconf.host_veth_name("c" * 64, "eth0")
    assert a == cniconf.host_veth_name("c" * 64, "eth0") and len(a) <= 15 and a.startswith("veth")
    assert a != cniconf.host_veth_name("c" * 64, "eth1")


def test_error_object() -> None:
    assert CNIError(7, "bad", "why").to_json("0.4.0") == {"cniVersion": "0.4.0", "code": 7, "msg": "bad",
                                                          "details": "why"}
    assert "details" not in CNIError(7, "bad").to_json("1.0.0")


def run_plugin(environ: dict[str, str], stdin: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", "from pyruntime.dockee.network.plugin import main; main()"],
                          input=stdin, capture_output=True, text=True,
                          env={"PATH": os.environ.get("PATH", ""), **environ}, timeout=30)


def test_version_command() -> None:
    p = run_plugin({"CNI_COMMAND": "VERSION"}, '{"cniVersion": "0.4.0"}')
    assert p.returncode == 0
    out = json.loads(p.stdout)
    assert out["cniVersion"] == "0.4.0" and "1.0.0" in out["supportedVersions"]


def test_errors_are_cni_error_objects_on_stdout() -> None:
    p = run_plugin({"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "c", "CNI_IFNAME": "eth0", "CNI_NETNS": "/x"},
                   json.dumps(conf(cniVersion="0.4.0", ipam={"type": "host-local", "subnet": "10.0.0.0/99"})))
    assert p.returncode == 1
    out = json.loads(p.stdout)
    assert out["cniVersion"] == "0.4.0" and out["code"] == 7 and "ipam.subnet" in out["msg"]
    p = run_plugin({"CNI_COMMAND": "BOGUS"}, json.dumps(conf()))
    assert p.returncode == 1 and json.loads(p.stdout)["code"] == 4


def test_check_needs_prev_result_and_version() -> None:
    env = cniconf.Env("CHECK", "c", "/x", "eth0", {}, "")
    with pytest.raises(CNIError, match="prevResult"):
        plugin.check(env, parse(conf()))
    with pytest.raises(CNIError, match="CHECK is not defined"):
        plugin.check(env, parse(conf(cniVersion="0.3.1")))


def test_plugin_start_does_not_load_netlink_or_nft_code() -> None:
    """VERSION must stay cheap: no netlink, nft, config-parsing or dataclass code at import."""
    code = ("import sys; from pyruntime.dockee.network import plugin; "
            "print(sorted(m for m in ('pyroute2', 'asyncio', 'subprocess', 'pyruntime.dockee.store', 'dataclasses', "
            "'ipaddress', 'pyruntime.dockee.network.cniconf') "
            "if m in sys.modules))")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert p.stdout.strip() == "[]", p.stderr


def test_lean_pyroute2_import_still_serves_the_whole_package() -> None:
    """rtnl loads only pyroute2.netns; other code of the same process may want more."""
    code = ("import sys; from pyruntime.dockee.network import rtnl; rtnl._setns(); "
            "assert 'pyroute2.iproute' not in sys.modules; from pyroute2 import IPRoute, NetlinkError; "
            "print(IPRoute.__name__, NetlinkError.__name__)")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert p.stdout.strip() == "IPRoute NetlinkError", p.stderr


@pytest.mark.parametrize("doc", [
    {"cniVersion": "1.0.0", "ips": [{"address": "10.0.0.2/24", "interface": 2}], "dns": {}},
    [1, 2.5, None, True, False, "tab\there, quote \" and é"], "plain", 7, {}, [],
])
def test_cnijson_matches_the_json_package(doc: Any) -> None:
    from pyruntime.dockee.network import cnijson

    assert cnijson.dumps(doc) == json.dumps(doc)
    assert cnijson.loads(json.dumps(doc)) == doc
    assert cnijson.loads(b"\n " + json.dumps(doc).encode() + b"\n") == doc


@pytest.mark.parametrize("bad", ["", "{", "{} x", "[1,]", "nul", b"\xff"])
def test_cnijson_refuses_what_is_not_json(bad: str | bytes) -> None:
    from pyruntime.dockee.network import cnijson

    with pytest.raises(ValueError):
        cnijson.loads(bad)


def test_del_with_a_record_loads_no_heavy_module(tmp_path: Path) -> None:
    """A DEL is one process per container stop: it reads its record and frees the address without
    json's regular expressions, ipaddress, pathlib, socket.py, subprocess or pyroute2 (no root: the
    record's veth does not exist, so no netlink either)."""
    conf = {"cniVersion": "1.0.0", "name": "n1", "type": "dockee-cni-bridge", "bridge": "dkx0",
            "ipam": {"type": "host-local", "subnet": "10.9.0.0/24", "dataDir": str(tmp_path)}}
    (tmp_path / "n1" / "attachments").mkdir(parents=True)
    (tmp_path / "n1" / "10.9.0.2").write_text("c1\r\neth0")
    record = {"containerId": "c1", "ifname": "eth0", "network": "n1", "dataDir": str(tmp_path),
              "table": "dockee", "ip": "10.9.0.2", "hostVeth": "vethnotthere0", "ports": []}
    (tmp_path / "n1" / "attachments" / "c1-eth0.json").write_text(json.dumps(record))
    repo = Path(__file__).resolve().parent.parent
    code = (f"import sys; sys.path[0:0] = [{str(repo)!r}]; "
            "from pyruntime.dockee.network.plugin import main; main()")
    env = {"CNI_COMMAND": "DEL", "CNI_CONTAINERID": "c1", "CNI_IFNAME": "eth0", "CNI_NETNS": ""}
    p = subprocess.run([sys.executable, "-IS", "-X", "importtime", "-c", code], input=json.dumps(conf),
                       capture_output=True, text=True, env=env, timeout=30)
    assert p.returncode == 0, p.stdout + p.stderr
    loaded = {line.rsplit("|", 1)[1].strip() for line in p.stderr.splitlines() if line.startswith("import time:")}
    heavy = {"re", "json", "ipaddress", "pathlib", "socket", "subprocess", "typing", "dataclasses", "pyroute2"}
    assert loaded & heavy == set()
    assert sorted(os.listdir(tmp_path / "n1")) == ["attachments", "lock"]  # address and record freed
    assert os.listdir(tmp_path / "n1" / "attachments") == []
