"""The team webhook surface, attacked (issue 22).

The attacker: a team admin who points the team's webhook at the portal's own network
(server-side request forgery: loopback, private ranges, link-local cloud metadata, names
that resolve there, or that resolve elsewhere at save time and there at delivery time);
and the receiver at the other end, which answers however it likes: redirects, slowly,
hugely, with a hostile status line. What they control: the webhook URL and signing secret
on the team's notifications page, the Test button, what their DNS name resolves to and
when, and every byte their server sends back. What guards it: webhook_target, which
checks the URL and every address its host resolves to, at save and again at each
delivery, and webhook_post, which connects to the address it checked, verifies TLS,
follows no redirect and times out (tasks_app/lib/webhooks.py); notification_send, which
records at most 500 characters of an error (tasks_app/services/notifications.py).

No DNS query leaves this machine: names other than localhost are answered by a stand-in
for socket.getaddrinfo, and every server here listens on 127.0.0.1.
"""

import contextlib
import hashlib
import hmac
import json
import socket
import ssl
import threading
import time
from urllib.parse import urlsplit

import pytest
from django.urls import reverse

from tasks_app.lib.webhooks import WebhookError, webhook_target
from tasks_app.models import (
    Job,
    NotificationDelivery,
    Plan,
    Role,
    TaskConfig,
    TaskStatusChange,
    Team,
)
from tasks_app.services.notifications import notification_send, webhook_ping
from tests.factories import PASSWORD, SECRET, make_connector, make_team

pytestmark = pytest.mark.django_db

WEBHOOK_SECRET = "whsec-SENTINEL-attack-5b1d0c9e"
REAL_GETADDRINFO = socket.getaddrinfo


@pytest.fixture
def team():
    return make_team("Platform", alice=Role.ADMIN, ed=Role.EDITOR)


@pytest.fixture
def admin(client, team):
    assert client.login(username="alice", password=PASSWORD)
    return client


def _settings_url(team):
    return reverse("team_notifications", args=[team.id])


def _point(team, url, secret=WEBHOOK_SECRET):
    """Store a webhook as if it had been saved earlier (no check now)."""
    Team.objects.filter(pk=team.pk).update(webhook_url=url)
    team.refresh_from_db()
    team.webhook_secret = secret
    team.save()
    team.refresh_from_db()  # the secret as stored (encrypted), as a delivery reads it
    return team


class Resolver:
    """socket.getaddrinfo for the names in `answers` (a list: one answer per call, the last
    repeated). Numeric hosts and localhost get the real answer; any other name fails, so
    that no DNS query leaves this machine. Records every host asked, in order."""

    def __init__(self, monkeypatch, answers: dict[str, list[list[str]]]):
        self.answers = answers
        self.asked: list[str] = []
        monkeypatch.setattr(socket, "getaddrinfo", self)

    def __call__(self, host, port, *args, **kwargs):
        name = host.decode() if isinstance(host, bytes) else str(host)
        self.asked.append(name)
        if name in self.answers:
            queue = self.answers[name]
            addresses = queue.pop(0) if len(queue) > 1 else queue[0]
            return [
                (
                    socket.AF_INET6 if ":" in a else socket.AF_INET,
                    socket.SOCK_STREAM,
                    6,
                    "",
                    (a, port or 443, 0, 0) if ":" in a else (a, port or 443),
                )
                for a in addresses
            ]
        if name in ("93.184.216.34", "2606:4700::1111"):
            raise socket.gaierror(socket.EAI_NONAME, "no network beyond 127.0.0.1 in tests")
        if name.lower() == "localhost":
            return REAL_GETADDRINFO(host, port, *args, **kwargs)
        kwargs["flags"] = kwargs.get("flags", 0) | socket.AI_NUMERICHOST
        return REAL_GETADDRINFO(host, port, *args, **kwargs)


class HostileReceiver:
    """An HTTPS server on 127.0.0.1 that reads one request and answers with `behaviour`,
    under the certificate the portal trusts (the webhook_receiver fixture's). It counts
    the bytes of its answer the portal took before hanging up."""

    def __init__(self, receiver, behaviour, **options):
        self.behaviour = behaviour
        self.options = options
        self.sent = 0
        self.requests: list[bytes] = []
        self.done = threading.Event()
        self.stop = threading.Event()
        key = receiver.ca_bundle.replace("webhook-cert.pem", "webhook-key.pem")
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(receiver.ca_bundle, key)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(10)
        self.context = context
        self.url = f"https://127.0.0.1:{self.listener.getsockname()[1]}/hooks/ecr"
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        try:
            raw, _ = self.listener.accept()
            with self.context.wrap_socket(raw, server_side=True) as conn:
                conn.settimeout(10)
                self.requests.append(self._read_request(conn))
                getattr(self, self.behaviour)(conn)
        except (OSError, ssl.SSLError):
            pass
        finally:
            self.done.set()

    @staticmethod
    def _read_request(conn) -> bytes:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65536)
            if not chunk:
                return data
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        while len(body) < length:
            body += conn.recv(65536)
        return head + b"\r\n\r\n" + body

    def _send(self, conn, data: bytes):
        conn.sendall(data)
        self.sent += len(data)

    def redirect(self, conn):
        status, location = self.options["status"], self.options["location"]
        head = f"HTTP/1.1 {status} Moved\r\nLocation: {location}\r\nContent-Length: 0\r\n\r\n"
        self._send(conn, head.encode())

    def reason(self, conn):
        self._send(
            conn,
            b"HTTP/1.1 500 " + self.options["reason"].encode() + b"\r\nContent-Length: 0\r\n\r\n",
        )

    def silent(self, conn):
        self.stop.wait(self.options.get("hold", 4))

    def drip(self, conn):
        self._send(conn, b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n")
        deadline = time.monotonic() + self.options.get("hold", 4)
        while time.monotonic() < deadline and not self.stop.is_set():
            self._send(conn, b"x")
            self.stop.wait(0.1)

    def huge(self, conn):
        size = self.options["size"]
        self._send(conn, f"HTTP/1.1 200 OK\r\nContent-Length: {size}\r\n\r\n".encode())
        chunk = b"x" * 65536
        while self.sent < size and not self.stop.is_set():
            self._send(conn, chunk)

    def close(self):
        self.stop.set()
        self.done.wait(15)
        self.listener.close()


@pytest.fixture
def hostile(webhook_receiver):
    started = []

    def start(behaviour, **options):
        server = HostileReceiver(webhook_receiver, behaviour, **options)
        started.append(server)
        return server

    yield start
    for server in started:
        server.close()


# --- where a webhook may point ----------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "https://127.1/hook",
        "https://0x7f000001/hook",
        "https://2130706433/hook",
        "https://0177.0.0.1/hook",
        "https://0x7f.0.0.1/hook",
        "https://127.0.0.1./hook",
        "https://localhost/hook",
        "https://LOCALHOST.:8443/hook",
        "https://0/hook",
        "https://169.254.169.254./latest/meta-data/iam/",
        "https://0xa9fea9fe/latest/meta-data/",
        "https://2852039166/latest/meta-data/",
        "https://[::ffff:7f00:1]/hook",
        "https://[0:0:0:0:0:ffff:127.0.0.1]/hook",
        "https://[::ffff:a9fe:a9fe]/latest/meta-data/",
        "https://[::1]:8443/hook",
        "https://[fd00::1]/hook",
        "https://[fd00:ec2::254]/latest/meta-data/",
        "https://[fe80::a9fe:a9fe]/latest/meta-data/",
        "https://10.0.0.1:443/hook",
        "https://172.31.255.255/hook",
        "https://192.0.0.170/hook",
    ],
)
def test_an_internal_address_in_any_spelling_is_refused_at_save(admin, team, url, monkeypatch):
    # Absolute names (a trailing dot) resolve as the names without it would.
    Resolver(
        monkeypatch,
        {
            "127.0.0.1.": [["127.0.0.1"]],
            "LOCALHOST.": [["127.0.0.1", "::1"]],
            "169.254.169.254.": [["169.254.169.254"]],
        },
    )
    response = admin.post(
        _settings_url(team), {"webhook_url": url, "webhook_secret": WEBHOOK_SECRET}
    )
    assert response.status_code == 400, url
    team.refresh_from_db()
    assert team.webhook_url == ""
    assert not team.webhook_secret
    with pytest.raises(WebhookError):
        webhook_target(url)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://93.184.216.34/hook", "https://"),
        ("HTTP://93.184.216.34/hook", "https://"),
        ("https:93.184.216.34/hook", "no host name"),
        ("https:/93.184.216.34/hook", "no host name"),
        ("//93.184.216.34/hook", "https://"),
        ("file:///etc/passwd", "https://"),
        ("gopher://127.0.0.1:6379/_FLUSHALL", "https://"),
        ("https://93.184.216.34@127.0.0.1/hook", "no user name or password"),
        ("https://user@93.184.216.34/hook", "no user name or password"),
        ("https://:pw@93.184.216.34/hook", "no user name or password"),
        ("https://93.184.216.34\\@127.0.0.1/hook", "no user name or password"),
        ("https://127.0.0.1#@93.184.216.34/hook", "loopback"),
        ("https://127.0.0.1?@93.184.216.34/hook", "loopback"),
        ("https://93.184.216.34:99999/hook", "not a valid URL"),
        ("https://93.184.216.34:-1/hook", "not a valid URL"),
    ],
)
def test_schemes_credentials_and_parser_tricks_in_the_url_are_refused_at_save(
    admin, team, url, message, monkeypatch
):
    Resolver(monkeypatch, {})
    response = admin.post(
        _settings_url(team), {"webhook_url": url, "webhook_secret": WEBHOOK_SECRET}
    )
    assert response.status_code == 400
    assert message in response.content.decode()
    team.refresh_from_db()
    assert team.webhook_url == ""


def test_a_name_is_refused_if_any_of_its_addresses_is_internal(admin, team, monkeypatch):
    Resolver(
        monkeypatch,
        {
            "mixed.example.test": [["93.184.216.34", "10.1.2.3"]],
            "v6.example.test": [["2606:4700::1111", "fd12::7"]],
            "metadata.example.test": [["169.254.169.254"]],
        },
    )
    for name, why in (("mixed", "private"), ("v6", "private"), ("metadata", "link-local")):
        response = admin.post(
            _settings_url(team),
            {"webhook_url": f"https://{name}.example.test/hook", "webhook_secret": WEBHOOK_SECRET},
        )
        assert response.status_code == 400
        assert why in response.content.decode()
    team.refresh_from_db()
    assert team.webhook_url == ""


def test_the_refusal_does_not_tell_a_team_admin_where_an_internal_name_points(
    admin, team, monkeypatch
):
    Resolver(monkeypatch, {"db.corp.internal": [["10.20.30.40"]]})
    response = admin.post(
        _settings_url(team),
        {"webhook_url": "https://db.corp.internal/hook", "webhook_secret": WEBHOOK_SECRET},
    )
    assert response.status_code == 400
    assert "10.20.30.40" not in response.content.decode()


# --- the check at delivery: DNS rebinding ------------------------------------------------


def test_a_name_that_rebinds_to_loopback_after_the_save_is_refused_at_delivery(
    admin, team, webhook_receiver, monkeypatch, settings
):
    settings.WEBHOOK_ALLOW_PRIVATE = False
    host = "rebind.example.test"
    resolver = Resolver(monkeypatch, {host: [["93.184.216.34"], ["127.0.0.1"]]})
    port = urlsplit(webhook_receiver.url).port
    url = f"https://{host}:{port}/hooks/ecr"
    response = admin.post(
        _settings_url(team), {"webhook_url": url, "webhook_secret": WEBHOOK_SECRET}
    )
    assert response.status_code == 302  # public when saved
    team.refresh_from_db()
    assert team.webhook_url == url

    # The attacker's DNS now answers 127.0.0.1, where the receiver (an internal service)
    # listens; the Test button and the queued deliveries resolve again and refuse.
    page = admin.post(reverse("team_webhook_test", args=[team.id]), follow=True)
    assert "resolves to a loopback address" in page.content.decode()
    assert "127.0.0.1" not in page.content.decode()  # where the name points stays unsaid
    with pytest.raises(WebhookError, match="loopback"):
        webhook_ping(team=team)
    assert webhook_receiver.received == []
    assert resolver.asked.count(host) == 3  # at save, and at each delivery


def test_the_connection_goes_to_the_address_checked_not_to_a_second_answer(
    team, webhook_receiver, monkeypatch, settings
):
    """Rebinding inside one delivery: the first answer is checked, a second lookup (as an
    HTTP library would make to connect) would get 127.0.0.1. There is no second lookup of
    the name: the portal connects to the checked address itself."""
    settings.WEBHOOK_ALLOW_PRIVATE = False
    host = "quick.example.test"
    resolver = Resolver(monkeypatch, {host: [["93.184.216.34"], ["127.0.0.1"]]})
    port = urlsplit(webhook_receiver.url).port
    _point(team, f"https://{host}:{port}/hooks/ecr")

    with pytest.raises(WebhookError, match="could not be reached"):
        webhook_ping(team=team)
    assert resolver.asked.count(host) == 1
    assert "93.184.216.34" in resolver.asked  # where it tried to connect (and, here, could not)
    assert webhook_receiver.received == []


def test_a_webhook_saved_while_private_addresses_were_allowed_is_refused_once_they_are_not(
    team, webhook_receiver, settings
):
    _point(team, webhook_receiver.url)
    assert webhook_ping(team=team) == 204
    settings.WEBHOOK_ALLOW_PRIVATE = False
    with pytest.raises(WebhookError, match="loopback"):
        webhook_ping(team=team)
    assert len(webhook_receiver.received) == 1


# --- a receiver that misbehaves ----------------------------------------------------------


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_redirect_from_the_receiver_is_never_followed(team, webhook_receiver, hostile, status):
    """The receiver (allowed, on 127.0.0.1 here) sends the portal on to another internal
    service, which records whatever arrives."""
    internal = webhook_receiver.url.replace("/hooks/ecr", "/internal/admin")
    server = hostile("redirect", status=status, location=internal)
    _point(team, server.url)

    with pytest.raises(WebhookError, match=f"answered HTTP {status}"):
        webhook_ping(team=team)
    assert server.done.wait(10)
    assert len(server.requests) == 1
    assert webhook_receiver.received == []


def test_a_receiver_that_never_answers_is_given_up_within_the_timeout(team, hostile, settings):
    settings.WEBHOOK_TIMEOUT = 0.5
    server = hostile("silent", hold=5)
    _point(team, server.url)
    started = time.monotonic()
    with pytest.raises(WebhookError, match="could not be reached"):
        webhook_ping(team=team)
    assert time.monotonic() - started < 4 * settings.WEBHOOK_TIMEOUT


def test_a_receiver_that_answers_a_byte_at_a_time_is_cut_off(team, hostile, settings):
    settings.WEBHOOK_TIMEOUT = 0.5
    server = hostile("drip", hold=3)
    _point(team, server.url)
    started = time.monotonic()
    with contextlib.suppress(WebhookError):
        webhook_ping(team=team)
    assert time.monotonic() - started < 4 * settings.WEBHOOK_TIMEOUT


def test_a_receiver_that_answers_hugely_is_not_read_to_the_end(team, hostile):
    size = 64 * 1024 * 1024
    server = hostile("huge", size=size)
    _point(team, server.url)
    assert webhook_ping(team=team) == 200
    assert server.done.wait(15)
    # What a closed connection still takes in: the two kernels' socket buffers, a few MB.
    assert server.sent < size // 2


def test_a_hostile_status_line_is_stored_short_and_shown_escaped(team, hostile, admin):
    reason = "<script>alert('owned')</script>" + "A" * 5000
    server = hostile("reason", reason=reason)
    _point(team, server.url)
    plan = Plan.objects.create(team=team, key="WEB-BUILD", name="Web")
    task = TaskConfig.objects.create(
        job=Job.objects.create(plan=plan, key="BUILD", name="Build"),
        region="eu-west-1",
        connector=make_connector(team),
    )
    change = TaskStatusChange.objects.create(task=task, previous="ok", status="failing")
    delivery = NotificationDelivery.objects.create(
        team=team, change=change, channel="webhook", target=server.url, next_attempt_at=change.at
    )

    assert notification_send(delivery_id=delivery.id) == "pending"
    delivery.refresh_from_db()
    assert delivery.response_status == 500
    assert len(delivery.last_error) <= 500
    page = admin.get(_settings_url(team)).content.decode()
    assert "<script>alert(" not in page
    assert "&lt;script&gt;alert(" in page


# --- what a delivery carries -------------------------------------------------------------


def test_each_delivery_is_signed_with_the_teams_current_secret_and_carries_no_secret(
    admin, team, webhook_receiver
):
    other = make_team("Elsewhere", bob=Role.ADMIN)
    _point(other, webhook_receiver.url, secret="whsec-other-team-0123456789")
    url = _settings_url(team)
    admin.post(url, {"webhook_url": webhook_receiver.url, "webhook_secret": WEBHOOK_SECRET})
    make_connector(team)  # a secret access key the team has, which no delivery may carry

    def verifies(request, secret):
        headers = request["headers"]
        signed = headers["X-ECRPortal-Timestamp"].encode() + b"." + request["body"]
        digest = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
        return hmac.compare_digest(headers["X-ECRPortal-Signature"], f"sha256={digest}")

    assert webhook_ping(team=Team.objects.get(pk=team.pk)) == 204
    assert webhook_ping(team=other) == 204
    mine, theirs = webhook_receiver.received
    assert verifies(mine, WEBHOOK_SECRET)
    assert not verifies(mine, "whsec-other-team-0123456789")
    assert verifies(theirs, "whsec-other-team-0123456789")
    assert json.loads(mine["body"])["team"]["slug"] == "platform"

    # The admin rotates the secret: the old one verifies nothing from now on.
    rotated = "whsec-rotated-9876543210fedcba"
    admin.post(url, {"webhook_url": webhook_receiver.url, "webhook_secret": rotated})
    assert webhook_ping(team=Team.objects.get(pk=team.pk)) == 204
    latest = webhook_receiver.received[-1]
    assert verifies(latest, rotated)
    assert not verifies(latest, WEBHOOK_SECRET)

    for request in webhook_receiver.received:
        sent = request["body"] + json.dumps(request["headers"]).encode()
        for secret in (WEBHOOK_SECRET, rotated, "whsec-other-team-0123456789", SECRET):
            assert secret.encode() not in sent
    page = admin.get(url).content.decode()
    assert rotated not in page
    assert WEBHOOK_SECRET not in page


def test_a_webhook_its_admin_removed_gets_none_of_the_deliveries_still_queued(
    admin, team, webhook_receiver
):
    _point(team, webhook_receiver.url)
    plan = Plan.objects.create(team=team, key="WEB-BUILD", name="Web")
    task = TaskConfig.objects.create(
        job=Job.objects.create(plan=plan, key="BUILD", name="Build"),
        region="eu-west-1",
        connector=make_connector(team),
    )
    change = TaskStatusChange.objects.create(task=task, previous="ok", status="failing")
    delivery = NotificationDelivery.objects.create(
        team=team,
        change=change,
        channel="webhook",
        target=webhook_receiver.url,
        next_attempt_at=change.at,
    )
    # The old receiver's host is being handed to someone else: the admin removes it.
    admin.post(_settings_url(team), {"webhook_url": "", "notify_email": "on"})
    team.refresh_from_db()
    assert team.webhook_url == ""

    notification_send(delivery_id=delivery.id)
    assert webhook_receiver.received == []
