"""NAT and port publishing in one nftables table owned by dockee (the `nft` binary, batch files).

The table's rules are fixed; what changes per network and per container are set and map
elements, so each ADD/DEL is one atomic `nft -f` transaction and needs no rule handles:

    subnets / bridges      our networks (hairpin masquerade, forward accept)
    masq                   subnets whose outbound traffic is masqueraded (ipMasq)
    ports_<proto>          hostPort -> containerIP . containerPort (any local address)
    addrports_<proto>      hostIP . hostPort -> containerIP . containerPort

`create element` fails when a key exists, so a host port published twice is refused by the kernel,
atomically.  DNAT runs in PREROUTING and OUTPUT for local destinations, which includes 127.0.0.1:
the bridge gets route_localnet=1 and the `guard` chain drops packets for 127.0.0.0/8 that arrive on
our bridges (moby#41872), so containers cannot reach the host's loopback services.
"""

from __future__ import annotations

import errno
import os

from pyruntime.dockee.network.cniversion import E_PLUGIN, E_PORT, CNIError, PortMapping

# typing and collections.abc only for the type checker: the plugin's start-up pays for every import
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable

PROTOCOLS = ("tcp", "udp")


def table_setup(table: str) -> str:
    """The batch that creates the table (first use only: `create table` fails when it exists)."""
    t = f"ip {table}"
    lines = [
        f"create table {t}",
        f"add set {t} subnets {{ type ipv4_addr; flags interval; }}",
        f"add set {t} masq {{ type ipv4_addr; flags interval; }}",
        f"add set {t} bridges {{ type ifname; }}",
    ]
    lines += _isolation(t)
    for p in PROTOCOLS:
        lines.append(f"add map {t} ports_{p} {{ type inet_service : ipv4_addr . inet_service; }}")
        lines.append(f"add map {t} addrports_{p} {{ type ipv4_addr . inet_service : ipv4_addr . inet_service; }}")
    lines += [
        f"add chain {t} guard {{ type filter hook prerouting priority raw; policy accept; }}",
        # only our bridges have route_localnet=1; elsewhere the kernel drops such martians itself
        f"add rule {t} guard iifname @bridges ip daddr 127.0.0.0/8 counter drop",
        f"add chain {t} portmap",
    ]
    for p in PROTOCOLS:
        lines.append(f"add rule {t} portmap dnat ip to ip daddr . {p} dport map @addrports_{p}")
        lines.append(f"add rule {t} portmap dnat ip to {p} dport map @ports_{p}")
    lines += [
        f"add chain {t} prerouting {{ type nat hook prerouting priority dstnat; policy accept; }}",
        f"add rule {t} prerouting fib daddr type local jump portmap",
        f"add chain {t} output {{ type nat hook output priority -100; policy accept; }}",
        f"add rule {t} output fib daddr type local jump portmap",
        f"add chain {t} postrouting {{ type nat hook postrouting priority srcnat; policy accept; }}",
        # published ports reached from the host's loopback or from a container of the same bridge:
        # the reply must come back through us, so the source becomes the bridge's address
        f"add rule {t} postrouting ct status dnat oifname @bridges ip saddr 127.0.0.0/8 masquerade",
        f"add rule {t} postrouting ct status dnat oifname @bridges ip saddr @subnets masquerade",
        f"add rule {t} postrouting ip saddr @masq oifname != @bridges masquerade",
    ]
    lines += _forward(t)
    return "\n".join(lines) + "\n"


def _isolation(t: str) -> list[str]:
    # (bridge . bridge) of each network: traffic may stay within one, never cross between two
    return [f"add set {t} pairs {{ type ifname . ifname; }}"]


def _forward(t: str) -> list[str]:
    """The forward chain.  Networks are isolated from each other (docker's DOCKER-ISOLATION chains,
    netavark's isolate): a packet from one of our bridges to another is dropped, unless it is a
    published port's (DNAT: a container reaching another network's port through a host address)."""
    return [
        f"add chain {t} forward {{ type filter hook forward priority filter; policy accept; }}",
        f"add rule {t} forward iifname @bridges oifname @bridges ct status dnat accept",
        f"add rule {t} forward iifname @bridges oifname @bridges iifname . oifname != @pairs drop",
        f"add rule {t} forward iifname @bridges accept",
        f"add rule {t} forward oifname @bridges accept",
    ]


def table_upgrade(table: str) -> str:
    """A table made by an older dockee lacks the isolation: its set, and the forward chain anew."""
    t = f"ip {table}"
    return "\n".join([*_isolation(t), f"add chain {t} forward {{ type filter hook forward priority filter; "
                      "policy accept; }", f"flush chain {t} forward", *_forward(t)[1:]]) + "\n"


def _element(m: PortMapping, ip: str) -> tuple[str, str]:
    """(map name, element text) of one mapping."""
    if m.host_ip:
        return f"addrports_{m.protocol}", f"{m.host_ip} . {m.host_port} : {ip} . {m.container_port}"
    return f"ports_{m.protocol}", f"{m.host_port} : {ip} . {m.container_port}"


def network_batch(table: str, subnet: str, bridge: str, masquerade: bool, op: str = "add") -> str:
    lines = [f"{op} element ip {table} subnets {{ {subnet} }}",
             f'{op} element ip {table} bridges {{ "{bridge}" }}',
             f'{op} element ip {table} pairs {{ "{bridge}" . "{bridge}" }}']
    if masquerade:
        lines.append(f"{op} element ip {table} masq {{ {subnet} }}")
    return "\n".join(lines) + "\n"


def publish_batch(table: str, ip: str, mappings: Iterable[PortMapping]) -> str:
    """`create` (not `add`): an existing key fails the whole transaction."""
    return "".join(f"create element ip {table} {name} {{ {elem} }}\n"
                   for name, elem in (_element(m, ip) for m in mappings))


def unpublish_batch(table: str, mappings: Iterable[PortMapping]) -> str:
    lines = []
    for m in mappings:
        name, elem = _element(m, "0.0.0.0")
        lines.append(f"delete element ip {table} {name} {{ {elem.split(' : ')[0]} }}")
    return "".join(line + "\n" for line in lines)


def nft_binary() -> str:
    """OCI hooks run with an empty environment (no PATH): look where distributions put nft."""
    import shutil

    found = shutil.which("nft") or shutil.which("nft", path="/usr/sbin:/sbin:/usr/bin:/bin:/usr/local/sbin")
    return found or "nft"


def run_batch(batch: str) -> None:
    import subprocess

    if not batch:
        return
    try:
        p = subprocess.run([nft_binary(), "-f", "-"], input=batch, capture_output=True, text=True)
    except FileNotFoundError:
        raise CNIError(E_PLUGIN, "nft is not installed (the nftables package)")
    if p.returncode != 0:
        raise NftError(p.stderr)


class NftError(CNIError):
    def __init__(self, stderr: str) -> None:
        lines = [ln for ln in stderr.splitlines() if ln.strip()]
        first = lines[0] if lines else "nft failed"
        super().__init__(E_PLUGIN, f"nft: {first.removeprefix('Error: ')}", stderr.strip())
        self.stderr = stderr

    @property
    def missing(self) -> bool:
        return "No such file or directory" in self.stderr

    @property
    def no_element(self) -> bool:
        return "element does not exist" in self.stderr

    @property
    def exists(self) -> bool:
        return "File exists" in self.stderr


def ensure_table(table: str) -> None:
    try:
        run_batch(table_setup(table))
    except NftError as e:
        if not e.exists:
            raise
        run_batch(table_upgrade(table))  # it exists, so something newer than it is missing


def apply(table: str, batch: str) -> None:
    """Run `batch` against the table, creating the table first when it is missing."""
    try:
        run_batch(batch)
    except NftError as e:
        if not e.missing:
            raise
        ensure_table(table)
        run_batch(batch)


def publish(table: str, subnet: str, bridge: str, masquerade: bool, ip: str,
            mappings: tuple[PortMapping, ...], marker: str | None = None) -> None:
    """One transaction: the network's elements (idempotent) and this container's ports.

    `marker` (a file in the network's IPAM directory) remembers that this table, by its kernel
    handle, holds the network's elements already: then an ADD without ports runs no nft at all
    (one nfnetlink request instead of a ~30 ms process).  A table deleted and made again has
    another handle; `network rm` removes the directory, marker included."""
    line = f"{subnet} {bridge} {int(masquerade)} isolated"  # a marker of an older table says less
    known = marker is not None and _marked(marker, table, line)
    if known:
        if mappings and not _publish_netlink(table, ip, mappings):
            known = False  # the table went away since: nft makes it again
        else:
            return
    try:
        apply(table, network_batch(table, subnet, bridge, masquerade) + publish_batch(table, ip, mappings))
    except NftError as e:
        if e.exists and mappings:
            taken = ", ".join(m.describe() for m in mappings)
            raise CNIError(E_PORT, f"host port already published: one of {taken}", e.details)
        raise
    if marker is not None and not known:
        handle = table_handle(table)
        if handle is not None:
            tmp = f"{marker}.{os.getpid()}.tmp"
            with open(tmp, "w") as f:
                f.write(f"{handle} {line}\n")
            os.replace(tmp, marker)


def _nl_element(m: PortMapping, ip: str) -> tuple[str, bytes, bytes]:
    """(map, key, data) of one mapping as nfnetlink carries them (see nftnl.py)."""
    from pyruntime.dockee.network import nftnl

    if m.host_ip:
        return f"addrports_{m.protocol}", nftnl.addr_port(m.host_ip, m.host_port), nftnl.addr_port(ip, m.container_port)
    return f"ports_{m.protocol}", nftnl.port_key(m.host_port), nftnl.addr_port(ip, m.container_port)


def _publish_netlink(table: str, ip: str, mappings: tuple[PortMapping, ...]) -> bool:
    """This container's ports as one nfnetlink transaction; False when the table or a map is missing."""
    from pyruntime.dockee.network import nftnl
    from pyruntime.dockee.network.rtnl import NetlinkError

    ops: list[tuple[str, str, str, bytes, bytes | None]] = [("create", table, *_nl_element(m, ip)) for m in mappings]
    try:
        with nftnl.Nftnl() as n:
            n.transaction(ops)
    except NetlinkError as e:
        if e.errno == errno.ENOENT:
            return False
        if e.errno == errno.EEXIST:
            taken = ", ".join(m.describe() for m in mappings)
            raise CNIError(E_PORT, f"host port already published: one of {taken}")
        raise CNIError(E_PLUGIN, f"nftables: {e.strerror}")
    return True


def _marked(marker: str, table: str, line: str) -> bool:
    try:
        with open(marker) as f:
            handle, _, rest = f.read().strip().partition(" ")
    except FileNotFoundError:
        return False
    return rest == line and str(table_handle(table)) == handle


NFNL_SUBSYS_NFTABLES, NFT_MSG_GETTABLE, NFTA_TABLE_NAME, NFTA_TABLE_HANDLE = 10, 1, 1, 4
NETLINK_NETFILTER, NFPROTO_IPV4 = 12, 2


def table_handle(table: str) -> int | None:
    """The kernel's handle of `ip <table>` (unique per table made), None if there is no such table."""
    import struct

    from pyruntime.dockee.network.rtnl import NetlinkError, Rtnl, attr_str, attrs, netlink_socket

    try:
        with Rtnl(netlink_socket(NETLINK_NETFILTER)) as nl:
            replies = nl._request((NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETTABLE, 0,
                                  struct.pack("=BBH", NFPROTO_IPV4, 0, 0) + attr_str(NFTA_TABLE_NAME, table))
    except (NetlinkError, OSError):
        return None
    if not replies:
        return None
    handle = attrs(replies[0], 20).get(NFTA_TABLE_HANDLE)
    return struct.unpack(">Q", handle)[0] if handle is not None and len(handle) == 8 else None


def published(table: str) -> dict[tuple[str, str, int], tuple[str, int]]:
    """(proto, hostIP or "", hostPort) -> (containerIP, containerPort), read from the kernel."""
    import json
    import subprocess

    p = subprocess.run([nft_binary(), "-j", "list", "table", "ip", table], capture_output=True, text=True)
    if p.returncode != 0:
        return {}
    out: dict[tuple[str, str, int], tuple[str, int]] = {}
    for obj in json.loads(p.stdout).get("nftables", []):
        m = obj.get("map")
        if not m or not (m["name"].startswith("ports_") or m["name"].startswith("addrports_")):
            continue
        proto = m["name"].split("_", 1)[1]
        for key, value in m.get("elem", []):
            if isinstance(key, dict):
                host_ip, host_port = key["concat"]
            else:
                host_ip, host_port = "", key
            cip, cport = value["concat"]
            out[(proto, host_ip, int(host_port))] = (cip, int(cport))
    return out


def unpublish(table: str, ip: str, mappings: tuple[PortMapping, ...]) -> None:
    """Remove this container's ports, and only those whose target is still `ip` (DEL after a failed ADD
    must not take another container's port)."""
    if not mappings:
        return
    import _socket
    import struct

    from pyruntime.dockee.network import nftnl
    from pyruntime.dockee.network.rtnl import NetlinkError

    try:
        with nftnl.Nftnl() as n:
            current: dict[tuple[str, str, int], tuple[str, int]] = {}
            for m in mappings:
                name, key, _ = _nl_element(m, "0.0.0.0")
                data = n.get(table, name, key)
                if data is not None and len(data) >= 6:
                    current[(m.protocol, m.host_ip, m.host_port)] = (_socket.inet_ntoa(data[:4]),
                                                                    struct.unpack(">H", data[4:6])[0])
            mine = [m for m in mappings if current.get((m.protocol, m.host_ip, m.host_port), ("",))[0] == ip]
            ops: list[tuple[str, str, str, bytes, bytes | None]] = []
            for m in mine:
                name, key, _ = _nl_element(m, "0.0.0.0")
                ops.append(("delete", table, name, key, None))
            try:
                if ops:
                    n.transaction(ops)
            except NetlinkError as e:
                if e.errno != errno.ENOENT:
                    raise
                for op in ops:  # one went away meanwhile: the others, one by one
                    try:
                        n.transaction([op])
                    except NetlinkError as e2:
                        if e2.errno != errno.ENOENT:
                            raise
    except NetlinkError as e:
        raise CNIError(E_PLUGIN, f"nftables: {e.strerror}")


def forget_network(table: str, subnet: str, bridge: str) -> None:
    """At `network rm`: the network's elements and any port still aimed into its subnet."""
    import ipaddress

    net = ipaddress.IPv4Network(subnet)
    stale = [PortMapping(port, cport, proto, hip) for (proto, hip, port), (cip, cport) in published(table).items()
             if ipaddress.IPv4Address(cip) in net]
    batch = unpublish_batch(table, stale)
    for name, elem in (("subnets", subnet), ("masq", subnet), ("bridges", f'"{bridge}"'),
                       ("pairs", f'"{bridge}" . "{bridge}"')):
        batch += f"delete element ip {table} {name} {{ {elem} }}\n"
    for line in batch.splitlines():  # one by one: an absent element must not undo the others
        try:
            run_batch(line + "\n")
        except NftError as e:
            # an absent element: "No such file or directory" from the kernel, but for interval
            # sets nft 1.0.6 checks itself and says "element does not exist" (a network rm'd
            # before any container joined it has no elements at all)
            if not (e.missing or e.no_element or "Could not process rule" in e.stderr):
                raise


def delete_table(table: str) -> None:
    try:
        run_batch(f"delete table ip {table}\n")
    except NftError as e:
        if not e.missing:
            raise


def check_free(mappings: tuple[PortMapping, ...]) -> None:
    """Refuse a host port that a host process listens on (DNAT would hide it silently)."""
    import _socket  # socket.py costs more than these binds

    for m in mappings:
        kind = _socket.SOCK_STREAM if m.protocol == "tcp" else _socket.SOCK_DGRAM
        s = _socket.socket(_socket.AF_INET, kind | _socket.SOCK_CLOEXEC)
        try:
            # SO_REUSEADDR: only a listener (not TIME_WAIT leftovers) makes the bind fail
            s.setsockopt(_socket.SOL_SOCKET, _socket.SO_REUSEADDR, 1)
            try:
                s.bind((m.host_ip or "0.0.0.0", m.host_port))
            except OSError as e:
                if e.errno == errno.EADDRINUSE:
                    raise CNIError(E_PORT, f"host port {m.describe()} is in use by a process on the host")
                if e.errno == errno.EADDRNOTAVAIL:
                    raise CNIError(E_PORT, f"host IP {m.host_ip} of {m.describe()} is not an address of this host")
                raise CNIError(E_PORT, f"host port {m.describe()}: {e.strerror}")
        finally:
            s.close()
