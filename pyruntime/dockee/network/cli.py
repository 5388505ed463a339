"""Placeholder: verbs registered on dockee-shim's group (see cli.py)."""

from __future__ import annotations

import click


def register(group: click.Group) -> None:
    """Add this module's verbs to `group`."""
