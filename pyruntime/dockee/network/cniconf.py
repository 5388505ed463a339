"""The CNI contract at the JSON edge: the plugin's config and environment in, results and errors out.

Pure functions and frozen records only (no netlink, no nft), so the whole contract is unit-tested
without root.  The config is a superset of the reference `bridge` plugin's with a built-in
`host-local`-style IPAM: the same input that drives /usr/lib/cni/bridge + host-local drives us.
"""

from __future__ import annotations

import ipaddress

from pyruntime.dockee.network.cniversion import (  # noqa: F401 (re-exported: the contract in one place)
    CHECK_MIN,
    E_ATTACHED,
    E_CONFIG,
    E_DECODE,
    E_ENV,
    E_IO,
    E_NO_ADDRESS,
    E_PLUGIN,
    E_PORT,
    E_TRY_AGAIN,
    E_UNAVAILABLE,
    E_UNKNOWN_CONTAINER,
    E_UNSUPPORTED_FIELD,
    E_VERSION,
    SUPPORTED_VERSIONS,
    CNIError,
    Env,
    PortMapping,
    _Record,
    config_version,
    data_dir,
    parse_env,
    parse_head,
    version_tuple,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


class Range(_Record):
    __slots__ = ("subnet", "gateway", "start", "end")
    subnet: ipaddress.IPv4Network
    gateway: ipaddress.IPv4Address
    start: ipaddress.IPv4Address
    end: ipaddress.IPv4Address

    def __contains__(self, ip: object) -> bool:
        return isinstance(ip, ipaddress.IPv4Address) and self.start <= ip <= self.end

    def prefixed(self, ip: ipaddress.IPv4Address) -> str:
        return f"{ip}/{self.subnet.prefixlen}"


class Route(_Record):
    __slots__ = ("dst", "gw")
    _defaults = {"gw": None}
    dst: ipaddress.IPv4Network
    gw: ipaddress.IPv4Address | None


class NetConf(_Record):
    __slots__ = ("cni_version", "name", "bridge", "range", "data_dir", "is_gateway", "is_default_gateway",
                 "ip_masq", "hairpin_mode", "mtu", "nft_table", "routes", "dns", "port_mappings", "fixed_ip",
                 "prev_result")
    _defaults = {"is_gateway": False, "is_default_gateway": False, "ip_masq": False, "hairpin_mode": False,
                 "mtu": 1500, "nft_table": "dockee", "routes": (), "dns": {}, "port_mappings": (),
                 "fixed_ip": None, "prev_result": None}
    cni_version: str
    name: str
    bridge: str
    range: Range
    data_dir: str
    is_gateway: bool
    is_default_gateway: bool
    ip_masq: bool
    hairpin_mode: bool
    mtu: int
    nft_table: str
    routes: tuple[Route, ...]
    dns: dict[str, Any]  # shared default: never mutated
    port_mappings: tuple[PortMapping, ...]
    fixed_ip: ipaddress.IPv4Address | None
    prev_result: dict[str, Any] | None


def _ip(value: Any, what: str) -> ipaddress.IPv4Address:
    try:
        ip = ipaddress.ip_address(str(value).split("/")[0])
    except ValueError:
        raise CNIError(E_CONFIG, f"{what}: {value!r} is not an IP address")
    if not isinstance(ip, ipaddress.IPv4Address):
        raise CNIError(E_UNSUPPORTED_FIELD, f"{what}: only IPv4 is supported, not {value}")
    return ip


def _net(value: Any, what: str) -> ipaddress.IPv4Network:
    try:
        net = ipaddress.ip_network(str(value), strict=False)
    except ValueError:
        raise CNIError(E_CONFIG, f"{what}: {value!r} is not a subnet (CIDR)")
    if not isinstance(net, ipaddress.IPv4Network):
        raise CNIError(E_UNSUPPORTED_FIELD, f"{what}: only IPv4 is supported, not {value}")
    return net


def parse_range(spec: dict[str, Any], what: str) -> Range:
    """One host-local range: subnet plus optional gateway/rangeStart/rangeEnd."""
    if "subnet" not in spec:
        raise CNIError(E_CONFIG, f"{what}.subnet is missing")
    subnet = _net(spec["subnet"], f"{what}.subnet")
    if subnet.prefixlen > 30:
        raise CNIError(E_CONFIG, f"{what}.subnet {subnet} has no room for a gateway and a container")
    first, last = subnet.network_address + 1, subnet.broadcast_address - 1
    gateway = _ip(spec["gateway"], f"{what}.gateway") if spec.get("gateway") else first
    start = _ip(spec["rangeStart"], f"{what}.rangeStart") if spec.get("rangeStart") else first
    end = _ip(spec["rangeEnd"], f"{what}.rangeEnd") if spec.get("rangeEnd") else last
    for label, ip in (("gateway", gateway), ("rangeStart", start), ("rangeEnd", end)):
        if not first <= ip <= last:
            raise CNIError(E_CONFIG, f"{what}.{label} {ip} is not a host address of {subnet}")
    if start > end:
        raise CNIError(E_CONFIG, f"{what}.rangeStart {start} is after rangeEnd {end}")
    return Range(subnet, gateway, start, end)


def _bool(doc: dict[str, Any], key: str) -> bool:
    value = doc.get(key, False)
    if not isinstance(value, bool):
        raise CNIError(E_CONFIG, f"{key} must be true or false, not {value!r}")
    return value


def _port_mappings(items: Any) -> tuple[PortMapping, ...]:
    if items is None:
        return ()
    if not isinstance(items, list):
        raise CNIError(E_CONFIG, "runtimeConfig.portMappings must be a list")
    out = []
    for i, m in enumerate(items):
        what = f"runtimeConfig.portMappings[{i}]"
        if not isinstance(m, dict):
            raise CNIError(E_CONFIG, f"{what} must be an object")
        proto = str(m.get("protocol") or "tcp").lower()
        if proto not in ("tcp", "udp"):
            raise CNIError(E_CONFIG, f"{what}.protocol {proto!r} is not tcp or udp")
        ports = []
        for key in ("hostPort", "containerPort"):
            value = m.get(key)
            if not isinstance(value, int) or isinstance(value, bool) or not 0 < value < 65536:
                raise CNIError(E_CONFIG, f"{what}.{key} {value!r} is not a port (1-65535)")
            ports.append(value)
        host_ip = str(m.get("hostIP") or "")
        if host_ip in ("0.0.0.0",):
            host_ip = ""
        if ":" in host_ip:
            continue  # IPv6 publishing is not offered; podman adds "::" twins of IPv4 mappings
        if host_ip:
            host_ip = str(_ip(host_ip, f"{what}.hostIP"))
        out.append(PortMapping(ports[0], ports[1], proto, host_ip))
    return tuple(out)


def parse_config(raw: bytes, env: Env | None = None) -> NetConf:
    """The network config from stdin (a conflist entry with name/cniVersion/runtimeConfig merged in)."""
    doc = parse_head(raw)
    version, name = doc["cniVersion"], doc["name"]
    bridge = doc.get("bridge") or "cni0"
    if not isinstance(bridge, str) or len(bridge) > 15 or "/" in bridge or " " in bridge:
        raise CNIError(E_CONFIG, f"bridge {bridge!r} is not an interface name (at most 15 characters)")
    ipam = doc.get("ipam")
    if not isinstance(ipam, dict) or not ipam:
        raise CNIError(E_CONFIG, "ipam is missing")
    if ipam.get("type") not in ("host-local", "dockee"):
        raise CNIError(E_UNSUPPORTED_FIELD, f"ipam.type {ipam.get('type')!r} is not supported (host-local)")
    if ipam.get("ranges"):
        sets = ipam["ranges"]
        if not (isinstance(sets, list) and all(isinstance(s, list) and s for s in sets)):
            raise CNIError(E_CONFIG, "ipam.ranges must be a list of lists of ranges")
        v4 = [(i, r) for i, s in enumerate(sets) for r in s[:1]
              if isinstance(r, dict) and ":" not in str(r.get("subnet", ""))]
        if len(v4) != 1 or any(len(s) != 1 for s in sets):
            raise CNIError(E_UNSUPPORTED_FIELD, "ipam.ranges: exactly one IPv4 range is supported")
        rng = parse_range(v4[0][1], f"ipam.ranges[{v4[0][0]}][0]")
    else:
        rng = parse_range(ipam, "ipam")
    routes = []
    for i, r in enumerate(ipam.get("routes") or []):
        if not isinstance(r, dict) or "dst" not in r:
            raise CNIError(E_CONFIG, f"ipam.routes[{i}].dst is missing")
        if ":" in str(r["dst"]):
            continue
        routes.append(Route(_net(r["dst"], f"ipam.routes[{i}].dst"),
                            _ip(r["gw"], f"ipam.routes[{i}].gw") if r.get("gw") else None))
    mtu = doc.get("mtu", 1500) or 1500
    if not isinstance(mtu, int) or not 68 <= mtu <= 65535:
        raise CNIError(E_CONFIG, f"mtu {mtu!r} is not between 68 and 65535")
    table = doc.get("nftTable", "dockee")
    if not isinstance(table, str) or not table.replace("_", "").isalnum() or len(table) > 64:
        raise CNIError(E_CONFIG, f"nftTable {table!r} must be letters, digits and _")
    runtime = doc.get("runtimeConfig") or {}
    if not isinstance(runtime, dict):
        raise CNIError(E_CONFIG, "runtimeConfig must be an object")
    fixed: ipaddress.IPv4Address | None = None
    wanted = [str(x) for x in runtime.get("ips") or []]
    cni_args = ((doc.get("args") or {}).get("cni") or {}) if isinstance(doc.get("args"), dict) else {}
    wanted += [str(x) for x in cni_args.get("ips") or []] if isinstance(cni_args, dict) else []
    if env is not None and env.args.get("IP"):
        wanted += env.args["IP"].split(",")
    wanted4 = [w for w in wanted if ":" not in w]
    if len(set(wanted4)) > 1:
        raise CNIError(E_CONFIG, f"more than one IPv4 address requested: {', '.join(wanted4)}")
    if wanted4:
        fixed = _ip(wanted4[0], "requested IP")
        if fixed not in rng:
            raise CNIError(E_NO_ADDRESS, f"requested IP {fixed} is outside the range "
                           f"{rng.start}-{rng.end} of network {name}")
        if fixed == rng.gateway:
            raise CNIError(E_NO_ADDRESS, f"requested IP {fixed} is the gateway of network {name}")
    is_default_gw = _bool(doc, "isDefaultGateway")
    prev = doc.get("prevResult")
    if prev is not None and not isinstance(prev, dict):
        raise CNIError(E_CONFIG, "prevResult must be an object")
    dns = doc.get("dns") or {}
    return NetConf(
        cni_version=version, name=name, bridge=bridge, range=rng,
        data_dir=data_dir(doc),
        is_gateway=_bool(doc, "isGateway") or is_default_gw, is_default_gateway=is_default_gw,
        ip_masq=_bool(doc, "ipMasq"), hairpin_mode=_bool(doc, "hairpinMode"), mtu=mtu, nft_table=table,
        routes=tuple(routes), dns=dns if isinstance(dns, dict) else {},
        port_mappings=_port_mappings(runtime.get("portMappings")), fixed_ip=fixed, prev_result=prev,
    )


def container_routes(conf: NetConf) -> list[Route]:
    """What the container gets: IPAM's routes, plus a default route when isDefaultGateway."""
    routes = list(conf.routes)
    if conf.is_default_gateway and not any(r.dst.prefixlen == 0 for r in routes):
        routes.append(Route(ipaddress.IPv4Network("0.0.0.0/0"), conf.range.gateway))
    return routes


def build_result(conf: NetConf, *, bridge_mac: str, host_veth: str, host_mac: str, ifname: str,
                 container_mac: str, sandbox: str, ip: ipaddress.IPv4Address) -> dict[str, Any]:
    """The ADD result in the config's version (the reference bridge's interface order)."""
    ip_entry: dict[str, Any] = {"address": conf.range.prefixed(ip), "gateway": str(conf.range.gateway),
                                "interface": 2}
    if version_tuple(conf.cni_version) < (1, 0, 0):
        ip_entry = {"version": "4", **ip_entry}
    routes = []
    for r in container_routes(conf):
        entry = {"dst": str(r.dst)}
        if r.gw is not None:
            entry["gw"] = str(r.gw)
        routes.append(entry)
    return {
        "cniVersion": conf.cni_version,
        "interfaces": [
            {"name": conf.bridge, "mac": bridge_mac},
            {"name": host_veth, "mac": host_mac},
            {"name": ifname, "mac": container_mac, "sandbox": sandbox},
        ],
        "ips": [ip_entry],
        "routes": routes,
        "dns": conf.dns,
    }


def result_address(result: dict[str, Any], ifname: str) -> tuple[ipaddress.IPv4Address, int] | None:
    """The IPv4 address (and prefix) a previous result gave to `ifname`, as CHECK needs it."""
    ifaces = result.get("interfaces") or []
    for entry in result.get("ips") or []:
        idx = entry.get("interface")
        if isinstance(idx, int) and 0 <= idx < len(ifaces) and ifaces[idx].get("name") != ifname:
            continue
        try:
            iface = ipaddress.ip_interface(entry.get("address", ""))
        except ValueError:
            continue
        if isinstance(iface, ipaddress.IPv4Interface):
            return iface.ip, iface.network.prefixlen
    return None


def host_veth_name(container_id: str, ifname: str) -> str:
    """A stable host-side name, so DEL finds the veth without the (maybe gone) netns.  zlib, not
    hashlib: hashlib loads OpenSSL (~10 ms) and this is no security boundary, just a name."""
    import zlib

    key = f"{container_id}/{ifname}".encode()
    return "veth" + f"{zlib.crc32(key):08x}{zlib.adler32(key):08x}"[:11]
