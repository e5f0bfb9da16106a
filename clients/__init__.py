"""gsvd.clients: Python clients for the gsvd daemon (no torch). `Client`, `AsyncClient`, `AudioOut`,
`AudioStream` load grpc on first use, so importing this package (as the CLI does) stays cheap."""

__all__ = ["AsyncClient", "AudioOut", "AudioStream", "Client"]


def __getattr__(name: str):
    if name in __all__:
        from gsvd.clients import client

        return getattr(client, name)
    raise AttributeError(f"module 'gsvd.clients' has no attribute {name!r}")
