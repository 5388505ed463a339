"""nft batches: the table, per-network and per-container elements, error reading; checked with
`nft -c` (a dry run that needs no privileges to parse) when nft is installed."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from pyruntime.dockee.network import nat
from pyruntime.dockee.network.cniconf import PortMapping

M = [PortMapping(8080, 80, "tcp", ""), PortMapping(5353, 53, "udp", "127.0.0.1")]


def test_table_has_the_hooks_and_the_loopback_guard() -> None:
    text = nat.table_setup("dk1")
    assert text.startswith("create table ip dk1\n")
    for needle in ("type nat hook prerouting priority dstnat", "type nat hook output priority -100",
                   "fib daddr type local jump portmap", "type filter hook prerouting priority raw",
                   "iifname @bridges ip daddr 127.0.0.0/8 counter drop",
                   "ct status dnat oifname @bridges ip saddr 127.0.0.0/8 masquerade",
                   "ip saddr @masq oifname != @bridges masquerade",
                   "dnat ip to tcp dport map @ports_tcp", "dnat ip to ip daddr . udp dport map @addrports_udp"):
        assert needle in text


def test_publish_creates_and_unpublish_deletes_by_key() -> None:
    assert nat.publish_batch("dk1", "10.1.1.2", M) == (
        "create element ip dk1 ports_tcp { 8080 : 10.1.1.2 . 80 }\n"
        "create element ip dk1 addrports_udp { 127.0.0.1 . 5353 : 10.1.1.2 . 53 }\n")
    assert nat.unpublish_batch("dk1", M) == (
        "delete element ip dk1 ports_tcp { 8080 }\n"
        "delete element ip dk1 addrports_udp { 127.0.0.1 . 5353 }\n")
    assert nat.publish_batch("dk1", "10.1.1.2", []) == ""


def test_network_elements() -> None:
    assert nat.network_batch("dk1", "10.1.1.0/24", "br1", True) == (
        "add element ip dk1 subnets { 10.1.1.0/24 }\n"
        'add element ip dk1 bridges { "br1" }\n'
        'add element ip dk1 pairs { "br1" . "br1" }\n'
        "add element ip dk1 masq { 10.1.1.0/24 }\n")
    assert "masq" not in nat.network_batch("dk1", "10.1.1.0/24", "br1", False)


def test_nft_errors_are_classified() -> None:
    e = nat.NftError("Error: Could not process rule: File exists\ncreate element ...\n")
    assert e.exists and not e.missing and e.msg == "nft: Could not process rule: File exists"
    assert nat.NftError("Error: No such file or directory\n").missing
    # nft 1.0.6 on an interval set (F24)
    assert nat.NftError("/dev/stdin:1:47-60: Error: element does not exist\n").no_element


@pytest.mark.skipif(shutil.which("nft") is None, reason="nft not installed")
def test_batches_parse_with_nft_check() -> None:
    batch = (nat.table_setup("dkparse") + nat.network_batch("dkparse", "10.1.1.0/24", "br1", True)
             + nat.publish_batch("dkparse", "10.1.1.2", M))
    p = subprocess.run(["nft", "-c", "-f", "-"], input=batch, capture_output=True, text=True)
    if "Operation not permitted" in p.stderr:
        pytest.skip("nft -c needs CAP_NET_ADMIN here")
    assert p.returncode == 0, p.stderr


def test_a_listening_host_port_is_refused() -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        with pytest.raises(nat.CNIError, match="in use") as e:
            nat.check_free((PortMapping(port, 80, "tcp", "127.0.0.1"),))
        assert e.value.code == 102
    nat.check_free((PortMapping(port, 80, "tcp", "127.0.0.1"),))
    with pytest.raises(nat.CNIError, match="not an address of this host"):
        nat.check_free((PortMapping(port, 80, "tcp", "192.0.2.77"),))
