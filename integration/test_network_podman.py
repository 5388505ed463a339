"""podman as a real CNI caller of dockee-cni-bridge.

podman 4.3 runs with network_backend = "cni", a private network_config_dir holding one conflist
that names our plugin, and cni_plugin_dirs = a private directory where the plugin is linked; its
storage and state are private too (see test_podman.py, whose Podman helper this reuses).  The
containers get addresses from our IPAM, reach each other, `-p` works from 127.0.0.1 and through
the bridge, and podman's teardown (rm) leaves no veth, nft element, allocation or CNI cache.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from harness import remove_tool_leftovers
from images import write_layer_tar
from netfix import PLUGIN, NetEnv, free_port, link_exists, sh
from test_podman import CGROUP_PARENT, IMAGE, Podman

RUNC = shutil.which("runc") or "runc"
FLAGS = ["--pull", "never", "--cgroup-parent", f"/{CGROUP_PARENT}",
         "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"]

pytestmark = pytest.mark.skipif(shutil.which("podman") is None or shutil.which("runc") is None,
                                reason="needs podman and runc")


class CNIPodman(Podman):
    def __init__(self, tmp: Path, net: NetEnv) -> None:
        super().__init__(tmp)
        bindir = tmp / "cni-bin"
        bindir.mkdir()
        os.symlink(PLUGIN, bindir / "dockee-cni-bridge")
        (tmp / "net").mkdir()
        conflist = {"cniVersion": "0.4.0", "name": net.network, "plugins": [{
            "type": "dockee-cni-bridge", "bridge": net.bridge, "isGateway": True, "isDefaultGateway": True,
            "ipMasq": True, "hairpinMode": True, "nftTable": net.table,
            "ipam": {"type": "host-local", "ranges": [[{"subnet": str(net.subnet)}]],
                     "routes": [{"dst": "0.0.0.0/0"}], "dataDir": str(net.data_dir)},
            "capabilities": {"portMappings": True, "ips": True}}]}
        (tmp / "net" / f"{net.network}.conflist").write_text(json.dumps(conflist))
        text = self.conf.read_text().replace("[network]\n", "[network]\nnetwork_backend = \"cni\"\n"
                                             f'cni_plugin_dirs = ["{bindir}"]\n')
        self.conf.write_text(text)


@pytest.fixture
def pm(tmp_path: Path) -> Iterator[tuple[CNIPodman, NetEnv]]:
    net = NetEnv(tmp_path)
    tmp = Path(tempfile.mkdtemp(prefix="pyrt-podman-net-"))
    p = CNIPodman(tmp, net)
    problems: list[str] = []
    try:
        layer = write_layer_tar(tmp_path / "busybox-rootfs.tar")
        p(RUNC, "import", "--change", "CMD=sh", str(layer), IMAGE, check=True)
        yield p, net
    finally:
        problems += p.cleanup()
        problems += remove_tool_leftovers(tmp, CGROUP_PARENT)
        net.cleanup()
    assert not problems, problems


def get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as r:
        return str(r.read().decode())


def test_podman_containers_get_addresses_reach_each_other_and_publish(pm: tuple[CNIPodman, NetEnv]) -> None:
    podman, net = pm
    assert net.network in podman(RUNC, "network", "ls", "--format", "{{.Name}}", check=True).stdout.split()
    www = podman.tmp / "www"
    www.mkdir()
    (www / "index.html").write_text("hi\n")
    hp = free_port()
    web = podman(RUNC, "run", "-d", "--network", net.network, *FLAGS, "-p", f"{hp}:80", "-v", f"{www}:/www",
                 IMAGE, "httpd", "-f", "-p", "80", "-h", "/www", check=True).stdout.strip()
    info = podman.inspect(RUNC, web)["NetworkSettings"]["Networks"][net.network]
    ip = info["IPAddress"]
    assert ip == str(net.subnet[2]) and info["Gateway"] == str(net.gateway)
    veths = [i for i in os.listdir("/sys/class/net") if os.path.exists(f"/sys/class/net/{i}/brport")
             and os.path.realpath(f"/sys/class/net/{i}/brport/bridge").endswith(f"/{net.bridge}")]
    assert len(veths) == 1
    # the host: directly, through 127.0.0.1 and the bridge address
    assert get(f"http://{ip}/") == "hi\n"
    assert get(f"http://127.0.0.1:{hp}/") == "hi\n"
    assert get(f"http://{net.gateway}:{hp}/") == "hi\n"
    # another container: by IP, and through the published port
    p = podman(RUNC, "run", "--rm", "--network", net.network, *FLAGS, IMAGE, "sh", "-c",
               f"ip -4 -o addr show eth0; wget -qO- http://{ip}/ && wget -qO- http://{net.gateway}:{hp}/")
    assert p.returncode == 0, p.stderr
    assert f"inet {net.subnet[3]}/24" in p.stdout and p.stdout.count("hi\n") == 2
    # a fixed address through podman's --ip (the `ips` capability)
    p = podman(RUNC, "run", "--rm", "--network", net.network, "--ip", str(net.subnet[99]), *FLAGS, IMAGE,
               "ip", "-4", "-o", "addr", "show", "eth0")
    assert p.returncode == 0 and f"inet {net.subnet[99]}/24" in p.stdout, p.stderr
    # teardown by podman leaves nothing of ours
    podman(RUNC, "rm", "-f", "-t", "0", web, check=True)
    assert not link_exists(veths[0])
    assert f"{hp} :" not in sh("nft", "list", "table", "ip", net.table).stdout
    left = sorted(os.listdir(net.data_dir / net.network))
    assert left == ["attachments", "last_reserved_ip.0", "lock", f"nft.{net.table}"]  # per network, not per container
    assert os.listdir(net.data_dir / net.network / "attachments") == []
    cache = Path("/var/lib/cni/results")
    assert not (cache.is_dir() and any(f.startswith(f"{net.network}-") for f in os.listdir(cache)))
