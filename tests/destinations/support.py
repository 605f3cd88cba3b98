"""Helpers for the destinations tests."""

from __future__ import annotations

import re

import sqlalchemy as sa

from tests.factories import make_connection
from whoopadmin.destinations import service
from whoopadmin.destinations.models import Delivery, Destination
from whoopadmin.extensions import db

SECRET_RE = re.compile(
    r'data-testid="new-secret".*?<code class="copyable">(whsec_[A-Za-z0-9+/=_-]+)</code>', re.S
)


def shown_secret(response) -> str:
    match = SECRET_RE.search(response.get_data(as_text=True))
    assert match, "the page shows no new secret"
    return match.group(1)


def seed(app, url: str, events=None, active=True, **connection) -> tuple[int, int, str]:
    """A connection and a destination on it; return (connection id, destination id, secret)."""
    with app.app_context():
        conn = make_connection(**connection)
        destination, secret = service.create_destination(
            "test", conn, url, events or ["auth.success", "sleep"], active
        )
        return conn.id, destination.id, secret


def readme_snippet(heading: str) -> dict:
    """Run the first Python block under a README heading; return the names it defines."""
    from pathlib import Path

    import whoopadmin

    readme = (Path(whoopadmin.__file__).resolve().parents[1] / "README.md").read_text()
    section = readme.split(heading, 1)[1]
    snippet = section.split("```python\n", 1)[1].split("```", 1)[0]
    namespace: dict = {}
    exec(compile(snippet, "README.md", "exec"), namespace)  # noqa: S102
    return namespace


def standard_verify(secret: str, request: dict) -> dict:
    """Verify a received request's Standard Webhooks headers with the independent package."""
    from standardwebhooks import Webhook

    return Webhook(secret).verify(request["body"], request["headers"])


def signatures(request: dict) -> tuple[list[str], list[str]]:
    """The v1 signatures of both headers of a received request: (whoopadmin, standard)."""
    ours = [
        part.split("=", 1)[1]
        for part in request["headers"]["Whoopadmin-Signature"].split(",")
        if part.startswith("v1=")
    ]
    return ours, request["headers"]["Webhook-Signature"].split(" ")


def deliveries(app) -> list[Delivery]:
    with app.app_context():
        rows = list(db.session.scalars(sa.select(Delivery).order_by(Delivery.id)))
        for row in rows:
            db.session.expunge(row)
        return rows


def destination(app, destination_id: int) -> dict:
    with app.app_context():
        d = db.session.get(Destination, destination_id)
        return {
            "url": d.url,
            "events": list(d.events),
            "active": d.active,
            "secret": d.signing_secret,
        }


def make_due(app) -> None:
    """Move every pending delivery's next attempt into the past (time passing)."""
    with app.app_context():
        for row in db.session.scalars(sa.select(Delivery).where(Delivery.status == "pending")):
            row.next_attempt_at = row.created_at
        db.session.commit()


def tls_files(tmp_path, hostname: str) -> tuple[str, str, str]:
    """A throwaway CA and a server certificate for ``hostname``; return (ca, cert, key) paths."""
    from datetime import UTC, datetime, timedelta

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.now(UTC)

    def build(subject, issuer, public_key, signing_key, ca: bool, san=None):
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + timedelta(hours=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if ca:
            builder = builder.add_extension(
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
            ).add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        if san:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.DNSName(san)]), critical=False
            )
        return builder.sign(signing_key, hashes.SHA256())

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = build("whoopadmin test CA", "whoopadmin test CA", ca_key.public_key(), ca_key, True)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = build(hostname, "whoopadmin test CA", key.public_key(), ca_key, False, hostname)
    paths = (tmp_path / "ca.pem", tmp_path / "cert.pem", tmp_path / "key.pem")
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return tuple(str(p) for p in paths)
