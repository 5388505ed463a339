"""IPv4 address allocation per network, in host-local's on-disk format.

One directory per network under the data dir: one file per allocated address, created with O_EXCL
and holding `container-id\\r\\nifname`; `last_reserved_ip.0` remembers where the round-robin search
stopped; `lock` is flocked around every change.  Being the same format as the reference
`host-local` plugin lets the two read each other's allocations, and makes leftovers easy to audit.
"""

from __future__ import annotations

import errno
import fcntl
import os

from pyruntime.dockee.network.cniversion import E_NO_ADDRESS, CNIError

# pathlib, contextlib, ipaddress (and typing) cost a DEL more than its IPAM work: paths are strings,
# addresses are parsed where allocation needs them
TYPE_CHECKING = False
if TYPE_CHECKING:
    import ipaddress
    from pathlib import Path

    from pyruntime.dockee.network.cniconf import Range

LAST_RESERVED = "last_reserved_ip.0"
LOCK = "lock"


class Pool:
    """The allocations of one network within one range."""

    def __init__(self, data_dir: str | Path, network: str, rng: Range | None) -> None:
        """`rng` may be None for release, find and owner (they need only the directory)."""
        self.dir = os.path.join(data_dir, network)
        self.network = network
        self._range = rng

    @property
    def range(self) -> Range:
        assert self._range is not None, "allocation needs the range"
        return self._range

    def _path(self, name: object) -> str:
        return os.path.join(self.dir, str(name))

    def locked(self) -> _Lock:
        return _Lock(self)

    def owner(self, ip: ipaddress.IPv4Address | str) -> tuple[str, str] | None:
        try:
            with open(self._path(ip)) as f:
                text = f.read()
        except FileNotFoundError:
            return None
        cid, _, ifname = text.partition("\n")
        return cid.strip(), ifname.strip()

    def allocations(self) -> dict[ipaddress.IPv4Address, tuple[str, str]]:
        import ipaddress

        out: dict[ipaddress.IPv4Address, tuple[str, str]] = {}
        if not os.path.isdir(self.dir):
            return out
        for entry in os.listdir(self.dir):
            try:
                ip = ipaddress.IPv4Address(entry)
            except ValueError:
                continue
            who = self.owner(ip)
            if who is not None:
                out[ip] = who
        return out

    def _reserve(self, ip: ipaddress.IPv4Address, cid: str, ifname: str) -> bool:
        try:
            fd = os.open(self._path(ip), os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "w") as f:
            f.write(f"{cid.strip()}\r\n{ifname}")
        return True

    def find(self, cid: str, ifname: str) -> ipaddress.IPv4Address | None:
        for ip, who in self.allocations().items():
            if who == (cid, ifname):
                return ip
        return None

    def allocate(self, cid: str, ifname: str,
                 fixed: ipaddress.IPv4Address | None = None) -> ipaddress.IPv4Address:
        """Reserve `fixed` (idempotent for the same owner) or the next free address after the last one."""
        with self.locked():
            if fixed is not None:
                if fixed not in self.range or fixed == self.range.gateway:
                    raise CNIError(E_NO_ADDRESS, f"IP {fixed} is not available in network {self.network} "
                                   f"(range {self.range.start}-{self.range.end}, gateway {self.range.gateway})")
                if self._reserve(fixed, cid, ifname):
                    return fixed
                who = self.owner(fixed)
                if who == (cid.strip(), ifname):
                    return fixed
                raise CNIError(E_NO_ADDRESS, f"IP {fixed} is already allocated in network {self.network}"
                               + (f" (container {who[0][:12]})" if who else ""))
            ip = self._next_free(cid, ifname)
            with open(self._path(LAST_RESERVED), "w") as f:
                f.write(str(ip))
            return ip

    def _next_free(self, cid: str, ifname: str) -> ipaddress.IPv4Address:
        import ipaddress

        start, end = int(self.range.start), int(self.range.end)
        try:
            with open(self._path(LAST_RESERVED)) as f:
                last = int(ipaddress.IPv4Address(f.read().strip()))
            if not start <= last <= end:
                last = end
        except (FileNotFoundError, ValueError):
            last = end  # so that the search begins at rangeStart, as host-local's does
        size = end - start + 1
        for step in range(1, size + 1):
            ip = ipaddress.IPv4Address(start + (last - start + step) % size)
            if ip == self.range.gateway:
                continue
            if self._reserve(ip, cid, ifname):
                return ip
        raise CNIError(E_NO_ADDRESS, f"no IP addresses available in network {self.network} "
                       f"(range {self.range.start}-{self.range.end})")

    def release(self, cid: str, ifname: str, ip: ipaddress.IPv4Address | str | None = None) -> list[str]:
        """Free what (cid, ifname) holds; idempotent.  `ip` is a hint that spares a directory scan."""
        freed: list[str] = []
        if not os.path.isdir(self.dir):
            return freed
        with self.locked():
            candidates = [ip] if ip is not None and self.owner(ip) == (cid.strip(), ifname) else None
            if candidates is None:
                # an empty file is an ADD killed between creating and writing it: every writer holds
                # this lock while it writes, so nobody can claim it any more (host-local locks alike)
                candidates = [a for a, who in self.allocations().items() if who in ((cid.strip(), ifname), ("", ""))]
            for a in candidates:
                try:
                    os.unlink(self._path(a))
                    freed.append(str(a))
                except OSError as e:
                    if e.errno != errno.ENOENT:
                        raise
        return freed


class _Lock:
    """flock on the network's `lock` file around a change (a class, not contextlib: its import costs)."""

    def __init__(self, pool: Pool) -> None:
        self.pool = pool
        self.fd = -1

    def __enter__(self) -> None:
        os.makedirs(self.pool.dir, mode=0o755, exist_ok=True)
        fd = os.open(self.pool._path(LOCK), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except BaseException:
            os.close(fd)
            raise
        self.fd = fd

    def __exit__(self, *exc: object) -> None:
        os.close(self.fd)
