"""A CI system's OIDC issuer for the tests (issue 17): an https server on 127.0.0.1 with
its own CA, serving a discovery document and a JWKS, and signing ID tokens with its own
RSA and EC keys, as GitHub Actions or GitLab do."""

import datetime
import json
import ssl
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from ipaddress import IPv4Address
from pathlib import Path

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID


def _certificate(subject: str, key, issuer_name, signer, *, ca: bool, ip: str | None = None):
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ip:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(IPv4Address(ip))]), critical=False
        )
    return builder.sign(signer, hashes.SHA256())


class Issuer:
    def __init__(self, folder: Path):
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Test CI CA")])
        ca_cert = _certificate("Test CI CA", ca_key, ca_name, ca_key, ca=True)
        server_key = ec.generate_private_key(ec.SECP256R1())
        server_cert = _certificate(
            "127.0.0.1", server_key, ca_name, ca_key, ca=False, ip="127.0.0.1"
        )
        self.ca_bundle = folder / "ci-ca.pem"
        self.ca_bundle.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
        cert_file, key_file = folder / "ci-server.pem", folder / "ci-server.key"
        cert_file.write_bytes(server_cert.public_bytes(serialization.Encoding.PEM))
        key_file.write_bytes(
            server_key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        self.rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.ec = ec.generate_private_key(ec.SECP256R1())
        self.jwks_fails = False
        self.jwks_fetches = 0  # answered with the keys
        self.jwks_requests = 0  # asked for, answered or not
        self.jwks_delay: threading.Event | None = None  # when set: answer once it is set
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                if self.path == "/jwks":
                    issuer.jwks_requests += 1
                    if issuer.jwks_delay is not None:
                        issuer.jwks_delay.wait(60)
                if self.path == "/.well-known/openid-configuration":
                    body = {"issuer": issuer.url, "jwks_uri": issuer.url + "/jwks"}
                elif self.path == "/jwks" and not issuer.jwks_fails:
                    issuer.jwks_fetches += 1
                    body = issuer.jwks()
                else:
                    self.send_response(500 if self.path == "/jwks" else 404)
                    self.end_headers()
                    return
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert_file, key_file)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.url = f"https://127.0.0.1:{self.server.server_address[1]}"
        # shutdown() waits for serve_forever()'s next poll: 0.05 s, not the default 0.5 s.
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def jwks(self) -> dict:
        rsa_jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.rsa.public_key()))
        ec_jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(self.ec.public_key()))
        return {
            "keys": [
                {**rsa_jwk, "kid": "rsa-1", "use": "sig", "alg": "RS256"},
                {**ec_jwk, "kid": "ec-1", "use": "sig", "alg": "ES256"},
            ]
        }

    def claims(self, **changes) -> dict:
        at = int(time.time())
        claims = {
            "iss": self.url,
            "aud": "https://ecr-portal.example.com",
            "sub": "repo:acme/web:ref:refs/heads/main",
            "repository": "acme/web",
            "ref": "refs/heads/main",
            "iat": at,
            "nbf": at,
            "exp": at + 300,
            "jti": str(uuid.uuid4()),
        }
        claims.update(changes)
        return {k: v for k, v in claims.items() if v is not None}

    def token(self, *, algorithm="RS256", kid=None, key=None, **changes) -> str:
        signer = key if key is not None else (self.rsa if algorithm == "RS256" else self.ec)
        kid = kid or ("rsa-1" if algorithm == "RS256" else "ec-1")
        return jwt.encode(
            self.claims(**changes), signer, algorithm=algorithm, headers={"kid": kid}
        )

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
