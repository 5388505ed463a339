"""plan.py's two decisions about create's handshake, which both sides must make alike:
whether stage 1 works before GO (and init waits for it), and whether init stops for the
parent's state document."""

from __future__ import annotations

from typing import Any

import pytest

from pyruntime.defaults import default_spec
from pyruntime.plan import InitPlan, namespaces, namespaces_before_go, needs_state_doc
from pyruntime.spec import parse_spec
from pyruntime.syscalls.linux import CLONE_NEWNET, CLONE_NEWUSER


def _plan(doc: dict[str, Any], is_exec: bool = False) -> InitPlan:
    spec = parse_spec(doc)
    new, joins = namespaces(spec)
    return InitPlan(spec=spec, rootfs="/r", fifo_path=None, new_namespaces=new,
                    join_namespaces=joins, is_exec=is_exec)


def _with_namespace(ns: dict[str, str]) -> dict[str, Any]:
    doc = default_spec()
    doc["linux"]["namespaces"] = [n for n in doc["linux"]["namespaces"]
                                  if n["type"] != ns["type"]] + [ns]
    return doc


def test_namespaces_to_create_and_to_join() -> None:
    new, joins = namespaces(parse_spec(_with_namespace({"type": "network",
                                                        "path": "/run/netns/x"})))
    assert joins == [("network", "/run/netns/x")]
    assert not new & (CLONE_NEWNET | CLONE_NEWUSER) and new


def test_a_plain_container_prepares_before_go() -> None:
    assert namespaces_before_go(_plan(default_spec()))
    # a new cgroup namespace too: init makes it after GO, stage 1 defers it
    assert namespaces_before_go(_plan(_with_namespace({"type": "cgroup"})))
    # joining another container's network, as podman's pods and CNI do
    assert namespaces_before_go(_plan(_with_namespace({"type": "network",
                                                       "path": "/run/netns/x"})))


@pytest.mark.parametrize("ns", [{"type": "user"}, {"type": "user", "path": "/proc/1/ns/user"},
                                {"type": "cgroup", "path": "/proc/1/ns/cgroup"}],
                         ids=["new-userns", "join-userns", "join-cgroupns"])
def test_user_namespaces_and_joined_cgroup_namespaces_wait_for_go(ns: dict[str, str]) -> None:
    doc = _with_namespace(ns)
    if ns["type"] == "user" and "path" not in ns:
        doc["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 1000, "size": 1}]
        doc["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 1000, "size": 1}]
    assert not namespaces_before_go(_plan(doc))


def test_exec_always_waits_for_go() -> None:
    assert not namespaces_before_go(_plan(default_spec(), is_exec=True))


def test_init_stops_for_the_state_only_for_hooks_or_a_seccomp_agent() -> None:
    assert not needs_state_doc(parse_spec(default_spec()))
    for kind in ("prestart", "createRuntime", "createContainer", "startContainer"):
        doc = default_spec()
        doc["hooks"] = {kind: [{"path": "/bin/true"}]}
        assert needs_state_doc(parse_spec(doc)), kind
    doc = default_spec()
    doc["hooks"] = {"poststart": [{"path": "/bin/true"}], "poststop": [{"path": "/bin/true"}]}
    assert not needs_state_doc(parse_spec(doc))  # the parent runs those, after create
    doc = default_spec()
    doc["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/run/agent"}
    assert needs_state_doc(parse_spec(doc))


def test_the_last_words_of_a_child_that_left_a_message_unread() -> None:
    """An init that fails before it reads GO sends ERROR and exits with GO unread: the
    kernel reports that as a reset before the ERROR still queued; create must say the
    ERROR, not "Connection reset by peer"."""
    from pyruntime import sync
    from pyruntime.errors import ChildError

    parent, child = sync.Channel.pair()
    parent.send(sync.GO)
    child.error("mounts[0] on /proc: proc must be mounted on ordinary directory")
    child.close()  # GO unread
    with pytest.raises(ChildError, match=r"mounts\[0\] on /proc"):
        parent.wait_for(sync.READY)
    parent.close()

    parent, child = sync.Channel.pair()
    parent.send(sync.GO)
    child.error("preparing the process: no such file")
    child.close()
    assert str(parent.pending_error()) == "preparing the process: no such file"
    parent.close()
