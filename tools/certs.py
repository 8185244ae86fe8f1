"""`make certs`: a local certificate authority and the certificates signed by it, for TLS on one
machine (development, the tests). Production uses certificates from the county's own CA; the
names and files are the same (docs/deployment.md, "TLS").

Written to ``.tls/`` (git-ignored), or the directory given: ``ca.pem`` (the CA every client
verifies with), and for each name ``<name>.pem`` (certificate) and ``<name>.key`` (its private
key, mode 0600):

- server certificates for ``localhost`` and ``127.0.0.1``: ``broker``, ``database`` and one per
  service (``referral``, ``meeting``, ``followup``, ``metrics``);
- client certificates, the certificate's common name being the user it logs in as: one per
  agency (``trisam-af``, ``-fk``, ``-kommun``, ``-region``; RabbitMQ takes the broker user from
  it, EXTERNAL authentication), one per service's broker user (``trisam-svc-<service>``) and
  ``postgres`` (the database user of the development server).

Idempotent: a file that exists is kept (delete the directory for new ones).
"""

from __future__ import annotations

import argparse
import datetime
import ipaddress
import os
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DIR = ROOT / ".tls"
SERVICES = ("referral", "meeting", "followup", "metrics")
SERVERS = ("broker", "database", *SERVICES)
AGENCIES = ("af", "fk", "kommun", "region")
CA_DAYS = 3650
CERT_DAYS = 825


class Authority:
    """The CA's certificate and key, from ``ca.pem``/``ca.key`` in a directory (made if absent)."""

    def __init__(self, directory: Path):
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        cert_path, key_path = directory / "ca.pem", directory / "ca.key"
        if not (cert_path.exists() and key_path.exists()):
            key = ec.generate_private_key(ec.SECP256R1())
            name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Trisam local CA")])
            cert = (
                _builder(name, name, key.public_key(), CA_DAYS)
                .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                .add_extension(
                    x509.KeyUsage(
                        digital_signature=True,
                        key_cert_sign=True,
                        crl_sign=True,
                        content_commitment=False,
                        key_encipherment=False,
                        data_encipherment=False,
                        key_agreement=False,
                        encipher_only=False,
                        decipher_only=False,
                    ),
                    critical=True,
                )
                .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
                .sign(key, hashes.SHA256())
            )
            _write(key_path, cert_path, key, cert)
        self.cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        loaded = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        assert isinstance(loaded, ec.EllipticCurvePrivateKey)
        self.key = loaded
        self.ca_file = cert_path

    def server(self, name: str, hosts: tuple[str, ...] = ("localhost", "127.0.0.1")) -> tuple[Path, Path]:
        """``<name>.pem`` and ``<name>.key``: a server certificate for the host names and addresses."""
        alt_names: list[x509.GeneralName] = []
        for host in hosts:
            try:
                alt_names.append(x509.IPAddress(ipaddress.ip_address(host)))
            except ValueError:
                alt_names.append(x509.DNSName(host))
        return self._issue(name, name, ExtendedKeyUsageOID.SERVER_AUTH, x509.SubjectAlternativeName(alt_names))

    def client(self, user: str, name: str | None = None) -> tuple[Path, Path]:
        """``<name>.pem`` and ``<name>.key`` (name: the user): a client certificate whose common
        name is the user it logs in as."""
        return self._issue(name or user, user, ExtendedKeyUsageOID.CLIENT_AUTH, None)

    def _issue(
        self, name: str, common_name: str, usage: x509.ObjectIdentifier, alt_names: x509.SubjectAlternativeName | None
    ) -> tuple[Path, Path]:
        cert_path, key_path = self.directory / f"{name}.pem", self.directory / f"{name}.key"
        if cert_path.exists() and key_path.exists():
            return cert_path, key_path
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        builder = (
            _builder(subject, self.cert.subject, key.public_key(), CERT_DAYS)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                critical=False,
            )
        )
        if alt_names is not None:
            builder = builder.add_extension(alt_names, critical=False)
        _write(key_path, cert_path, key, builder.sign(self.key, hashes.SHA256()))
        return cert_path, key_path


def _builder(subject: x509.Name, issuer: x509.Name, public_key: ec.EllipticCurvePublicKey, days: int):
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
    )


def _write(key_path: Path, cert_path: Path, key: ec.EllipticCurvePrivateKey, cert: x509.Certificate) -> None:
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(pem)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def make_all(directory: Path, namespace: str = "trisam") -> Authority:
    """The CA, every server certificate and the development users' client certificates."""
    ca = Authority(directory)
    for server in SERVERS:
        ca.server(server)
    for agency in AGENCIES:
        ca.client(f"{namespace}-{agency}")
    for service in SERVICES:
        ca.client(f"{namespace}-svc-{service}")
    ca.client("postgres")
    return ca


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR, help="where to write them (default: .tls/)")
    args = parser.parse_args()
    make_all(args.dir)
    print(f"local CA and certificates in {args.dir} (ca.pem: what clients verify with)")


if __name__ == "__main__":
    main()
