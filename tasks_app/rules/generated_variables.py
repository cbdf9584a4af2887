"""The variables a run writes (SPEC §5), in one list that the rules, the runs, the delivery
order and the snippets all read.

With namespace `ns`, a run writes `ns.<suffix>` for every entry: the six fields of the
authorization (also under their JSON key in `ns.ecr.json.password`) and that JSON object.
"""

import json
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit

from django.conf import settings


@dataclass(frozen=True)
class Generated:
    suffix: str  # the key under the namespace
    field: str | None  # its key in the JSON variable; None: the JSON variable itself
    standard: str | None  # the reference document's environment name, for tools


GENERATED = (
    Generated("ecr.authorizationToken.password", "authorizationToken", "AUTHORIZATION_TOKEN"),
    Generated("ecr.expirationDate", "expirationDate", "EXPIRATION_DATE"),
    Generated("ecr.proxyEndpoint", "proxyEndpoint", "PROXY_ENDPOINT"),
    Generated("ecr.proxyEndpointDomain", "proxyEndpointDomain", "PROXY_ENDPOINT_DOMAIN"),
    Generated("ecr.username", "username", "USERNAME"),
    Generated("ecr.password", "password", "PASSWORD"),
    Generated("ecr.json.password", None, None),
)
SUFFIXES = tuple(g.suffix for g in GENERATED)
# The suffixes other code names: what a login, a registry host or the JSON object is read from.
TOKEN = "ecr.authorizationToken.password"  # noqa: S105 (a key, not a secret)
ENDPOINT = "ecr.proxyEndpoint"
ENDPOINT_DOMAIN = "ecr.proxyEndpointDomain"
PASSWORD = "ecr.password"  # noqa: S105 (a key, not a secret)
JSON = "ecr.json.password"
assert {TOKEN, ENDPOINT, ENDPOINT_DOMAIN, PASSWORD, JSON} <= set(SUFFIXES)


def variable_key(namespace: str, suffix: str) -> str:
    """The key of one generated variable of a namespace, e.g. custom.aws.ecr.password."""
    return f"{namespace}.{suffix}"


def env_name(key: str, prefix: str | None = None) -> str:
    """A variable's environment name: bamboo_ (ECRPORTAL_ENV_PREFIX) + the key with dots as
    underscores, case kept. Two keys with the same environment name collide."""
    start: str = settings.ENV_PREFIX if prefix is None else prefix
    return start + key.replace(".", "_")


def generated_keys(namespace: str) -> list[str]:
    return [variable_key(namespace, suffix) for suffix in SUFFIXES]


def generated_values(
    *,
    namespace: str,
    token: str,
    username: str,
    password: str,
    expires_at: datetime,
    proxy_endpoint: str,
) -> dict[str, str]:
    """The seven variables of a token, by key."""
    fields = {
        "authorizationToken": token,
        "expirationDate": expires_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "proxyEndpoint": proxy_endpoint,
        "proxyEndpointDomain": urlsplit(proxy_endpoint).netloc or proxy_endpoint,
        "username": username,
        "password": password,
    }
    return {
        variable_key(namespace, g.suffix): fields[g.field] if g.field else json.dumps(fields)
        for g in GENERATED
    }


def registry_login(values: dict[str, str], namespace: str) -> tuple[str, str]:
    """(registry host, base64 of "AWS:<password>") from a token's values: what a Docker
    config or a pull secret holds."""
    return (
        values[variable_key(namespace, ENDPOINT_DOMAIN)],
        values[variable_key(namespace, TOKEN)],
    )
