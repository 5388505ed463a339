#!/usr/bin/env python3
"""Network benchmark (root): dockee-cni-bridge against the reference plugins, in the same run.

1. ADD and DEL time per container: ours vs /usr/lib/cni/bridge + host-local, same config, each on
   a fresh `ip netns add` namespace (median of --iterations), with where our time goes (the
   plugin's DOCKEE_CNI_TIMING marks: interpreter start, imports, config, IPAM, netlink, nft...);
   then ours with ipMasq and a published port (what `dockee run -p` asks), which needs nft.
2. TCP throughput with iperf3: container <-> container over our bridge, and through a published
   port (DNAT), against a plain veth pair between two namespaces (the ceiling); ratios printed.

Traffic stays between namespaces this script made.  Everything it made is removed at the end.

    .venv/bin/python scripts/bench_network.py [--iterations 20] [--seconds 3] [--rounds 3]
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
OURS = str(REPO / ".venv" / "bin" / "dockee-cni-bridge")
REF = "/usr/lib/cni/bridge"


def sh(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    p = subprocess.run(list(args), capture_output=True, text=True, timeout=120)
    if check and p.returncode != 0:
        raise SystemExit(f"{' '.join(args)}: {p.stderr.strip()}")
    return p


def free_subnet() -> ipaddress.IPv4Network:
    """A random 10.x.y.0/24 that no route of the host touches."""
    taken = []
    with open("/proc/net/route") as f:
        next(f)
        for line in f:
            fields = line.split()
            dst = ipaddress.IPv4Address(bytes.fromhex(fields[1])[::-1])
            mask = ipaddress.IPv4Address(bytes.fromhex(fields[7])[::-1])
            if int(mask):
                taken.append(ipaddress.IPv4Network(f"{dst}/{mask}", strict=False))
    while True:
        net = ipaddress.IPv4Network(f"10.{random.randint(100, 250)}.{random.randint(0, 255)}.0/24")
        if not any(net.overlaps(t) for t in taken):
            return net


def breakdown(stderr: str, spawn: float, end: float) -> list[tuple[str, float]]:
    """(step, ms) from the plugin's `dockee-cni-timing [[name, t], ...]` line: the time before its
    first mark is the interpreter's start (exec, launcher), after its last one the process's exit."""
    line = next((ln for ln in stderr.splitlines() if ln.startswith("dockee-cni-timing ")), None)
    if line is None:
        return []
    marks = json.loads(line.split(" ", 1)[1])
    out = [("interpreter start", (marks[0][1] - spawn) * 1000)]
    out += [(name if name != "exit" else "output", (t - prev) * 1000)
            for (_, prev), (name, t) in zip(marks, marks[1:], strict=False)]
    out.append(("process exit", (end - marks[-1][1]) * 1000))
    return out


class Bench:
    def __init__(self) -> None:
        tag = uuid.uuid4().hex[:6]
        self.tag = tag
        self.tmp = Path(tempfile.mkdtemp(prefix="dk-bench-net-"))
        self.netns: list[str] = []
        self.links: list[str] = []
        self.tables: list[str] = []
        self.procs: list[subprocess.Popen[str]] = []

    def ns(self) -> str:
        name = f"dkb{uuid.uuid4().hex[:8]}"
        sh("ip", "netns", "add", name)
        self.netns.append(name)
        return name

    def conf(self, bridge: str, subnet: ipaddress.IPv4Network, label: str, **extra: object) -> dict[str, object]:
        table = f"dkb{self.tag}"
        if table not in self.tables:
            self.tables.append(table)
        if bridge not in self.links:
            self.links.append(bridge)
        doc: dict[str, object] = {
            "cniVersion": "1.0.0", "name": f"bench{self.tag}", "type": "bridge", "bridge": bridge,
            "isGateway": True, "isDefaultGateway": True, "nftTable": table,
            "ipam": {"type": "host-local", "subnet": str(subnet), "dataDir": str(self.tmp / label)}}
        doc.update(extra)
        return doc

    def cni(self, plugin: str, command: str, conf: dict[str, object], ns: str, cid: str,
            steps: dict[str, list[float]] | None = None) -> tuple[float, dict]:
        env = {"PATH": os.environ["PATH"], "CNI_COMMAND": command, "CNI_CONTAINERID": cid,
               "CNI_NETNS": f"/var/run/netns/{ns}", "CNI_IFNAME": "eth0", "CNI_PATH": "/usr/lib/cni"}
        if steps is not None:
            env["DOCKEE_CNI_TIMING"] = "1"
        t0 = time.perf_counter()
        spawn = time.monotonic()  # CLOCK_MONOTONIC, the clock of the plugin's marks
        p = subprocess.run([plugin], input=json.dumps(conf), env=env, capture_output=True, text=True, timeout=60)
        end = time.monotonic()
        dt = time.perf_counter() - t0
        if p.returncode != 0:
            raise SystemExit(f"{plugin} {command}: {p.stdout.strip()} {p.stderr.strip()}")
        if steps is not None:
            for name, ms in breakdown(p.stderr, spawn, end):
                steps.setdefault(name, []).append(ms)
        return dt, (json.loads(p.stdout) if p.stdout.strip() else {})

    def add_del(self, iterations: int) -> None:
        print(f"== CNI ADD/DEL per container (median of {iterations}; fresh netns each; the cases interleaved, "
              "so that they share the machine's load)")
        ports = {"portMappings": [{"hostPort": random.randint(40001, 50000), "containerPort": 80, "protocol": "tcp"}]}
        cases = (("reference bridge+host-local", REF, {}), ("dockee-cni-bridge", OURS, {}),
                 ("ours, ipMasq and -p", OURS, {"ipMasq": True, "runtimeConfig": ports}))
        confs = [self.conf(f"dkb{self.tag}{n}", free_subnet(), f"c{n}", **extra)
                 for n, (_, _, extra) in enumerate(cases)]
        times: list[tuple[list[float], list[float]]] = [([], []) for _ in cases]
        steps: list[dict[str, dict[str, list[float]]]] = [{"ADD": {}, "DEL": {}} for _ in cases]
        for i in range(iterations):
            for n, (_label, plugin, _extra) in enumerate(cases):
                ns = self.ns()
                ours = plugin == OURS
                a, _ = self.cni(plugin, "ADD", confs[n], ns, f"b{i}", steps[n]["ADD"] if ours else None)
                d, _ = self.cni(plugin, "DEL", confs[n], ns, f"b{i}", steps[n]["DEL"] if ours else None)
                times[n][0].append(a)
                times[n][1].append(d)
                sh("ip", "netns", "del", ns)
                self.netns.remove(ns)
        rows = {}
        for n, (label, _plugin, _extra) in enumerate(cases):
            rows[label] = (statistics.median(times[n][0]) * 1000, statistics.median(times[n][1]) * 1000)
            print(f"  {label:30s} ADD {rows[label][0]:7.1f} ms   DEL {rows[label][1]:7.1f} ms   "
                  f"ADD+DEL {sum(rows[label]):7.1f} ms")
            for command, table in steps[n].items():
                for name, values in table.items():
                    print(f"      {command} {name:58s} {statistics.median(values):6.1f} ms")
        ref, ours = rows["reference bridge+host-local"], rows["dockee-cni-bridge"]
        print(f"  ratio ours/reference ADD+DEL: {sum(ours) / sum(ref):.1f}x")

    def iperf(self, server_ns: str, client_ns: str, host: str, port: int, seconds: int) -> float:
        srv = subprocess.Popen(["ip", "netns", "exec", server_ns, "iperf3", "-s", "-1", "-p", "5201"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True)
        self.procs.append(srv)
        time.sleep(0.3)
        out = sh("ip", "netns", "exec", client_ns, "iperf3", "-c", host, "-p", str(port), "-t", str(seconds),
                 "-J").stdout
        srv.wait(timeout=10)
        return float(json.loads(out)["end"]["sum_received"]["bits_per_second"]) / 1e9

    def throughput(self, seconds: int, rounds: int) -> None:
        if rounds <= 0:
            return
        if shutil.which("iperf3") is None:
            print("== iperf3 not installed: throughput skipped")
            return
        print(f"== TCP throughput, iperf3 -t {seconds}, median of {rounds} interleaved rounds (Gbit/s)")
        # the ceiling: a veth pair straight between two namespaces
        a, b = self.ns(), self.ns()
        va, vb = f"dkva{self.tag}", f"dkvb{self.tag}"
        sh("ip", "link", "add", va, "netns", a, "type", "veth", "peer", "name", vb, "netns", b)
        plain_net = free_subnet()
        for ns, dev, ip in ((a, va, plain_net[1]), (b, vb, plain_net[2])):
            sh("ip", "-n", ns, "addr", "add", f"{ip}/24", "dev", dev)
            sh("ip", "-n", ns, "link", "set", dev, "up")
        # our bridge, and a published port
        net = free_subnet()
        hp = random.randint(30000, 40000)
        c, d = self.ns(), self.ns()
        conf_c = self.conf(f"dkb{self.tag}t", net, "tp", ipMasq=True,
                           runtimeConfig={"portMappings": [{"hostPort": hp, "containerPort": 5201, "protocol": "tcp"}]})
        _, res = self.cni(OURS, "ADD", conf_c, c, "srv")
        self.cni(OURS, "ADD", self.conf(f"dkb{self.tag}t", net, "tp", ipMasq=True), d, "cli")
        srv_ip = res["ips"][0]["address"].split("/")[0]
        # interleaved rounds, medians: this machine is shared, one sample says little
        samples: dict[str, list[float]] = {"plain": [], "bridged": [], "published": []}
        for _ in range(rounds):
            samples["plain"].append(self.iperf(a, b, str(plain_net[1]), 5201, seconds))
            samples["bridged"].append(self.iperf(c, d, srv_ip, 5201, seconds))
            samples["published"].append(self.iperf(c, d, str(net[1]), hp, seconds))
        plain, bridged, published = (statistics.median(samples[k]) for k in ("plain", "bridged", "published"))
        print(f"  plain veth pair                 {plain:7.2f}")
        print(f"  container<->container (bridge)  {bridged:7.2f}   ratio {bridged / plain:.2f}")
        print(f"  through a published port       {published:7.2f}   ratio {published / plain:.2f}")
        self.cni(OURS, "DEL", conf_c, c, "srv")
        self.cni(OURS, "DEL", self.conf(f"dkb{self.tag}t", net, "tp"), d, "cli")

    def cleanup(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        for ns in self.netns:
            sh("ip", "netns", "del", ns, check=False)
        for link in self.links:
            sh("ip", "link", "del", link, check=False)
        for t in self.tables:
            sh("nft", "delete", "table", "ip", t, check=False)
        shutil.rmtree(self.tmp, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iterations", type=int, default=20)
    ap.add_argument("--seconds", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench_network: needs root")
    b = Bench()
    try:
        b.add_del(args.iterations)
        b.throughput(args.seconds, args.rounds)
    finally:
        b.cleanup()


if __name__ == "__main__":
    main()
