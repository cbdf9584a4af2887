"""The ID-token path's CPU in one process, without gunicorn or wrk (issue 17).

bench/api.py measures through gunicorn, whose figures swing by a third between runs on a
shared machine. This drives the same portal (bench/api.py's data, a file SQLite database,
a CI issuer on 127.0.0.1) through Django's test client in this process, which repeats to
within a few percent, so that a change to the ID-token path can be compared before and
after. The client's own cost is in both figures, so the share is a proxy for bench/api.py's,
not the same number.

    .venv/bin/python bench/id_tokens.py

Options (environment): BENCH_REQUESTS (400 a round), BENCH_ROUNDS (6).
"""

import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REQUESTS = int(os.environ.get("BENCH_REQUESTS", "400"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "6"))


def main() -> None:
    sys.path.insert(0, str(ROOT))
    sys.path.insert(0, str(ROOT / "bench"))
    import api
    from moto.server import ThreadedMotoServer

    from tests.oidc_issuer import Issuer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    data_dir = Path(tempfile.mkdtemp(prefix="ecrportal-bench-id-"))
    moto_port = api.free_port()
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=moto_port, verbose=False)
    moto.start()
    issuer = Issuer(data_dir)
    env = {**api.portal_env(data_dir, issuer, cache_seconds=60), "ALLOWED_HOSTS": "testserver"}
    try:
        data = api.setup_portal(env, f"http://127.0.0.1:{moto_port}")
        os.environ.update(env)
        import django

        django.setup()
        from django.test import Client

        client = Client()
        url = f"/api/v1/tasks/{data['jobs'][0]['tasks'][0]}/variables"

        def per_request(send, count: int) -> float:
            started = time.process_time()
            for n in range(count):
                send(n)
            return (time.process_time() - started) / count * 1000

        def floor(n):
            client.get("/healthz")

        def with_id_token(tokens):
            def send(n):
                response = client.get(url, HTTP_AUTHORIZATION=f"Bearer {tokens[n]}")
                assert response.status_code == 200, response.content

            return send

        # Warm up: imports, the issuer's JWKS, compiled statements.
        per_request(floor, 50)
        per_request(with_id_token([issuer.token() for _ in range(50)]), 50)
        floors, ids = [], []
        for _ in range(ROUNDS):
            floors.append(per_request(floor, REQUESTS))
            tokens = [issuer.token() for _ in range(REQUESTS)]  # each used once
            ids.append(per_request(with_id_token(tokens), REQUESTS))
        base, cost = statistics.median(floors), statistics.median(ids)
        print(f"ID-token path in one process, {ROUNDS} rounds of {REQUESTS}, medians (min-max)")
        print(f"  /healthz                {base:.3f} ms ({min(floors):.3f}-{max(floors):.3f})")
        print(f"  ID token, each once     {cost:.3f} ms ({min(ids):.3f}-{max(ids):.3f})")
        print(f"  share of the floor      {base / cost:.0%}")
    finally:
        issuer.stop()
        moto.stop()


if __name__ == "__main__":
    main()
