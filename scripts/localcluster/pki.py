"""Certificates and kubeconfigs of the local cluster: one CA, a serving or client certificate per component.

Every identity is a client certificate signed by the cluster CA (CN = user, O = groups), the way kubeadm sets up a
control plane; ECDSA P-256 keys, valid for ten years. Written once into ``<state>/pki`` and reused by later runs.
"""

from __future__ import annotations

import datetime
import ipaddress
from base64 import b64encode
from dataclasses import dataclass
from pathlib import Path

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VALIDITY = datetime.timedelta(days=3650)


@dataclass(frozen=True)
class Identity:
    """A certificate to issue: file stem, subject, groups, and (serving certificates) the names it answers to."""

    name: str
    common_name: str
    groups: tuple[str, ...] = ()
    dns_names: tuple[str, ...] = ()
    ip_addresses: tuple[str, ...] = ()
    server: bool = False
    client: bool = True


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    path.chmod(0o600)


def _load_key(path: Path) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return key


class Pki:
    """The cluster CA in ``directory`` and the certificates it issued there (``<name>.crt`` / ``<name>.key``)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def path(self, name: str, suffix: str) -> Path:
        return self.directory / f"{name}.{suffix}"

    @property
    def ca_cert(self) -> Path:
        return self.path("ca", "crt")

    def ensure_ca(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        if self.ca_cert.exists():
            return
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "airflow-azblob-local-ca")])
        now = datetime.datetime.now(datetime.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + VALIDITY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
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
            .sign(key, hashes.SHA256())
        )
        _write_key(self.path("ca", "key"), key)
        self.ca_cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))

    def issue(self, identity: Identity) -> None:
        """Write ``<name>.crt`` and ``<name>.key`` unless they exist."""
        if self.path(identity.name, "crt").exists():
            return
        ca_key = _load_key(self.path("ca", "key"))
        ca_cert = x509.load_pem_x509_certificate(self.ca_cert.read_bytes())
        key = ec.generate_private_key(ec.SECP256R1())
        subject = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, group) for group in identity.groups]
        subject.append(x509.NameAttribute(NameOID.COMMON_NAME, identity.common_name))
        usages = [ExtendedKeyUsageOID.SERVER_AUTH] * identity.server + [
            ExtendedKeyUsageOID.CLIENT_AUTH
        ] * identity.client
        now = datetime.datetime.now(datetime.UTC)
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name(subject))
            .issuer_name(ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + VALIDITY)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        )
        names: list[x509.GeneralName] = [x509.DNSName(name) for name in identity.dns_names]
        names += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in identity.ip_addresses]
        if names:
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        cert = builder.sign(ca_key, hashes.SHA256())
        _write_key(self.path(identity.name, "key"), key)
        self.path(identity.name, "crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))

    def ensure_service_account_keys(self) -> None:
        """The key pair the apiserver signs and checks ServiceAccount tokens with."""
        if self.path("sa", "key").exists():
            return
        key = ec.generate_private_key(ec.SECP256R1())
        _write_key(self.path("sa", "key"), key)
        self.path("sa", "pub").write_bytes(
            key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        )

    def kubeconfig(self, path: Path, *, identity: str, server: str, cluster: str) -> None:
        """A kubeconfig for ``identity``'s certificate (data embedded), context ``cluster``."""
        user = identity

        def data(p: Path) -> str:
            return b64encode(p.read_bytes()).decode()

        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {"name": cluster, "cluster": {"server": server, "certificate-authority-data": data(self.ca_cert)}}
            ],
            "users": [
                {
                    "name": user,
                    "user": {
                        "client-certificate-data": data(self.path(identity, "crt")),
                        "client-key-data": data(self.path(identity, "key")),
                    },
                }
            ],
            "contexts": [{"name": cluster, "context": {"cluster": cluster, "user": user}}],
            "current-context": cluster,
        }
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        path.chmod(0o600)
