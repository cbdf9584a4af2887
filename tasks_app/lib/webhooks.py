"""Webhook addresses and signed deliveries (SPEC §7).

A webhook URL must be https and its host must resolve only to globally routable
addresses (nor carry a non-public IPv4 address in an IPv6 form: mapped, 6to4,
Teredo, NAT64), unless ECRPORTAL_WEBHOOK_ALLOW_PRIVATE is on. The check is made
when the URL is saved and again at every delivery, and the connection goes to
the address that was checked (a DNS answer that changes in between cannot
redirect it), with the certificate verified against the URL's host name.
Redirects are not followed.
"""

import hashlib
import hmac
import ipaddress
import logging
import socket
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import certifi
import urllib3
from django.conf import settings

log = logging.getLogger("ecrportal.webhooks")

SIGNATURE_HEADER = "X-ECRPortal-Signature"
TIMESTAMP_HEADER = "X-ECRPortal-Timestamp"
EVENT_HEADER = "X-ECRPortal-Event"
DELIVERY_HEADER = "X-ECRPortal-Delivery"


class WebhookError(Exception):
    """The webhook cannot be used or did not accept a delivery; the message is for people."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.message = message
        self.status = status


@dataclass(frozen=True)
class Target:
    host: str
    port: int
    path: str
    address: str  # the checked IP address the connection goes to


# IPv6 forms that carry an IPv4 address: the IPv4 address must be public too.
_NAT64 = ipaddress.ip_network("64:ff9b::/96")  # RFC 6052, well-known prefix
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")  # deprecated, ::a.b.c.d
# Not globally routable, although Python's is_global says otherwise.
_NOT_GLOBAL = (ipaddress.ip_network("64:ff9b:1::/48"),)  # RFC 8215, local-use NAT64
_SHARED = ipaddress.ip_network("100.64.0.0/10")  # RFC 6598, carrier-grade NAT


def _embedded_ipv4(address) -> list:
    if address.version == 4:
        return []
    found = [address.ipv4_mapped, address.sixtofour, address.teredo and address.teredo[1]]
    if address in _NAT64 or (address in _IPV4_COMPATIBLE and int(address) > 1):  # not ::, ::1
        found.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    return [a for a in found if a is not None]


def _kind(address) -> str:
    """Why this one address is not public ("" if it is)."""
    routable = address.is_global and not any(address in n for n in _NOT_GLOBAL)
    if routable and not address.is_multicast:
        return ""
    for flag, name in (
        ("is_unspecified", "an unspecified"),
        ("is_loopback", "a loopback"),
        ("is_link_local", "a link-local"),
        ("is_multicast", "a multicast"),
        ("is_private", "a private"),
        ("is_reserved", "a reserved"),
    ):
        if getattr(address, flag):
            return f"{name} address"
    if address.version == 4 and address in _SHARED:
        return "a carrier-grade NAT (shared) address"
    return "an address that is not globally routable"


def _refused(address) -> str:
    """Why this address may not receive webhooks, or "" if it may: it must be globally
    routable, and so must any IPv4 address it carries (mapped, 6to4, Teredo, NAT64)."""
    for embedded in _embedded_ipv4(address):
        why = _kind(embedded)
        if why:
            return f"{why} ({embedded}) in IPv6 form" if embedded != address else why
    return _kind(address)


def webhook_target(url: str) -> Target:
    """Check a webhook URL and resolve it; raises WebhookError saying what is wrong."""
    try:
        parts = urlsplit(url)
        port = parts.port or 443
    except ValueError:
        raise WebhookError(f"{url!r} is not a valid URL.") from None
    if parts.scheme != "https":
        raise WebhookError("The webhook URL must start with https://.")
    if not parts.hostname:
        raise WebhookError("The webhook URL has no host name.")
    if parts.username or parts.password:
        raise WebhookError(
            "Put no user name or password in the webhook URL: deliveries are signed instead."
        )
    host = parts.hostname
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as e:
        raise WebhookError(f"The host name {host} cannot be resolved ({e}).") from None
    addresses = []
    for *_, sockaddr in infos:
        address = ipaddress.ip_address(str(sockaddr[0]).split("%")[0])
        if address not in addresses:
            addresses.append(address)
    if not settings.WEBHOOK_ALLOW_PRIVATE:
        for address in addresses:
            why = _refused(address)
            if why:
                # A name's private address stays unsaid: the form is no map of the
                # portal's internal DNS (the address is logged for the operator).
                named = host.strip("[]") == str(address)
                if not named:
                    log.info("Webhook host %s resolves to %s, %s", host, address, why)
                raise WebhookError(
                    (f"{host} is {why}" if named else f"{host} resolves to {why}")
                    + ": webhooks may only go to public addresses (a deployment can allow "
                    "others with ECRPORTAL_WEBHOOK_ALLOW_PRIVATE)."
                )
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return Target(host=host, port=port, path=path, address=str(addresses[0]))


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """The signature header's value: HMAC-SHA256 of "<timestamp>.<body>", in hex."""
    message = timestamp.encode() + b"." + body
    return "sha256=" + hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def webhook_post(*, url: str, secret: str, event: str, delivery_id: str, body: bytes) -> int:
    """POST a signed delivery; returns the HTTP status (2xx), raises WebhookError otherwise."""
    target = webhook_target(url)
    timestamp = str(int(time.time()))
    host = f"[{target.host}]" if ":" in target.host else target.host  # IPv6 literal
    host_header = host if target.port == 443 else f"{host}:{target.port}"
    pool = urllib3.HTTPSConnectionPool(
        target.address,
        target.port,
        server_hostname=target.host,
        assert_hostname=target.host,
        cert_reqs="CERT_REQUIRED",
        ca_certs=settings.WEBHOOK_CA_BUNDLE or certifi.where(),
        timeout=urllib3.Timeout(connect=settings.WEBHOOK_TIMEOUT, read=settings.WEBHOOK_TIMEOUT),
        retries=False,
    )
    headers = {
        "Host": host_header,
        "Content-Type": "application/json",
        "User-Agent": "ECR-Portal-Webhook/1",
        EVENT_HEADER: event,
        DELIVERY_HEADER: delivery_id,
        TIMESTAMP_HEADER: timestamp,
        SIGNATURE_HEADER: signature(secret, timestamp, body),
    }
    try:
        # Only the status counts: the body is never read (a receiver that answers slowly
        # or hugely holds nothing), and the connection is closed below.
        response = pool.urlopen(
            "POST",
            target.path,
            body=body,
            headers=headers,
            redirect=False,
            assert_same_host=False,
            preload_content=False,
        )
        response.close()
    except urllib3.exceptions.SSLError as e:
        raise WebhookError(f"TLS with {target.host} failed: {e}") from None
    except urllib3.exceptions.HTTPError as e:
        raise WebhookError(f"{target.host} could not be reached: {e}") from None
    finally:
        pool.close()
    if not 200 <= response.status < 300:
        raise WebhookError(
            f"{target.host} answered HTTP {response.status} {response.reason or ''}".strip(),
            status=response.status,
        )
    return response.status
