"""IPAM in host-local's format: round robin, fixed addresses, exhaustion, release by owner, concurrency."""

from __future__ import annotations

import ipaddress
import multiprocessing
from pathlib import Path

import pytest

from pyruntime.dockee.network.cniconf import CNIError, parse_range
from pyruntime.dockee.network.ipam import Pool

A = ipaddress.IPv4Address


def pool(tmp_path: Path, subnet: str = "10.5.0.0/24", **kw: str) -> Pool:
    return Pool(tmp_path, "net", parse_range({"subnet": subnet, **kw}, "ipam"))


def test_first_address_after_the_gateway_then_round_robin(tmp_path: Path) -> None:
    p = pool(tmp_path)
    assert p.allocate("a", "eth0") == A("10.5.0.2")
    assert p.allocate("b", "eth0") == A("10.5.0.3")
    p.release("a", "eth0")
    # host-local does not hand a just-freed address out again at once
    assert p.allocate("c", "eth0") == A("10.5.0.4")
    assert (tmp_path / "net" / "last_reserved_ip.0").read_text() == "10.5.0.4"


def test_files_are_host_local_format(tmp_path: Path) -> None:
    p = pool(tmp_path)
    ip = p.allocate("cid1", "eth0")
    assert (tmp_path / "net" / str(ip)).read_bytes() == b"cid1\r\neth0"
    assert p.owner(ip) == ("cid1", "eth0")
    assert p.find("cid1", "eth0") == ip and p.find("cid1", "eth1") is None


def test_fixed_address_is_idempotent_for_its_owner_only(tmp_path: Path) -> None:
    p = pool(tmp_path)
    assert p.allocate("a", "eth0", A("10.5.0.50")) == A("10.5.0.50")
    assert p.allocate("a", "eth0", A("10.5.0.50")) == A("10.5.0.50")
    with pytest.raises(CNIError, match="already allocated") as e:
        p.allocate("b", "eth0", A("10.5.0.50"))
    assert e.value.code == 101
    with pytest.raises(CNIError, match="not available"):
        p.allocate("b", "eth0", A("10.5.0.1"))  # the gateway
    with pytest.raises(CNIError, match="not available"):
        p.allocate("b", "eth0", A("10.6.0.9"))


def test_exhaustion_and_wrap_around(tmp_path: Path) -> None:
    p = pool(tmp_path, "10.5.0.0/29")  # .1 gateway, .2-.6 for containers
    got = [p.allocate(f"c{i}", "eth0") for i in range(5)]
    assert got == [A(f"10.5.0.{i}") for i in range(2, 7)]
    with pytest.raises(CNIError, match="no IP addresses available") as e:
        p.allocate("late", "eth0")
    assert e.value.code == 101
    p.release("c1", "eth0")
    assert p.allocate("late", "eth0") == A("10.5.0.3")


def test_range_start_end(tmp_path: Path) -> None:
    p = pool(tmp_path, rangeStart="10.5.0.100", rangeEnd="10.5.0.101")
    assert [p.allocate("a", "eth0"), p.allocate("b", "eth0")] == [A("10.5.0.100"), A("10.5.0.101")]
    with pytest.raises(CNIError):
        p.allocate("c", "eth0")


def test_release_only_what_the_owner_holds(tmp_path: Path) -> None:
    p = pool(tmp_path)
    a = p.allocate("a", "eth0")
    b = p.allocate("b", "eth0")
    assert p.release("a", "eth0", b) == [str(a)]  # a wrong hint is not trusted
    assert p.allocations() == {b: ("b", "eth0")}
    assert p.release("a", "eth0") == []
    assert pool(tmp_path / "none").release("x", "eth0") == []


def test_release_also_frees_an_address_whose_owner_was_never_written(tmp_path: Path) -> None:
    """An ADD killed between creating an address file and writing its owner leaves it empty; the
    DEL of that container (its record has no address yet) frees it, and leaves others alone."""
    p = pool(tmp_path)
    b = p.allocate("b", "eth0")
    (tmp_path / "net" / "10.5.0.9").write_text("")
    assert p.release("k1", "eth0") == ["10.5.0.9"]
    assert p.allocations() == {b: ("b", "eth0")}


def _grab(args: tuple[str, int]) -> list[str]:
    d, n = args
    p = Pool(d, "net", parse_range({"subnet": "10.5.0.0/24"}, "ipam"))
    import os

    return [str(p.allocate(f"{os.getpid()}-{i}", "eth0")) for i in range(n)]


def test_concurrent_allocations_never_collide(tmp_path: Path) -> None:
    with multiprocessing.get_context("fork").Pool(4) as workers:
        results = workers.map(_grab, [(str(tmp_path), 20)] * 4)
    flat = [ip for r in results for ip in r]
    assert len(flat) == 80 and len(set(flat)) == 80
