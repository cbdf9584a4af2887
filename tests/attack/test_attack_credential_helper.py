"""The attacker file of the credential helper's surface (docker-credential-ecrportal, holes 8
and 16 of the security issue): a hostile "portal" on 127.0.0.1 that redirects the helper
elsewhere, answers what no portal would, or is reached over plain http:// across the
network. The helper runs as Docker runs it (a process, the protocol's stdin and stdout), and
whatever the answer, it says what went wrong in one line on stdout, exits 1, never prints a
traceback and never hands its API token to anyone but the portal it was given."""

import base64
import contextlib
import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.helpers import ROOT

HELPER = ROOT / "tasks_app" / "downloads" / "docker-credential-ecrportal"
TOKEN = "ecrp_Sentinel-attack-token-0451"
HOST = "111111111111.dkr.ecr.eu-west-1.amazonaws.com"
PASSWORD = "Sentinel-attack-password-9"
ENDPOINT = "/api/v1/docker-config"


def _auth(text: bytes) -> str:
    return base64.b64encode(text).decode()


def _config(auth: str = _auth(b"AWS:" + PASSWORD.encode())) -> bytes:
    return json.dumps({"auths": {HOST: {"auth": auth}}}).encode()


class Hostile:
    """An HTTP server on 127.0.0.1 that answers every request with what the test set, and
    keeps each request it received (method, path, headers)."""

    def __init__(self):
        self.requests: list[tuple[str, str, dict]] = []
        self.answers: dict[str, tuple] = {}  # path → (status, reason, headers, body)
        self.answer(200, _config())
        hostile = self

        class Handler(BaseHTTPRequestHandler):
            def _any(self):
                hostile.requests.append((self.command, self.path, dict(self.headers)))
                default = hostile.answers.get("*")
                status, reason, headers, body = hostile.answers.get(self.path, default)
                if status is None:  # not HTTP at all
                    self.wfile.write(body)
                    return
                self.send_response(status, reason)
                for name, value in {"Content-Length": str(len(body)), **headers}.items():
                    self.send_header(name, value)
                self.end_headers()
                # The helper stops reading an oversized answer, as it should.
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self.wfile.write(body)

            do_GET = do_POST = do_CONNECT = _any

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def answer(self, status, body=b"", *, path="*", reason=None, headers=None):
        headers = {"Content-Type": "application/json", **(headers or {})}
        self.answers[path] = (status, reason, headers, body)

    def close(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


@pytest.fixture
def hostile():
    server = Hostile()
    yield server
    server.close()


@pytest.fixture
def elsewhere():
    """A second origin: same address, another port."""
    server = Hostile()
    yield server
    server.close()


def _run(command, url, stdin="", **env):
    return subprocess.run(
        [sys.executable, str(HELPER), command],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        env={
            "PATH": os.environ["PATH"],
            "HOME": "/nonexistent",
            "ECRPORTAL_URL": url,
            "ECRPORTAL_TOKEN": TOKEN,
            **env,
        },
    )


def _refused(result, *words):
    """Exit code 1, one line on stdout that says what went wrong, no traceback, no token."""
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert result.stdout.startswith("ecrportal: "), (result.stdout, result.stderr)
    assert result.stdout.count("\n") == 1, result.stdout
    assert result.stdout.endswith("\n"), result.stdout
    assert "Traceback" not in result.stderr
    assert result.stderr.count("\n") <= 1, result.stderr
    assert TOKEN not in result.stdout + result.stderr
    for word in words:
        assert word in result.stdout, result.stdout
    return result.stdout


def _get_and_list_refused(url, *words, **env):
    for command, stdin in (("get", f"https://{HOST}\n"), ("list", "")):
        _refused(_run(command, url, stdin, **env), *words)


def _bearer_only_to(server, count):
    assert len(server.requests) == count
    for _, _, headers in server.requests:
        assert headers.get("Authorization") == f"Bearer {TOKEN}"


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_redirect_to_another_origin_is_refused_and_the_token_stays_home(
    hostile, elsewhere, status
):
    target = elsewhere.url + ENDPOINT
    hostile.answer(status, b"", headers={"Location": target})
    line = _refused(
        _run("get", hostile.url, f"https://{HOST}\n"),
        f"answered HTTP {status}",
        f"a redirect to {target}",
        "does not follow redirects",
        "set ECRPORTAL_URL to the final address",
    )
    assert PASSWORD not in line
    assert elsewhere.requests == []
    _bearer_only_to(hostile, 1)


def test_a_redirect_within_the_portal_is_not_followed_either(hostile):
    moved = "/moved" + ENDPOINT
    hostile.answer(302, b"", headers={"Location": moved})
    hostile.answer(200, _config(), path=moved)
    _get_and_list_refused(
        hostile.url, f"a redirect to {hostile.url}{moved}", "does not follow redirects"
    )
    assert [path for _, path, _ in hostile.requests] == [ENDPOINT, ENDPOINT]


def test_a_redirect_without_a_location_is_refused_in_one_line(hostile):
    hostile.answer(307, b"<html><body>moved</body></html>", headers={"Content-Type": "text/html"})
    line = _refused(_run("list", hostile.url), "HTTP 307", "does not follow redirects")
    assert "<" not in line


HOSTILE_ANSWERS = {
    "a JSON list": (b"[]", 'not a Docker config (no "auths" object)'),
    "a JSON string": (b'"auths"', 'not a Docker config (no "auths" object)'),
    "text that is not JSON": (b"hello, helper", "the portal's answer is not JSON"),
    "bytes that are not UTF-8": (b'\xff\xfe{"auths": {}}', "the portal's answer is not UTF-8"),
    "arrays nested 100,000 deep": (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
    "objects nested 100,000 deep": (
        b'{"auths": ' + b'{"a": ' * 100_000 + b"1" + b"}" * 100_001,
        "nested too deeply",
    ),
    "auths as a list": (b'{"auths": []}', 'not a Docker config (no "auths" object)'),
    "no auths at all": (b"{}", 'not a Docker config (no "auths" object)'),
    "an entry that is a string": (
        json.dumps({"auths": {HOST: "AWS:x"}}).encode(),
        f'entry for {HOST} has no "auth" string',
    ),
    "an entry without auth": (
        json.dumps({"auths": {HOST: {"username": "AWS", "password": "x"}}}).encode(),
        f'entry for {HOST} has no "auth" string',
    ),
    "auth as a number": (
        json.dumps({"auths": {HOST: {"auth": 12345}}}).encode(),
        f'entry for {HOST} has no "auth" string',
    ),
    "auth that is not base64": (_config("not base64!"), f'"auth" for {HOST} is not base64'),
    "auth with base64 letters outside the alphabet": (
        _config(_auth(b"AWS:pw") + "$$"),
        "is not base64",
    ),
    "auth with non-ASCII letters": (_config("QVdT\u00e9OnB3"), "is not base64"),
    "auth of bytes that are not UTF-8": (
        _config(_auth(b"AWS:\xff\xfe\xfa")),
        "is not base64 of UTF-8 text",
    ),
    "auth without a colon": (_config(_auth(b"AWSpassword")), 'is not "user:password"'),
    "auth with an empty password": (_config(_auth(b"AWS:")), 'is not "user:password"'),
    "auth with an empty user": (_config(_auth(b":password")), 'is not "user:password"'),
    "auth that is empty": (_config(""), 'is not "user:password"'),
    "an answer over 1 MiB": (
        b'{"auths": {}, "padding": "' + b"x" * (2 * 1024 * 1024) + b'"}',
        "the portal's answer is too large",
    ),
}


@pytest.mark.parametrize(("body", "words"), HOSTILE_ANSWERS.values(), ids=HOSTILE_ANSWERS.keys())
def test_a_hostile_answer_is_one_line_and_exit_code_1_never_empty_credentials(
    hostile, body, words
):
    hostile.answer(200, body)
    _get_and_list_refused(hostile.url, words)


def test_an_html_error_page_is_named_by_its_status_and_never_echoed(hostile):
    page = f"<html><body><h1>Oops</h1><pre>Authorization: Bearer {TOKEN}</pre></body></html>"
    hostile.answer(
        500,
        page.encode(),
        reason="<b>Broken</b> proxy",
        headers={"Content-Type": "text/html"},
    )
    for command in ("get", "list"):
        line = _refused(
            _run(command, hostile.url, HOST), "the portal answered HTTP 500: Internal Server Error"
        )
        assert "<" not in line
        assert "Oops" not in line
        assert "Broken" not in line


@pytest.mark.parametrize(
    "body",
    [
        b"[]",
        b'"detail"',
        b'{"detail": ["a", "list"]}',
        b"[" * 100_000 + b"]" * 100_000,
        b'\xff{"detail": "x"}',
    ],
    ids=["a list", "a string", "a detail list", "deep nesting", "not UTF-8"],
)
def test_a_hostile_error_body_is_named_by_its_status(hostile, body):
    hostile.answer(403, body)
    _get_and_list_refused(hostile.url, "the portal answered HTTP 403: Forbidden")


def test_an_error_detail_that_echoes_the_token_is_printed_without_it(hostile):
    detail = f"token {TOKEN} is unknown\nsecond line\r\nthird line"
    hostile.answer(401, json.dumps({"detail": detail}).encode())
    _refused(
        _run("get", hostile.url, HOST),
        "HTTP 401: token [the API token] is unknown second line  third line",
    )


def test_an_answer_that_is_not_http_is_a_connection_failure_in_one_line(hostile):
    hostile.answer(None, b"SSH-2.0-OpenSSH_9.2\r\n\r\n")
    _get_and_list_refused(hostile.url, f"cannot reach the portal at {hostile.url}")


PROXIES = ("http_proxy", "https_proxy", "ftp_proxy", "all_proxy")


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("http://portal.example.com", "the API token would cross the network in clear text"),
        ("http://10.0.0.5:8000", "the API token would cross the network in clear text"),
        ("http://127.0.0.1.nip.io", "the API token would cross the network in clear text"),
        ("HTTP://portal.example.com/", "the API token would cross the network in clear text"),
        ("ftp://127.0.0.1:{port}", "must be https://"),
        ("file:///etc/passwd", "must be https://"),
        ("portal.example.com", "must be https://"),
        ("https://ada:Sentinel-url-secret@127.0.0.1:{port}", "user name or password"),
        ("https://Sentinel-url-secret@portal.example.com", "user name or password"),
        ("https:///api", "has no host"),
        ("https://127.0.0.1:{port}/?next=x", "without ? or #"),
        ("https://127.0.0.1:port", "is not a valid address"),
    ],
)
def test_an_address_the_token_cannot_travel_to_safely_is_refused_before_any_request(
    hostile, url, words
):
    url = url.format(port=hostile.port)
    proxies = {name: hostile.url for name in PROXIES + tuple(p.upper() for p in PROXIES)}
    for command, stdin in (("get", HOST), ("list", "")):
        line = _refused(_run(command, url, stdin, **proxies), words)
        assert "Sentinel-url-secret" not in line
    assert hostile.requests == []


def test_the_config_file_address_follows_the_same_rules(hostile, tmp_path):
    config = tmp_path / "helper.json"
    config.write_text(json.dumps({"url": "http://portal.example.com", "token": TOKEN}))
    config.chmod(0o600)
    env = {"ECRPORTAL_HELPER_CONFIG": str(config), "http_proxy": hostile.url}
    _refused(_run("get", "", HOST, ECRPORTAL_TOKEN="", **env), "in clear text")
    assert hostile.requests == []


def test_a_token_with_a_newline_is_refused_without_printing_it(hostile):
    result = _run("get", hostile.url, HOST, ECRPORTAL_TOKEN=TOKEN + "\nX-Evil: 1")
    _refused(result, "the API token holds spaces or control characters")
    assert hostile.requests == []


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_plain_http_to_loopback_is_accepted(hostile, host):
    url = f"http://{host}:{hostile.port}"
    got = _run("get", url, f"https://{HOST}/v2/\n")
    assert got.returncode == 0, got.stdout
    assert json.loads(got.stdout) == {
        "ServerURL": f"https://{HOST}/v2/",
        "Username": "AWS",
        "Secret": PASSWORD,
    }
    listed = _run("list", url + "/")
    assert json.loads(listed.stdout) == {HOST: "AWS"}
    _bearer_only_to(hostile, 2)
    assert {path for _, path, _ in hostile.requests} == {ENDPOINT}


def test_a_loopback_portal_is_asked_directly_never_through_a_proxy(hostile, elsewhere):
    proxies = {name: elsewhere.url for name in ("http_proxy", "HTTP_PROXY", "all_proxy")}
    got = _run("get", hostile.url, HOST, **proxies)
    assert json.loads(got.stdout)["Secret"] == PASSWORD
    assert elsewhere.requests == []
    _bearer_only_to(hostile, 1)
