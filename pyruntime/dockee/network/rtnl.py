"""A small synchronous rtnetlink client: the few messages the plugin needs, packed with `struct`.

The plugin runs once per container start and stop.  pyroute2's IPRoute costs ~150 ms to import, and
even its message classes alone cost 50-70 ms (they pull in logging, multiprocessing, platform...),
more than everything else an ADD does.  The messages here are a handful of fixed headers and
attributes (see rtnetlink(7)); the unit tests decode what this module sends with pyroute2's classes.

A socket belongs to the network namespace it was created in: `Rtnl.in_netns(fd)` makes one inside a
container's namespace.  Python 3.11 has no os.setns and dockee uses no ctypes, so that one step
borrows pyroute2.netns.setns (imported alone, without pyroute2/__init__.py; only ADD and CHECK pay).
"""

from __future__ import annotations

import _socket  # socket.py's enums and selectors cost a DEL more than its netlink work
import errno
import os
import struct
import sys

# typing and collections.abc only for the type checker: the plugin's start-up pays for every import
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

NETLINK_ROUTE = 0
RTM_NEWLINK, RTM_DELLINK, RTM_GETLINK, RTM_SETLINK = 16, 17, 18, 19
RTM_NEWADDR, RTM_GETADDR = 20, 22
RTM_NEWROUTE, RTM_GETROUTE = 24, 26
NLM_F_REQUEST, NLM_F_MULTI, NLM_F_ACK = 1, 2, 4
NLM_F_DUMP = 0x300
NLM_F_EXCL, NLM_F_CREATE = 0x200, 0x400
NLMSG_ERROR, NLMSG_DONE = 2, 3
IFF_UP = 1
AF_INET = 2
LOOPBACK_INDEX = 1  # the kernel gives every namespace's lo ifindex 1

# attribute types (linux/if_link.h, if_addr.h, rtnetlink.h, veth.h)
IFLA_ADDRESS, IFLA_IFNAME, IFLA_MTU, IFLA_MASTER = 1, 3, 4, 10
IFLA_OPERSTATE, IFLA_LINKINFO, IFLA_NET_NS_FD = 16, 18, 28
IFLA_INFO_KIND, IFLA_INFO_DATA = 1, 2
VETH_INFO_PEER = 1
IFA_ADDRESS, IFA_LOCAL, IFA_BROADCAST = 1, 2, 4
RTA_DST, RTA_OIF, RTA_GATEWAY, RTA_TABLE = 1, 4, 5, 15
OPERSTATES = ("UNKNOWN", "NOTPRESENT", "DOWN", "LOWERLAYERDOWN", "TESTING", "DORMANT", "UP")

_HDR = struct.Struct("=IHHII")  # nlmsghdr: length, type, flags, sequence, port id
_IFINFO = struct.Struct("=BxHiII")  # ifinfomsg: family, type, index, flags, change
_IFADDR = struct.Struct("=BBBBI")  # ifaddrmsg: family, prefixlen, flags, scope, index
_RTMSG = struct.Struct("=BBBBBBBBI")  # rtmsg: family, dst_len, src_len, tos, table, proto, scope, type, flags


class NetlinkError(OSError):
    pass


# -- encoding ----------------------------------------------------------------------------------
def attr(kind: int, payload: bytes) -> bytes:
    length = 4 + len(payload)
    return struct.pack("=HH", length, kind) + payload + b"\0" * (-length % 4)


def attr_str(kind: int, value: str) -> bytes:
    return attr(kind, value.encode() + b"\0")


def attr_u32(kind: int, value: int) -> bytes:
    return attr(kind, struct.pack("=I", value))


def attr_ip(kind: int, value: str) -> bytes:
    return attr(kind, _socket.inet_aton(value))


def ifinfo(index: int = 0, flags: int = 0, change: int = 0) -> bytes:
    return _IFINFO.pack(0, 0, index, flags, change)


# -- decoding ----------------------------------------------------------------------------------
def attrs(data: bytes, offset: int) -> dict[int, bytes]:
    """Attribute type -> payload (nested attributes stay bytes; the NLA_F_* bits are masked off)."""
    out: dict[int, bytes] = {}
    while offset + 4 <= len(data):
        length, kind = struct.unpack_from("=HH", data, offset)
        if length < 4:
            break
        out[kind & 0x3FFF] = data[offset + 4:offset + length]
        offset += (length + 3) & ~3
    return out


def _u32(a: dict[int, bytes], kind: int) -> int | None:
    v = a.get(kind)
    return struct.unpack_from("=I", v)[0] if v is not None and len(v) >= 4 else None


def _str(v: bytes | None) -> str | None:
    return v.split(b"\0", 1)[0].decode() if v is not None else None


def _ip(v: bytes | None) -> str | None:
    return _socket.inet_ntoa(v) if v is not None and len(v) == 4 else None


def decode_link(msg: bytes) -> dict[str, Any]:
    _family, _type, index, flags, _change = _IFINFO.unpack_from(msg, 16)
    a = attrs(msg, 16 + _IFINFO.size)
    info = attrs(a[IFLA_LINKINFO], 0) if IFLA_LINKINFO in a else {}
    mac = a.get(IFLA_ADDRESS)
    oper = a.get(IFLA_OPERSTATE)
    return {"index": index, "flags": flags, "name": _str(a.get(IFLA_IFNAME)),
            "mac": ":".join(f"{b:02x}" for b in mac) if mac is not None else None,
            "master": _u32(a, IFLA_MASTER),
            "operstate": OPERSTATES[oper[0]] if oper and oper[0] < len(OPERSTATES) else None,
            "kind": _str(info.get(IFLA_INFO_KIND))}


def netlink_socket(protocol: int) -> _socket.socket:
    return _socket.socket(_socket.AF_NETLINK, _socket.SOCK_RAW | _socket.SOCK_CLOEXEC, protocol)


class Rtnl:
    def __init__(self, sock: _socket.socket | None = None) -> None:
        self.sock = sock or netlink_socket(NETLINK_ROUTE)
        self.sock.bind((0, 0))
        self.seq = 0

    @classmethod
    def in_netns(cls, netns_fd: int) -> Rtnl:
        setns = _setns()
        host = os.open("/proc/self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        try:
            setns(netns_fd)
            try:
                sock = netlink_socket(NETLINK_ROUTE)
            finally:
                setns(host)
        finally:
            os.close(host)
        return cls(sock)

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Rtnl:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- transport -----------------------------------------------------------------------------
    def _frame(self, mtype: int, flags: int, body: bytes) -> bytes:
        self.seq += 1
        return _HDR.pack(_HDR.size + len(body), mtype, NLM_F_REQUEST | flags, self.seq, 0) + body

    def _request(self, mtype: int, flags: int, body: bytes) -> list[bytes]:
        """One request; its replies (whole messages, headers included) until ACK, DONE or the single answer."""
        self.sock.send(self._frame(mtype, flags, body))
        return self._replies(self.seq, flags)

    def batch(self, requests: list[tuple[int, int, bytes]]) -> None:
        """Several acknowledged changes in one send (the kernel runs them in order); the first error raises."""
        first = self.seq + 1
        self.sock.send(b"".join(self._frame(t, f | NLM_F_ACK, body) for t, f, body in requests))
        error: NetlinkError | None = None
        for seq in range(first, self.seq + 1):
            try:
                self._replies(seq, NLM_F_ACK)
            except NetlinkError as e:
                error = error or e
        if error is not None:
            raise error

    def _replies(self, want: int, flags: int) -> list[bytes]:
        out: list[bytes] = []
        while True:
            data = self.sock.recv(65536)
            offset = 0
            while offset < len(data):
                length, kind, mflags, seq, _pid = _HDR.unpack_from(data, offset)
                if length < _HDR.size:
                    break
                chunk = data[offset:offset + length]
                offset += (length + 3) & ~3
                if seq != want:
                    continue
                if kind == NLMSG_ERROR:
                    code = -struct.unpack_from("=i", chunk, 16)[0]
                    if code:
                        raise NetlinkError(code, os.strerror(code))
                    return out
                if kind == NLMSG_DONE:
                    return out
                out.append(chunk)
                if not mflags & NLM_F_MULTI and not flags & NLM_F_ACK:
                    return out

    # -- links ---------------------------------------------------------------------------------
    def link(self, name: str | None = None, index: int = 0) -> dict[str, Any] | None:
        body = ifinfo(index) + (attr_str(IFLA_IFNAME, name) if name else b"")
        try:
            replies = self._request(RTM_GETLINK, 0, body)
        except NetlinkError as e:
            if e.errno in (errno.ENODEV, errno.ENOENT):
                return None
            raise
        return decode_link(replies[0]) if replies else None

    def add_bridge(self, name: str, mtu: int) -> None:
        body = (ifinfo() + attr_str(IFLA_IFNAME, name) + attr_u32(IFLA_MTU, mtu)
                + attr(IFLA_LINKINFO, attr_str(IFLA_INFO_KIND, "bridge")))
        self._request(RTM_NEWLINK, NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL, body)

    def add_veth(self, name: str, mtu: int, peer: str, peer_netns_fd: int, master: int | None = None,
                 up: bool = False, peer_mac: bytes | None = None) -> None:
        """A veth pair whose `peer` is born inside the netns `peer_netns_fd`; with `up` and `master`, this
        end is created up and enslaved, in the same request.  (The peer cannot be born up: the kernel
        opens it before the two ends know each other, ENOTCONN.)"""
        flags = IFF_UP if up else 0
        peer_msg = (ifinfo() + attr_str(IFLA_IFNAME, peer) + attr_u32(IFLA_MTU, mtu)
                    + attr_u32(IFLA_NET_NS_FD, peer_netns_fd)
                    + (attr(IFLA_ADDRESS, peer_mac) if peer_mac is not None else b""))
        info = attr_str(IFLA_INFO_KIND, "veth") + attr(IFLA_INFO_DATA, attr(VETH_INFO_PEER, peer_msg))
        body = (ifinfo(0, flags, flags) + attr_str(IFLA_IFNAME, name) + attr_u32(IFLA_MTU, mtu)
                + (attr_u32(IFLA_MASTER, master) if master is not None else b"") + attr(IFLA_LINKINFO, info))
        self._request(RTM_NEWLINK, NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL, body)

    def set_link_msg(self, index: int, up: bool | None = None, master: int | None = None) -> tuple[int, int, bytes]:
        flags = IFF_UP if up else 0
        change = IFF_UP if up is not None else 0
        body = ifinfo(index, flags, change) + (attr_u32(IFLA_MASTER, master) if master is not None else b"")
        return RTM_NEWLINK, 0, body

    def set_link(self, index: int, up: bool | None = None, master: int | None = None) -> None:
        mtype, flags, body = self.set_link_msg(index, up, master)
        self._request(mtype, flags | NLM_F_ACK, body)

    def del_link(self, name: str) -> bool:
        try:
            self._request(RTM_DELLINK, NLM_F_ACK, ifinfo() + attr_str(IFLA_IFNAME, name))
            return True
        except NetlinkError as e:
            if e.errno in (errno.ENODEV, errno.ENOENT):
                return False
            raise

    # -- addresses and routes ------------------------------------------------------------------
    def addresses(self, index: int) -> list[tuple[str, int]]:
        out = []
        for m in self._request(RTM_GETADDR, NLM_F_DUMP, _IFADDR.pack(AF_INET, 0, 0, 0, 0)):
            _family, plen, _flags, _scope, idx = _IFADDR.unpack_from(m, 16)
            if idx == index:
                a = attrs(m, 16 + _IFADDR.size)
                out.append((_ip(a.get(IFA_ADDRESS)) or "", plen))
        return out

    def add_address_msg(self, index: int, address: str, prefixlen: int, broadcast: str) -> tuple[int, int, bytes]:
        body = (_IFADDR.pack(AF_INET, prefixlen, 0, 0, index) + attr_ip(IFA_LOCAL, address)
                + attr_ip(IFA_ADDRESS, address) + attr_ip(IFA_BROADCAST, broadcast))
        return RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, body

    def add_address(self, index: int, address: str, prefixlen: int, broadcast: str) -> None:
        mtype, flags, body = self.add_address_msg(index, address, prefixlen, broadcast)
        self._request(mtype, flags | NLM_F_ACK, body)

    def add_route_msg(self, dst: str, dst_len: int, gateway: str, oif: int) -> tuple[int, int, bytes]:
        # table main, protocol boot and scope universe, as `ip route add`
        body = _RTMSG.pack(AF_INET, dst_len, 0, 0, 254, 3, 0, 1, 0)
        if dst_len:
            body += attr_ip(RTA_DST, dst)
        body += attr_ip(RTA_GATEWAY, gateway) + attr_u32(RTA_OIF, oif)
        return RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, body

    def add_route(self, dst: str, dst_len: int, gateway: str, oif: int) -> None:
        mtype, flags, body = self.add_route_msg(dst, dst_len, gateway, oif)
        self._request(mtype, flags | NLM_F_ACK, body)

    def routes(self, oif: int) -> list[tuple[str, str | None]]:
        out = []
        for m in self._request(RTM_GETROUTE, NLM_F_DUMP, _RTMSG.pack(AF_INET, 0, 0, 0, 0, 0, 0, 0, 0)):
            _family, dst_len, _s, _t, table, _p, _sc, _ty, _f = _RTMSG.unpack_from(m, 16)
            a = attrs(m, 16 + _RTMSG.size)
            if (_u32(a, RTA_TABLE) or table) != 254 or _u32(a, RTA_OIF) != oif:
                continue
            out.append((f"{_ip(a.get(RTA_DST)) or '0.0.0.0'}/{dst_len}", _ip(a.get(RTA_GATEWAY))))
        return out


def _bare_pyroute2() -> None:
    """Register a bare `pyroute2` package object, so that importing one of its submodules does not run
    pyroute2/__init__.py (which loads every API it has, ~240 ms)."""
    if "pyroute2" in sys.modules:
        return
    import importlib.util
    import types

    spec = importlib.util.find_spec("pyroute2")
    if spec is None or spec.submodule_search_locations is None:
        raise ImportError("pyroute2 is not installed")
    pkg = types.ModuleType("pyroute2")
    pkg.__path__ = list(spec.submodule_search_locations)
    pkg.__spec__ = spec
    pkg.__file__ = spec.origin

    def complete(name: str) -> Any:
        # a later `from pyroute2 import IPRoute` in this process gets the whole package after all;
        # `from pyroute2 import config` (a submodule) goes on to the import system as usual
        if name.startswith("__") or importlib.util.find_spec(f"pyroute2.{name}") is not None:
            raise AttributeError(name)
        del pkg.__dict__["__getattr__"]
        assert spec is not None and spec.loader is not None
        spec.loader.exec_module(pkg)
        return getattr(pkg, name)

    pkg.__dict__["__getattr__"] = complete
    sys.modules["pyroute2"] = pkg


def _setns() -> Any:
    _bare_pyroute2()
    from pyroute2.netns import setns

    return setns
