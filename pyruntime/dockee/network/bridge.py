"""Links and addresses through netlink (pyroute2): the bridge, the veth pair, the container side.

pyroute2's package __init__ imports every API it has (about 240 ms); the plugin runs once per
container, so `iproute()` loads only the IPRoute module, behind a bare package object.
"""

from __future__ import annotations

import errno
import os
import sys
import time
from typing import Any

from pyruntime.dockee.network.cniconf import E_PLUGIN, CNIError, Route


def _pyroute2() -> tuple[Any, type[Exception]]:
    if "pyroute2" not in sys.modules:
        import importlib.util
        import types

        # a package object without running pyroute2/__init__.py: submodules import normally
        spec = importlib.util.find_spec("pyroute2")
        if spec is None or spec.submodule_search_locations is None:
            raise CNIError(E_PLUGIN, "pyroute2 is not installed")
        pkg = types.ModuleType("pyroute2")
        pkg.__path__ = list(spec.submodule_search_locations)
        pkg.__spec__ = spec
        pkg.__file__ = spec.origin
        sys.modules["pyroute2"] = pkg
    from pyroute2.iproute.linux import IPRoute
    from pyroute2.netlink.exceptions import NetlinkError

    return IPRoute, NetlinkError


def iproute(netns_fd: int | None = None) -> Any:
    """An IPRoute on the host, or bound to the netns open as `netns_fd`."""
    cls, _ = _pyroute2()
    if netns_fd is None:
        return cls(groups=0)
    return cls(netns=netns_fd, groups=0, flags=0)


def netlink_error() -> type[Exception]:
    return _pyroute2()[1]


def _code(e: Exception) -> int:
    return int(getattr(e, "code", 0) or 0)


def lookup(ipr: Any, ifname: str) -> Any | None:
    idx = ipr.link_lookup(ifname=ifname)
    if not idx:
        return None
    return ipr.get_links(idx[0])[0]


def ensure_bridge(ipr: Any, name: str, mtu: int, gateway_cidr: str | None) -> Any:
    """The bridge `name`, made and brought up if absent; with `gateway_cidr` when given."""
    link = lookup(ipr, name)
    if link is None:
        try:
            ipr.link("add", ifname=name, kind="bridge", mtu=mtu)
        except netlink_error() as e:
            if _code(e) != errno.EEXIST:  # another ADD made it just now
                raise CNIError(E_PLUGIN, f"could not create bridge {name}: {e}")
        link = lookup(ipr, name)
        if link is None:
            raise CNIError(E_PLUGIN, f"bridge {name} vanished while being set up")
    kind = link.get_nested("IFLA_LINKINFO", "IFLA_INFO_KIND")
    if kind != "bridge":
        raise CNIError(E_PLUGIN, f"{name} exists and is not a bridge (it is a {kind or 'device'})")
    if gateway_cidr is not None:
        addr, _, plen = gateway_cidr.partition("/")
        have = [(a.get_attr("IFA_ADDRESS"), a["prefixlen"]) for a in ipr.get_addr(index=link["index"], family=2)]
        if (addr, int(plen)) not in have:
            try:
                ipr.addr("add", index=link["index"], address=addr, prefixlen=int(plen),
                         broadcast=_broadcast(addr, plen))
            except netlink_error() as e:
                if _code(e) != errno.EEXIST:
                    raise CNIError(E_PLUGIN, f"could not add {gateway_cidr} to bridge {name}: {e}")
    if not link["flags"] & 1:  # IFF_UP
        ipr.link("set", index=link["index"], state="up")
    return lookup(ipr, name)


def add_veth(ipr: Any, host_name: str, netns_fd: int, ifname: str, bridge_index: int, mtu: int,
             hairpin: bool) -> Any:
    """A veth pair whose peer is born inside the container's netns as `ifname`; host end on the bridge."""
    try:
        ipr.link("add", ifname=host_name, kind="veth", mtu=mtu,
                 peer={"ifname": ifname, "net_ns_fd": netns_fd, "mtu": mtu})
    except netlink_error() as e:
        if _code(e) == errno.EEXIST:
            raise CNIError(E_PLUGIN, f"an interface {ifname} exists in the container's netns already, "
                           f"or {host_name} on the host")
        raise CNIError(E_PLUGIN, f"could not create the veth pair {host_name}/{ifname}: {e}")
    idx = ipr.link_lookup(ifname=host_name)[0]
    ipr.link("set", index=idx, master=bridge_index, state="up")
    if hairpin:
        ipr.brport("set", index=idx, mode=1)  # IFLA_BRPORT_MODE: hairpin
    return ipr.get_links(idx)[0]


def configure_container(netns_fd: int, ifname: str, address: str, routes: list[Route],
                        default_gw: str) -> str:
    """Address, routes, lo and `ifname` up inside the netns; returns the container side's MAC."""
    ns = iproute(netns_fd)
    try:
        idx = ns.link_lookup(ifname=ifname)[0]
        addr, _, plen = address.partition("/")
        ns.addr("add", index=idx, address=addr, prefixlen=int(plen), broadcast=_broadcast(addr, plen))
        ns.link("set", index=idx, state="up")
        lo = ns.link_lookup(ifname="lo")
        if lo:
            ns.link("set", index=lo[0], state="up")
        for r in routes:
            ns.route("add", dst=str(r.dst), gateway=str(r.gw or default_gw), oif=idx, proto=3)  # boot, as `ip route`
        return str(ns.get_links(idx)[0].get_attr("IFLA_ADDRESS"))
    except netlink_error() as e:
        raise CNIError(E_PLUGIN, f"could not configure {ifname} in the container: {e}")
    finally:
        ns.close()


def _broadcast(addr: str, plen: str) -> str:
    import ipaddress

    return str(ipaddress.IPv4Network(f"{addr}/{plen}", strict=False).broadcast_address)


def wait_oper_up(ipr: Any, index: int, timeout: float = 2.0) -> None:
    """The bridge forwards through a port only once it is up; the container's first packet waits for it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = ipr.get_links(index)[0].get_attr("IFLA_OPERSTATE")
        if state in ("UP", "UNKNOWN"):
            return
        time.sleep(0.005)


def delete_link(ipr: Any, name: str) -> bool:
    """Delete `name` if it exists; True when something was removed."""
    try:
        ipr.link("del", ifname=name)
        return True
    except netlink_error() as e:
        if _code(e) in (errno.ENODEV, errno.ENOENT):
            return False
        raise CNIError(E_PLUGIN, f"could not delete {name}: {e}")


def set_sysctl(path: str, value: str) -> None:
    """Write a /proc/sys value only when it differs (writes of forwarding knobs reset neighbours)."""
    try:
        with open(path) as f:
            if f.read().strip() == value:
                return
        with open(path, "w") as f:
            f.write(value)
    except OSError as e:
        raise CNIError(E_PLUGIN, f"could not set {path} to {value}: {e.strerror}")


def open_netns(path: str) -> int:
    try:
        return os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as e:
        raise CNIError(3, f"cannot open network namespace {path}: {e.strerror}")


def container_state(netns_fd: int, ifname: str) -> dict[str, Any] | None:
    """What CHECK compares: addresses and routes of `ifname` inside the netns, None if it is absent."""
    ns = iproute(netns_fd)
    try:
        idx = ns.link_lookup(ifname=ifname)
        if not idx:
            return None
        link = ns.get_links(idx[0])[0]
        addrs = [f"{a.get_attr('IFA_ADDRESS')}/{a['prefixlen']}" for a in ns.get_addr(index=idx[0], family=2)]
        routes = []
        for r in ns.get_routes(family=2, table=254):
            if r.get_attr("RTA_OIF") != idx[0]:
                continue
            dst = r.get_attr("RTA_DST")
            routes.append((f"{dst or '0.0.0.0'}/{r['dst_len']}", r.get_attr("RTA_GATEWAY")))
        return {"up": bool(link["flags"] & 1), "mac": link.get_attr("IFLA_ADDRESS"), "addrs": addrs,
                "routes": routes}
    finally:
        ns.close()
