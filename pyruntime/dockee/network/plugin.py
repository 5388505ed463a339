"""dockee-cni-bridge: a CNI plugin (bridge + built-in host-local IPAM + nftables port mapping).

As a CNI plugin: CNI_COMMAND=ADD|DEL|CHECK|VERSION|STATUS, the config on stdin, the result (or the
CNI error object, exit 1) on stdout.  As an OCI hook (`dockee-cni-bridge oci-hook add|del FILE`):
the runtime's state on stdin gives the container's pid, hence CNI_NETNS=/proc/<pid>/ns/net; FILE
holds the network config dockee-shim planned.

Every ADD keeps an attachment record (`<dataDir>/<network>/attachments/<id>-<ifname>.json`),
written before anything is made, so DEL removes exactly what ADD made, also after a crash, and also
when the netns is gone.

Cost: this runs once per container start and stop, and an interpreter's start and imports are
most of it, so (scripts/bench_network.py prints where the time goes, from DOCKEE_CNI_TIMING marks):
the launcher runs -IS (scripts/write-launcher.py); nothing loads json's regular expressions,
dataclasses, typing, pathlib, socket.py or subprocess on the way (cnijson, _socket, lazy imports),
and DEL with its record parses only the config's head; netlink messages are packed by hand
(rtnl.py), port elements go over nfnetlink (nftnl.py), `nft` runs only to make the table and a
network's elements (nat.publish remembers them by the table's handle); the container side is done
by a helper born in the netns (insidens.py) whose start overlaps ADD's host-side work; the process
ends with os._exit once its output is flushed.
"""

from __future__ import annotations

from pyruntime.dockee.network.timing import mark, report  # first: its import marks the start

# isort: split
import os
import sys

from pyruntime.dockee.network import cnijson as json  # the json package costs re, enum, collections
from pyruntime.dockee.network.cniversion import (
    CHECK_MIN,
    E_ATTACHED,
    E_CONFIG,
    E_ENV,
    E_PLUGIN,
    E_UNAVAILABLE,
    E_UNKNOWN_CONTAINER,
    E_VERSION,
    SUPPORTED_VERSIONS,
    CNIError,
    PortMapping,
    config_version,
    data_dir,
    parse_env,
    parse_head,
)

# VERSION must not pay for typing, dataclasses or ipaddress: those load only where used
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from pyruntime.dockee.network import insidens
    from pyruntime.dockee.network.cniconf import Env, NetConf


def _write_json(path: str, doc: Any) -> None:
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w") as f:
        f.write(json.dumps(doc))
    os.replace(tmp, path)


def record_path(data_dir: str, network: str, cid: str, ifname: str) -> str:
    return os.path.join(data_dir, network, "attachments", f"{cid}-{ifname}.json")


def _mappings(record: dict[str, Any]) -> tuple[PortMapping, ...]:
    return tuple(PortMapping(p["hostPort"], p["containerPort"], p["protocol"], p.get("hostIP", ""))
                 for p in record.get("ports") or [])


def load_record(path: str) -> dict[str, Any] | None:
    try:
        with open(path) as f:
            doc = json.loads(f.read())
        return doc if isinstance(doc, dict) else None
    except (FileNotFoundError, ValueError):
        return None


def add(env: Env, conf: NetConf, early: tuple[int, insidens.Helper] | None = None) -> dict[str, Any]:
    """`early`: the netns, open, and its helper, started before the config was parsed (dispatch),
    who closes them."""
    from pyruntime.dockee.network import bridge, cniconf, insidens, ipam

    mark("imports: netlink, ipam")
    path = record_path(conf.data_dir, conf.name, env.container_id, env.ifname)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
    except FileExistsError:
        raise CNIError(E_ATTACHED, f"container {env.container_id} already has {env.ifname} on network {conf.name}")
    record: dict[str, Any] = {
        "containerId": env.container_id, "ifname": env.ifname, "network": conf.name, "dataDir": conf.data_dir,
        "bridge": conf.bridge, "subnet": str(conf.range.subnet), "table": conf.nft_table, "ip": None,
        "hostVeth": cniconf.host_veth_name(env.container_id, env.ifname), "netns": env.netns,
        "ports": [{"hostPort": m.host_port, "containerPort": m.container_port, "protocol": m.protocol,
                   "hostIP": m.host_ip} for m in conf.port_mappings],
        "attached": True,
    }
    _write_json(path, record)
    netns_fd = -1
    helper: insidens.Helper | None = None
    try:
        if early is not None:  # the caller closes them
            netns_fd, helper = early
        else:
            netns_fd = bridge.open_netns(env.netns)
            helper = insidens.Helper(netns_fd)  # its interpreter starts while we go on
            mark("helper in the netns started")
        pool = ipam.Pool(conf.data_dir, conf.name, conf.range)
        ip = pool.allocate(env.container_id, env.ifname, conf.fixed_ip)
        record["ip"] = str(ip)
        _write_json(path, record)
        mark("ipam: record, lock, allocate")
        if conf.port_mappings:
            from pyruntime.dockee.network import nat  # subprocess and nft: only where needed

            nat.check_free(conf.port_mappings)
        ipr = bridge.iproute()
        try:
            gw = conf.range.prefixed(conf.range.gateway) if conf.is_gateway else None
            br = bridge.ensure_bridge(ipr, conf.bridge, conf.mtu, gw)
            mark("netlink: bridge")
            hairpin = conf.hairpin_mode or bool(conf.port_mappings)
            host = bridge.add_veth(ipr, record["hostVeth"], netns_fd, env.ifname, br["index"], conf.mtu, hairpin,
                                   str(ip))
            mark("netlink: veth pair")
            helper.send(env.ifname, *bridge.container_args(conf.range.prefixed(ip), cniconf.container_routes(conf),
                                                           str(conf.range.gateway)))
            if conf.is_gateway:
                bridge.set_sysctl("/proc/sys/net/ipv4/ip_forward", "1")
            if conf.port_mappings:
                bridge.set_sysctl(f"/proc/sys/net/ipv4/conf/{conf.bridge}/route_localnet", "1")
            mark("sysctl")
            if conf.port_mappings or conf.ip_masq:
                from pyruntime.dockee.network import nat

                nat.publish(conf.nft_table, str(conf.range.subnet), conf.bridge, conf.ip_masq, str(ip),
                            conf.port_mappings, os.path.join(conf.data_dir, conf.name, f"nft.{conf.nft_table}"))
            mark("nft")
            cmac = helper.result()
            mark("netlink: container side (wait for the helper)")
            bridge.wait_oper_up(ipr, host["index"])
            br = bridge.lookup(ipr, conf.bridge) or br
            mark("netlink: wait for the port, bridge MAC")
            result = cniconf.build_result(
                conf, bridge_mac=br["mac"], host_veth=record["hostVeth"],
                host_mac=host["mac"], ifname=env.ifname, container_mac=cmac,
                sandbox=env.netns, ip=ip)
        finally:
            ipr.close()
        record["result"] = result
        _write_json(path, record)
        mark("result, record")
        return result
    except BaseException:
        try:
            teardown(record, path, release_ip=True)
        except Exception:
            pass  # the original error is the one to report; DEL can finish the job
        raise
    finally:
        if helper is not None:
            helper.close()
        if netns_fd >= 0 and early is None:
            os.close(netns_fd)


def teardown(record: dict[str, Any], path: str, release_ip: bool) -> None:
    """Undo an ADD from its record; idempotent.  release_ip=False keeps the address (a dockee
    container restarted without its poststop: its next ADD asks for it again)."""
    ip = record.get("ip")
    ports = _mappings(record)
    first: BaseException | None = None

    def step(fn: Any, *args: Any) -> None:
        # every step runs even when an earlier one failed; the first failure is reported
        nonlocal first
        try:
            fn(*args)
        except Exception as e:
            first = first or e

    if ip and ports:
        from pyruntime.dockee.network import nat

        step(nat.unpublish, record["table"], ip, ports)
        mark("nft")
    # a veth dies with its netns: after a container's exit there is nothing to delete, and
    # no reason to pay for loading netlink
    if os.path.exists(f"/sys/class/net/{record['hostVeth']}"):
        step(_delete_veth, record["hostVeth"])
    mark("netlink: delete the veth")
    if first is not None:
        raise first  # keep the record (and the address): a later DEL finds what is left
    if release_ip:
        from pyruntime.dockee.network import ipam

        ipam.Pool(record["dataDir"], record["network"], None).release(record["containerId"], record["ifname"], ip)
        # the record itself, and a temp file of a write that a kill interrupted
        folder, name = os.path.split(path)
        try:
            temps = [os.path.join(folder, f) for f in os.listdir(folder)
                     if f.startswith(name + ".") and f.endswith(".tmp")]
        except FileNotFoundError:
            temps = []
        for leftover in [path, *temps]:
            try:
                os.unlink(leftover)
            except FileNotFoundError:
                pass
        mark("ipam: release, record")
    else:
        record["attached"] = False
        record.pop("result", None)
        _write_json(path, record)


def _delete_veth(name: str) -> None:
    from pyruntime.dockee.network.rtnl import NetlinkError, Rtnl

    try:
        with Rtnl() as r:
            r.del_link(name)  # its peer in the netns goes with it
    except NetlinkError as e:
        raise CNIError(E_PLUGIN, f"could not delete {name}: {e.strerror}")


def delete(env: Env, raw: bytes) -> None:
    """DEL from the attachment record; only without one (ADD never got far, or another plugin made
    it) is the whole config parsed, to clean what our names point at."""
    head = parse_head(raw)
    path = record_path(data_dir(head), head["name"], env.container_id, env.ifname)
    record = load_record(path)
    mark("config head, record")
    if record is None:
        from pyruntime.dockee.network import cniconf, ipam

        conf = cniconf.parse_config(raw, env)
        found = ipam.Pool(conf.data_dir, conf.name, conf.range).find(env.container_id, env.ifname)
        record = {"containerId": env.container_id, "ifname": env.ifname, "network": conf.name,
                  "dataDir": conf.data_dir, "table": conf.nft_table, "ip": str(found) if found else None,
                  "hostVeth": cniconf.host_veth_name(env.container_id, env.ifname),
                  "ports": [{"hostPort": m.host_port, "containerPort": m.container_port,
                             "protocol": m.protocol, "hostIP": m.host_ip} for m in conf.port_mappings]}
    teardown(record, path, release_ip=True)


def check(env: Env, conf: NetConf) -> None:
    from pyruntime.dockee.network import bridge, cniconf, ipam, nat

    if cniconf.version_tuple(conf.cni_version) < CHECK_MIN:
        raise CNIError(E_VERSION, f"CHECK is not defined for cniVersion {conf.cni_version}")
    if conf.prev_result is None:
        raise CNIError(E_CONFIG, "CHECK needs prevResult")
    want = cniconf.result_address(conf.prev_result, env.ifname)
    if want is None:
        raise CNIError(E_CONFIG, f"prevResult has no IPv4 address for {env.ifname}")
    ip, plen = want
    record = load_record(record_path(conf.data_dir, conf.name, env.container_id, env.ifname))
    if record is None or not record.get("attached"):
        raise CNIError(E_UNKNOWN_CONTAINER, f"container {env.container_id} is not attached to {conf.name}")
    if ipam.Pool(conf.data_dir, conf.name, conf.range).owner(ip) != (env.container_id, env.ifname):
        raise CNIError(E_PLUGIN, f"IP {ip} is not allocated to container {env.container_id}")
    ipr = bridge.iproute()
    try:
        br = bridge.lookup(ipr, conf.bridge)
        if br is None or not br["flags"] & 1:
            raise CNIError(E_PLUGIN, f"bridge {conf.bridge} is missing or down")
        host = bridge.lookup(ipr, record["hostVeth"])
        if host is None or host["master"] != br["index"]:
            raise CNIError(E_PLUGIN, f"{record['hostVeth']} is missing or not on bridge {conf.bridge}")
    finally:
        ipr.close()
    fd = bridge.open_netns(env.netns)
    try:
        state = bridge.container_state(fd, env.ifname)
    finally:
        os.close(fd)
    if state is None or not state["up"]:
        raise CNIError(E_PLUGIN, f"{env.ifname} is missing or down in {env.netns}")
    if f"{ip}/{plen}" not in state["addrs"]:
        raise CNIError(E_PLUGIN, f"{env.ifname} lacks {ip}/{plen} (has {', '.join(state['addrs']) or 'none'})")
    for r in cniconf.container_routes(conf):
        if not any(dst == str(r.dst) for dst, _gw in state["routes"]):
            raise CNIError(E_PLUGIN, f"route to {r.dst} is missing in the container")
    if conf.port_mappings:
        current = nat.published(conf.nft_table)
        for m in conf.port_mappings:
            if current.get((m.protocol, m.host_ip, m.host_port)) != (str(ip), m.container_port):
                raise CNIError(E_PLUGIN, f"port mapping {m.describe()} -> {ip}:{m.container_port} is missing")


def status(conf: NetConf) -> None:
    from pyruntime.dockee.network.nat import nft_binary

    if not os.path.isabs(nft_binary()):
        raise CNIError(E_UNAVAILABLE, "nft is not installed")
    try:
        os.makedirs(os.path.join(conf.data_dir, conf.name), exist_ok=True)
    except OSError as e:
        raise CNIError(E_UNAVAILABLE, f"IPAM directory {conf.data_dir}: {e.strerror}")


def version(raw: bytes) -> dict[str, Any]:
    return {"cniVersion": config_version(raw), "supportedVersions": list(SUPPORTED_VERSIONS)}


def dispatch(env: Env, raw: bytes) -> dict[str, Any] | None:
    if env.command == "VERSION":
        return version(raw)
    if env.command == "DEL":
        delete(env, raw)
        return None
    early = _early_helper(env) if env.command == "ADD" else None
    try:
        from pyruntime.dockee.network import cniconf

        mark("imports: config")
        conf = cniconf.parse_config(raw, env)
        mark("config")
        if env.command == "ADD":
            return add(env, conf, early)
    finally:
        if early is not None:
            early[1].close()
            os.close(early[0])
    if env.command == "CHECK":
        check(env, conf)
        return None
    if env.command == "STATUS":
        status(conf)
        return None
    raise CNIError(E_ENV, f"CNI_COMMAND {env.command!r} is not ADD, DEL, CHECK, VERSION or STATUS")


def _early_helper(env: Env) -> tuple[int, insidens.Helper] | None:
    """The netns helper of an ADD, started before the config is parsed: its interpreter's start
    overlaps all of ADD's host-side work.  None when the netns does not open (add() reports that)."""
    from pyruntime.dockee.network import insidens

    try:
        fd = os.open(env.netns, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        helper = insidens.Helper(fd)
    except BaseException:
        os.close(fd)
        raise
    mark("helper in the netns started")
    return fd, helper


def oci_hook(argv: list[str]) -> int:
    """createRuntime (`add FILE`) and poststop (`del FILE`) hook of a dockee container."""
    from pyruntime.dockee.network import cniconf

    if len(argv) != 2 or argv[0] not in ("add", "del"):
        print("usage: dockee-cni-bridge oci-hook add|del FILE (OCI state on stdin)", file=sys.stderr)
        return 2
    verb, plan_path = argv
    try:
        with open(plan_path) as f:
            plan = json.loads(f.read())
        state = json.loads(sys.stdin.read() or "{}")
        raw = json.dumps(plan["config"]).encode()
        cid, ifname = plan["containerId"], plan.get("ifname", "eth0")
        conf = cniconf.parse_config(raw)
        path = record_path(conf.data_dir, conf.name, cid, ifname)
        record = load_record(path)
        if record is not None and "hostVeth" in record:
            # poststop frees the address, as docker and podman do at a stop (dockee's start takes one
            # again); at `add` a record is a restart, or a stop that ran no poststop
            teardown(record, path, release_ip=verb == "del")
        if verb == "del":
            if plan.get("resultPath"):
                try:
                    os.unlink(plan["resultPath"])
                except FileNotFoundError:
                    pass
            return 0
        pid = int(state.get("pid") or 0)
        if pid <= 0:
            raise CNIError(E_ENV, "the OCI state on stdin has no pid")
        netns = f"/proc/{pid}/ns/net"
        if os.stat(netns).st_ino == os.stat("/proc/self/ns/net").st_ino:
            raise CNIError(E_ENV, "the container shares the host's network namespace")
        if record is not None:
            os.unlink(path)  # kept only for its address, which conf asks for again
        result = add(cniconf.Env("ADD", cid, netns, ifname, {}, ""), conf)
        if plan.get("resultPath"):
            _write_json(plan["resultPath"], result)
        return 0
    except CNIError as e:
        print(f"dockee-cni-bridge: {e.msg}", file=sys.stderr)
        return 1
    except (OSError, ValueError, KeyError) as e:
        print(f"dockee-cni-bridge: oci-hook {verb} {plan_path}: {e}", file=sys.stderr)
        return 1


def main(argv: list[str] | None = None) -> None:
    """The process's entry point.  It ends with os._exit once the output is flushed: the interpreter's
    orderly teardown (finalizing every module and object) costs more than a whole DEL."""
    mark("imports: plugin")
    code = 1
    try:
        _main(argv)
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    finally:
        report()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            code = code or 1  # a result nobody could read is no success
    os._exit(code)


def _main(argv: list[str] | None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if args and args[0] == "oci-hook":
        sys.exit(oci_hook(args[1:]))
    raw = b"" if sys.stdin is None or sys.stdin.isatty() else sys.stdin.buffer.read()
    cni_version = config_version(raw)
    out: dict[str, Any] | None
    try:
        if os.environ.get("CNI_COMMAND") == "VERSION":
            out = version(raw)  # before any other import: callers ask this of every plugin, every time
        else:
            out = dispatch(parse_env(dict(os.environ)), raw)
    except CNIError as e:
        sys.stdout.write(json.dumps(e.to_json(cni_version)) + "\n")
        sys.exit(1)
    except Exception as e:  # a bug or an unexpected kernel answer: still the CNI error shape
        if os.environ.get("DOCKEE_CNI_DEBUG"):
            raise
        sys.stdout.write(json.dumps(CNIError(E_PLUGIN, f"{type(e).__name__}: {e}").to_json(cni_version)) + "\n")
        sys.exit(1)
    if out is not None:
        sys.stdout.write(json.dumps(out) + "\n")
    sys.exit(0)


