"""Who causes a change: a person, an API token (a CI job), or the portal itself (the scheduler).

Views build one per request with actor_for(request) and pass it to services as actor=;
services and their tests never see an HttpRequest.
"""

from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.contrib.auth import get_user_model

from tasks_app.identity.client_address import client_address
from tasks_app.models import ApiToken

if TYPE_CHECKING:
    from django.contrib.auth.models import User
    from django.http import HttpRequest
    from rest_framework.request import Request


@dataclass(frozen=True)
class Actor:
    user: "User | None" = None  # a signed-in person (the user model)
    token: ApiToken | None = None  # an API token: a CI job, not a person
    address: str | None = None  # the client's address, as far as proxies are trusted
    label: str = ""  # who, without an account: the name typed at a failed sign-in, "system"

    @property
    def name(self) -> str:
        if self.user is not None:
            return self.user.get_username()
        if self.token is not None:
            return self.token.actor_name
        return self.label


# The scheduler, housekeeping and other work nobody asked for in person.
SYSTEM = Actor(label="system")
# Whoever runs manage.py on the portal's host.
COMMAND_LINE = Actor(label="manage.py")


def actor_for(request: "HttpRequest | Request") -> Actor:
    """The actor of a request: its signed-in person or its API token, and its address."""
    user = getattr(request, "user", None)
    person = user if isinstance(user, get_user_model()) else None
    auth = getattr(request, "auth", None)
    token = auth if isinstance(auth, ApiToken) else None
    return Actor(user=person, token=token, address=client_address(request))
