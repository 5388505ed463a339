"""What the parent decides for its child (create's stage 1 and init, exec's stage 1).

A module of its own so that the parent builds the plan without importing init.py and all
that init needs: the child imports those itself, while the parent attaches it to the
container's cgroups (a write that waits out an RCU grace period).
"""

from __future__ import annotations

from .record import dataclass, field

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from .spec import Process, Spec


@dataclass
class InitPlan:
    """Everything init needs, decided by the parent before the fork."""

    spec: Spec
    rootfs: str
    fifo_path: str | None
    no_pivot: bool = False
    new_namespaces: int = 0
    join_namespaces: list[tuple[str, str]] = field(default_factory=list)
    extra_fds: int = 0
    extra_env: list[str] = field(default_factory=list)
    cgroup_paths: dict[str, str] = field(default_factory=dict)
    is_exec: bool = False
    process: Process | None = None  # exec's process (create uses spec.process)
    keyring: bool = True
    container_id: str = ""
    bundle: str = ""
    # a foreground run/exec without a terminal: the pipes that become the process's stdio
    stdio: tuple[int, int, int] | None = None


def run_child(chan: Any, plan: InitPlan, sys: Any) -> None:
    """The forked child's entry: import init (here, not in the parent) and run stage 1.
    Never returns, also when the import fails (the parent hears why)."""
    import os

    try:
        from .init import stage1
    except BaseException as e:  # noqa: BLE001 - a child must never return into the parent's code
        try:
            chan.error(f"loading the container's init: {e}")
        finally:
            os._exit(1)
    stage1(chan, plan, sys)
    os._exit(1)  # stage1 does not return


def namespaces(spec: Spec) -> tuple[int, list[tuple[str, str]]]:
    """The CLONE_NEW* flags of the namespaces to create, and the (type, path) to join."""
    from .syscalls.linux import NAMESPACE_FLAGS

    new, joins = 0, []
    for ns in spec.linux.namespaces:
        if ns.path:
            joins.append((ns.type, ns.path))
        else:
            new |= NAMESPACE_FLAGS[ns.type]
    return new, joins


def needs_state_doc(spec: Spec) -> bool:
    """Whether init waits for create's state document (the HOOKS exchange): the prestart,
    createRuntime and createContainer hooks run at that point, and the state goes to the
    startContainer hooks and a seccomp agent.  Without any of them init does not stop
    for the parent at all."""
    h = spec.hooks
    return bool(h.prestart or h.create_runtime or h.create_container or h.start_container
                or (spec.linux.seccomp or {}).get("listenerPath"))


def namespaces_before_go(plan: InitPlan) -> bool:
    """Whether stage 1 makes the namespaces and forks init without waiting for GO: the
    parent then attaches both it and init, and init waits for GO (with the cgroups in
    place) before anything the cgroups must already govern.  Not with a user namespace,
    whose id maps the parent writes in between, nor for exec (its process must not start
    before it is in the container's cgroups), nor when joining a cgroup namespace."""
    from .syscalls.linux import CLONE_NEWUSER

    joined = {t for t, _ in plan.join_namespaces}
    return (not plan.is_exec and not plan.new_namespaces & CLONE_NEWUSER
            and not joined & {"user", "cgroup"})
