"""gsvd.clients: Python clients for the gsvd daemon (no torch)."""

from gsvd.clients.client import AsyncClient, AudioOut, Client

__all__ = ["AsyncClient", "AudioOut", "Client"]
