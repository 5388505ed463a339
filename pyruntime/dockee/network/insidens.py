"""The container side of an ADD (address, routes, lo and the interface up), done inside its netns.

A netlink socket acts in the network namespace it was made in, so this step needs a process inside
the container's netns.  Entering one takes setns(2): Python 3.11 has no os.setns, dockee uses no
ctypes, and pyroute2.netns (which wraps setns with ctypes) costs ~35 ms to import, a third of a
whole ADD.  Born there instead: `nsenter --net` (util-linux, on every distribution) starting a
second interpreter (-IS, stdlib and rtnl only) costs ~10 ms of CPU, and most of that overlaps the
parent's own work (see Helper).  Without nsenter, pyroute2.netns does it in process.
"""

from __future__ import annotations

import os
import sys

from pyruntime.dockee.network.cniversion import E_PLUGIN, CNIError
from pyruntime.dockee.network.rtnl import LOOPBACK_INDEX, NetlinkError, Rtnl

# one route per argument: "dst/len=gateway"
Routes = list[tuple[str, int, str]]
_REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
_CHILD = (f"import sys; sys.path[0:0] = [{_REPO!r}]; "
          "from pyruntime.dockee.network.insidens import child; child()")


def configure(netns_fd: int, ifname: str, address: str, prefixlen: int, broadcast: str, routes: Routes) -> str:
    """Configure `ifname` in the netns open as `netns_fd`; returns its MAC."""
    helper = Helper(netns_fd)
    try:
        helper.send(ifname, address, prefixlen, broadcast, routes)
        return helper.result()
    finally:
        helper.close()


class Helper:
    """The process inside the netns.  ADD starts it first thing, so that its interpreter starts while
    ADD allocates the address and makes the bridge and the veth pair; `send` hands it the work once
    the interface exists, `result` collects the MAC after ADD did its host-side rest meanwhile."""

    def __init__(self, netns_fd: int) -> None:
        self.netns_fd = netns_fd
        self.pid = 0
        self.to_child = self.from_child = -1
        self.work: tuple[str, str, int, str, Routes] | None = None
        nsenter = find_nsenter()
        if nsenter is None:
            return
        args = [nsenter, "--net=/proc/self/fd/3", "--", sys.executable, "-IS", "-c", _CHILD]
        source = netns_fd if netns_fd != 3 else os.dup(netns_fd)  # dup2 onto itself would keep O_CLOEXEC
        child_in, self.to_child = os.pipe()
        self.from_child, child_out = os.pipe()
        try:
            # posix_spawn: no subprocess module to import; the netns as fd 3, work on stdin, answer on stdout
            self.pid = os.posix_spawn(nsenter, args, {}, file_actions=[
                (os.POSIX_SPAWN_DUP2, source, 3), (os.POSIX_SPAWN_DUP2, child_in, 0),
                (os.POSIX_SPAWN_DUP2, child_out, 1)])
        finally:
            os.close(child_in)
            os.close(child_out)
            if source != netns_fd:
                os.close(source)

    def send(self, ifname: str, address: str, prefixlen: int, broadcast: str, routes: Routes) -> None:
        if not self.pid:
            self.work = (ifname, address, prefixlen, broadcast, routes)
            return
        line = " ".join([ifname, address, str(prefixlen), broadcast, *(f"{d}/{n}={gw}" for d, n, gw in routes)])
        try:
            os.write(self.to_child, (line + "\n").encode())
        except BrokenPipeError:
            pass  # it died: result() reports how
        os.close(self.to_child)
        self.to_child = -1

    def result(self) -> str:
        if not self.pid:
            assert self.work is not None, "send() first"
            with Rtnl.in_netns(self.netns_fd) as ns:
                return apply(ns, *self.work)
        chunks = []
        while chunk := os.read(self.from_child, 4096):
            chunks.append(chunk)
        code = self._wait()
        out = b"".join(chunks).decode(errors="replace").strip()
        if code != 0 or not out.startswith("mac "):
            raise CNIError(E_PLUGIN, out.removeprefix("error: ") or f"nsenter exited with {code}")
        return out.removeprefix("mac ")

    def _wait(self) -> int:
        pid, self.pid = self.pid, 0
        return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) if pid else 0

    def close(self) -> None:
        """Idempotent; a helper that got no work (ADD failed first) is killed, not waited for."""
        if self.pid and self.to_child >= 0:
            import signal

            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for fd in (self.to_child, self.from_child):
            if fd >= 0:
                os.close(fd)
        self.to_child = self.from_child = -1
        self._wait()


def apply(ns: Rtnl, ifname: str, address: str, prefixlen: int, broadcast: str, routes: Routes) -> str:
    """Through `ns`, a socket inside the netns: one batch; returns the interface's MAC."""
    try:
        link = ns.link(ifname)
        if link is None:
            raise CNIError(E_PLUGIN, f"{ifname} did not appear in the container's netns")
        idx = link["index"]
        # the address before the routes that use it; `ifname` up again in case it was made down
        batch = [ns.add_address_msg(idx, address, prefixlen, broadcast),
                 ns.set_link_msg(idx, up=True), ns.set_link_msg(LOOPBACK_INDEX, up=True)]
        batch += [ns.add_route_msg(dst, dst_len, gw, idx) for dst, dst_len, gw in routes]
        ns.batch(batch)
        return str(link["mac"])
    except NetlinkError as e:
        raise CNIError(E_PLUGIN, f"could not configure {ifname} in the container: {e.strerror}")


def find_nsenter() -> str | None:
    """OCI hooks run with an empty environment (no PATH): look where distributions put it."""
    dirs = os.environ.get("PATH", "").split(":") + ["/usr/bin", "/bin", "/usr/sbin", "/sbin"]
    return next((p for p in (os.path.join(d, "nsenter") for d in dirs if d) if os.access(p, os.X_OK)), None)


def child() -> None:
    """In the netns (started by Helper): one line on stdin, `ifname address prefixlen broadcast
    route...`; prints `mac <MAC>` or `error: <message>`.  No line: ADD gave up, nothing to do."""
    words = sys.stdin.readline().split()
    if not words:
        os._exit(0)
    ifname, address, prefixlen, broadcast, *specs = words
    code = 0
    try:
        routes = []
        for spec in specs:
            dst, _, gw = spec.partition("=")
            net, _, plen = dst.partition("/")
            routes.append((net, int(plen), gw))
        with Rtnl() as ns:
            sys.stdout.write("mac " + apply(ns, ifname, address, int(prefixlen), broadcast, routes))
    except CNIError as e:
        sys.stdout.write(f"error: {e.msg}")
        code = 1
    except (OSError, ValueError) as e:
        sys.stdout.write(f"error: could not configure {ifname} in the container: {e}")
        code = 1
    sys.stdout.flush()
    os._exit(code)
