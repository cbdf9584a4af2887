"""Every destructive action asks once first, the same way (views/confirm.py): its URL shows
the question on GET and acts on POST, and no page posts one at a single click (issue 24).

The URLconf and the templates are walked, so that a new destructive route or button fails
here until it asks."""

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from django.urls import URLPattern, URLResolver, reverse

from tasks_app import urls as portal_urls
from tasks_app.models import (
    ApiToken,
    Connector,
    Invitation,
    Job,
    Membership,
    Plan,
    TaskConfig,
    Team,
    TrustedIssuer,
    TrustRule,
    Variable,
)
from tasks_app.views.people import USER_ACTION_QUESTIONS
from tests.factories import make_destructibles

pytestmark = pytest.mark.django_db

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"
# A route whose name says it takes something away.
DESTRUCTIVE_ROUTE = re.compile(r"delete|remove|revoke|withdraw|deactivate|stop")
# A button whose words or colour say it takes something away.
DESTRUCTIVE_LABEL = re.compile(
    r"^\s*(delete|remove|revoke|withdraw|stop|deactivate|reset|disable)\b", re.IGNORECASE
)
# The one page that posts a destructive action: the question itself.
QUESTION_TEMPLATE = "confirm.html"


def _gone(model, obj) -> bool:
    return not model.objects.filter(pk=obj.pk).exists()


# route name → (URL arguments, who asks, the question's button, done?)
ASKS = {
    "task_delete": (
        lambda w: [w["task"].id],
        "ada",
        "Delete",
        lambda w: _gone(TaskConfig, w["task"]),
    ),
    "job_delete": (lambda w: [w["job"].id], "ada", "Delete", lambda w: _gone(Job, w["job"])),
    "plan_delete": (lambda w: [w["plan"].id], "ada", "Delete", lambda w: _gone(Plan, w["plan"])),
    "variable_delete": (
        lambda w: [w["variable"].id],
        "ada",
        "Delete",
        lambda w: _gone(Variable, w["variable"]),
    ),
    "connector_delete": (
        lambda w: [w["connector"].id],
        "ada",
        "Delete",
        lambda w: _gone(Connector, w["connector"]),
    ),
    "token_revoke": (
        lambda w: [w["token"].id],
        "ada",
        "Revoke",
        lambda w: ApiToken.objects.get(pk=w["token"].pk).revoked_at is not None,
    ),
    "member_remove": (
        lambda w: [w["team"].id, w["membership"].id],
        "ada",
        "Remove",
        lambda w: _gone(Membership, w["membership"]),
    ),
    "invitation_revoke": (
        lambda w: [w["team"].id, w["invitation"].id],
        "ada",
        "Withdraw",
        lambda w: Invitation.objects.get(pk=w["invitation"].pk).revoked_at is not None,
    ),
    "trust_rule_delete": (
        lambda w: [w["plan"].id, w["rule"].id],
        "ada",
        "Delete",
        lambda w: _gone(TrustRule, w["rule"]),
    ),
    "oidc_issuer_delete": (
        lambda w: [w["issuer"].id],
        "root",
        "Stop trusting",
        lambda w: _gone(TrustedIssuer, w["issuer"]),
    ),
    "host_credentials_withdraw": (
        lambda w: [w["team"].id],
        "root",
        "Withdraw",
        lambda w: not Team.objects.get(pk=w["team"].pk).host_credentials_allowed,
    ),
}


def _user_action_done(action):
    def done(w):
        erin = type(w["erin"]).objects.get(pk=w["erin"].pk)
        return {
            "deactivate": not erin.is_active,
            "withdraw-superuser": not erin.is_superuser,
            "reset-password": not erin.check_password("correct horse battery staple"),
        }[action]

    return done


for _action, (_verb, _, _) in USER_ACTION_QUESTIONS.items():
    ASKS[f"user_action:{_action}"] = (
        lambda w, a=_action: [w["erin"].pk, a],
        "root",
        _verb,
        _user_action_done(_action),
    )


def _route_names(patterns=portal_urls.urlpatterns) -> set[str]:
    names = set()
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            names |= _route_names(pattern.url_patterns)
        elif isinstance(pattern, URLPattern) and pattern.name:
            names.add(pattern.name)
    return names


def test_every_destructive_route_is_known_to_ask():
    destructive = {name for name in _route_names() if DESTRUCTIVE_ROUTE.search(name)}
    asked = {name.split(":")[0] for name in ASKS}
    assert destructive - asked == set(), "a destructive route that is not checked to ask once"
    assert asked - _route_names() == set()


@pytest.mark.parametrize("case", sorted(ASKS))
def test_it_asks_on_get_and_acts_on_post(client, case):
    world = make_destructibles()
    arguments, who, button, done = ASKS[case]
    url = reverse(case.split(":")[0], args=arguments(world))
    client.force_login(world[who])

    page = client.get(url)
    assert page.status_code == 200
    assert next(t.name for t in page.templates) in (QUESTION_TEMPLATE, "connectors/delete.html")
    html = page.content.decode()
    question = page.context["question"]
    assert question.endswith("?")
    assert question.startswith(button)
    assert f'<button type="submit" class="danger">{button}</button>' in html
    assert 'href="/' in html.split('class="danger"', 1)[1]  # Cancel goes back
    assert not done(world), "the question acted before it was answered"

    answered = client.post(url)
    assert answered.status_code == 302
    assert done(world)


def test_user_actions_that_give_back_ask_nothing(client):
    world = make_destructibles()
    client.force_login(world["root"])
    for action in ("activate", "grant-superuser"):
        url = reverse("user_action", args=[world["erin"].pk, action])
        assert client.get(url).status_code == 405


class _Forms(HTMLParser):
    """The submit buttons of the forms that POST: (label, classes)."""

    def __init__(self):
        super().__init__()
        self.posting = False
        self.button: list | None = None
        self.buttons: list[tuple[str, str]] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "form":
            self.posting = (attrs.get("method") or "").lower() == "post"
        elif tag == "button" and self.posting and attrs.get("type", "submit") == "submit":
            self.button = ["", attrs.get("class") or ""]
        elif tag == "input" and self.posting and attrs.get("type") == "submit":
            self.buttons.append((attrs.get("value") or "", attrs.get("class") or ""))

    def handle_endtag(self, tag):
        if tag == "form":
            self.posting = False
        elif tag == "button" and self.button is not None:
            self.buttons.append((self.button[0], self.button[1]))
            self.button = None

    def handle_data(self, data):
        if self.button is not None:
            self.button[0] += data


def test_no_page_posts_a_destructive_action_at_one_click():
    one_click = []
    for path in sorted(TEMPLATES.rglob("*.html")):
        name = path.relative_to(TEMPLATES).as_posix()
        parser = _Forms()
        parser.feed(path.read_text())
        for label, classes in parser.buttons:
            destructive = "danger" in classes.split() or DESTRUCTIVE_LABEL.match(label)
            if destructive and name != QUESTION_TEMPLATE:
                one_click.append(f"{name}: {label.strip()}")
    assert one_click == [], "link to the action's URL instead: it asks first (views/confirm.py)"


def test_the_walk_sees_a_one_click_destructive_form():
    parser = _Forms()
    parser.feed(
        '<form method="post"><button type="submit" class="danger">Revoke</button></form>'
        '<form method="post"><button>Stop trusting {{ x }}</button></form>'
        '<form method="get"><button class="danger">Filter</button></form>'
    )
    assert parser.buttons == [("Revoke", "danger"), ("Stop trusting {{ x }}", "")]


def test_removing_yourself_is_asked_in_the_second_person(client):
    from tasks_app.models import Membership, Role
    from tests.factories import PASSWORD, make_team

    team = make_team("Platform", ada=Role.ADMIN, bob=Role.ADMIN)
    client.login(username="ada", password=PASSWORD)
    own = Membership.objects.get(team=team, user__username="ada")
    other = Membership.objects.get(team=team, user__username="bob")
    mine = client.get(reverse("member_remove", args=[team.id, own.id])).content.decode()
    assert "Remove yourself from Platform?" in mine
    assert "Another admin of the team can add you again." in mine
    theirs = client.get(reverse("member_remove", args=[team.id, other.id])).content.decode()
    assert "bob no longer sees" in theirs
    assert "An admin can add them again." in theirs
