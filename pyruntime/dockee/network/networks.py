"""dockee's network records: create, find, list and remove bridge networks in the store.

    networks/<name>.json              the record: id, subnet, gateway, bridge, nft table
    networks/ipam/<name>/             allocations (host-local format, see ipam.py)
    networks/members/<name>/<id>.json one file per container on the network (names, IP, hosts file)

The record is all a CNI config needs; `cni_config` turns it into the plugin's input.
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import os
import re
import secrets
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from pyruntime.dockee.errors import Conflict, DockeeError, NotFound
from pyruntime.dockee.store import DEFAULT_ROOT, Store, atomic_write_json, read_json

DEFAULT_NETWORK = "dockee0"
DRIVERS = ("bridge",)
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
AUTO_POOL = ipaddress.IPv4Network("10.89.0.0/16")  # /24s handed out when --subnet is absent


@dataclass(frozen=True)
class Network:
    name: str
    id: str
    driver: str
    subnet: str
    gateway: str
    bridge: str
    table: str
    created: str

    @property
    def net(self) -> ipaddress.IPv4Network:
        return ipaddress.IPv4Network(self.subnet)


def nft_table(store: Store) -> str:
    """`dockee` for the default store; another store (tests, a second user) gets its own table."""
    return table_of_root(os.path.realpath(store.root))


def ipam_dir(store: Store) -> Path:
    return store.networks / "ipam"


def members_dir(store: Store, name: str) -> Path:
    return store.networks / "members" / name


def _path(store: Store, name: str) -> Path:
    return store.networks / f"{name}.json"


def check_name(name: str) -> None:
    if not NAME_RE.match(name) or name in ("none", "host", "ipam", "members"):
        raise DockeeError(f"network name {name!r} is invalid: letters, digits, '_', '.', '-' "
                          "(at most 64), and not none/host")


def load(store: Store, name: str) -> Network:
    try:
        doc = read_json(_path(store, name))
    except FileNotFoundError:
        raise NotFound(f"network {name} not found")
    except ValueError:
        raise DockeeError(f"network record {_path(store, name)} is corrupt; `network rm {name}` removes it")
    return Network(**{k: doc[k] for k in Network.__dataclass_fields__})


def list_all(store: Store) -> list[Network]:
    if not store.networks.is_dir():
        return []
    out = []
    for entry in sorted(store.networks.glob("*.json")):
        try:
            out.append(load(store, entry.stem))
        except DockeeError:
            continue
    return out


def host_routes() -> list[tuple[ipaddress.IPv4Network, str]]:
    """The host's IPv4 routes other than the default, from /proc (no netlink for a read)."""
    out = []
    try:
        with open("/proc/net/route") as f:
            next(f)
            for line in f:
                fields = line.split()
                dst = ipaddress.IPv4Address(bytes.fromhex(fields[1])[::-1])
                mask = ipaddress.IPv4Address(bytes.fromhex(fields[7])[::-1])
                if int(mask) == 0:
                    continue
                out.append((ipaddress.IPv4Network(f"{dst}/{mask}", strict=False), fields[0]))
    except (OSError, StopIteration, ValueError):
        pass
    return out


def _conflict(store: Store, net: ipaddress.IPv4Network) -> str | None:
    ours = list_all(store)
    for other in ours:
        if other.net.overlaps(net):
            return f"network {other.name} ({other.subnet})"
    bridges = {n.bridge for n in ours}
    for route, dev in host_routes():
        if dev not in bridges and route.overlaps(net):
            return f"the host's route {route} on {dev}"
    return None


def _pick_subnet(store: Store) -> ipaddress.IPv4Network:
    for candidate in AUTO_POOL.subnets(new_prefix=24):
        if _conflict(store, candidate) is None:
            return candidate
    raise DockeeError(f"no free /24 left in {AUTO_POOL} for a new network; give --subnet")


HOST_LOCK = "/run/dockee-networks.lock"


class _HostLock:
    """Host-wide, around choosing a subnet and making its bridge: two stores (or two users of
    dockee) must not both pick the same free /24 before either bridge's route exists."""

    def __enter__(self) -> None:
        import fcntl

        try:
            self.fd = os.open(HOST_LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError:
            self.fd = -1  # no /run (a test's unprivileged fake): the store's own lock still holds
            return
        fcntl.flock(self.fd, fcntl.LOCK_EX)

    def __exit__(self, *exc: object) -> None:
        if self.fd >= 0:
            os.close(self.fd)


def make_bridge(store: Store, net: Network) -> None:
    """The bridge with its gateway address, at `network create` as docker does: its route reserves
    the subnet on the host at once (the next create, of any store, sees it).  Its ifalias names the
    store, so that leftovers of a deleted store can be told apart (see `orphans`)."""
    from pyruntime.dockee.network import bridge
    from pyruntime.dockee.network.cniconf import CNIError

    try:
        with bridge.iproute() as ipr:
            bridge.ensure_bridge(ipr, net.bridge, 1500, f"{net.gateway}/{net.net.prefixlen}")
    except CNIError as e:
        raise DockeeError(f"network {net.name}: {e.msg}")
    with contextlib.suppress(OSError):
        with open(f"/sys/class/net/{net.bridge}/ifalias", "w") as f:
            f.write(f"{ALIAS_PREFIX}{os.path.realpath(store.root)} {net.name}")


ALIAS_PREFIX = "dockee "


def bridge_owner(ifname: str) -> tuple[str, str] | None:
    """(store root, network name) that a bridge's ifalias names, None for a bridge not made by create."""
    try:
        with open(f"/sys/class/net/{ifname}/ifalias") as f:
            alias = f.read().strip()
    except OSError:
        return None
    if not alias.startswith(ALIAS_PREFIX):
        return None
    root, _, name = alias[len(ALIAS_PREFIX):].rpartition(" ")
    return (root, name) if root and name else None


def table_of_root(root: str) -> str:
    """nft_table for a store root given as a real path (that may no longer exist)."""
    if root == os.path.realpath(DEFAULT_ROOT):
        return "dockee"
    return "dockee_" + hashlib.sha256(root.encode()).hexdigest()[:10]


def gone_stores() -> dict[str, list[str]]:
    """Store roots that no longer exist -> the bridges made for them (a store deleted without
    `network rm`): its bridges, and its nft table (named after the root), are nobody's any more."""
    out: dict[str, list[str]] = {}
    try:
        links = sorted(os.listdir("/sys/class/net"))
    except OSError:
        return out
    for link in links:
        owner = bridge_owner(link)
        if owner is not None and not os.path.isdir(owner[0]):
            out.setdefault(owner[0], []).append(link)
    return out


def orphan_bridges(store: Store) -> list[str]:
    """Bridges made for this store's networks that no record names any more (a record removed by
    hand, a crash between the steps of rm): `network prune` deletes them."""
    root = os.path.realpath(store.root)
    known = {n.bridge for n in list_all(store)}
    try:
        links = os.listdir("/sys/class/net")
    except OSError:
        return []
    return sorted(link for link in links
                  if link not in known and (bridge_owner(link) or ("", ""))[0] == root)


def create(store: Store, name: str, subnet: str | None = None, gateway: str | None = None,
           driver: str = "bridge") -> Network:
    check_name(name)
    if driver not in DRIVERS:
        raise DockeeError(f"--driver {driver!r} is not supported (only bridge)")
    store.ensure()
    with store.lock("networks"), _HostLock():
        if _path(store, name).exists():
            raise Conflict(f"network {name} already exists")
        if subnet:
            try:
                net = ipaddress.ip_network(subnet, strict=True)
            except ValueError as e:
                raise DockeeError(f"--subnet {subnet!r} is not a subnet in CIDR form: {e}")
            if not isinstance(net, ipaddress.IPv4Network):
                raise DockeeError(f"--subnet {subnet}: only IPv4 subnets are supported")
            if net.prefixlen > 29:
                raise DockeeError(f"--subnet {subnet} is too small (at most /29)")
            if net.is_loopback or net.is_multicast or net.is_link_local or net.is_unspecified:
                raise DockeeError(f"--subnet {subnet} is not usable for containers")
            clash = _conflict(store, net)
            if clash:
                raise Conflict(f"--subnet {subnet} overlaps {clash}")
        else:
            net = _pick_subnet(store)
        if gateway:
            try:
                gw = ipaddress.IPv4Address(gateway)
            except ValueError:
                raise DockeeError(f"--gateway {gateway!r} is not an IPv4 address")
            if gw not in net or gw in (net.network_address, net.broadcast_address):
                raise DockeeError(f"--gateway {gateway} is not a host address of {net}")
        else:
            gw = net.network_address + 1
        nid = secrets.token_hex(32)
        default_store = nft_table(store) == "dockee"
        bridge = name if name == DEFAULT_NETWORK and default_store else f"dk-{nid[:11]}"
        rec = Network(name=name, id=nid, driver=driver, subnet=str(net), gateway=str(gw), bridge=bridge,
                      table=nft_table(store), created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
        atomic_write_json(_path(store, name), asdict(rec))
        try:
            make_bridge(store, rec)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(_path(store, name))
            raise
    return rec


def ensure_default(store: Store) -> Network:
    try:
        return load(store, DEFAULT_NETWORK)
    except NotFound:
        try:
            return create(store, DEFAULT_NETWORK)
        except Conflict:
            return load(store, DEFAULT_NETWORK)  # created by a concurrent `run`


def get(store: Store, name: str) -> Network:
    return ensure_default(store) if name == DEFAULT_NETWORK else load(store, name)


def cni_config(store: Store, net: Network, *, ports: list[dict[str, Any]] | None = None,
               ip: str | None = None) -> dict[str, Any]:
    """The plugin's stdin for a container on `net` (runtimeConfig as a CNI runtime would pass it)."""
    runtime: dict[str, Any] = {}
    if ports:
        runtime["portMappings"] = ports
    if ip:
        runtime["ips"] = [f"{ip}/{net.net.prefixlen}"]
    conf: dict[str, Any] = {
        "cniVersion": "1.0.0", "name": net.name, "type": "dockee-cni-bridge", "bridge": net.bridge,
        "isGateway": True, "isDefaultGateway": True, "ipMasq": True, "hairpinMode": True, "nftTable": net.table,
        "ipam": {"type": "host-local", "ranges": [[{"subnet": net.subnet, "gateway": net.gateway}]],
                 "dataDir": str(ipam_dir(store))},
    }
    if runtime:
        conf["runtimeConfig"] = runtime
    return conf


def members(store: Store, name: str) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    d = members_dir(store, name)
    if not d.is_dir():
        return out
    for entry in d.glob("*.json"):
        try:
            out[entry.stem] = read_json(entry)
        except (OSError, ValueError):
            continue
    return out


def live_members(store: Store, name: str) -> dict[str, dict[str, Any]]:
    """Members whose container still exists in the store (others are leftovers of a crash)."""
    return {cid: m for cid, m in members(store, name).items() if (store.containers / cid).exists()}


def remove(store: Store, name: str) -> None:
    """Remove a network without containers: bridge, NAT elements, allocations, record."""
    from pyruntime.dockee.network import attach

    net = load(store, name) if _path(store, name).exists() else None
    if net is None:
        raise NotFound(f"network {name} not found")
    with store.lock("networks"):
        users = live_members(store, name)
        if users:
            names = ", ".join(sorted(m.get("name") or cid[:12] for cid, m in users.items()))
            raise Conflict(f"network {name} is in use by container(s): {names}")
        for cid in members(store, name):
            attach.release(store, cid)
        _destroy(store, net)


def _destroy(store: Store, net: Network) -> None:
    from pyruntime.dockee.network import bridge, nat
    from pyruntime.dockee.network.cniconf import CNIError

    try:
        ipr = bridge.iproute()
        try:
            bridge.delete_link(ipr, net.bridge)
        finally:
            ipr.close()
        nat.forget_network(net.table, net.subnet, net.bridge)
        if not list_all_except(store, net.name):
            nat.delete_table(net.table)
    except CNIError as e:
        raise DockeeError(f"network {net.name}: {e.msg}")
    shutil.rmtree(ipam_dir(store) / net.name, ignore_errors=True)
    shutil.rmtree(members_dir(store, net.name), ignore_errors=True)
    try:
        os.unlink(_path(store, net.name))
    except FileNotFoundError:
        pass


def list_all_except(store: Store, name: str) -> list[Network]:
    return [n for n in list_all(store) if n.name != name]
