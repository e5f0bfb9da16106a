"""Subcommands of this area for the ``gsvd`` CLI (light imports only)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add this area's commands to the root app."""
