"""The runtime's exception hierarchy; every error prints as one line."""

from __future__ import annotations


class RuntimeErr(Exception):
    """Base of every error pyruntime reports to its caller (exit status 1)."""

    exit_code = 1


class ConfigError(RuntimeErr):
    """config.json (or process.json) is malformed or asks for something impossible."""

    def __init__(self, where: str, reason: str) -> None:
        super().__init__(f"{where}: {reason}" if where else reason)
        self.where = where
        self.reason = reason


class ContainerNotExist(RuntimeErr):
    def __init__(self, cid: str) -> None:
        super().__init__("container does not exist")
        self.cid = cid


class ContainerExists(RuntimeErr):
    def __init__(self, cid: str) -> None:
        super().__init__(f"container with id exists: {cid}")
        self.cid = cid


class CorruptState(RuntimeErr):
    """state.json cannot be read back; only `delete --force` applies."""


class ContainerNotRunning(RuntimeErr):
    def __init__(self, cid: str) -> None:
        super().__init__("container not running")
        self.cid = cid


class StateTransitionError(RuntimeErr):
    """A verb that the container's current status does not allow."""

    def __init__(self, cid: str, status: str, verb: str) -> None:
        super().__init__(f"cannot {verb} container {cid} in {status} state")
        self.cid, self.status, self.verb = cid, status, verb


class ChildError(RuntimeErr):
    """The container's setup process failed; the message came over the sync channel."""


class HookError(RuntimeErr):
    pass


class CgroupError(RuntimeErr):
    pass


def wrap(context: str, err: BaseException) -> str:
    """'context: reason' with the OSError noise (errno number, repeated filename) removed."""
    if isinstance(err, OSError) and err.strerror:
        reason = err.strerror
        if err.filename is not None and str(err.filename) not in context:
            reason = f"{err.filename}: {reason}"
        return f"{context}: {reason}"
    return f"{context}: {err}"


def describe(err: BaseException) -> str:
    """The last line of defence's one line for an exception no verb turned into ours: an
    OSError names its file(s), as runc's errors do; anything else is a bug, named so."""
    if isinstance(err, OSError) and err.strerror:
        where = [str(f) for f in (err.filename, err.filename2) if f is not None]
        reason = err.strerror
        return f"{' -> '.join(where)}: {reason}" if where else reason
    return f"internal error: {type(err).__name__}: {err}"
