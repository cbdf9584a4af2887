"""The connector surface and the portal host's own AWS identity, attacked (issue 22).

The attacker: an editor or admin of another team, who wants to use a connector (and so an
AWS account) that is not theirs, or the portal host's own identity that no administrator
granted to their team; and a member of a team a connector is shared with, who wants more
than to pick it for a task. What they control: connector IDs typed into the task form and
the configuration API, the value of a ${bamboo.<key>} connector variable (which they may
change after the task was saved), every field of the connector form and API, including
fields the page does not offer (credentials=host), and hostile text in the role ARN and
external ID. What guards it: connector_access and CONNECTOR_OWNER_FIELDS
(tasks_app/policy/access.py), connectors_usable_by and task_refusal
(tasks_app/policy/usability.py), connector_validate and task_validate
(tasks_app/services/validation.py), connector_clean (tasks_app/rules/connector_settings.py),
and task_resolve, which checks every rule again when a task runs
(tasks_app/services/run_inputs.py).
"""

import uuid

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from tasks_app.identity.actor import SYSTEM
from tasks_app.models import AuditEvent, Connector, Job, Plan, Role, TaskConfig, TaskRun, Variable
from tasks_app.services.runs import task_run
from tests.factories import api_token, make_connector, make_team, token_client

pytestmark = pytest.mark.django_db

ROLE = "arn:aws:iam::123456789012:role/ecr-push"
SENTINEL = "Sentinel/Connector+Secret=0000000000000000"[:40]


@pytest.fixture
def world(settings):
    """Team Owners (granted the host's identity) owns an access-key connector and a host
    connector, neither shared; Team Partners gets a third one shared with it. Team Rivals,
    the attacker, has its own connector, a plan and a job, and no grant."""
    settings.ALLOW_HOST_CREDENTIALS = True
    owners = make_team("Owners", olga=Role.ADMIN)
    owners.host_credentials_allowed = True
    owners.save()
    partners = make_team("Partners", pete=Role.EDITOR, paula=Role.VIEWER)
    rivals = make_team("Rivals", rita=Role.ADMIN, rick=Role.EDITOR)

    secret_one = make_connector(owners, name="owners-secret-account")
    host = Connector(team=owners, name="owners-host-identity", credentials="host")
    host.full_clean()
    host.save()
    shared = make_connector(
        owners,
        name="shared-with-partners",
        principal_type="assumed_role",
        role_arn=ROLE,
        external_id="partner-4711",
    )
    shared.shared_with.add(partners)

    own = make_connector(rivals, name="rivals-own")
    plan = Plan.objects.create(team=rivals, key="RIVAL-CI", name="Rival")
    job = Job.objects.create(plan=plan, key="BUILD", name="Build")
    return {
        "owners": owners,
        "partners": partners,
        "rivals": rivals,
        "secret_one": secret_one,
        "host": host,
        "shared": shared,
        "own": own,
        "plan": plan,
        "job": job,
    }


def _person(username):
    from django.contrib.auth import get_user_model

    return get_user_model().objects.get(username=username)


def _api(username) -> APIClient:
    client = APIClient()
    client.force_login(_person(username))
    return client


def _task_form(connector_id, **changes):
    return {
        "description": "Push images",
        "region_choice": "eu-west-1",
        "region_variable": "",
        "registry_id": "",
        "namespace": "custom.aws",
        "scope": "local",
        "credentials_source": "connector",
        "connector_choice": str(connector_id),
        "connector_variable": "",
        "role_arn": "",
        **changes,
    }


# --- another team's connector in a task --------------------------------------------------


@pytest.mark.parametrize("target", ["secret_one", "host"])
def test_another_teams_connector_in_the_task_form_is_refused_like_an_unknown_one(
    client, world, target
):
    client.force_login(_person("rick"))
    url = reverse("task_create", args=[world["job"].id])
    unknown_id = str(uuid.uuid4())
    theirs = client.post(url, _task_form(world[target].id))
    unknown = client.post(url, _task_form(unknown_id))

    def said(response, connector_id):
        errors = response.context["form"].errors
        return {field: [e.replace(connector_id, "ID") for e in e_] for field, e_ in errors.items()}

    assert theirs.status_code == unknown.status_code
    assert said(theirs, str(world[target].id)) == said(unknown, unknown_id)
    assert list(said(theirs, str(world[target].id))) == ["connector_choice"]
    assert world[target].name not in theirs.content.decode()
    assert not TaskConfig.objects.exists()


@pytest.mark.parametrize("target", ["secret_one", "host"])
def test_another_teams_connector_in_the_config_api_is_refused_like_an_unknown_one(world, target):
    api = _api("rick")
    body = {"job": str(world["job"].id), "region": "eu-west-1", "scope": "result"}
    theirs = api.post("/api/v1/tasks", {**body, "connector": str(world[target].id)}, format="json")
    unknown_id = str(uuid.uuid4())
    unknown = api.post("/api/v1/tasks", {**body, "connector": unknown_id}, format="json")
    assert not TaskConfig.objects.exists()
    assert world[target].name not in theirs.content.decode()
    assert theirs.status_code == unknown.status_code
    assert theirs.content.decode().replace(str(world[target].id), "ID") == (
        unknown.content.decode().replace(unknown_id, "ID")
    )


def test_a_connector_variable_switched_to_another_teams_connector_after_the_save_never_runs(
    client, world, aws_endpoint, aws_calls
):
    """The editor saves the task with a variable that names their own connector, then
    changes the variable's value: the rules are checked again at every run."""
    variable = Variable.objects.create(
        team=world["rivals"], plan=world["plan"], key="aws.connector", value=str(world["own"].id)
    )
    client.force_login(_person("rick"))
    response = client.post(
        reverse("task_create", args=[world["job"].id]),
        _task_form("variable", connector_variable="${bamboo.aws.connector}"),
    )
    assert response.status_code == 302
    task = TaskConfig.objects.get()
    job_token = token_client(api_token(world["plan"], world["job"]))

    for target in ("secret_one", "host", "shared"):
        Variable.objects.filter(pk=variable.pk).update(value=str(world[target].id))
        manual = task_run(task=task, trigger=TaskRun.Trigger.MANUAL, actor=SYSTEM)
        assert (manual.outcome, manual.error_class) == ("failed", "InvalidConnectorVariable")
        assert world[target].name not in manual.error_message
        assert "rivals-own" in manual.error_message  # the connectors it may use, listed
        answer = job_token.post(reverse("api_task_run", args=[task.id]))
        assert answer.status_code == 201
        assert answer.json()["outcome"] == "failed"
        assert world[target].name not in answer.content.decode()
    assert aws_calls == []
    task.refresh_from_db()
    assert task.credential is None


def test_a_shared_host_connector_reached_through_a_variable_lends_no_host_identity(
    world, aws_endpoint, aws_calls
):
    """Owners share their host connector with Rivals, who were never granted the host's
    identity; a connector variable must not get around what the connector field refuses."""
    world["host"].shared_with.add(world["rivals"])
    Variable.objects.create(
        team=world["rivals"], plan=world["plan"], key="aws.connector", value=str(world["host"].id)
    )
    task = TaskConfig.objects.create(
        job=world["job"],
        region="eu-west-1",
        connector_variable="${bamboo.aws.connector}",
    )
    for trigger in (TaskRun.Trigger.MANUAL, TaskRun.Trigger.API, TaskRun.Trigger.SCHEDULE):
        run = task_run(task=task, trigger=trigger, actor=SYSTEM)
        assert (run.outcome, run.error_class) == ("failed", "HostCredentialsNotAllowed")
    page = _api("rick").get(f"/api/v1/tasks/{task.id}").json()
    assert page["status"] != "ok"
    assert aws_calls == []


def test_a_team_without_the_grant_makes_no_host_connector_through_the_api_or_an_edit(
    client, world
):
    rita = _api("rita")
    created = rita.post(
        "/api/v1/connectors",
        {"team": str(world["rivals"].id), "name": "sneaky-host", "credentials": "host"},
        format="json",
    )
    assert created.status_code == 400
    assert "credentials" in created.json()["detail"]
    turned = rita.patch(
        f"/api/v1/connectors/{world['own'].id}",
        {"credentials": "host", "access_key_id": "", "secret_access_key": ""},
        format="json",
    )
    assert turned.status_code == 400
    # The page offers no "host" choice; a forged POST gets no further.
    client.force_login(_person("rita"))
    forged = client.post(
        reverse("connector_edit", args=[world["own"].id]),
        {
            "name": "rivals-own",
            "partition": "aws",
            "credentials": "host",
            "principal_type": "provided",
            "unattended_use": "on",
        },
    )
    assert forged.status_code in (200, 400)
    assert "credentials" in forged.context["form"].errors
    # Nor can the connector be handed to a granted team and taken back.
    moved = rita.patch(
        f"/api/v1/connectors/{world['own'].id}", {"team": str(world["owners"].id)}, format="json"
    )
    assert moved.status_code in (400, 403, 404)
    assert not Connector.objects.filter(credentials="host").exclude(pk=world["host"].pk).exists()
    own = Connector.objects.get(pk=world["own"].pk)
    assert (own.credentials, own.team_id) == ("access_key", world["rivals"].id)


@pytest.mark.parametrize("username", ["pete", "paula"])
def test_members_of_a_sharing_team_neither_change_share_delete_nor_read_owner_fields(
    world, username, aws_endpoint, aws_calls
):
    api = _api(username)
    shared = world["shared"]
    url = f"/api/v1/connectors/{shared.id}"
    body = api.get(url).json()
    assert (body["access_key_id"], body["external_id"]) == (None, None)
    for attempt in (
        api.patch(url, {"name": "taken-over"}, format="json"),
        api.patch(url, {"shared_with": [str(world["rivals"].id)]}, format="json"),
        api.patch(url, {"external_id": "attacker-1234"}, format="json"),
        api.put(
            url, {**body, "name": "taken-over", "team": str(world["partners"].id)}, format="json"
        ),
        api.delete(url),
    ):
        assert attempt.status_code == 403, attempt.content
        assert "partner-4711" not in attempt.content.decode()
    listed = api.get("/api/v1/connectors").json()
    assert [c["name"] for c in listed] == ["shared-with-partners"]
    assert listed[0]["external_id"] is None
    shared.refresh_from_db()
    assert (shared.name, shared.external_id) == ("shared-with-partners", "partner-4711")
    assert list(shared.shared_with.all()) == [world["partners"]]
    assert not AuditEvent.objects.filter(action__startswith="connector.").exists()
    assert aws_calls == []


def test_a_viewer_of_a_sharing_team_cannot_test_the_connection_however_the_form_is_forged(
    client, world, aws_endpoint, aws_calls
):
    client.force_login(_person("paula"))
    url = reverse("connector_test", args=[world["shared"].id])
    for data in ({"region": "eu-west-1"}, {"region": "us-east-1", "submit": "test"}, {}):
        assert client.post(url, data).status_code == 403
    assert client.post(url + "?region=eu-west-1").status_code == 403
    page = client.get(reverse("connector_detail", args=[world["shared"].id])).content.decode()
    assert "partner-4711" not in page
    assert "AKIAIOSFODNN7EXAMPLE" not in page
    world["shared"].refresh_from_db()
    assert world["shared"].last_test_at is None
    assert not AuditEvent.objects.filter(action="connector.tested").exists()
    assert aws_calls == []


# --- the secret access key -------------------------------------------------------------


def test_the_secret_never_comes_back_from_the_api_not_even_in_an_error(world):
    olga = _api("olga")
    base = {
        "team": str(world["owners"].id),
        "name": "sentinel",
        "credentials": "access_key",
        "access_key_id": "AKIAIOSFODNN7EXAMPLE",
        "principal_type": "provided",
    }
    answers = [
        # Refused for another field: the secret was fine.
        olga.post(
            "/api/v1/connectors",
            {
                **base,
                "secret_access_key": SENTINEL,
                "principal_type": "assumed_role",
                "role_arn": "arn:aws:iam::1:role/x",
            },
            format="json",
        ),
        # Refused for the secret itself: a character too many, and one not allowed.
        olga.post(
            "/api/v1/connectors", {**base, "secret_access_key": SENTINEL + "!"}, format="json"
        ),
        olga.post(
            "/api/v1/connectors",
            {**base, "secret_access_key": SENTINEL[:-1] + "\x00"},
            format="json",
        ),
        olga.post("/api/v1/connectors", {**base, "secret_access_key": [SENTINEL]}, format="json"),
        olga.post(
            "/api/v1/connectors",
            {**base, "secret_access_key": SENTINEL, "name": "x" * 500},
            format="json",
        ),
    ]
    created = olga.post(
        "/api/v1/connectors", {**base, "secret_access_key": SENTINEL}, format="json"
    )
    assert created.status_code == 201, created.content
    connector_id = created.json()["id"]
    url = f"/api/v1/connectors/{connector_id}"
    answers += [
        created,
        olga.get(url),
        olga.get("/api/v1/connectors"),
        olga.get(url + "?format=yaml"),
        olga.patch(url, {"external_id": "a\nb", "secret_access_key": SENTINEL}, format="json"),
        olga.patch(url, {"name": "renamed"}, format="json"),
        olga.options(url),
    ]
    assert [a.status_code for a in answers[:5]] == [400] * 5
    for answer in answers:
        text = answer.content.decode()
        assert SENTINEL not in text, answer.request["PATH_INFO"]
        assert SENTINEL[:20] not in text
        if answer.status_code < 300 and "secret_access_key" in text:
            assert answer.request["REQUEST_METHOD"] == "OPTIONS"  # the schema, no value
    assert Connector.objects.get(pk=connector_id).secret_access_key.reveal() == SENTINEL


def test_a_form_refused_for_any_reason_echoes_no_secret(client, world):
    client.force_login(_person("olga"))
    base = {
        "owner": str(world["owners"].id),
        "name": "sentinel",
        "partition": "aws",
        "credentials": "access_key",
        "access_key_id": "AKIAIOSFODNN7EXAMPLE",
        "principal_type": "provided",
        "unattended_use": "on",
    }
    create = reverse("connector_create")
    edit = reverse("connector_edit", args=[world["secret_one"].id])
    refused = [
        client.post(create, {**base, "secret_access_key": SENTINEL + "!"}),
        client.post(
            create, {**base, "secret_access_key": SENTINEL, "name": "owners-secret-account"}
        ),
        client.post(
            create,
            {
                **base,
                "secret_access_key": SENTINEL,
                "principal_type": "assumed_role",
                "role_arn": "not-an-arn",
            },
        ),
        client.post(
            create,
            {
                **base,
                "secret_access_key": SENTINEL,
                "principal_type": "federated_user",
                "session_policy": "{not json",
            },
        ),
        client.post(edit, {**base, "secret_access_key": SENTINEL, "access_key_id": "nope"}),
    ]
    for response in refused:
        assert response.status_code in (200, 400)
        assert response.context["form"].errors
        assert SENTINEL not in response.content.decode()
    assert not Connector.objects.filter(name="sentinel").exists()


# --- hostile text in the role ARN and the external ID ----------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("role_arn", ROLE + "\n"),
        ("role_arn", ROLE + "\r\n"),
        ("role_arn", "\n" + ROLE),
        ("role_arn", ROLE + "\nX-Amz-Target: evil"),
        ("role_arn", ROLE + "\x00"),
        ("role_arn", ROLE.replace("role/", "role/\t")),
        ("external_id", "partner-4711\n"),
        ("external_id", "partner-4711\r\n"),
        ("external_id", "partner\n4711"),
        ("external_id", "partner-4711\x00"),
        ("external_id", "partner 4711"),
        ("external_id", "partner-4711\u2028"),
    ],
)
def test_a_role_arn_or_external_id_never_reaches_the_database_with_a_control_character(
    client, world, field, value
):
    body = {"principal_type": "assumed_role", "role_arn": ROLE, "external_id": "partner-4711"}
    body[field] = value
    answer = _api("olga").patch(
        f"/api/v1/connectors/{world['secret_one'].id}", body, format="json"
    )
    assert answer.status_code in (200, 400)
    client.force_login(_person("olga"))
    page = client.post(
        reverse("connector_edit", args=[world["secret_one"].id]),
        {
            "name": "owners-secret-account",
            "partition": "aws",
            "credentials": "access_key",
            "access_key_id": "AKIAIOSFODNN7EXAMPLE",
            "secret_access_key": "",
            "unattended_use": "on",
            **body,
        },
    )
    assert page.status_code in (200, 302, 400)
    stored = getattr(Connector.objects.get(pk=world["secret_one"].pk), field)
    assert stored in ("", value.strip())
    assert stored == stored.strip()
    assert not any(ch in stored for ch in "\x00\t\n\r\u2028 ")
    if answer.status_code == 200:
        assert stored == value.strip()


@pytest.mark.parametrize(
    ("field", "value"),
    [
        (
            "role_arn",
            "arn:aws:iam::\u0661\u0662\u0663\u0664\u0665\u0666\u0667\u0668\u0669\u0660"
            "\u0661\u0662:role/ecr-push",
        ),
        ("role_arn", "arn:aws:iam::123456789012:role/\u00e9cr-push"),
        ("external_id", "partn\u00e9r-4711"),
    ],
)
def test_a_role_arn_or_external_id_in_characters_aws_refuses_is_not_saved(world, field, value):
    body = {"principal_type": "assumed_role", "role_arn": ROLE, field: value}
    answer = _api("olga").patch(
        f"/api/v1/connectors/{world['secret_one'].id}", body, format="json"
    )
    assert answer.status_code == 400
    assert getattr(Connector.objects.get(pk=world["secret_one"].pk), field) != value
