import json

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from tasks_app.models import AuditEvent, Connector, Membership, Role, Team
from tasks_app.services.validation import connector_validate
from tests.factories import SECRET, make_connector, make_team

pytestmark = pytest.mark.django_db

VALID = {
    "owner": None,  # filled in by _form
    "name": "prod-ecr",
    "partition": "aws",
    "credentials": "access_key",
    "access_key_id": "AKIAIOSFODNN7EXAMPLE",
    "secret_access_key": SECRET,
    "principal_type": "provided",
    "role_arn": "",
    "external_id": "",
    "session_duration": "",
    "session_policy": "",
    "unattended_use": "on",
}
ROLE = "arn:aws:iam::123456789012:role/ecr-push"


@pytest.fixture
def world(db):
    """Team A owns a connector shared with team S; team O is unrelated."""
    owner = make_team("Team A", alice=Role.ADMIN, erin=Role.EDITOR, vic=Role.VIEWER)
    shared = make_team("Team S", sam=Role.EDITOR, sue=Role.VIEWER)
    make_team("Team O", oscar=Role.ADMIN)
    connector = make_connector(
        owner, principal_type="assumed_role", role_arn=ROLE, external_id="partner-4711"
    )
    connector.shared_with.add(shared)
    return connector


def _form(team, **changes):
    data = {**VALID, "owner": str(team.id), **changes}
    return {k: v for k, v in data.items() if v is not None}


def _users(*names):
    from django.contrib.auth import get_user_model

    return {u.username: u for u in get_user_model().objects.filter(username__in=names)}


# --- permissions -----------------------------------------------------------------------

# What each person gets for each connector URL: owner team admin/editor/viewer,
# shared team editor/viewer, an admin of an unrelated team, and nobody signed in.
MATRIX = {
    #                 detail edit-get edit-post delete-get delete-post test
    "alice": (200, 200, 302, 200, 302, 200),
    "erin": (200, 403, 403, 403, 403, 200),
    "vic": (200, 403, 403, 403, 403, 403),
    "sam": (200, 403, 403, 403, 403, 200),
    "sue": (200, 403, 403, 403, 403, 403),
    "oscar": (404, 404, 404, 404, 404, 404),
    None: (302, 302, 302, 302, 302, 302),
}


@pytest.mark.parametrize("who", list(MATRIX))
def test_the_permission_matrix_of_every_connector_url(client, world, aws_endpoint, who):
    if who:
        client.force_login(_users(who)[who])
    c = world.id
    edit = _form(world.team, name="renamed", role_arn=ROLE, principal_type="assumed_role")
    edit["secret_access_key"] = ""
    requests = [
        ("get", reverse("connector_detail", args=[c]), {}),
        ("get", reverse("connector_edit", args=[c]), {}),
        ("post", reverse("connector_edit", args=[c]), edit),
        ("get", reverse("connector_delete", args=[c]), {}),
        ("post", reverse("connector_delete", args=[c]), {}),
        ("post", reverse("connector_test", args=[c]), {"region": "eu-west-1"}),
    ]
    # Delete last but one, so that the test request still finds the connector.
    order = [0, 1, 2, 3, 5, 4]
    got = {}
    for i in order:
        method, url, data = requests[i]
        got[i] = getattr(client, method)(url, data).status_code
    assert tuple(got[i] for i in range(6)) == MATRIX[who]

    still_there = Connector.objects.filter(pk=c).exists()
    assert still_there == (who != "alice")
    if who not in ("alice",):
        assert Connector.objects.get(pk=c).name == "prod-ecr"


def test_the_list_shows_owned_and_shared_connectors_only(client, world):
    make_connector(Team.objects.get(name="Team O"), name="oscars-own")
    client.force_login(_users("sue")["sue"])
    body = client.get(reverse("connector_list")).content.decode()
    assert "prod-ecr" in body
    assert "oscars-own" not in body
    assert "New connector" not in body  # sue administers no team


def test_shared_teams_see_no_credential_details(client, world):
    client.force_login(_users("sam")["sam"])
    body = client.get(reverse("connector_detail", args=[world.id])).content.decode()
    assert ROLE in body
    assert "AKIAIOSFODNN7EXAMPLE" not in body
    assert "partner-4711" not in body
    assert "Edit" not in body


def test_only_team_admins_create_connectors(client, world):
    client.force_login(_users("erin")["erin"])
    assert client.get(reverse("connector_create")).status_code == 403


def test_an_admin_creates_only_for_teams_they_administer(client, world):
    client.force_login(_users("oscar")["oscar"])
    response = client.post(reverse("connector_create"), _form(world.team, name="sneaky"))
    assert response.status_code == 200
    assert "Select a valid choice" in str(response.context["form"].errors["owner"])
    assert not Connector.objects.filter(name="sneaky").exists()


def test_the_list_uses_a_fixed_number_of_queries(client, world, django_assert_max_num_queries):
    client.force_login(_users("alice")["alice"])
    for i in range(10):
        make_connector(world.team, name=f"c{i}").shared_with.add(Team.objects.get(name="Team S"))
    with django_assert_max_num_queries(8):
        assert client.get(reverse("connector_list")).status_code == 200


# --- creating and editing -------------------------------------------------------------


def test_an_admin_creates_a_connector(client, world):
    alice = _users("alice")["alice"]
    client.force_login(alice)
    policy = {"Version": "2012-10-17", "Statement": []}
    response = client.post(
        reverse("connector_create"),
        _form(
            world.team,
            name="push",
            principal_type="assumed_role",
            role_arn=ROLE,
            external_id="ext-1",
            session_duration="7200",
            session_policy=json.dumps(policy),
            shared_with=[str(Team.objects.get(name="Team O").id)],
        ),
    )
    connector = Connector.objects.get(name="push")
    assert response["Location"] == reverse("connector_detail", args=[connector.id])
    assert connector.team == world.team
    assert connector.created_by == alice
    assert connector.secret_access_key.reveal() == SECRET
    assert (connector.role_arn, connector.external_id, connector.session_duration) == (
        ROLE,
        "ext-1",
        7200,
    )
    assert list(connector.shared_with.values_list("name", flat=True)) == ["Team O"]
    created = AuditEvent.objects.get(action="connector.created")
    assert created.changes["role_arn"] == ROLE
    assert "secret_access_key" not in created.changes
    assert AuditEvent.objects.get(action="connector.sharing_changed").changes == {
        "added": ["team-o"],
        "removed": [],
    }


def test_settings_that_do_not_apply_are_ignored(client, world):
    client.force_login(_users("alice")["alice"])
    client.post(
        reverse("connector_create"),
        _form(
            world.team,
            name="plain",
            principal_type="provided",
            role_arn="not even an ARN",
            external_id="x",
            session_duration="5",
            session_policy="{broken",
        ),
    )
    connector = Connector.objects.get(name="plain")
    assert (connector.role_arn, connector.external_id) == ("", "")
    assert connector.session_duration is None
    assert connector.session_policy == ""


def test_an_empty_secret_on_edit_keeps_the_stored_one(client, world):
    client.force_login(_users("alice")["alice"])
    url = reverse("connector_edit", args=[world.id])
    page = client.get(url).content.decode()
    assert 'name="secret_access_key"' in page
    assert 'type="password"' in page
    assert SECRET not in page

    data = _form(
        world.team,
        principal_type="assumed_role",
        role_arn=ROLE,
        external_id="partner-4711",
        secret_access_key="",
    )
    data.pop("owner")
    client.post(url, data)
    world.refresh_from_db()
    assert world.secret_access_key.reveal() == SECRET
    assert not AuditEvent.objects.filter(action="connector.updated").exists()

    client.post(url, {**data, "secret_access_key": "N" * 40})
    world.refresh_from_db()
    assert world.secret_access_key.reveal() == "N" * 40
    changes = AuditEvent.objects.get(action="connector.updated").changes
    assert changes == {"secret_access_key": "changed (value not recorded)"}


def test_sharing_changes_are_audited(client, world):
    client.force_login(_users("alice")["alice"])
    data = _form(world.team, principal_type="assumed_role", role_arn=ROLE, secret_access_key="")
    data.pop("owner")
    data["external_id"] = "partner-4711"
    data["shared_with"] = [str(Team.objects.get(name="Team O").id)]
    client.post(reverse("connector_edit", args=[world.id]), data)
    assert list(world.shared_with.values_list("name", flat=True)) == ["Team O"]
    assert AuditEvent.objects.get(action="connector.sharing_changed").changes == {
        "added": ["team-o"],
        "removed": ["team-s"],
    }


def test_deleting_asks_first_and_is_audited(client, world):
    client.force_login(_users("alice")["alice"])
    url = reverse("connector_delete", args=[world.id])
    assert "Delete prod-ecr?" in client.get(url).content.decode()
    assert Connector.objects.filter(pk=world.pk).exists()
    assert client.post(url)["Location"] == reverse("connector_list")
    assert not Connector.objects.filter(pk=world.pk).exists()
    event = AuditEvent.objects.get(action="connector.deleted")
    assert event.changes["role_arn"] == ROLE


def test_test_connection_shows_the_outcome(client, world, aws_endpoint):
    client.force_login(_users("erin")["erin"])
    response = client.post(reverse("connector_test", args=[world.id]), {"region": "eu-west-1"})
    body = response.content.decode()
    assert "Signed in as arn:aws:sts::123456789012:assumed-role/ecr-push/ecrportal-erin" in body
    assert AuditEvent.objects.get(action="connector.tested").changes == {
        "region": "eu-west-1",
        "ok": True,
        "error": "",
    }


def test_a_missing_ecr_permission_links_the_recommended_policy(
    client, world, aws_endpoint, aws_failure
):
    client.force_login(_users("alice")["alice"])
    aws_failure("api.ecr:GetAuthorizationToken", "AccessDeniedException")
    body = client.post(
        reverse("connector_test", args=[world.id]), {"region": "eu-west-1"}
    ).content.decode()
    assert "may not call ecr:GetAuthorizationToken" in body
    assert f'href="{reverse("ecr_policy")}"' in body
    policy_page = client.get(reverse("ecr_policy")).content.decode()
    assert "AmazonEC2ContainerRegistryPowerUser" in policy_page
    assert "ecr:GetAuthorizationToken" in policy_page


def test_a_region_of_another_partition_is_refused(client, world):
    client.force_login(_users("alice")["alice"])
    response = client.post(reverse("connector_test", args=[world.id]), {"region": "cn-north-1"})
    assert "Select a valid choice. cn-north-1 is not one of the available choices." in (
        response.content.decode()
    )
    assert not AuditEvent.objects.filter(action="connector.tested").exists()


# --- invalid input ---------------------------------------------------------------------

LONG_POLICY = json.dumps({"Version": "2012-10-17", "Statement": [{"Sid": "x" * 2100}]})


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"name": ""}, "name", "This field is required."),
        ({"access_key_id": "AKIA123"}, "access_key_id", "Enter an access key ID: 20 capital"),
        ({"access_key_id": "ABCDIOSFODNN7EXAMPLE"}, "access_key_id", "starting with AKIA"),
        ({"secret_access_key": ""}, "secret_access_key", "Enter the secret access key (40"),
        ({"secret_access_key": "short"}, "secret_access_key", "40 characters of letters"),
        (
            {"principal_type": "assumed_role", "role_arn": "arn:aws:iam::123:role/x"},
            "role_arn",
            "Enter a role ARN of the form arn:<partition>:iam::<12-digit account>:role/",
        ),
        (
            {"principal_type": "assumed_role", "role_arn": "arn:aws:iam::123456789012:user/bob"},
            "role_arn",
            "Enter a role ARN of the form",
        ),
        (
            {"principal_type": "assumed_role", "role_arn": "arn:aws-cn:iam::123456789012:role/x"},
            "role_arn",
            "This role is in partition aws-cn, but the connector uses aws.",
        ),
        (
            {"principal_type": "assumed_role", "role_arn": ROLE, "external_id": "x"},
            "external_id",
            "Enter an external ID of 2 to 1224 characters",
        ),
        (
            {"principal_type": "assumed_role", "role_arn": ROLE, "external_id": "has space"},
            "external_id",
            "Enter an external ID of 2 to 1224 characters",
        ),
        (
            {"principal_type": "assumed_role", "role_arn": ROLE, "external_id": "e" * 1225},
            "external_id",
            "Ensure this value has at most 1224 characters (it has 1225).",
        ),
        (
            {"principal_type": "assumed_role", "role_arn": ROLE, "session_policy": "{nope"},
            "session_policy",
            "Enter the policy as JSON: Expecting property name enclosed in double quotes at "
            "line 1, column 2.",
        ),
        (
            {"principal_type": "federated_user", "session_policy": "[]"},
            "session_policy",
            "Enter the policy as a JSON object",
        ),
        (
            {"principal_type": "federated_user", "session_policy": LONG_POLICY},
            "session_policy",
            "characters without white space; AWS accepts at most 2048.",
        ),
        (
            {"principal_type": "assumed_role", "role_arn": ROLE, "session_duration": "899"},
            "session_duration",
            "Enter a duration from 900 to 43200 seconds for an assumed role, or leave it "
            "empty for 3600.",
        ),
        (
            {"principal_type": "assumed_role", "role_arn": ROLE, "session_duration": "43201"},
            "session_duration",
            "Enter a duration from 900 to 43200 seconds for an assumed role",
        ),
        (
            {"principal_type": "federated_user", "session_duration": "129601"},
            "session_duration",
            "Enter a duration from 900 to 129600 seconds for a federated user",
        ),
        (
            {"principal_type": "session_token", "session_duration": "soon"},
            "session_duration",
            "Enter a whole number.",
        ),
        ({"partition": "aws-mars"}, "partition", "Select a valid choice."),
        ({"principal_type": "root"}, "principal_type", "Select a valid choice."),
        ({"credentials": "host"}, "credentials", "Select a valid choice. host is not one"),
    ],
)
def test_invalid_input_gets_a_field_error_and_saves_nothing(
    client, world, changes, field, message
):
    client.force_login(_users("alice")["alice"])
    before = Connector.objects.count()
    response = client.post(
        reverse("connector_create"), _form(world.team, **{"name": "new", **changes})
    )

    assert response.status_code == 200
    errors = response.context["form"].errors
    assert field in errors, errors
    assert message in " ".join(errors[field])
    assert message.split(":")[0].split(".")[0] in response.content.decode()
    assert Connector.objects.count() == before


def test_a_name_is_unique_within_its_team(client, world):
    client.force_login(_users("alice")["alice"])
    response = client.post(reverse("connector_create"), _form(world.team))
    assert response.context["form"].errors["name"] == [
        "Team A already has a connector called prod-ecr."
    ]
    # Another team may use the same name.
    Membership.objects.create(
        team=Team.objects.get(name="Team O"), user=_users("alice")["alice"], role=Role.ADMIN
    )
    client.post(reverse("connector_create"), _form(Team.objects.get(name="Team O")))
    assert Connector.objects.filter(name="prod-ecr").count() == 2


# --- the host's own identity -----------------------------------------------------------


def test_host_credentials_need_the_setting_and_a_grant(client, world, settings):
    client.force_login(_users("alice")["alice"])
    team = world.team
    url = reverse("connector_create")
    host_choice = 'value="host"'

    assert host_choice not in client.get(url).content.decode()  # setting off, no grant
    settings.ALLOW_HOST_CREDENTIALS = True
    assert host_choice not in client.get(url).content.decode()  # setting on, no grant
    response = client.post(url, _form(team, name="h", credentials="host"))
    assert "credentials" in response.context["form"].errors

    team.host_credentials_allowed = True
    team.save()
    assert host_choice in client.get(url).content.decode()
    client.post(
        url, _form(team, name="h", credentials="host", access_key_id="", secret_access_key="")
    )
    connector = Connector.objects.get(name="h")
    assert (connector.credentials, connector.access_key_id) == ("host", "")
    assert not connector.secret_access_key

    settings.ALLOW_HOST_CREDENTIALS = False  # turned off later: refused on the next save
    with pytest.raises(ValidationError, match="is off on this portal"):
        connector_validate(connector)


def test_federated_users_and_session_tokens_need_an_access_key(client, world, settings):
    settings.ALLOW_HOST_CREDENTIALS = True
    world.team.host_credentials_allowed = True
    world.team.save()
    client.force_login(_users("alice")["alice"])
    for principal in ("federated_user", "session_token"):
        response = client.post(
            reverse("connector_create"),
            _form(world.team, name="h", credentials="host", principal_type=principal),
        )
        assert (
            "needs access-key credentials" in response.context["form"].errors["principal_type"][0]
        )
    assert not Connector.objects.filter(name="h").exists()


def test_the_form_hides_what_does_not_apply(client, world):
    client.force_login(_users("alice")["alice"])
    page = client.get(reverse("connector_create")).content.decode()
    assert 'data-show-if="credentials=access_key"' in page
    assert 'data-show-if="principal_type=assumed_role"' in page
    assert "tasks_app/conditional.js" in page
