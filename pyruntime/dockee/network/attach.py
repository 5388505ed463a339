"""How a container joins a dockee network: the contract between dockee-shim's `run` and the network.

`plan_for` is called by `run`/`create` before the bundle is written, for any network other than
"none" and "host".  It returns None while networking is unavailable (the container then gets a
private network namespace with loopback only), or a NetworkPlan whose hooks go into config.json
(createRuntime: ADD through the CNI plugin, poststop: DEL) and whose files are bind-mounted into
the container (/etc/hosts, /etc/resolv.conf).  `release` undoes everything for one container and
is idempotent: `rm -f` calls it whatever state the container is in.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pyruntime.dockee.store import Store

DEFAULT_NETWORK = "dockee0"


@dataclass
class NetworkPlan:
    network: str
    hooks: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # config.json "hooks" entries to add
    mounts: list[dict[str, Any]] = field(default_factory=list)  # config.json "mounts" entries to add
    ip: str | None = None
    ports: list[str] = field(default_factory=list)  # as given to -p, for `ps` and `inspect`


def plan_for(store: Store, container_id: str, name: str, network: str, *, ip: str | None,
             ports: list[str], add_hosts: list[str], hostname: str, bundle: Path) -> NetworkPlan | None:
    """Reserve what the container needs on `network` and say how config.json must join it."""
    return None


def release(store: Store, container_id: str) -> None:
    """Remove the container from its network: addresses, links, NAT rules, host entries."""
