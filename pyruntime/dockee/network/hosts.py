"""Names on a network: each container's /etc/hosts and /etc/resolv.conf.

Every container gets its own hosts file (its own names, --add-host entries, and every member of its
network), bind-mounted at /etc/hosts.  When a container joins or leaves, all members' files are
rewritten *in place*: a bind mount pins the inode, so a rename would leave running containers with
the old file and they would never find containers started later.
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path

from pyruntime.dockee.errors import DockeeError

BASE = """127.0.0.1\tlocalhost
::1\tlocalhost ip6-localhost ip6-loopback
fe00::0\tip6-localnet
ff00::0\tip6-mcastprefix
ff02::1\tip6-allnodes
ff02::2\tip6-allrouters
"""


def parse_add_host(spec: str) -> tuple[str, str]:
    """--add-host NAME:IP (docker) or NAME=IP; the IP may be IPv6."""
    for sep in ("=", ":"):
        name, found, ip = spec.partition(sep)
        if found and name and ip:
            try:
                ipaddress.ip_address(ip.strip("[]"))
            except ValueError:
                continue
            return name, ip.strip("[]")
    raise DockeeError(f"--add-host {spec!r} is not NAME:IP")


def render(own_ip: str | None, own_names: list[str], peers: list[tuple[str, list[str]]],
           add_hosts: list[tuple[str, str]]) -> str:
    lines = [BASE.rstrip("\n")]
    for name, ip in add_hosts:
        lines.append(f"{ip}\t{name}")
    if own_ip and own_names:
        lines.append(f"{own_ip}\t{' '.join(own_names)}")
    for ip, names in sorted(peers, key=lambda p: ipaddress.ip_address(p[0])):
        if names:
            lines.append(f"{ip}\t{' '.join(names)}")
    return "\n".join(lines) + "\n"


def write_in_place(path: Path, text: str) -> None:
    """Same inode, new content (see the module's docstring)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        data = text.encode()
        os.pwrite(fd, data, 0)
        os.ftruncate(fd, len(data))
    finally:
        os.close(fd)


def resolv_conf(host_file: str = "/etc/resolv.conf") -> str:
    """The host's resolver config without loopback nameservers, which mean nothing in a netns."""
    try:
        text = Path(host_file).read_text()
    except OSError:
        return ""
    out = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 2 and fields[0] == "nameserver":
            try:
                if ipaddress.ip_address(fields[1].split("%")[0]).is_loopback:
                    continue
            except ValueError:
                continue
        out.append(line)
    return "\n".join(out) + "\n" if out else ""
