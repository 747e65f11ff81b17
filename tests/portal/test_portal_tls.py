"""Issue 14, TLS: a hubd whose [portal] names a certificate serves HTTPS only, and its
session cookie is Secure; HSTS is sent. A real `hubd run` on an initiated stand-in set."""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
import subprocess

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from hub.portal.passwords import hash_secret
from hubctl.lab.child_commands import HUBD
from hubctl.lab.ports import free_port
from tests.conftest import wait_until
from tests.portal.conftest import csrf_of


def _self_signed(directory):
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "portal.crt", directory / "portal.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def test_tls_portal_sets_secure_cookies(standin_set, tmp_path):
    cert, key = _self_signed(tmp_path)
    port = free_port()
    hubs = "".join(
        f'[[hubs]]\nname = "hub{i}"\nmongo = "{host}"\nservice = "127.0.0.1:{free_port()}"\n\n'
        for i, host in enumerate(standin_set.hosts, 1)
    )
    config = tmp_path / "hub.toml"
    config.write_text(
        f'[hub]\nname = "hub1"\nworkdir = "{tmp_path / "work"}"\n'
        f'listen = "127.0.0.1:{free_port()}"\n\n{standin_set.replset_section()}\n'
        f'[portal]\nport = {port}\ntls_cert = "{cert}"\ntls_key = "{key}"\n\n'
        f'[[portal.users]]\nname = "ops"\nrole = "viewer"\n'
        f'password_hash = "{hash_secret("pw")}"\n\n{hubs}'
    )
    subprocess.run(HUBD + ["init", "--config", str(config)], check=True, capture_output=True)
    with open(tmp_path / "hubd.log", "wb") as log:
        hubd = subprocess.Popen(HUBD + ["run", "--config", str(config)], stdout=log, stderr=log)
    try:
        trust = ssl.create_default_context(cafile=str(cert))
        web = httpx.Client(base_url=f"https://127.0.0.1:{port}", verify=trust, timeout=10)

        def health():
            try:
                return web.get("/health").status_code == 200
            except httpx.TransportError:
                return False

        wait_until(health, 30, 0.2, "the portal over HTTPS")
        assert "max-age" in web.get("/health").headers["strict-transport-security"]
        form = web.get("/login")
        done = web.post("/login", data={"csrf": csrf_of(form), "name": "ops", "password": "pw"})
        assert done.status_code == 303
        assert "secure" in done.headers["set-cookie"].lower()
        try:
            plain = httpx.get(f"http://127.0.0.1:{port}/health", timeout=5)
        except httpx.TransportError:
            plain = None
        assert plain is None or plain.status_code == 400  # no plain HTTP answers
    finally:
        hubd.terminate()
        hubd.wait(30)
