"""Helpers of the network tests: unique names and subnets, a CNI caller, netns, a TCP echo server.

Every name a test makes is registered in `NetEnv` and removed at teardown (links, netns, nft tables,
IPAM dirs, processes), also when the test fails.  Traffic goes only to 127.0.0.1 and to addresses of
bridges and namespaces the test made.
"""

from __future__ import annotations

import ipaddress
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent


def _plugin() -> str:
    """The venv's launcher; under `make mutation` (a copy without .venv) one for the copy: the venv's
    launcher runs -IS with this checkout's path built in, so PYTHONPATH cannot point it elsewhere."""
    own = REPO / ".venv" / "bin" / "dockee-cni-bridge"
    if own.exists():
        return str(own)
    import sysconfig

    launcher = REPO / ".mutation-bin" / "dockee-cni-bridge"
    if not launcher.exists():
        launcher.parent.mkdir(exist_ok=True)
        paths = [str(REPO), sysconfig.get_paths()["purelib"]]
        tmp = launcher.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(f"#!{sys.executable} -IS\nimport sys\nsys.path[0:0] = {paths!r}\n"
                       "from pyruntime.dockee.network.plugin import main\nmain()\n")
        tmp.chmod(0o755)
        os.replace(tmp, launcher)
    return str(launcher)


PLUGIN = _plugin()
PY = sys.executable
REF_DIR = "/usr/lib/cni"

ECHO_SERVER = r"""
import socket, sys, os
proto = sys.argv[2] if len(sys.argv) > 2 else "tcp"
if proto == "udp":
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("0.0.0.0", int(sys.argv[1])))
    print("ready", flush=True)
    while True:
        d, a = s.recvfrom(100)
        s.sendto(d + (" from %s" % a[0]).encode(), a)
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", int(sys.argv[1])))
s.listen(16)
print("ready", flush=True)
while True:
    c, a = s.accept()
    d = c.recv(100)
    c.sendall(d + (" from %s" % a[0]).encode())
    c.close()
"""

CLIENT = r"""
import socket, sys
h, p = sys.argv[1], int(sys.argv[2])
s = socket.create_connection((h, p), timeout=float(sys.argv[4]) if len(sys.argv) > 4 else 5)
s.sendall(sys.argv[3].encode())
print(s.recv(200).decode())
"""


def host_routes() -> list[ipaddress.IPv4Network]:
    out = []
    with open("/proc/net/route") as f:
        next(f)
        for line in f:
            fields = line.split()
            dst = ipaddress.IPv4Address(bytes.fromhex(fields[1])[::-1])
            mask = ipaddress.IPv4Address(bytes.fromhex(fields[7])[::-1])
            if int(mask):
                out.append(ipaddress.IPv4Network(f"{dst}/{mask}", strict=False))
    return out


def free_subnet() -> ipaddress.IPv4Network:
    """A random 10.x.y.0/24 that no route of the host touches."""
    taken = host_routes()
    for _ in range(200):
        net = ipaddress.IPv4Network(f"10.{random.randint(100, 250)}.{random.randint(0, 255)}.0/24")
        if not any(net.overlaps(t) for t in taken):
            return net
    raise RuntimeError("no free 10.x.y.0/24")


def free_port(proto: str = "tcp") -> int:
    for _ in range(100):
        port = random.randint(20000, 32000)  # below the ephemeral range (32768-), which clients take
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM) as s:
            try:
                s.bind(("0.0.0.0", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port")


def sh(*args: str, check: bool = True, **kw: Any) -> subprocess.CompletedProcess[str]:
    p = subprocess.run(list(args), capture_output=True, text=True, timeout=60, **kw)
    if check and p.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed ({p.returncode}): {p.stderr}")
    return p


def link_exists(name: str) -> bool:
    return os.path.exists(f"/sys/class/net/{name}")


def ns_json(ns: str, *args: str) -> Any:
    return json.loads(sh("ip", "-n", ns, "-j", *args).stdout or "[]")


class NetEnv:
    """Names and cleanup of one test."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.tag = uuid.uuid4().hex[:8]
        self.bridge = f"dk{self.tag}"
        self.table = f"dkt{self.tag}"
        self.network = f"dkn{self.tag}"
        self.subnet = free_subnet()
        self.gateway = self.subnet.network_address + 1
        self.data_dir = tmp / "ipam"
        self.netns: list[str] = []
        self.links: list[str] = [self.bridge]
        self.tables: list[str] = [self.table]
        self.procs: list[subprocess.Popen[str]] = []

    def add_netns(self) -> str:
        name = f"dkns{uuid.uuid4().hex[:8]}"
        sh("ip", "netns", "add", name)
        self.netns.append(name)
        return name

    def conf(self, version: str = "1.0.0", **extra: Any) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "cniVersion": version, "name": self.network, "type": "dockee-cni-bridge", "bridge": self.bridge,
            "isGateway": True, "isDefaultGateway": True, "ipMasq": True, "nftTable": self.table,
            "ipam": {"type": "host-local", "subnet": str(self.subnet), "dataDir": str(self.data_dir)},
        }
        doc.update(extra)
        return doc

    def cni(self, command: str, conf: dict[str, Any] | None, netns: str = "", cid: str = "c1",
            ifname: str = "eth0", plugin: str = PLUGIN, args: str = "") -> tuple[int, Any, str]:
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "CNI_COMMAND": command, "CNI_CONTAINERID": cid,
               "PYTHONPATH": os.environ.get("PYTHONPATH", ""),  # `make mutation` runs a mutated copy
               "CNI_NETNS": f"/var/run/netns/{netns}" if netns and not netns.startswith("/") else netns,
               "CNI_IFNAME": ifname, "CNI_PATH": REF_DIR, "CNI_ARGS": args}
        p = subprocess.run([plugin], input=json.dumps(conf) if conf is not None else "", env=env,
                           capture_output=True, text=True, timeout=60)
        out = json.loads(p.stdout) if p.stdout.strip() else None
        return p.returncode, out, p.stderr

    def serve(self, netns: str | None, port: int, proto: str = "tcp") -> None:
        cmd = [PY, "-c", ECHO_SERVER, str(port), proto]
        if netns:
            cmd = ["ip", "netns", "exec", netns, *cmd]
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
        self.procs.append(p)
        assert p.stdout is not None and p.stdout.readline().strip() == "ready"

    def talk(self, netns: str | None, host: str, port: int, msg: str = "hello", timeout: float = 5) -> str:
        cmd = [PY, "-c", CLIENT, host, str(port), msg, str(timeout)]
        if netns:
            cmd = ["ip", "netns", "exec", netns, *cmd]
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout + 10)
        if p.returncode != 0:
            return "FAILED: " + (p.stderr.strip().splitlines() or ["?"])[-1]
        return p.stdout.strip()

    def nft_table_text(self, table: str | None = None) -> str:
        return sh("nft", "list", "table", "ip", table or self.table, check=False).stdout

    def cleanup(self) -> None:
        for p in self.procs:
            p.kill()
            p.wait()
        for ns in self.netns:
            sh("ip", "netns", "del", ns, check=False)
        for link in self.links:
            if link_exists(link):
                sh("ip", "link", "del", link, check=False)
        for t in self.tables:
            sh("nft", "delete", "table", "ip", t, check=False)
        shutil.rmtree(self.data_dir, ignore_errors=True)


def wait_for(pred: Any, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.05)
    return bool(pred())


def remove_store_networks(root: Path) -> list[str]:
    """At a test's end, every network of the dockee store `root` (records, bridges, its nft table),
    also when `network rm` fails or a record is gone: deleting the store alone leaves them on the
    host for good.  Returns what it had to remove by force (a test can assert it is empty)."""
    from pyruntime.dockee.errors import DockeeError
    from pyruntime.dockee.network import networks
    from pyruntime.dockee.store import Store

    store = Store(root)
    forced = []
    for n in networks.list_all(store):
        try:
            networks.remove(store, n.name)
        except DockeeError:
            forced.append(n.name)
        if link_exists(n.bridge):
            sh("ip", "link", "del", n.bridge, check=False)
    real = os.path.realpath(root)
    for link in os.listdir("/sys/class/net"):
        owner = networks.bridge_owner(link)
        if owner is not None and owner[0] == real:
            forced.append(link)
            sh("ip", "link", "del", link, check=False)
    if sh("nft", "list", "table", "ip", networks.nft_table(store), check=False).returncode == 0:
        forced.append(networks.nft_table(store))
        sh("nft", "delete", "table", "ip", networks.nft_table(store), check=False)
    return forced
