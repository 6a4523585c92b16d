"""Throwaway key material made at run time: WireGuard key pairs and self-signed certificates for OpenVPN.

Nothing here is kept: it lives in the run's private temporary directory and goes with it.
"""

from __future__ import annotations

import base64
import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.x509.oid import NameOID


@dataclass(frozen=True)
class WgKeys:
    """A WireGuard key pair, base64 as in wg-quick files."""

    private: str
    public: str


def wg_keypair() -> WgKeys:
    """A fresh Curve25519 key pair (the same encoding as ``wg genkey | wg pubkey``)."""
    key = X25519PrivateKey.generate()
    raw = serialization.Encoding.Raw
    priv = key.private_bytes(raw, serialization.PrivateFormat.Raw, serialization.NoEncryption())
    pub = key.public_key().public_bytes(raw, serialization.PublicFormat.Raw)
    return WgKeys(base64.b64encode(priv).decode(), base64.b64encode(pub).decode())


@dataclass(frozen=True)
class TlsIdentity:
    """A self-signed certificate and its key on disk, with the SHA-256 fingerprint a peer pins."""

    cert: Path
    key: Path
    fingerprint: str  # "AA:BB:...", the form --peer-fingerprint takes


def tls_identity(directory: Path, name: str) -> TlsIdentity:
    """Write ``<name>.crt`` and ``<name>.key`` (P-256, valid for a day) into ``directory``."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))  # tolerate a little clock skew between the two ends
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / f"{name}.crt", directory / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    key_path.chmod(0o600)
    fingerprint = ":".join(f"{b:02X}" for b in cert.fingerprint(hashes.SHA256()))
    return TlsIdentity(cert_path, key_path, fingerprint)
