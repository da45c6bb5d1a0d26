"""``manage.py dev_certificate``: a local certificate authority and a server certificate signed by it, for HTTPS in
development (``make run`` with GOFER_TLS_CERT and GOFER_TLS_KEY). Never for production: use a real certificate.

Writes ``ca.pem`` (give it to clients: ``curl --cacert``, ``SSL_CERT_FILE``, a browser's authorities), ``cert.pem``
and ``key.pem`` (mode 0600) into ``$GOFER_HOME/tls`` or ``--dir``. The server certificate names ``localhost``,
``127.0.0.1``, ``::1``, the host of GOFER_BIND and every ``--host``; it is valid for 825 days (what browsers accept).
The CA's private key is not kept: the CA can sign nothing else.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from kernel import files

VALID_DAYS = 825


def _names(hosts: list[str]) -> list[x509.GeneralName]:
    out: list[x509.GeneralName] = []
    for host in dict.fromkeys(hosts):
        try:
            out.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            out.append(x509.DNSName(host))
    return out


def _write(path: Path, data: bytes, mode: int) -> None:
    path.unlink(missing_ok=True)
    path.touch(mode=mode)
    path.chmod(mode)
    path.write_bytes(data)


def make(directory: Path, hosts: list[str]) -> dict[str, Path]:
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Gofer development CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=VALID_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=VALID_DAYS))
        .add_extension(x509.SubjectAlternativeName(_names(hosts)), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    files.private_directories(directory)
    paths = {name: directory / f"{name}.pem" for name in ("ca", "cert", "key")}
    _write(paths["ca"], ca.public_bytes(serialization.Encoding.PEM), 0o644)
    _write(paths["cert"], cert.public_bytes(serialization.Encoding.PEM), 0o644)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    _write(paths["key"], key_pem, files.FILE_MODE)
    return paths


class Command(BaseCommand):
    help = "Create a local CA and a server certificate for HTTPS in development (make run with GOFER_TLS_*)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--dir", default="", help="where to write ca.pem, cert.pem, key.pem ($GOFER_HOME/tls)")
        parser.add_argument("--host", action="append", default=[], help="another name or address (repeatable)")
        parser.add_argument("--force", action="store_true", help="replace an existing certificate")

    def handle(self, *args: Any, **options: Any) -> None:
        directory = Path(options["dir"] or settings.GOFER_HOME / "tls").resolve()
        if (directory / "cert.pem").exists() and not options["force"]:
            raise CommandError(f"{directory / 'cert.pem'} exists; --force replaces it")
        bind_host = settings.GOFER_BIND.rpartition(":")[0].strip("[]")
        hosts = ["localhost", "127.0.0.1", "::1", *([bind_host] if bind_host else []), *options["host"]]
        paths = make(directory, hosts)
        self.stdout.write(f"A development certificate for {', '.join(dict.fromkeys(hosts))}; serve HTTPS with:\n")
        self.stdout.write(f"  export GOFER_TLS_CERT={paths['cert']} GOFER_TLS_KEY={paths['key']}\n  make run\n")
        self.stdout.write(f"Clients trust it with the CA file {paths['ca']}, e.g.\n")
        self.stdout.write(
            f"  curl --cacert {paths['ca']} https://localhost:{settings.GOFER_BIND.rpartition(':')[2]}/\n"
        )
