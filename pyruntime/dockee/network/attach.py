"""How a container joins a dockee network: the contract between dockee-shim's `run` and the network.

`plan_for` is called by `run`/`create` before the bundle is written, for any network other than
"none" and "host".  It reserves the container's address and host ports, writes its /etc/hosts and
/etc/resolv.conf, and returns a NetworkPlan whose hooks go into config.json (createRuntime: ADD
through the CNI plugin, poststop: DEL of links, NAT and the address, as docker and podman free it at
a stop; `prepare_start` takes one again at every start, `stopped` finishes a stop) and whose mounts are
added to config.json's mounts.  It raises DockeeError (one line) on bad input and leaves nothing.
`release` undoes everything for one container and is idempotent: `rm`/`rm -f` call it whatever
state the container is in (also after a SIGKILL of the container or a crash of dockee-shim).

The hooks run `dockee-cni-bridge oci-hook add|del <store>/containers/<id>/net/cni.json` with the
OCI state on stdin, so they work under pyruntime and runc alike.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pyruntime.dockee.errors import Conflict, DockeeError
from pyruntime.dockee.network import hosts, networks
from pyruntime.dockee.network.cniconf import CNIError, PortMapping
from pyruntime.dockee.store import Store, atomic_write_json, read_json

DEFAULT_NETWORK = networks.DEFAULT_NETWORK
IFNAME = "eth0"
HOOK_TIMEOUT = 30


@dataclass
class NetworkPlan:
    network: str
    hooks: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # config.json "hooks" entries to add
    mounts: list[dict[str, Any]] = field(default_factory=list)  # config.json "mounts" entries to add
    ip: str | None = None
    ports: list[str] = field(default_factory=list)  # as given to -p, for `ps` and `inspect`
    gateway: str | None = None
    subnet: str | None = None
    published: list[dict[str, Any]] = field(default_factory=list)  # CNI portMappings, host ports resolved


def net_dir(store: Store, container_id: str) -> Path:
    return store.containers / container_id / "net"


def plugin_path() -> str:
    """The plugin next to this interpreter (same code as dockee-shim), else the one on PATH."""
    here = Path(sys.executable).parent / "dockee-cni-bridge"
    if here.exists():
        return str(here)
    found = shutil.which("dockee-cni-bridge")
    if not found:
        raise DockeeError("dockee-cni-bridge is not installed (the network plugin)")
    return found


def _free_port(proto: str, host_ip: str) -> int:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM) as s:
        s.bind((host_ip or "0.0.0.0", 0))
        return int(s.getsockname()[1])


def parse_publish(spec: str) -> PortMapping:
    """-p [HOSTIP:][HOSTPORT:]CTRPORT[/tcp|/udp]; an empty or absent HOSTPORT picks a free one."""
    body, _, proto = spec.partition("/")
    proto = (proto or "tcp").lower()
    if proto not in ("tcp", "udp"):
        raise DockeeError(f"-p {spec}: protocol {proto!r} is not tcp or udp")
    parts = body.rsplit(":", 2) if not body.startswith("[") else None
    if parts is None:
        raise DockeeError(f"-p {spec}: IPv6 host addresses are not supported")
    host_ip, host_port, ctr_port = ([""] * (3 - len(parts)) + parts)

    def port(text: str, what: str) -> int:
        if not text.isdigit() or not 0 < int(text) < 65536:
            raise DockeeError(f"-p {spec}: {what} {text!r} is not a port (1-65535)")
        return int(text)

    if host_ip:
        try:
            ipaddress.IPv4Address(host_ip)
        except ValueError:
            raise DockeeError(f"-p {spec}: host IP {host_ip!r} is not an IPv4 address")
        if host_ip == "0.0.0.0":
            host_ip = ""
    cport = port(ctr_port, "container port")
    hport = port(host_port, "host port") if host_port else _free_port(proto, host_ip)
    return PortMapping(hport, cport, proto, host_ip)


def _cni_ports(mappings: list[PortMapping]) -> list[dict[str, Any]]:
    return [{"hostPort": m.host_port, "containerPort": m.container_port, "protocol": m.protocol,
             "hostIP": m.host_ip} for m in mappings]


def _refresh_hosts(store: Store, name: str) -> None:
    """Rewrite every member's hosts file so that all of them know all the others."""
    members = networks.members(store, name)
    peers = [(m["ip"], m.get("names") or []) for m in members.values() if m.get("ip")]
    for m in members.values():
        path = m.get("hostsFile")
        if not path or not Path(path).exists():
            continue
        own = m.get("names") or []
        others = [(ip, names) for ip, names in peers if ip != m.get("ip")]
        hosts.write_in_place(Path(path), hosts.render(m.get("ip"), own, others,
                                                      [tuple(h) for h in m.get("addHosts") or []]))


def plan_for(store: Store, container_id: str, name: str, network: str, *, ip: str | None,
             ports: list[str], add_hosts: list[str], hostname: str, bundle: Path) -> NetworkPlan | None:
    """Reserve what the container needs on `network` and say how config.json must join it."""
    from pyruntime.dockee.network import ipam, nat

    net = networks.get(store, network)
    mappings = [parse_publish(p) for p in ports]
    seen: set[tuple[str, str, int]] = set()
    for m in mappings:
        key = (m.protocol, m.host_ip, m.host_port)
        if key in seen or (m.protocol, "", m.host_port) in seen:
            raise DockeeError(f"-p: host port {m.describe()} is given twice")
        seen.add(key)
    extra = [hosts.parse_add_host(h) for h in add_hosts]
    fixed = None
    if ip:
        try:
            fixed = ipaddress.IPv4Address(ip)
        except ValueError:
            raise DockeeError(f"--ip {ip!r} is not an IPv4 address")
        if fixed not in net.net:
            raise DockeeError(f"--ip {ip} is not in network {net.name}'s subnet {net.subnet}")
    conf = networks.cni_config(store, net)
    from pyruntime.dockee.network.cniconf import parse_config

    rng = parse_config(json.dumps(conf).encode()).range
    pool = ipam.Pool(networks.ipam_dir(store), net.name, rng)
    d = net_dir(store, container_id)
    member_file = networks.members_dir(store, net.name) / f"{container_id}.json"
    with store.lock(f"network-{net.name}"):
        # ports first: a refusal then touches no allocation at all
        current = nat.published(net.table) if mappings else {}
        for m in mappings:
            for (proto, hip, hport), (cip, _cport) in current.items():
                if proto == m.protocol and hport == m.host_port and (not hip or not m.host_ip or hip == m.host_ip):
                    raise Conflict(f"-p {m.describe()}: host port is already published (to {cip})")
        try:
            nat.check_free(tuple(mappings))
        except CNIError as e:
            raise Conflict(f"-p: {e.msg}")
        try:
            got = pool.allocate(container_id, IFNAME, fixed)
        except CNIError as e:
            raise Conflict(e.msg.replace("IP ", "--ip ", 1) if fixed else e.msg)
        try:
            d.mkdir(parents=True, exist_ok=True)
            names = [n for n in dict.fromkeys([hostname, name, container_id[:12]]) if n]
            member = {"id": container_id, "name": name, "names": names, "ip": str(got),
                      "hostsFile": str(d / "hosts"), "addHosts": [list(h) for h in extra],
                      "ports": _cni_ports(mappings)}
            member_file.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_json(member_file, member)
            (d / "hosts").touch()
            _refresh_hosts(store, net.name)
            (d / "resolv.conf").write_text(hosts.resolv_conf())
            plan_file = d / "cni.json"
            atomic_write_json(plan_file, {
                "config": networks.cni_config(store, net, ports=_cni_ports(mappings), ip=str(got)),
                "containerId": container_id, "ifname": IFNAME, "network": net.name, "fixedIp": fixed is not None,
                "resultPath": str(d / "result.json")})
        except BaseException:
            pool.release(container_id, IFNAME, got)
            member_file.unlink(missing_ok=True)
            shutil.rmtree(d, ignore_errors=True)
            _refresh_hosts(store, net.name)
            raise
    plugin = plugin_path()

    def hook(verb: str) -> dict[str, Any]:
        return {"path": plugin, "args": ["dockee-cni-bridge", "oci-hook", verb, str(plan_file)],
                "timeout": HOOK_TIMEOUT}

    bind = ["rbind", "rprivate"]
    return NetworkPlan(
        network=net.name,
        hooks={"createRuntime": [hook("add")], "poststop": [hook("del")]},
        mounts=[{"destination": "/etc/hosts", "type": "bind", "source": str(d / "hosts"), "options": bind},
                {"destination": "/etc/resolv.conf", "type": "bind", "source": str(d / "resolv.conf"),
                 "options": bind}],
        ip=str(got), ports=list(ports), gateway=net.gateway, subnet=net.subnet,
        published=_cni_ports(mappings),
    )


def _plan(store: Store, container_id: str) -> dict[str, Any] | None:
    try:
        plan = read_json(net_dir(store, container_id) / "cni.json")
    except (OSError, ValueError):
        return None
    return plan if isinstance(plan, dict) and plan.get("network") else None


def _set_member_ip(store: Store, name: str, container_id: str, ip: str | None) -> None:
    member_file = networks.members_dir(store, name) / f"{container_id}.json"
    try:
        member = read_json(member_file)
    except (OSError, ValueError):
        return
    if member.get("ip") != ip:
        member["ip"] = ip
        atomic_write_json(member_file, member)
    _refresh_hosts(store, name)


def prepare_start(store: Store, container_id: str) -> str | None:
    """Before a (re)start: the address again, as docker and podman take one at every start (the
    poststop DEL released it, see `stopped`).  The previous one when it is still free, else any free
    one; a fixed --ip only itself (a start then fails while another container holds it).  Returns the
    address (None: the container is on no network); hosts files and the hook's plan follow it."""
    from pyruntime.dockee.network import ipam
    from pyruntime.dockee.network.cniconf import parse_config

    plan = _plan(store, container_id)
    if plan is None:
        return None
    name, conf = plan["network"], plan["config"]
    runtime = conf.setdefault("runtimeConfig", {})
    bare = {k: v for k, v in conf.items() if k != "runtimeConfig"}
    rng = parse_config(json.dumps(bare).encode()).range
    want = (runtime.get("ips") or [None])[0]
    pool = ipam.Pool(conf["ipam"]["dataDir"], name, rng)
    with store.lock(f"network-{name}"):
        got = None
        if want:
            try:
                got = pool.allocate(container_id, IFNAME, ipaddress.IPv4Address(want.split("/")[0]))
            except (CNIError, ValueError) as e:
                if plan.get("fixedIp"):
                    raise Conflict(f"--ip {want.split('/')[0]}: {getattr(e, 'msg', e)}")
        if got is None:
            try:
                got = pool.allocate(container_id, IFNAME)
            except CNIError as e:
                raise Conflict(e.msg)
        try:
            _check_ports(conf, str(got))
        except BaseException:
            pool.release(container_id, IFNAME, got)
            raise
        if runtime.get("ips") != [rng.prefixed(got)]:
            runtime["ips"] = [rng.prefixed(got)]
            atomic_write_json(net_dir(store, container_id) / "cni.json", plan)
        _set_member_ip(store, name, container_id, str(got))
    return str(got)


def _check_ports(conf: dict[str, Any], ip: str) -> None:
    """At a start, as `run` does: a host port that another container published meanwhile, or that a
    host process listens on, is refused in one line before anything runs (the container keeps its
    previous exit status) rather than by the hook's ADD."""
    from pyruntime.dockee.network import nat

    mappings = [PortMapping(p["hostPort"], p["containerPort"], p["protocol"], p.get("hostIP", ""))
                for p in conf.get("runtimeConfig", {}).get("portMappings") or []]
    if not mappings:
        return
    current = nat.published(conf.get("nftTable", "dockee"))
    for m in mappings:
        for (proto, hip, hport), (cip, _cport) in current.items():
            if proto == m.protocol and hport == m.host_port and (not hip or not m.host_ip or hip == m.host_ip) \
                    and cip != ip:
                raise Conflict(f"-p {m.describe()}: host port is already published (to {cip})")
    try:
        nat.check_free(tuple(mappings))
    except CNIError as e:
        raise Conflict(f"-p: {e.msg}")


def stopped(store: Store, container_id: str) -> None:
    """After the container's end: its address is free again (the poststop DEL released it; here also
    when no DEL ran, e.g. its runtime state was lost) and its name leaves the peers' hosts files.
    Idempotent; the plan keeps the address as the one to ask for first at the next start."""
    from pyruntime.dockee.network import ipam, plugin

    plan = _plan(store, container_id)
    if plan is None:
        return
    name = plan["network"]
    data_dir = plan["config"]["ipam"]["dataDir"]
    with store.lock(f"network-{name}"):
        path = plugin.record_path(data_dir, name, container_id, IFNAME)
        record = plugin.load_record(path)
        if record is not None:
            try:
                plugin.teardown(record, path, release_ip=True)
            except CNIError as e:
                raise DockeeError(f"network {name}: {e.msg}")
        ipam.Pool(data_dir, name, None).release(container_id, IFNAME)
        _set_member_ip(store, name, container_id, None)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(net_dir(store, container_id) / "result.json")


def release(store: Store, container_id: str) -> None:
    """Remove the container from its network: addresses, links, NAT rules, host entries."""
    from pyruntime.dockee.network import plugin

    root = store.networks / "members"
    names = [p.parent.name for p in root.glob(f"*/{container_id}.json")] if root.is_dir() else []
    d = net_dir(store, container_id)
    for name in names:
        with store.lock(f"network-{name}"):
            member_file = networks.members_dir(store, name) / f"{container_id}.json"
            data_dir = str(networks.ipam_dir(store))
            path = plugin.record_path(data_dir, name, container_id, IFNAME)
            record = plugin.load_record(path)
            try:
                member = read_json(member_file)
            except (OSError, ValueError):
                member = {}
            if record is None:  # the hook never ran (or crashed before its record): what plan_for made
                from pyruntime.dockee.network.cniconf import host_veth_name

                try:
                    table = networks.load(store, name).table
                except DockeeError:
                    table = networks.nft_table(store)
                record = {"containerId": container_id, "ifname": IFNAME, "network": name, "dataDir": data_dir,
                          "table": table, "ip": member.get("ip"), "ports": member.get("ports") or [],
                          "hostVeth": host_veth_name(container_id, IFNAME)}
            try:
                plugin.teardown(record, path, release_ip=True)
            except CNIError as e:
                raise DockeeError(f"network {name}: {e.msg}")
            member_file.unlink(missing_ok=True)
            _refresh_hosts(store, name)
    for f in ("cni.json", "result.json"):
        try:
            os.unlink(d / f)
        except FileNotFoundError:
            pass


def _holds(conf: dict[str, Any], network: str | None, container_id: str, ip: str) -> bool:
    from pyruntime.dockee.network import ipam

    try:
        data_dir = conf["ipam"]["dataDir"]
    except (KeyError, TypeError):
        return False
    return ipam.Pool(data_dir, str(network), None).owner(ip) == (container_id, IFNAME)


def container_network(store: Store, container_id: str) -> dict[str, Any] | None:
    """What `inspect`/`ps` show: network, IP, gateway, MAC (once started), ports."""
    d = net_dir(store, container_id)
    try:
        plan = read_json(d / "cni.json")
    except (OSError, ValueError):
        return None
    conf = plan["config"]
    out: dict[str, Any] = {"network": plan.get("network"), "ip": None, "gateway": None, "mac": None,
                           "ports": conf.get("runtimeConfig", {}).get("portMappings", [])}
    ips = conf.get("runtimeConfig", {}).get("ips") or []
    if ips and _holds(conf, plan.get("network"), container_id, ips[0].split("/")[0]):
        out["ip"] = ips[0].split("/")[0]  # only while it has it: a stopped container has none
    out["gateway"] = conf["ipam"]["ranges"][0][0]["gateway"]
    try:
        result = read_json(d / "result.json")
        out["mac"] = result["interfaces"][2]["mac"]
    except (OSError, ValueError, KeyError, IndexError):
        pass
    return out
