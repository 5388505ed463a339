"""`dockee-shim network ...`: create, ls/list, rm/remove, inspect, prune (thin: work is in networks.py)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import click

from pyruntime.dockee.errors import DockeeError

if TYPE_CHECKING:
    from pyruntime.dockee.cli import Context


@click.group("network")
def network() -> None:
    """Manage container networks (bridge networks built by the dockee-cni-bridge plugin)."""


@network.command("create")
@click.option("-d", "--driver", default="bridge", show_default=True, help="network driver (bridge)")
@click.option("--subnet", help="IPv4 subnet in CIDR form, e.g. 192.168.33.0/24 (default: a free /24)")
@click.option("--gateway", help="the bridge's address (default: the subnet's first address)")
@click.argument("name")
@click.pass_obj
def create(obj: Context, driver: str, subnet: str | None, gateway: str | None, name: str) -> None:
    """Create a network."""
    from pyruntime.dockee.network import networks

    net = networks.create(obj.store, name, subnet, gateway, driver)
    click.echo(net.id)


@network.command("ls")
@click.option("-q", "--quiet", is_flag=True, help="names only")
@click.pass_obj
def ls(obj: Context, quiet: bool) -> None:
    """List networks (the default network dockee0 is created on first use)."""
    from pyruntime.dockee.network import networks

    store = obj.store
    networks.ensure_default(store)
    nets = networks.list_all(store)
    if quiet:
        for n in nets:
            click.echo(n.name)
        return
    rows = [("NETWORK ID", "NAME", "DRIVER", "SUBNET", "GATEWAY", "BRIDGE", "CONTAINERS")]
    for n in nets:
        rows.append((n.id[:12], n.name, n.driver, n.subnet, n.gateway, n.bridge,
                     str(len(networks.live_members(store, n.name)))))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        click.echo("   ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())


network.add_command(ls, "list")


@network.command("rm")
@click.argument("names", nargs=-1, required=True)
@click.pass_obj
def rm(obj: Context, names: tuple[str, ...]) -> None:
    """Remove networks (refused while a container uses one)."""
    from pyruntime.dockee.network import networks

    failed: list[str] = []
    for name in names:
        try:
            networks.remove(obj.store, name)
            click.echo(name)
        except DockeeError as e:
            if len(names) == 1:
                raise
            click.echo(f"dockee-shim: {e}", err=True)
            failed.append(name)
    if failed:
        raise DockeeError(f"could not remove: {', '.join(failed)}")


network.add_command(rm, "remove")


@network.command("inspect")
@click.argument("names", nargs=-1, required=True)
@click.pass_obj
def inspect(obj: Context, names: tuple[str, ...]) -> None:
    """Show networks as JSON (with their containers and addresses)."""
    from pyruntime.dockee.network import attach, networks

    store = obj.store
    out = []
    for name in names:
        n = networks.get(store, name)
        containers = {}
        for cid, m in networks.live_members(store, name).items():
            if not m.get("ip"):
                continue  # stopped: no address (docker lists only running containers' endpoints)
            info = attach.container_network(store, cid) or {}
            containers[cid] = {"Name": m.get("name"), "IPv4Address": f"{m.get('ip')}/{n.net.prefixlen}",
                               "MacAddress": info.get("mac") or "", "Ports": m.get("ports") or []}
        out.append({"Name": n.name, "Id": n.id, "Created": n.created, "Driver": n.driver,
                    "IPAM": {"Driver": "host-local", "Config": [{"Subnet": n.subnet, "Gateway": n.gateway}]},
                    "Containers": containers,
                    "Options": {"bridge": n.bridge, "nftTable": n.table}})
    click.echo(json.dumps(out, indent=4))


@network.command("prune")
@click.option("-f", "--force", is_flag=True, help="do not ask (there is nothing to ask: kept for docker's scripts)")
@click.pass_obj
def prune(obj: Context, force: bool) -> None:
    """Remove every network without containers, except the default one."""
    from pyruntime.dockee.network import networks

    store = obj.store
    for n in networks.list_all(store):
        if n.name == networks.DEFAULT_NETWORK or networks.live_members(store, n.name):
            continue
        networks.remove(store, n.name)
        click.echo(n.name)
    # what no record names any more: bridges of this store whose record is gone, and everything of
    # stores deleted without `network rm` (their bridges' ifalias names the root, the table follows)
    orphans = networks.orphan_bridges(store)
    gone = networks.gone_stores()
    if orphans or gone:
        from pyruntime.dockee.network import bridge, nat
        from pyruntime.dockee.network.cniconf import CNIError

        try:
            with bridge.iproute() as ipr:
                for name in orphans + [b for bridges in gone.values() for b in bridges]:
                    bridge.delete_link(ipr, name)
            for root in gone:
                nat.delete_table(networks.table_of_root(root))
        except CNIError as e:
            raise DockeeError(f"network prune: {e.msg}")


def register(group: click.Group) -> None:
    """Add this module's verbs to `group`."""
    group.add_command(network)
