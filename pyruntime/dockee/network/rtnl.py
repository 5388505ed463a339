"""A small synchronous rtnetlink client: pyroute2's message classes over a plain netlink socket.

The plugin runs once per container start and stop, and pyroute2's IPRoute costs ~150 ms to import
plus an asyncio round per request.  Its message classes (ifinfmsg, ifaddrmsg, rtmsg) encode and
decode the same messages for a fraction of that; this module sends them and reads the answers.
A socket belongs to the network namespace it was created in: `Rtnl.in_netns(fd)` makes one inside
a container's namespace (pyroute2.netns.setns there and back, single-threaded).
"""

from __future__ import annotations

import errno
import os
import socket
import struct
import sys
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


class NetlinkError(OSError):
    pass


def _pyroute2_messages() -> tuple[Any, Any, Any]:
    if "pyroute2" not in sys.modules:
        import importlib.util
        import types

        # a bare package object: importing pyroute2/__init__.py would load every API it has (~240 ms)
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
    from pyroute2.netlink.rtnl.ifaddrmsg import ifaddrmsg
    from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg
    from pyroute2.netlink.rtnl.rtmsg import rtmsg

    return ifinfmsg, ifaddrmsg, rtmsg


class Rtnl:
    def __init__(self, sock: socket.socket | None = None) -> None:
        self.ifinfmsg, self.ifaddrmsg, self.rtmsg = _pyroute2_messages()
        self.sock = sock or socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_ROUTE)
        self.sock.bind((0, 0))
        self.seq = 0

    @classmethod
    def in_netns(cls, netns_fd: int) -> Rtnl:
        from pyroute2.netns import setns

        host = os.open("/proc/self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        try:
            setns(netns_fd)
            try:
                sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_ROUTE)
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
    def _request(self, msg: Any, mtype: int, flags: int) -> list[Any]:
        self.seq += 1
        msg["header"]["type"] = mtype
        msg["header"]["flags"] = NLM_F_REQUEST | flags
        msg["header"]["sequence_number"] = self.seq
        msg.encode()
        self.sock.send(msg.data)
        out: list[Any] = []
        cls = type(msg)
        while True:
            data = self.sock.recv(65536)
            offset = 0
            while offset < len(data):
                length, kind, mflags, seq, _pid = struct.unpack_from("=IHHII", data, offset)
                chunk = data[offset:offset + length]
                offset += (length + 3) & ~3
                if seq != self.seq:
                    continue
                if kind == NLMSG_ERROR:
                    code = -struct.unpack_from("=i", chunk, 16)[0]
                    if code:
                        raise NetlinkError(code, os.strerror(code))
                    return out
                if kind == NLMSG_DONE:
                    return out
                reply = cls(chunk)
                reply.decode()
                out.append(reply)
                if not mflags & NLM_F_MULTI and not flags & NLM_F_ACK:
                    return out

    def _link(self, **fields: Any) -> Any:
        msg = self.ifinfmsg()
        for k in ("family", "ifi_type", "index", "flags", "change"):
            msg[k] = fields.pop(k, 0)
        msg["attrs"] = [[k, v] for k, v in fields.pop("attrs", [])]
        return msg

    # -- links ---------------------------------------------------------------------------------
    def link(self, name: str | None = None, index: int = 0) -> dict[str, Any] | None:
        attrs = [("IFLA_IFNAME", name)] if name else []
        try:
            replies = self._request(self._link(index=index, attrs=attrs), RTM_GETLINK, 0)
        except NetlinkError as e:
            if e.errno in (errno.ENODEV, errno.ENOENT):
                return None
            raise
        if not replies:
            return None
        m = replies[0]
        info = m.get_attr("IFLA_LINKINFO")
        return {"index": m["index"], "flags": m["flags"], "name": m.get_attr("IFLA_IFNAME"),
                "mac": m.get_attr("IFLA_ADDRESS"), "master": m.get_attr("IFLA_MASTER"),
                "operstate": m.get_attr("IFLA_OPERSTATE"),
                "kind": info.get_attr("IFLA_INFO_KIND") if info is not None else None}

    def add_bridge(self, name: str, mtu: int) -> None:
        attrs = [("IFLA_IFNAME", name), ("IFLA_MTU", mtu),
                 ("IFLA_LINKINFO", {"attrs": [["IFLA_INFO_KIND", "bridge"]]})]
        self._request(self._link(attrs=attrs), RTM_NEWLINK, NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL)

    def add_veth(self, name: str, mtu: int, peer: str, peer_netns_fd: int) -> None:
        peer_msg = {"attrs": [["IFLA_IFNAME", peer], ["IFLA_MTU", mtu], ["IFLA_NET_NS_FD", peer_netns_fd]]}
        attrs = [("IFLA_IFNAME", name), ("IFLA_MTU", mtu),
                 ("IFLA_LINKINFO", {"attrs": [["IFLA_INFO_KIND", "veth"],
                                              ["IFLA_INFO_DATA", {"attrs": [["VETH_INFO_PEER", peer_msg]]}]]})]
        self._request(self._link(attrs=attrs), RTM_NEWLINK, NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL)

    def set_link(self, index: int, up: bool | None = None, master: int | None = None) -> None:
        attrs = [("IFLA_MASTER", master)] if master is not None else []
        flags = IFF_UP if up else 0
        change = IFF_UP if up is not None else 0
        self._request(self._link(index=index, flags=flags, change=change, attrs=attrs), RTM_NEWLINK, NLM_F_ACK)

    def del_link(self, name: str) -> bool:
        try:
            self._request(self._link(attrs=[("IFLA_IFNAME", name)]), RTM_DELLINK, NLM_F_ACK)
            return True
        except NetlinkError as e:
            if e.errno in (errno.ENODEV, errno.ENOENT):
                return False
            raise

    # -- addresses and routes ------------------------------------------------------------------
    def addresses(self, index: int) -> list[tuple[str, int]]:
        msg = self.ifaddrmsg()
        msg["family"] = AF_INET
        msg["attrs"] = []
        return [(m.get_attr("IFA_ADDRESS"), m["prefixlen"]) for m in self._request(msg, RTM_GETADDR, NLM_F_DUMP)
                if m["index"] == index]

    def add_address(self, index: int, address: str, prefixlen: int, broadcast: str) -> None:
        msg = self.ifaddrmsg()
        msg["family"] = AF_INET
        msg["prefixlen"] = prefixlen
        msg["index"] = index
        msg["scope"] = 0
        msg["attrs"] = [["IFA_LOCAL", address], ["IFA_ADDRESS", address], ["IFA_BROADCAST", broadcast]]
        self._request(msg, RTM_NEWADDR, NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL)

    def add_route(self, dst: str, dst_len: int, gateway: str, oif: int) -> None:
        msg = self.rtmsg()
        msg["family"] = AF_INET
        msg["dst_len"] = dst_len
        msg["table"] = 254  # main
        msg["proto"] = 3  # boot, as `ip route add`
        msg["scope"] = 0  # universe
        msg["type"] = 1  # unicast
        attrs = [["RTA_GATEWAY", gateway], ["RTA_OIF", oif]]
        if dst_len:
            attrs.insert(0, ["RTA_DST", dst])
        msg["attrs"] = attrs
        self._request(msg, RTM_NEWROUTE, NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL)

    def routes(self, oif: int) -> list[tuple[str, str | None]]:
        msg = self.rtmsg()
        msg["family"] = AF_INET
        msg["attrs"] = []
        out = []
        for m in self._request(msg, RTM_GETROUTE, NLM_F_DUMP):
            if m["table"] != 254 or m.get_attr("RTA_OIF") != oif:
                continue
            out.append((f"{m.get_attr('RTA_DST') or '0.0.0.0'}/{m['dst_len']}", m.get_attr("RTA_GATEWAY")))
        return out
