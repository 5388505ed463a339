"""Networking through dockee-shim as a user types it (private --root, busybox image):
containers on one network reach each other by IP and by name (also ones started later), the host
reaches them, a published port answers from 127.0.0.1, the bridge address and another container,
`rm` leaves no veth, NAT element or allocation, `network rm` removes the bridge, and the seeds'
demonstration (`network create --driver bridge --subnet ... bridge33`, `run --net bridge33 ip a`)."""

from __future__ import annotations

import json
import os
import shutil
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from dockee_images import busybox_tarball, dockee
from netfix import free_port, free_subnet, link_exists, remove_store_networks, sh

from pyruntime.dockee.network import networks
from pyruntime.dockee.network.cniconf import host_veth_name
from pyruntime.dockee.store import Store


class Env:
    def __init__(self, tmp: Path) -> None:
        self.root = tmp / "store"
        self.tmp = tmp
        self.net = f"n{uuid.uuid4().hex[:8]}"
        self.subnet = free_subnet()

    def __call__(self, *args: str, check: bool = False) -> object:
        return dockee(self.root, *args, check=check, timeout=120)

    def sh(self, *args: str) -> str:
        p = dockee(self.root, *args, timeout=120)
        assert p.returncode == 0, f"dockee-shim {' '.join(args)}: {p.stderr}"
        return p.stdout

    def cleanup(self) -> None:
        ids = dockee(self.root, "ps", "-aq").stdout.split()
        if ids:
            dockee(self.root, "rm", "-f", *ids, timeout=120)
        store = Store(self.root)
        for n in networks.list_all(store):
            dockee(self.root, "network", "rm", n.name)
            if link_exists(n.bridge):
                sh("ip", "link", "del", n.bridge, check=False)
        remove_store_networks(self.root)
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    e = Env(tmp_path)
    try:
        e.sh("import", str(busybox_tarball()), "busybox")
        e.sh("network", "create", "--subnet", str(e.subnet), e.net)
        yield e
    finally:
        e.cleanup()


def get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as r:
        return str(r.read().decode())


def first_get(url: str) -> str:
    """The first request to a server just started: `run -d`/`restart` return before httpd listens
    (refused only: a dead path, e.g. a stale neighbour entry, still times out and fails)."""
    import time

    deadline = time.monotonic() + 10
    while True:
        try:
            return get(url)
        except urllib.error.URLError as e:
            if not isinstance(e.reason, ConnectionRefusedError) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def www(env: Env) -> Path:
    d = env.tmp / "www"
    d.mkdir(exist_ok=True)
    (d / "index.html").write_text("hi\n")
    return d


def test_by_ip_and_name_host_and_published_port(env: Env) -> None:
    hp = free_port()
    gw = str(env.subnet[1])
    web = env.sh("run", "-d", "--name", "web", "--net", env.net, "-p", f"{hp}:80", "-v", f"{www(env)}:/www",
                 "busybox", "httpd", "-f", "-p", "80", "-h", "/www").strip()
    ip = json.loads(env.sh("inspect", web))[0]["NetworkSettings"]["Networks"][env.net]["IPAddress"]
    assert ip == str(env.subnet[2])
    # the host: the container itself, and the published port on 127.0.0.1 and on the bridge address
    assert first_get(f"http://{ip}/") == "hi\n"
    assert get(f"http://127.0.0.1:{hp}/") == "hi\n"
    assert get(f"http://{gw}:{hp}/") == "hi\n"
    # another container: by IP, by name, and through the published port
    out = env.sh("run", "--rm", "--net", env.net, "busybox", "sh", "-c",
                 f"ping -c1 -W2 {ip} >/dev/null && ping -c1 -W2 web >/dev/null && echo pinged && "
                 f"wget -qO- http://web/ && wget -qO- http://{gw}:{hp}/")
    assert out == "pinged\nhi\nhi\n"
    # a container started later is found by one started earlier
    env.sh("run", "-d", "--name", "late", "--net", env.net, "busybox", "sleep", "60")
    assert "pinged" in env.sh("exec", "web", "sh", "-c", "ping -c1 -W2 late >/dev/null && echo pinged")


def test_rm_leaves_no_veth_rule_or_address_and_network_rm_removes_the_bridge(env: Env) -> None:
    hp = free_port()
    cid = env.sh("run", "-d", "--net", env.net, "-p", f"127.0.0.1:{hp}:80", "-v", f"{www(env)}:/www",
                 "busybox", "httpd", "-f", "-p", "80", "-h", "/www").strip()
    store = Store(env.root)
    net = networks.load(store, env.net)
    assert first_get(f"http://127.0.0.1:{hp}/") == "hi\n"
    veth = host_veth_name(cid, "eth0")
    assert link_exists(veth) and link_exists(net.bridge)
    p = dockee(env.root, "network", "rm", env.net)
    assert p.returncode != 0 and "in use" in p.stderr and p.stderr.count("\n") == 1
    env.sh("rm", "-f", cid)
    assert not link_exists(veth)
    assert str(hp) not in sh("nft", "list", "table", "ip", net.table).stdout
    assert [f for f in os.listdir(store.networks / "ipam" / env.net) if f[0].isdigit()] == []
    env.sh("network", "rm", env.net)
    assert not link_exists(net.bridge)


def test_bad_network_input_is_one_line_and_leaves_nothing(env: Env) -> None:
    hp = free_port()
    env.sh("run", "-d", "--name", "a", "--net", env.net, "--ip", str(env.subnet[9]), "-p", f"{hp}:80",
           "busybox", "sleep", "60")
    store = Store(env.root)
    before = allocated(store, env.net)
    bridge = networks.load(store, env.net).bridge
    ports = sorted(os.listdir(f"/sys/class/net/{bridge}/brif"))  # container a's veth only
    for args, needle in ((["--net", "nope"], "network nope not found"),
                         (["--net", env.net, "--ip", str(env.subnet[9])], "already allocated"),
                         (["--net", env.net, "-p", f"{hp}:80"], "already published"),
                         (["--net", env.net, "-p", "80:99999"], "-p")):
        p = dockee(env.root, "run", "--rm", *args, "busybox", "true")
        assert p.returncode != 0 and needle in p.stderr, p.stderr
        assert p.stderr.count("\n") == 1 and "Traceback" not in p.stderr
        assert allocated(store, env.net) == before
    assert sorted(os.listdir(f"/sys/class/net/{bridge}/brif")) == ports
    assert dockee(env.root, "ps", "-aq").stdout.split() == [dockee(env.root, "ps", "-q").stdout.split()[0]]


def allocated(store: Store, net: str) -> list[str]:
    return sorted(f for f in os.listdir(store.networks / "ipam" / net) if f[0].isdigit())


def test_seeds_network_demonstration(env: Env) -> None:
    seeds = "192.168.33.0/24"
    import ipaddress

    from netfix import host_routes

    if any(r.overlaps(ipaddress.IPv4Network(seeds)) for r in host_routes()):
        pytest.skip(f"{seeds} is in use on this host")
    p = dockee(env.root, "network", "create", "--driver", "bridge", "--subnet", seeds, "bridge33")
    if p.returncode != 0 and "overlaps the host's route" in p.stderr:
        pytest.skip(f"{seeds} is in use on this host (another test run?)")
    assert p.returncode == 0, p.stderr
    assert "bridge33" in env.sh("network", "list")
    out = env.sh("run", "--image", "busybox", "--net", "bridge33", "ip a")
    assert "inet 192.168.33.2/24" in out and "eth0" in out
    env.sh("rm", "-f", *env.sh("ps", "-aq").split())
    assert env.sh("network", "remove", "bridge33").strip() == "bridge33"


def test_network_nobody_joined_is_removed_in_a_store_whose_table_exists(env: Env) -> None:
    """F24: create -> rm with no container ever attached, after another network made the store's nft
    table (its interval sets answer a missing element with "element does not exist")."""
    env.sh("run", "--rm", "--net", env.net, "busybox", "true")
    table = networks.nft_table(Store(env.root))
    assert sh("nft", "list", "table", "ip", table, check=False).returncode == 0
    other = f"e{uuid.uuid4().hex[:8]}"
    env.sh("network", "create", "--subnet", str(free_subnet()), other)
    assert env.sh("network", "rm", other).strip() == other
    assert other not in env.sh("network", "ls", "-q").split()


def test_a_stopped_container_frees_its_address_and_takes_one_at_start(env: Env) -> None:
    """F11: docker and podman release the address at a stop; a fixed --ip is honoured again at start."""
    tiny = f"t{uuid.uuid4().hex[:8]}"
    import ipaddress

    subnet = ipaddress.IPv4Network(f"{free_subnet().network_address}/29")  # .2-.6 for containers
    env.sh("network", "create", "--subnet", str(subnet), tiny)
    fixed = str(subnet[6])
    env.sh("run", "-d", "--name", "fx", "--net", tiny, "--ip", fixed, "busybox", "sleep", "300")
    for _ in range(5):  # 4 addresses left: only released ones make room for the 5th and 6th
        env.sh("run", "--net", tiny, "busybox", "true")
    env.sh("stop", "-t", "0", "fx")
    assert json.loads(env.sh("network", "inspect", tiny))[0]["Containers"] == {}
    env.sh("start", "fx")
    assert f"inet {fixed}/29" in env.sh("exec", "fx", "ip", "addr", "show", "eth0")
    doc = json.loads(env.sh("network", "inspect", tiny))[0]["Containers"]
    assert [c["IPv4Address"] for c in doc.values()] == [f"{fixed}/29"]


def test_networks_are_isolated_from_each_other_but_published_ports_cross(env: Env) -> None:
    """F13: as docker's isolation chains: no traffic between two networks, a published port still
    answers another network's container (through its gateway, a host address) and the host."""
    other = f"o{uuid.uuid4().hex[:8]}"
    sub2 = free_subnet()
    while sub2 == env.subnet:
        sub2 = free_subnet()
    env.sh("network", "create", "--subnet", str(sub2), other)
    hp = free_port()
    env.sh("run", "-d", "--name", "b", "--net", other, "-p", f"{hp}:80", "-v", f"{www(env)}:/www",
           "busybox", "httpd", "-f", "-p", "80", "-h", "/www")
    b_ip = next(iter(json.loads(env.sh("network", "inspect", other))[0]["Containers"].values()))["IPv4Address"]
    b_ip = b_ip.split("/")[0]
    assert first_get(f"http://127.0.0.1:{hp}/") == "hi\n"
    env.sh("run", "-d", "--name", "a", "--net", env.net, "busybox", "sleep", "300")
    env.sh("run", "-d", "--name", "c", "--net", env.net, "busybox", "sleep", "300")
    assert "1 packets received" in env.sh("exec", "a", "ping", "-c1", "-W2", "c")  # within one network
    p = dockee(env.root, "exec", "a", "ping", "-c1", "-W2", b_ip)
    assert p.returncode != 0 and "0 packets received" in p.stdout, p.stdout
    p = dockee(env.root, "exec", "a", "sh", "-c", f"echo x | nc -w 2 {b_ip} 80 && echo connected")
    assert "connected" not in p.stdout
    assert env.sh("exec", "a", "wget", "-qO-", f"http://{env.subnet[1]}:{hp}/") == "hi\n"


def test_networks_created_without_subnet_in_two_stores_never_share_one(env: Env) -> None:
    """F45: the free /24 is chosen against the host's routes, and `network create` makes the bridge
    (with its address: its route) at once, so another store's next create sees it taken."""
    root2 = env.tmp / "store2"
    a, b = f"a{uuid.uuid4().hex[:8]}", f"b{uuid.uuid4().hex[:8]}"
    try:
        env.sh("network", "create", a)
        p = dockee(root2, "network", "create", b)
        assert p.returncode == 0, p.stderr
        na, nb = networks.load(Store(env.root), a), networks.load(Store(root2), b)
        assert not na.net.overlaps(nb.net)
        assert link_exists(na.bridge) and link_exists(nb.bridge)
        assert f"inet {na.gateway}/24" in sh("ip", "-4", "addr", "show", na.bridge).stdout
    finally:
        remove_store_networks(root2)
        shutil.rmtree(root2, ignore_errors=True)


def test_a_restarted_container_keeps_its_mac_so_its_published_port_answers_at_once(env: Env) -> None:
    """F31: the MAC follows the IP (docker's 02:42:<ip>), so the host's neighbour entry of the
    address stays right across a restart (a new random MAC left the port dead ~25 s)."""
    hp = free_port()
    env.sh("run", "-d", "--name", "web", "--net", env.net, "-p", f"{hp}:80", "-v", f"{www(env)}:/www",
           "busybox", "httpd", "-f", "-p", "80", "-h", "/www")
    assert first_get(f"http://127.0.0.1:{hp}/") == "hi\n"
    env.sh("restart", "-t", "1", "web")
    assert first_get(f"http://127.0.0.1:{hp}/") == "hi\n"
    out = env.sh("exec", "web", "ip", "-o", "link", "show", "eth0") + env.sh("exec", "web", "ip", "-4", "-o",
                                                                             "addr", "show", "eth0")
    ip = out.split(" inet ")[1].split("/")[0]
    assert "link/ether 02:42:" + ":".join(f"{int(b):02x}" for b in ip.split(".")) in out


def test_a_start_whose_host_port_was_taken_claims_no_address(env: Env) -> None:
    """F42, F41: its host port was published by another container meanwhile: the start is refused in
    one line, the container keeps its exit status, holds no address, and neither `inspect` nor
    `network inspect` shows one."""
    hp = free_port()
    env.sh("run", "-d", "--name", "web", "--net", env.net, "-p", f"{hp}:80", "busybox", "sleep", "300")
    env.sh("stop", "-t", "0", "web")
    code = json.loads(env.sh("inspect", "web"))[0]["State"]["ExitCode"]
    env.sh("run", "-d", "--name", "web9", "--net", env.net, "-p", f"{hp}:80", "busybox", "sleep", "300")
    p = dockee(env.root, "start", "web")
    assert p.returncode != 0 and "already published" in p.stderr and p.stderr.count("\n") == 1, p.stderr
    assert json.loads(env.sh("inspect", "web"))[0]["State"]["ExitCode"] == code
    doc = json.loads(env.sh("network", "inspect", env.net))[0]["Containers"]
    assert [c["Name"] for c in doc.values()] == ["web9"]
    web9_ip = next(iter(doc.values()))["IPv4Address"].split("/")[0]
    assert allocated(Store(env.root), env.net) == [web9_ip]
    assert json.loads(env.sh("inspect", "web"))[0]["NetworkSettings"]["IPAddress"] == ""
