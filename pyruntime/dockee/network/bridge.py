"""Links and addresses through netlink (pyroute2's messages, see rtnl.py): the bridge, the veth pair,
the container side.  No `ip` commands: every change is one rtnetlink request."""

from __future__ import annotations

import errno
import os
import time

from pyruntime.dockee.network.cniversion import E_PLUGIN, CNIError
from pyruntime.dockee.network.rtnl import NetlinkError, Rtnl

# typing and collections.abc only for the type checker: the plugin's start-up pays for every import
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from pyruntime.dockee.network.cniconf import Route


def iproute(netns_fd: int | None = None) -> Rtnl:
    """A netlink client on the host, or inside the netns open as `netns_fd`."""
    return Rtnl() if netns_fd is None else Rtnl.in_netns(netns_fd)


def lookup(r: Rtnl, ifname: str) -> dict[str, Any] | None:
    return r.link(ifname)


def ensure_bridge(r: Rtnl, name: str, mtu: int, gateway_cidr: str | None) -> dict[str, Any]:
    """The bridge `name`, made and brought up if absent; with `gateway_cidr` when given."""
    link = r.link(name)
    if link is None:
        try:
            r.add_bridge(name, mtu)
        except NetlinkError as e:
            if e.errno != errno.EEXIST:  # another ADD made it just now
                raise CNIError(E_PLUGIN, f"could not create bridge {name}: {e.strerror}")
        link = r.link(name)
        if link is None:
            raise CNIError(E_PLUGIN, f"bridge {name} vanished while being set up")
    if link["kind"] != "bridge":
        raise CNIError(E_PLUGIN, f"{name} exists and is not a bridge (it is a {link['kind'] or 'device'})")
    if gateway_cidr is not None:
        addr, _, plen = gateway_cidr.partition("/")
        if (addr, int(plen)) not in r.addresses(link["index"]):
            try:
                r.add_address(link["index"], addr, int(plen), _broadcast(addr, plen))
            except NetlinkError as e:
                if e.errno != errno.EEXIST:
                    raise CNIError(E_PLUGIN, f"could not add {gateway_cidr} to bridge {name}: {e.strerror}")
    if not link["flags"] & 1:  # IFF_UP
        r.set_link(link["index"], up=True)
    return link


def add_veth(r: Rtnl, host_name: str, netns_fd: int, ifname: str, bridge_index: int, mtu: int,
             hairpin: bool, address: str | None = None) -> dict[str, Any]:
    """A veth pair whose peer is born inside the container's netns as `ifname`, the host end up and on
    the bridge: one request (configure_container brings the peer up).  With `address` (the container's
    IPv4), the peer's MAC is derived from it, as docker does (see mac_for)."""
    try:
        r.add_veth(host_name, mtu, ifname, netns_fd, master=bridge_index, up=True,
                   peer_mac=mac_for(address) if address else None)
    except NetlinkError as e:
        if e.errno == errno.EEXIST:
            raise CNIError(E_PLUGIN, f"an interface {ifname} exists in the container's netns already, "
                           f"or {host_name} on the host")
        raise CNIError(E_PLUGIN, f"could not create the veth pair {host_name}/{ifname}: {e.strerror}")
    link = r.link(host_name)
    if link is None:
        raise CNIError(E_PLUGIN, f"{host_name} vanished while being set up")
    if hairpin:
        # a container reaching its own published port: the frame leaves through the port it came in
        set_sysctl(f"/sys/class/net/{host_name}/brport/hairpin_mode", "1")
    return link


def mac_for(address: str) -> bytes:
    """02:42:<the IPv4's 4 bytes> (docker's scheme): an address keeps its MAC across restarts and
    containers, so the host's and the peers' neighbour entries never point at a gone veth (a random
    MAC per start left a published port dead until the stale entry expired, ~25 s)."""
    import _socket

    return b"\x02\x42" + _socket.inet_aton(address)


def configure_container(netns_fd: int, ifname: str, address: str, routes: list[Route],
                        default_gw: str) -> str:
    """Address, routes, lo and `ifname` up inside the netns (one batch); returns the container side's MAC."""
    from pyruntime.dockee.network import insidens

    return insidens.configure(netns_fd, ifname, *container_args(address, routes, default_gw))


def container_args(address: str, routes: list[Route],
                   default_gw: str) -> tuple[str, int, str, list[tuple[str, int, str]]]:
    """(address, prefixlen, broadcast, routes) as insidens takes them."""
    addr, _, plen = address.partition("/")
    return addr, int(plen), _broadcast(addr, plen), [
        (str(rt.dst.network_address), rt.dst.prefixlen, str(rt.gw or default_gw)) for rt in routes]


def _broadcast(addr: str, plen: str) -> str:
    import _socket
    import struct

    host_bits = (1 << (32 - int(plen))) - 1
    return _socket.inet_ntoa(struct.pack("!I", struct.unpack("!I", _socket.inet_aton(addr))[0] | host_bits))


def wait_oper_up(r: Rtnl, index: int, timeout: float = 2.0) -> None:
    """The bridge forwards through a port only once it is up; the container's first packet waits for it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        link = r.link(index=index)
        if link is None or link["operstate"] in ("UP", "UNKNOWN"):
            return
        time.sleep(0.002)


def delete_link(r: Rtnl, name: str) -> bool:
    """Delete `name` if it exists; True when something was removed."""
    try:
        return r.del_link(name)
    except NetlinkError as e:
        raise CNIError(E_PLUGIN, f"could not delete {name}: {e.strerror}")


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
    with iproute(netns_fd) as ns:
        link = ns.link(ifname)
        if link is None:
            return None
        return {"up": bool(link["flags"] & 1), "mac": link["mac"],
                "addrs": [f"{a}/{p}" for a, p in ns.addresses(link["index"])], "routes": ns.routes(link["index"])}
