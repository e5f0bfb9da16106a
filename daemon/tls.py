"""TLS and mutual TLS, one set of files for both listeners (gRPC and the HTTP/WebSocket gateway).

`TlsFiles.load` reads and checks the files once at start: the certificate and its key come
together, every file must exist, and the pair must load into an `ssl.SSLContext` (which also
catches a key that does not match its certificate). A client CA turns on client certificates,
required by both listeners.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

from gsvd.engine.errors import InvalidInput


@dataclass(frozen=True)
class TlsFiles:
    cert: bytes
    key: bytes
    client_ca: bytes | None
    paths: tuple[str, str, str]  # cert, key, client CA (for the ssl module, which reads files)

    @classmethod
    def load(cls, cert: str, key: str, client_ca: str = "") -> TlsFiles | None:
        """None when TLS is off; InvalidInput (naming the setting) for a half or unreadable set-up."""
        if not (cert or key or client_ca):
            return None
        if not cert or not key:
            missing, given = ("tls_key", "tls_cert") if cert else ("tls_cert", "tls_key")
            if not cert and not key:
                missing, given = "tls_cert", "tls_client_ca"
            raise InvalidInput(f"{given} is set but {missing} is not: TLS needs both --tls-cert and --tls-key",
                               missing)
        cert, key, client_ca = (str(Path(p).expanduser()) if p else "" for p in (cert, key, client_ca))
        files = cls(_read(cert, "tls_cert"), _read(key, "tls_key"), _read(client_ca, "tls_client_ca") if client_ca
                    else None, (cert, key, client_ca))
        files.server_context()  # fail at start, not at the first handshake
        return files

    def server_context(self) -> ssl.SSLContext:
        """The gateway's context: TLS 1.2+, and a client certificate required when a client CA is set."""
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        cert, key, ca = self.paths
        try:
            ctx.load_cert_chain(cert, key)
        except (ssl.SSLError, OSError) as exc:
            raise InvalidInput(f"tls_cert/tls_key: cannot load the certificate and key ({exc.__class__.__name__}: "
                               f"{exc}); they must be PEM files of one pair", "tls_cert") from None
        if ca:
            try:
                ctx.load_verify_locations(cafile=ca)
            except (ssl.SSLError, OSError) as exc:
                raise InvalidInput(f"tls_client_ca: cannot load the CA certificates ({exc})", "tls_client_ca") from None
            ctx.verify_mode = ssl.CERT_REQUIRED
        return ctx

    def grpc_credentials(self):
        import grpc

        return grpc.ssl_server_credentials([(self.key, self.cert)], root_certificates=self.client_ca,
                                           require_client_auth=self.client_ca is not None)


def _read(path: str, setting: str) -> bytes:
    p = Path(path)
    if not p.is_file():
        what = "is a folder" if p.is_dir() else "does not exist"
        raise InvalidInput(f"{setting}: {path} {what} (give a PEM file)", setting)
    try:
        return p.read_bytes()
    except OSError as exc:
        raise InvalidInput(f"{setting}: cannot read {path} ({exc.strerror})", setting) from None
