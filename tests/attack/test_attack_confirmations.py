"""The confirmation pages of destructive actions, attacked (issue 24).

The attacker: another site that makes a signed-in victim's browser request an action's URL
(an <img>, a link, a prefetch: GET or HEAD; a form without the CSRF token: POST; other
methods through fetch), a member of another team holding IDs of this team's objects, and
whoever named an object (a task, a token, a connector, a team) with HTML. What they control:
the method, the IDs in the URL, the CSRF token, names. Every destructive route of
tests/views/test_confirmations.py's ASKS is attacked: only a POST with the CSRF token acts;
another team's IDs answer exactly as unknown ones, without naming the object; and the
question escapes every name it quotes.
"""

import uuid

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse

from tasks_app.models import (
    ApiToken,
    Connector,
    Invitation,
    Job,
    Plan,
    Role,
    TaskConfig,
    Team,
    TrustedIssuer,
    TrustRule,
    Variable,
)
from tests.factories import make_destructibles, make_team
from tests.views.test_confirmations import ASKS

pytestmark = pytest.mark.django_db

# Short enough for every field it goes into on PostgreSQL (a plan key holds 21 characters).
HOSTILE = "<i id=x>\"'&"
ESCAPED = "&lt;i id=x&gt;&quot;&#x27;&amp;"


def _world(*, hostile_names: bool = False) -> dict:
    world = make_destructibles()
    make_team("Other", mallory=Role.ADMIN)
    world["mallory"] = get_user_model().objects.get(username="mallory")
    if hostile_names:
        # Set as a stored value would be, past the forms (names that forms allow anyway).
        Team.objects.filter(pk=world["team"].pk).update(name=f"Platform {HOSTILE}")
        Plan.objects.filter(pk=world["plan"].pk).update(key=f"WEB{HOSTILE}")
        Job.objects.filter(pk=world["job"].pk).update(name=f"Build {HOSTILE}")
        TaskConfig.objects.filter(pk=world["task"].pk).update(description=f"task {HOSTILE}")
        Variable.objects.filter(pk=world["variable"].pk).update(key=f"aws.{HOSTILE}")
        Connector.objects.filter(pk=world["connector"].pk).update(name=f"spare {HOSTILE}")
        ApiToken.objects.filter(pk=world["token"].pk).update(name=f"ci {HOSTILE}")
        TrustRule.objects.filter(pk=world["rule"].pk).update(name=f"deploy {HOSTILE}")
        TrustedIssuer.objects.filter(pk=world["issuer"].pk).update(name=f"CI {HOSTILE}")
        Invitation.objects.filter(pk=world["invitation"].pk).update(email=f"{HOSTILE}@x.io")
        get_user_model().objects.filter(pk=world["erin"].pk).update(username=f"erin{HOSTILE}")
        get_user_model().objects.filter(username="vic").update(username=f"vic{HOSTILE}")
    return world


def _url(case, world) -> str:
    arguments = ASKS[case][0]
    return reverse(case.split(":")[0], args=arguments(world))


def _unknown_url(case, world) -> str:
    """The same route with IDs nobody has."""
    arguments = [
        uuid.uuid4() if isinstance(a, uuid.UUID) else (10**9 if isinstance(a, int) else a)
        for a in ASKS[case][0](world)
    ]
    return reverse(case.split(":")[0], args=arguments)


def _client(user, *, csrf: bool = False) -> Client:
    client = Client(enforce_csrf_checks=csrf)
    client.force_login(user)
    return client


def _done(case, world) -> bool:
    return ASKS[case][3](world)


@pytest.mark.parametrize("case", sorted(ASKS))
def test_a_request_from_another_site_never_acts(case):
    """GET and HEAD (an <img>, a link, a prefetch) ask; other methods do nothing; a POST
    without the CSRF token is refused."""
    world = _world()
    owner = world[ASKS[case][1]]
    url = _url(case, world)
    cross_site = {"HTTP_SEC_FETCH_SITE": "cross-site", "HTTP_REFERER": "https://evil.example/"}
    client = _client(owner)
    for method in ("get", "head", "options", "put", "patch", "delete"):
        answer = getattr(client, method)(url, **cross_site)
        assert answer.status_code in (200, 405), (method, answer.status_code)
        assert not _done(case, world), f"{method} acted"
    refused = _client(owner, csrf=True).post(url, **cross_site)
    assert refused.status_code == 403
    assert not _done(case, world), "a POST without the CSRF token acted"


@pytest.mark.parametrize("case", sorted(ASKS))
def test_another_teams_ids_answer_as_unknown_ones_and_name_nothing(case):
    world = _world(hostile_names=True)
    client = _client(world["mallory"])
    url, unknown = _url(case, world), _unknown_url(case, world)
    for method in ("get", "post"):
        theirs = getattr(client, method)(url)
        nobodys = getattr(client, method)(unknown)
        assert theirs.status_code == nobodys.status_code, method
        assert theirs.status_code in (403, 404), method
        body = theirs.content.decode()
        assert HOSTILE not in body, (method, "the object is named")
        assert ESCAPED not in body, (method, "the object is named")
        assert "Platform" not in body, method
    assert not _done(case, world)


@pytest.mark.parametrize("case", sorted(ASKS))
def test_the_question_escapes_the_names_it_quotes(case):
    world = _world(hostile_names=True)
    owner = get_user_model().objects.get(pk=world[ASKS[case][1]].pk)
    page = _client(owner).get(_url(case, world))
    assert page.status_code == 200
    body = page.content.decode()
    assert HOSTILE not in body
    assert "<img src=x" not in body
    question = body.split("<h1>", 1)[1].split("</h1>", 1)[0]
    assert ESCAPED in question  # the name is quoted, as text
    assert not _done(case, world)
