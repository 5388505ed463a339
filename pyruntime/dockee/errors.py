"""dockee-shim's errors: each prints as one line, `dockee-shim: <message>`, and exits non-zero."""

from __future__ import annotations


class DockeeError(Exception):
    """A user-facing failure; the message names the flag, field, path, image or container."""

    exit_code = 125  # docker's code for an error of the front end itself


class NotFound(DockeeError):
    """An unknown image, container, volume or network."""

    exit_code = 1  # docker: 1 for every verb but run/create (which say 125: see cli_containers)


class Conflict(DockeeError):
    """A taken name, an image in use, a network in use."""

    exit_code = 1


class StateError(DockeeError):
    """The container is not in the state the verb needs (not running, not paused): docker exits 1."""

    exit_code = 1


class CommandError(DockeeError):
    """The container's command cannot run: 126 (not executable) or 127 (not found), like docker."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code
