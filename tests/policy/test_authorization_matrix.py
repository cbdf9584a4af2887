"""Who may do what, on every URL: the URL resolver, GET and POST, eleven callers, each answer
compared with a table of rules (SPEC §1, §2, §8.4, §9). A URL the table does not name fails.

Callers: anonymous; a superuser; the admin, editor and viewer of team Platform, which owns
everything here; the editor and viewer of team Web, with which the connector is shared; the
admin of an unrelated team; a job token and a plan token of Platform's plan; a token of the
unrelated team's plan. Each request runs in a savepoint that is rolled back, so every caller
meets the same world.

Answers are read as outcomes: ok (2xx, and 400 or 409 for a request the caller may make but
whose empty body is refused), login (sent to sign in, or 401), forbidden (403), hidden
(404: the object is not theirs to know of), method (405).
"""

from urllib.parse import urlsplit

import pytest
from django.contrib import admin
from django.contrib.contenttypes.models import ContentType
from django.db import transaction
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django.urls.resolvers import RegexPattern, RoutePattern

from tasks_app.identity.actor import Actor
from tasks_app.models import (
    ApiToken,
    Membership,
    Plan,
    Role,
)
from tasks_app.services.people import invitation_create, invitation_link
from tasks_app.services.tokens import token_create
from tests.factories import make_connector, make_served_task, make_team, make_user

pytestmark = [pytest.mark.django_db, pytest.mark.slow]

PEOPLE = ["root", "ada", "eve", "vic", "sam", "sid", "uma"]
TOKENS = ["job_token", "plan_token", "other_token"]
CALLERS = ["anonymous", *PEOPLE, *TOKENS]
OK, LOGIN, FORBIDDEN, HIDDEN, METHOD = "ok", "login", "forbidden", "hidden", "method"

# --- the rules: caller → outcome ---------------------------------------------------------

# Roles in team Platform, which owns the plan, job, task, variable, token and connector.
PLATFORM = {"root": Role.ADMIN, "ada": Role.ADMIN, "eve": Role.EDITOR, "vic": Role.VIEWER}
# Roles in team Web, with which the connector is shared.
WEB = {"sam": Role.EDITOR, "sid": Role.VIEWER}


def _people(outcome_for_person):
    """A rule for pages: people by the function; anonymous callers and tokens sign in."""

    def rule(caller):
        return outcome_for_person(caller) if caller in PEOPLE else LOGIN

    return rule


def _platform(need: Role):
    def outcome(person):
        role = PLATFORM.get(person)
        if role is None:
            return HIDDEN
        return OK if role.allows(need) else FORBIDDEN

    return outcome


def _connector(level: str):
    """The connector: Platform's members see it, Web's too (shared); editors use it;
    Platform's admins manage it; anyone else does not know it exists."""

    def outcome(person):
        role = PLATFORM.get(person) or WEB.get(person)
        if role is None:
            return HIDDEN
        if level == "view":
            return OK
        if level == "use":
            return OK if role.allows(Role.EDITOR) else FORBIDDEN
        return OK if PLATFORM.get(person) == Role.ADMIN else FORBIDDEN

    return outcome


ANYONE = lambda caller: OK  # noqa: E731
SIGNED_IN = _people(lambda person: OK)
SUPERUSER = _people(lambda person: OK if person == "root" else FORBIDDEN)
VIEWER = _people(_platform(Role.VIEWER))
EDITOR = _people(_platform(Role.EDITOR))
ADMIN = _people(_platform(Role.ADMIN))
CONNECTOR_VIEW = _people(_connector("view"))
CONNECTOR_USE = _people(_connector("use"))
CONNECTOR_MANAGE = _people(_connector("manage"))
# Creating needs the role somewhere: editors of any team (plans, tokens), admins (connectors).
ANY_EDITOR = _people(lambda p: OK if p in ("root", "ada", "eve", "sam", "uma") else FORBIDDEN)
ANY_ADMIN = _people(lambda p: OK if p in ("root", "ada", "uma") else FORBIDDEN)
# API tokens: editors of a team that has a plan (Web has none).
PLAN_EDITOR = _people(lambda p: OK if p in ("root", "ada", "eve", "uma") else FORBIDDEN)
POST_ONLY = _people(lambda person: METHOD)
SIGNED_OUT = lambda caller: LOGIN  # noqa: E731 - signing out ends on the sign-in page


def _api(outcome_for_person, tokens=FORBIDDEN):
    """A rule for the API: anonymous callers get 401; tokens get `tokens` (an outcome, or a
    {token: outcome} map); people by the function."""

    def rule(caller):
        if caller == "anonymous":
            return LOGIN
        if caller in TOKENS:
            return tokens.get(caller, HIDDEN) if isinstance(tokens, dict) else tokens
        return outcome_for_person(caller)

    return rule


# Configuration: people only; tokens read credentials and nothing else (403).
API_LIST = _api(lambda person: OK)
API_VIEWER = _api(_platform(Role.VIEWER))
API_EDITOR = _api(_platform(Role.EDITOR))
API_CONNECTOR_VIEW = _api(_connector("view"))
API_CONNECTOR_MANAGE = _api(_connector("manage"))
API_NO_METHOD = _api(lambda person: METHOD)
# Credentials: editors (values in clear); the job's token and the plan's (a result task).
API_READ = _api(_platform(Role.EDITOR), tokens={"job_token": OK, "plan_token": OK})
API_READ_NO_METHOD = _api(lambda person: METHOD, tokens=METHOD)
# Running: editors; the job's own token only (issue 12: a plan token runs nothing).
API_RUN = _api(_platform(Role.EDITOR), tokens={"job_token": OK, "plan_token": FORBIDDEN})
API_SCHEMA = _api(lambda person: OK, tokens=OK)
API_TOKEN_SCOPE = _api(
    lambda person: OK, tokens={"job_token": OK, "plan_token": OK, "other_token": HIDDEN}
)
API_SCHEMA_NO_METHOD = _api(lambda person: METHOD, tokens=METHOD)

# name → (GET rule, POST rule)
PORTAL = {
    "login": (ANYONE, ANYONE),
    # Single sign-on is off here: the pages do not exist (GET), and take no POST.
    "oidc_authentication_init": (lambda caller: HIDDEN, lambda caller: METHOD),
    "oidc_authentication_callback": (lambda caller: HIDDEN, lambda caller: METHOD),
    "healthz": (ANYONE, ANYONE),
    # The credential helper: anyone may fetch it (GET only).
    "download": (ANYONE, lambda caller: METHOD),
    # The portal's own issuer documents, which AWS reads (public keys only; GET only).
    "openid_configuration": (ANYONE, lambda caller: METHOD),
    "jwks": (ANYONE, lambda caller: METHOD),
    "readyz": (ANYONE, ANYONE),
    # Prometheus' scrape: its own bearer token, off (404) while ECRPORTAL_METRICS_TOKEN is
    # unset, as here (tests/attack/test_attack_metrics.py); GET only.
    "metrics": (lambda caller: HIDDEN, lambda caller: METHOD),
    "logout": (POST_ONLY, SIGNED_OUT),
    "password_change": (SIGNED_IN, SIGNED_IN),
    "dashboard": (SIGNED_IN, SIGNED_IN),
    "refresh_due": (POST_ONLY, SIGNED_IN),
    "run_list": (SIGNED_IN, SIGNED_IN),
    "audit_log": (SIGNED_IN, SIGNED_IN),
    "ecr_policy": (SIGNED_IN, SIGNED_IN),
    "team_list": (SIGNED_IN, SIGNED_IN),
    "team_create": (SUPERUSER, SUPERUSER),
    "team_detail": (VIEWER, VIEWER),
    "team_edit": (ADMIN, ADMIN),
    "member_add": (POST_ONLY, ADMIN),
    "invitation_create": (POST_ONLY, ADMIN),
    "invitation_revoke": (ADMIN, ADMIN),  # GET asks first (views/confirm.py)
    # A signed link for new@example.com: anonymous callers may create that account (an empty
    # form is refused, 400); a signed-in person with another address is refused (issue 22).
    "invitation_accept": (
        lambda caller: FORBIDDEN if caller in PEOPLE else OK,
        ANYONE,  # a person's POST is refused with a message on the teams page
    ),
    "user_list": (SUPERUSER, SUPERUSER),
    "user_password_shown": (SUPERUSER, SUPERUSER),
    "user_action": (SUPERUSER, SUPERUSER),  # GET asks first (views/confirm.py)
    "trust_rule_enable": (POST_ONLY, SUPERUSER),
    "host_credentials": (SUPERUSER, SUPERUSER),
    "host_credentials_withdraw": (SUPERUSER, SUPERUSER),
    "oidc_issuer_list": (SUPERUSER, SUPERUSER),
    "oidc_issuer_delete": (SUPERUSER, SUPERUSER),  # GET asks first (views/confirm.py)
    "trust_rules": (VIEWER, ADMIN),
    "trust_rule_delete": (ADMIN, ADMIN),  # GET asks first (views/confirm.py)
    "member_role": (POST_ONLY, ADMIN),
    "member_remove": (ADMIN, ADMIN),  # GET asks first (views/confirm.py)
    "team_notifications": (VIEWER, ADMIN),
    "team_webhook_test": (POST_ONLY, ADMIN),
    "connector_list": (SIGNED_IN, SIGNED_IN),
    "connector_create": (ANY_ADMIN, ANY_ADMIN),
    "connector_detail": (CONNECTOR_VIEW, CONNECTOR_VIEW),
    "connector_edit": (CONNECTOR_MANAGE, CONNECTOR_MANAGE),
    "connector_test": (POST_ONLY, CONNECTOR_USE),
    "connector_delete": (CONNECTOR_MANAGE, CONNECTOR_MANAGE),
    "plan_list": (SIGNED_IN, SIGNED_IN),
    "plan_create": (ANY_EDITOR, ANY_EDITOR),
    "plan_detail": (VIEWER, VIEWER),
    "plan_edit": (EDITOR, EDITOR),
    "plan_delete": (EDITOR, EDITOR),
    "job_create": (EDITOR, EDITOR),
    "job_detail": (VIEWER, VIEWER),
    "job_edit": (EDITOR, EDITOR),
    "job_delete": (EDITOR, EDITOR),
    "task_create": (EDITOR, EDITOR),
    "task_list": (SIGNED_IN, SIGNED_IN),
    "task_detail": (VIEWER, VIEWER),
    "task_edit": (EDITOR, EDITOR),
    "task_delete": (EDITOR, EDITOR),
    "task_run": (POST_ONLY, EDITOR),
    "task_reveal": (POST_ONLY, EDITOR),
    "plan_reveal": (POST_ONLY, EDITOR),
    "job_reveal": (POST_ONLY, EDITOR),
    "api_reference": (SIGNED_IN, SIGNED_IN),
    "variable_list": (SIGNED_IN, SIGNED_IN),
    "variable_create": (EDITOR, EDITOR),  # ?team=<Platform>
    "variable_edit": (EDITOR, EDITOR),
    "variable_delete": (EDITOR, EDITOR),
    "token_list": (SIGNED_IN, SIGNED_IN),
    "token_create": (PLAN_EDITOR, PLAN_EDITOR),
    "token_revoke": (EDITOR, EDITOR),  # GET asks first (views/confirm.py)
    "api_schema": (API_SCHEMA, API_SCHEMA_NO_METHOD),
    "api_task_variables": (API_READ, API_READ_NO_METHOD),
    "api_task_env": (API_READ, API_READ_NO_METHOD),  # ?shell=bash
    "api_task_run": (API_READ_NO_METHOD, API_RUN),
    "api_plan_variables": (API_READ, API_READ_NO_METHOD),
    "api_plan_env": (API_READ, API_READ_NO_METHOD),  # ?shell=bash
    "api_task_docker_config": (API_READ, API_READ_NO_METHOD),
    "api_task_kubernetes_secret": (API_READ, API_READ_NO_METHOD),
    "api_plan_docker_config": (API_READ, API_READ_NO_METHOD),
    "api_plan_kubernetes_secret": (API_READ, API_READ_NO_METHOD),
    # A token's own binding; people are told to name the plan (400). The other team's plan
    # has no task: nothing to show (404).
    "api_token_docker_config": (API_TOKEN_SCOPE, API_READ_NO_METHOD),
    "api_token_kubernetes_secret": (API_TOKEN_SCOPE, API_READ_NO_METHOD),
    "api_connector-list": (API_LIST, API_LIST),
    "api_connector-detail": (API_CONNECTOR_VIEW, API_NO_METHOD),
    "api_plan-list": (API_LIST, API_LIST),
    "api_plan-detail": (API_VIEWER, API_NO_METHOD),
    "api_job-list": (API_LIST, API_LIST),
    "api_job-detail": (API_VIEWER, API_NO_METHOD),
    "api_task-list": (API_LIST, API_LIST),
    "api_task-detail": (API_VIEWER, API_NO_METHOD),
    "api_variable-list": (API_LIST, API_LIST),
    "api_variable-detail": (API_VIEWER, API_NO_METHOD),
}
# The configuration's detail routes also take PUT, PATCH and DELETE: who may change what.
API_WRITES = {
    "api_connector-detail": API_CONNECTOR_MANAGE,
    "api_plan-detail": API_EDITOR,
    "api_job-detail": API_EDITOR,
    "api_task-detail": API_EDITOR,
    "api_variable-detail": API_EDITOR,
}
QUERIES = {
    "variable_create": "team",
    "api_task_env": "shell=bash",
    "api_plan_env": "shell=bash",
}
# The object each API detail route addresses by "pk".
ROUTER_OBJECTS = {
    "api_connector-detail": "connector_id",
    "api_job-detail": "job_id",
    "api_task-detail": "task_id",
    "api_variable-detail": "variable_id",
}


def admin_rule(name: str, method: str):
    """Django's admin: portal administrators only; what a superuser may do there follows the
    ModelAdmin's permissions. Everyone else signed in gets the 403 page; tokens are not
    sessions, so they are sent to sign in like anonymous callers."""
    outcome = OK
    for model, model_admin in admin.site._registry.items():
        prefix = f"admin:{model._meta.app_label}_{model._meta.model_name}_"
        action = name.removeprefix(prefix)
        if action != name and action in ("changelist", "add", "change", "delete", "history"):
            allowed = {
                "add": model_admin.has_add_permission(_ROOT_REQUEST),
                "delete": model_admin.has_delete_permission(_ROOT_REQUEST),
                "change": method == "GET" or model_admin.has_change_permission(_ROOT_REQUEST),
            }.get(action, True)
            outcome = OK if allowed else FORBIDDEN

    # Django's own admin views, for a superuser: what each answers to GET and POST.
    outcome = {
        ("admin:logout", "GET"): METHOD,
        ("admin:logout", "POST"): LOGIN,  # signed out, and sent to sign in
        ("admin:password_change_done", "POST"): METHOD,
        ("admin:autocomplete", "GET"): FORBIDDEN,  # no model named in the query
        ("admin:autocomplete", "POST"): METHOD,
        ("admin:jsi18n", "POST"): METHOD,
        ("admin:view_on_site", "GET"): HIDDEN,  # no model has a get_absolute_url()
        ("admin:view_on_site", "POST"): HIDDEN,
        ("", "GET"): HIDDEN,  # the admin's catch-all: no such page
        ("", "POST"): HIDDEN,
    }.get((name, method), outcome)

    def rule(caller):
        if caller == "root":
            return outcome
        return FORBIDDEN if caller in PEOPLE else LOGIN

    return rule


class _RootRequest:
    class user:
        is_active = is_staff = is_superuser = True

        @staticmethod
        def has_perm(perm, obj=None):
            return True


_ROOT_REQUEST = _RootRequest()


# --- the world ---------------------------------------------------------------------------


def _actor(user):
    return Actor(user=user, address="127.0.0.1")


@pytest.fixture
def world(settings):
    settings.READYZ_TIMEOUT_SECONDS = 0.01  # no worker answers the canary here
    platform = make_team("Platform", ada=Role.ADMIN, eve=Role.EDITOR, vic=Role.VIEWER)
    web = make_team("Web", sam=Role.EDITOR, sid=Role.VIEWER)
    other = make_team("Other", uma=Role.ADMIN)
    root = make_user("root", is_superuser=True, is_staff=True)
    connector = make_connector(platform)
    connector.shared_with.add(web)
    plan, job, task, variable = make_served_task(platform, connector)
    ada = platform.members.get(username="ada")
    other_plan = Plan.objects.create(team=other, key="OTHER-PLAN", name="Other")
    tokens = {
        "job_token": token_create(
            plan=plan, job=job, name="job", expires_at=None, actor=_actor(ada)
        )[1],
        "plan_token": token_create(
            plan=plan, job=None, name="plan", expires_at=None, actor=_actor(ada)
        )[1],
        "other_token": token_create(
            plan=other_plan,
            job=None,
            name="other",
            expires_at=None,
            actor=_actor(other.members.get()),
        )[1],
    }
    membership = Membership.objects.get(team=platform, user__username="vic")
    invitation = invitation_create(
        team=platform, email="new@example.com", role=Role.VIEWER, actor=_actor(ada)
    )
    from tasks_app.models import TrustedIssuer, TrustRule

    trusted = TrustedIssuer.objects.create(issuer="https://ci.example.com", name="CI")
    rule = TrustRule.objects.create(
        team=platform, plan=plan, issuer=trusted, audience="a", conditions={"sub": "x"}, name="r"
    )
    objects = {
        "issuer_id": trusted.id,
        "rule_id": rule.id,
        "invitation_id": invitation.id,
        "code": invitation_link(invitation).rstrip("/").rsplit("/", 1)[1],
        "user_id": membership.user_id,
        "action": "reset-password",
        "team_id": platform.id,
        "membership_id": membership.id,
        "connector_id": connector.id,
        "plan_id": plan.id,
        "job_id": job.id,
        "task_id": task.id,
        "variable_id": variable.id,
        "token_id": ApiToken.objects.get(name="job").id,
        "plan_key": plan.key,
        "name": "docker-credential-ecrportal",
    }
    return {"objects": objects, "tokens": tokens, "root": root}


# --- the URLs ----------------------------------------------------------------------------


def _kwarg_names(pattern) -> list[str]:
    if isinstance(pattern, RoutePattern):
        return list(pattern.converters)
    if isinstance(pattern, RegexPattern):
        return list(pattern.regex.groupindex)
    raise AssertionError(f"unknown pattern {pattern!r}")


def routes(patterns=None, namespace="", inherited=()):
    """(name, kwarg names) for every routed view, walked from the resolver."""
    for entry in get_resolver().url_patterns if patterns is None else patterns:
        names = [*inherited, *_kwarg_names(entry.pattern)]
        if isinstance(entry, URLResolver):
            inner = f"{namespace}{entry.namespace}:" if entry.namespace else namespace
            yield from routes(entry.url_patterns, inner, names)
        elif isinstance(entry, URLPattern):
            yield (f"{namespace}{entry.name}" if entry.name else None), names


def _admin_value(name: str, kwarg: str, world):
    """A value for an admin URL's argument: a real object of that model where one exists."""
    if kwarg == "app_label":
        return "tasks_app"
    if kwarg == "content_type_id":
        return ContentType.objects.get_for_model(Plan).id
    if kwarg == "object_id":
        for model in admin.site._registry:
            if name.startswith(f"admin:{model._meta.app_label}_{model._meta.model_name}_"):
                obj = model.objects.order_by("pk").first()
                if obj is not None:
                    return obj.pk
        return world["objects"]["plan_id"]
    if kwarg == "url":
        return "no-such-page/"
    if kwarg == "id" and name == "admin:auth_user_password_change":
        return world["root"].pk
    raise AssertionError(f"no sample for {kwarg} of {name}; extend this test")


def url_for(name: str | None, kwargs: list[str], world) -> str:
    if name is None:  # the admin's unnamed catch-all
        return "/admin/no-such-page/"
    if name.startswith("admin:"):
        values = {k: _admin_value(name, k, world) for k in kwargs}
    else:
        objects = world["objects"]
        aliases = {"pk": ROUTER_OBJECTS.get(name), "key": "plan_key"}
        values = {k: objects[aliases.get(k) or k] for k in kwargs}
    path = reverse(name, kwargs=values)
    query = QUERIES.get(name)
    if query == "team":
        query = f"team={world['objects']['team_id']}"
    return f"{path}?{query}" if query else path


def rule_for(name: str | None, method: str):
    if name is None or name.startswith("admin:"):
        return admin_rule(name or "", method)
    if method in ("PUT", "PATCH", "DELETE"):
        return API_WRITES[name]
    get_rule, post_rule = PORTAL[name]
    return get_rule if method == "GET" else post_rule


# --- asking ------------------------------------------------------------------------------


def _client(caller: str, world) -> Client:
    client = Client()
    if caller in PEOPLE:
        from django.contrib.auth import get_user_model

        client.force_login(get_user_model().objects.get(username=caller))
    elif caller in TOKENS:
        client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {world['tokens'][caller]}"
    return client


def outcome_of(client: Client, method: str, path: str) -> str:
    cookies = client.cookies
    client.cookies = type(cookies)(cookies)  # a sign-out here must not end the next request's
    body = {"content_type": "application/json", "data": "{}"} if method != "GET" else {}
    response = getattr(client, method.lower())(path, **body)
    for _ in range(4):  # same-site redirects, to where they end
        if response.status_code not in (301, 302):
            break
        location = urlsplit(response["Location"])
        assert not location.netloc, f"{path} redirects off the site"
        if location.path == reverse("login"):
            client.cookies = cookies
            return LOGIN
        response = client.get(response["Location"])
    client.cookies = cookies
    status = response.status_code
    if status == 503 and path == reverse("readyz"):
        return OK  # it answered: no worker runs in this test
    assert status < 500, f"{method} {path}: {status}"
    return {401: LOGIN, 403: FORBIDDEN, 404: HIDDEN, 405: METHOD}.get(
        status, OK if status < 300 or status in (400, 409) else f"<{status}>"
    )


# One test per caller, each with its own world: make test's parallel workers share them out.
@pytest.mark.parametrize("caller", CALLERS)
def test_every_url_answers_each_caller_as_the_table_says(world, aws_endpoint, caller):
    client = _client(caller, world)
    wrong, checked = [], 0
    for name, kwargs in routes():
        if name is not None and not name.startswith("admin:"):
            assert name in PORTAL, f"URL {name} has no row in the table; add one"
        path = url_for(name, kwargs, world)
        for method in ("GET", "POST", *(("PUT", "PATCH", "DELETE") if name in API_WRITES else ())):
            with transaction.atomic():
                got = outcome_of(client, method, path)
                transaction.set_rollback(True)
            expected = rule_for(name, method)(caller)
            checked += 1
            if got != expected:
                wrong.append(f"{method} {path} ({name}) as {caller}: {got}, not {expected}")
    assert wrong == [], "\n".join(wrong)
    print(f"{checked} requests as {caller}")
    assert checked * len(CALLERS) > 3000


def test_the_table_names_only_routed_urls():
    routed = {name for name, _ in routes() if name and not name.startswith("admin:")}
    assert set(PORTAL) == routed
