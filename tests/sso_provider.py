"""Starts the test identity provider (tests/oidc_provider) as a process of its own."""

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.helpers import ROOT, free_port, http_get, wait_for

CLIENT_ID = "ecr-portal"
CLIENT_SECRET = "provider-client-secret-sentinel-51"
PROVIDER_PASSWORD = "provider password"


@dataclass
class Provider:
    issuer: str
    process: subprocess.Popen

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


def start_provider(folder: Path, *, redirect_uri: str) -> Provider:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    key_file = folder / "provider-key.pem"
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    port = free_port()
    issuer = f"http://127.0.0.1:{port}/o"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.oidc_provider.settings",
        "PROVIDER_DB": str(folder / "provider.sqlite3"),
        "PROVIDER_KEY": str(key_file),
        "PROVIDER_ISSUER": issuer,
    }
    env.pop("DATABASE_URL", None)
    python = sys.executable
    subprocess.run([python, "-m", "django", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
    subprocess.run(
        [python, "-m", "tests.oidc_provider.seed", redirect_uri, CLIENT_ID, CLIENT_SECRET],
        cwd=ROOT,
        env=env,
        check=True,
    )
    process = subprocess.Popen(
        [
            python,
            "-m",
            "gunicorn",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            "1",
            "--threads",
            "4",
            "--log-level",
            "warning",
            "django.core.wsgi:get_wsgi_application()",
        ],
        cwd=ROOT,
        env=env,
    )
    provider = Provider(issuer=issuer, process=process)
    try:
        wait_for(
            lambda: http_get(f"{issuer}/.well-known/openid-configuration")[0] == 200,
            timeout=30,
            what="the test identity provider",
        )
    except AssertionError:
        provider.stop()
        raise
    return provider
