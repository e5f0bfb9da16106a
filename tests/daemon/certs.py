"""A throwaway certificate authority for TLS tests: a CA, a server certificate for 127.0.0.1 /
localhost, a client certificate signed by the CA and one signed by a stranger (PEM files)."""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Certs:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    stranger_cert: Path  # a client certificate the server's CA did not sign
    stranger_key: Path


def make_certs(folder: Path) -> Certs:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    folder.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    def issue(cn, key, issuer_name, issuer_key, *, ca=False, sans=(), usage=None):
        b = (x509.CertificateBuilder().subject_name(name(cn)).issuer_name(issuer_name).public_key(key.public_key())
             .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
             .not_valid_after(now + datetime.timedelta(days=1))
             .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
        if sans:
            b = b.add_extension(x509.SubjectAlternativeName(list(sans)), critical=False)
        if usage:
            b = b.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        return b.sign(issuer_key, hashes.SHA256())

    def write(stem: str, cert, key) -> tuple[Path, Path]:
        c, k = folder / f"{stem}.crt", folder / f"{stem}.key"
        c.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        k.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                        serialization.NoEncryption()))
        return c, k

    keys = {n: ec.generate_private_key(ec.SECP256R1()) for n in ("ca", "server", "client", "other-ca", "stranger")}
    ca = issue("test ca", keys["ca"], name("test ca"), keys["ca"], ca=True)
    other = issue("other ca", keys["other-ca"], name("other ca"), keys["other-ca"], ca=True)
    server = issue("localhost", keys["server"], ca.subject, keys["ca"],
                   sans=(x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))),
                   usage=ExtendedKeyUsageOID.SERVER_AUTH)
    client = issue("client", keys["client"], ca.subject, keys["ca"], usage=ExtendedKeyUsageOID.CLIENT_AUTH)
    stranger = issue("stranger", keys["stranger"], other.subject, keys["other-ca"], usage=ExtendedKeyUsageOID.CLIENT_AUTH)
    ca_path, _ = write("ca", ca, keys["ca"])
    return Certs(ca_path, *write("server", server, keys["server"]), *write("client", client, keys["client"]),
                 *write("stranger", stranger, keys["stranger"]))
