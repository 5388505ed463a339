"""Map elements of our nftables table over nfnetlink: what a container's ports change, without `nft`.

The `nft` binary parses, fetches the ruleset and builds its batch in ~20-50 ms, more than the rest
of an ADD or DEL together; a port mapping is one map element, a few dozen bytes of netlink.  So the
table itself is made by `nft -f` (nat.table_setup, once), and per-container elements go through
here: one transaction (a BEGIN/END batch) per ADD or DEL, read back one element at a time.

Element data follow nftables' register layout: every field of a concatenation takes a multiple of
4 bytes (an inet_service key alone is 2 bytes), in network byte order.
"""

from __future__ import annotations

import _socket
import errno
import os
import struct

from pyruntime.dockee.network.rtnl import NLMSG_ERROR, NetlinkError, Rtnl, attr, attr_str, attrs, netlink_socket

NETLINK_NETFILTER = 12
NFNL_SUBSYS_NFTABLES = 10
NFNL_MSG_BATCH_BEGIN, NFNL_MSG_BATCH_END = 16, 17
NFT_MSG_NEWSETELEM, NFT_MSG_GETSETELEM, NFT_MSG_DELSETELEM = 12, 13, 14
NFPROTO_IPV4 = 2
NLM_F_REQUEST, NLM_F_ACK, NLM_F_EXCL, NLM_F_CREATE = 1, 4, 0x200, 0x400
NLA_F_NESTED = 0x8000
# attribute types (linux/netfilter/nf_tables.h)
NFTA_SET_ELEM_LIST_TABLE, NFTA_SET_ELEM_LIST_SET, NFTA_SET_ELEM_LIST_ELEMENTS = 1, 2, 3
NFTA_LIST_ELEM = 1
NFTA_SET_ELEM_KEY, NFTA_SET_ELEM_DATA = 1, 2
NFTA_DATA_VALUE = 1

_HDR = struct.Struct("=IHHII")


def _nest(kind: int, payload: bytes) -> bytes:
    return attr(kind | NLA_F_NESTED, payload)


def _nfgen(family: int, res_id: int = 0) -> bytes:
    return struct.pack("=BBH", family, 0, _socket.htons(res_id))


def port_key(port: int) -> bytes:
    return struct.pack(">H", port)


def addr_port(ip: str, port: int) -> bytes:
    """ipv4_addr . inet_service: 4 bytes of address, the port padded to 4 bytes."""
    return _socket.inet_aton(ip) + struct.pack(">HH", port, 0)


def _elements_body(table: str, set_name: str, key: bytes, data: bytes | None = None) -> bytes:
    elem = _nest(NFTA_SET_ELEM_KEY, attr(NFTA_DATA_VALUE, key))
    if data is not None:
        elem += _nest(NFTA_SET_ELEM_DATA, attr(NFTA_DATA_VALUE, data))
    return (_nfgen(NFPROTO_IPV4) + attr_str(NFTA_SET_ELEM_LIST_TABLE, table)
            + attr_str(NFTA_SET_ELEM_LIST_SET, set_name)
            + _nest(NFTA_SET_ELEM_LIST_ELEMENTS, _nest(NFTA_LIST_ELEM, elem)))


class Nftnl:
    def __init__(self) -> None:
        self.nl = Rtnl(netlink_socket(NETLINK_NETFILTER))

    def close(self) -> None:
        self.nl.close()

    def __enter__(self) -> Nftnl:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def get(self, table: str, set_name: str, key: bytes) -> bytes | None:
        """The data of the element `key` of map `set_name`; None when there is no such element (or map)."""
        try:
            replies = self.nl._request((NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETSETELEM, 0,
                                       _elements_body(table, set_name, key))
        except NetlinkError as e:
            if e.errno == errno.ENOENT:
                return None
            raise
        for reply in replies:
            elements = attrs(reply, 20).get(NFTA_SET_ELEM_LIST_ELEMENTS)
            for elem in attrs(elements or b"", 0).values():
                data = attrs(elem, 0).get(NFTA_SET_ELEM_DATA)
                if data is not None:
                    return attrs(data, 0).get(NFTA_DATA_VALUE)
        return None

    def transaction(self, ops: list[tuple[str, str, str, bytes, bytes | None]]) -> None:
        """("add" | "create" | "delete", table, map, key, data) as one batch: all or nothing.
        The first error raises (EEXIST: a `create` met an existing key; ENOENT: no such key or map)."""
        seq = self.nl.seq
        msgs = [_HDR.pack(_HDR.size + 4, NFNL_MSG_BATCH_BEGIN, NLM_F_REQUEST, seq + 1, 0)
                + _nfgen(0, NFNL_SUBSYS_NFTABLES)]
        for i, (op, table, set_name, key, data) in enumerate(ops):
            flags = NLM_F_REQUEST | NLM_F_ACK
            if op == "delete":
                mtype = NFT_MSG_DELSETELEM
            else:
                mtype = NFT_MSG_NEWSETELEM
                flags |= NLM_F_CREATE | (NLM_F_EXCL if op == "create" else 0)
            body = _elements_body(table, set_name, key, data)
            msgs.append(_HDR.pack(_HDR.size + len(body), (NFNL_SUBSYS_NFTABLES << 8) | mtype, flags,
                                  seq + 2 + i, 0) + body)
        end = seq + 2 + len(ops)
        msgs.append(_HDR.pack(_HDR.size + 4, NFNL_MSG_BATCH_END, NLM_F_REQUEST, end, 0)
                    + _nfgen(0, NFNL_SUBSYS_NFTABLES))
        self.nl.seq = end
        self.nl.sock.send(b"".join(msgs))
        # the kernel runs the batch inside send(): every answer is queued already (nft reads them so too)
        first = 0
        acked = 0
        while acked < len(ops):
            try:
                data = self.nl.sock.recv(65536, _socket.MSG_DONTWAIT)
            except BlockingIOError:
                break
            offset = 0
            while offset + _HDR.size <= len(data):
                length, kind, _flags, mseq, _pid = _HDR.unpack_from(data, offset)
                if length < _HDR.size:
                    break
                if kind == NLMSG_ERROR and seq < mseq <= end:
                    code = -struct.unpack_from("=i", data, offset + 16)[0]
                    acked += 1
                    first = first or code
                offset += (length + 3) & ~3
        if first:
            raise NetlinkError(first, os.strerror(first))
