"""The registry formats surface, attacked (issue 22, item 15).

The attacker: a CI job with an API token (or a signed-in person) asking for a Kubernetes
pull secret, who chooses its name and namespace in the query string; and an editor (or a
script going through the save services) who chooses keys and names. What they control:
every byte of `?name=` and `?namespace=` (percent-encoded newlines and carriage returns,
unicode lookalikes, any length), the keys a YAML document is written with, and the keys,
slugs and connector fields the models validate.

Before the fix, the validating patterns were `^…$` with `re.match`, and `$` also matches
before a final newline: `ecr-pull\\n` passed as a DNS-1123 label (and was rendered into a
Secret), a YAML key ending in a newline was written unquoted (a broken document), and
`WEB-BUILD\\n`, `BUILD\\n`, `aws.region\\n`, `platform\\n`, a secret access key or an
external ID with a trailing newline passed the models' checks. Every pattern is now
matched whole.
"""

import base64
import json

import pytest
import yaml
from django.core.exceptions import ValidationError

from tasks_app.formats.registry import as_yaml, kubernetes_secret
from tasks_app.identity.actor import SYSTEM
from tasks_app.models import Connector, Job, Plan, Role, Scope, TaskConfig, Team, Variable
from tasks_app.services.connectors import connector_save
from tasks_app.services.plans import job_save, plan_save, task_save, variable_save
from tests.factories import SECRET, api_token, give_credential, make_connector, make_team
from tests.factories import token_client as client_with

pytestmark = pytest.mark.django_db

PASSWORD = "Sentinel-registry-pw"  # the password the served token holds
REGISTRY = "https://111111111111.dkr.ecr.eu-west-1.amazonaws.com"
ROLE = "arn:aws:iam::123456789012:role/ecr-push"
NOT_A_LABEL = (
    "must be a DNS-1123 label: lowercase letters, digits and hyphens, starting and ending "
    "with a letter or digit, e.g. ecr-pull."
)


@pytest.fixture
def world(db):
    """Plan WEB-BUILD, job BUILD, a result task serving a token; the attacker's job token."""
    team = make_team("Platform", ada=Role.ADMIN, alice=Role.EDITOR)
    connector = make_connector(team)
    plan = Plan.objects.create(team=team, key="WEB-BUILD", name="Web")
    job = Job.objects.create(plan=plan, key="BUILD", name="Build")
    task = TaskConfig.objects.create(
        job=job, region="eu-west-1", connector=connector, scope=Scope.RESULT
    )
    give_credential(task, password=PASSWORD, endpoint=REGISTRY)
    return {
        "team": team,
        "plan": plan,
        "job": job,
        "task": task,
        "connector": connector,
        "attacker": client_with(api_token(plan, job)),
    }


def _secret_paths(world) -> dict[str, str]:
    """Every endpoint that renders a pull secret with a name and a namespace."""
    return {
        "task": f"/api/v1/tasks/{world['task'].id}/kubernetes-secret",
        "plan": "/api/v1/plans/WEB-BUILD/kubernetes-secret?job=BUILD",
        "token": "/api/v1/kubernetes-secret",
    }


def _get(world, path: str, query: str, **headers):
    separator = "&" if "?" in path else "?"
    return world["attacker"].get(f"{path}{separator}{query}", **headers)


def _assert_refused(response, detail: dict) -> None:
    """400, the API's error shape with these messages, and nothing rendered."""
    body = response.content.decode()
    assert response.status_code == 400, body
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"error": "invalid", "detail": detail}
    encoded = base64.b64encode(f"AWS:{PASSWORD}".encode()).decode()
    for rendered in (PASSWORD, encoded, "dockerconfigjson", "apiVersion", "Secret"):
        assert rendered not in body


# Secret names and namespaces through the API.


@pytest.mark.parametrize("endpoint", ["task", "plan", "token"])
@pytest.mark.parametrize(
    ("field", "value"),
    [("name", "ecr-pull%0A"), ("namespace", "default%0A")],
    ids=["name", "namespace"],
)
def test_a_trailing_newline_in_a_secret_name_or_namespace_is_refused_and_nothing_rendered(
    world, endpoint, field, value
):
    path = _secret_paths(world)[endpoint]
    clean = value.removesuffix("%0A")
    assert _get(world, path, f"{field}={clean}").status_code == 200  # the attacker may read
    _assert_refused(_get(world, path, f"{field}={value}"), {field: [f"The {field} {NOT_A_LABEL}"]})


def test_newlines_in_both_fields_are_refused_together_in_the_json_rendering_too(world):
    response = _get(
        world,
        _secret_paths(world)["task"],
        "name=ecr-pull%0A&namespace=kube-system%0a",
        HTTP_ACCEPT="application/json",
    )
    _assert_refused(
        response,
        {"name": [f"The name {NOT_A_LABEL}"], "namespace": [f"The namespace {NOT_A_LABEL}"]},
    )


def test_lookalikes_carriage_returns_and_overlong_names_stay_refused(world):
    """What `$` never let through, refused still (whole-value matching keeps them out)."""
    too_long = "is 64 characters; Kubernetes allows 63."
    hostile = {
        "ecr-pull%0D": NOT_A_LABEL,  # carriage return
        "ecr-pull%0D%0A": NOT_A_LABEL,
        "ecr-pull%0A%0A": NOT_A_LABEL,
        "ecr-pull%0Akind:%20Pod": NOT_A_LABEL,
        "%D0%B5cr-pull": NOT_A_LABEL,  # U+0435 CYRILLIC SMALL LETTER IE for the e
        "ecr%E2%80%90pull": NOT_A_LABEL,  # U+2010 HYPHEN
        "%EF%BD%85cr-pull": NOT_A_LABEL,  # U+FF45 FULLWIDTH LATIN SMALL LETTER E
        "ecr-pul%C4%B1": NOT_A_LABEL,  # U+0131 LATIN SMALL LETTER DOTLESS I
        "a" * 64: too_long,
        "a" * 63 + "%0A": too_long,
    }
    for path in _secret_paths(world).values():
        for value, message in hostile.items():
            for field in ("name", "namespace"):
                response = _get(world, path, f"{field}={value}")
                _assert_refused(response, {field: [f"The {field} {message}"]})


# YAML keys: a key ending in a newline must be quoted, and read back as the one key it is.


@pytest.mark.parametrize(
    "key",
    ["host\n", "kind\n", ".dockerconfigjson\n", "ecr.eu-west-1.amazonaws.com/v2\n"],
)
def test_a_yaml_key_ending_in_a_newline_is_quoted_and_reads_back_as_one_key(key):
    document = {"apiVersion": "v1", "metadata": {key: "x", "name": "ecr-pull"}, key: "y"}
    text = as_yaml(document)
    assert yaml.safe_load(text) == document
    assert len(text.splitlines()) == 5  # one line per entry: no key spilled onto another
    assert json.dumps(key) in text


def test_a_document_of_hostile_keys_keeps_every_key_and_the_secrets_kind():
    hostile = {"host\nkind: Secret": "a", "host\n": "b", "kind\n": "c", "type\n": "d"}
    secret = kubernetes_secret({"111111111111.dkr.ecr.eu-west-1.amazonaws.com": "QQ=="}, name="x")
    document = {**secret, "metadata": {**secret["metadata"], "labels": hostile}}
    read = yaml.safe_load(as_yaml(document))
    assert read == document
    assert (read["kind"], read["type"]) == ("Secret", "kubernetes.io/dockerconfigjson")


# The models' patterns: a trailing newline fails the checks every save service runs.


def _plan(team, key):
    return plan_save(plan=Plan(team=team, key=key, name="Web"), actor=SYSTEM)


def _job(world, key):
    return job_save(job=Job(plan=world["plan"], key=key, name="Deploy"), actor=SYSTEM)


def _variable(world, key):
    variable = Variable(team=world["team"], plan=world["plan"], key=key)
    return variable_save(variable=variable, value="eu-west-1", actor=SYSTEM)


def _team_slug(world, slug):
    Team(name="Platform two", slug=slug).full_clean()


def _connector(world, name="newline", **fields):
    fields.setdefault("access_key_id", "AKIAIOSFODNN7EXAMPLE")
    fields.setdefault("secret_access_key", SECRET)
    connector = Connector(team=world["team"], name=name, **fields)
    return connector_save(connector=connector, shared_with=[], secret_changed=True, actor=SYSTEM)


@pytest.mark.parametrize(
    ("field", "save"),
    [
        ("key", lambda world: _plan(world["team"], "WEB-DEPLOY\n")),
        ("key", lambda world: _job(world, "DEPLOY\n")),
        ("key", lambda world: _variable(world, "aws.region\n")),
        ("slug", lambda world: _team_slug(world, "platform\n")),
        ("secret_access_key", lambda world: _connector(world, secret_access_key=SECRET + "\n")),
        (
            "external_id",
            lambda world: _connector(
                world, principal_type="assumed_role", role_arn=ROLE, external_id="ext-42\n"
            ),
        ),
    ],
    ids=["plan key", "job key", "variable key", "team slug", "secret key", "external ID"],
)
def test_a_trailing_newline_fails_the_models_whole_value_patterns(world, field, save):
    before = (Plan.objects.count(), Job.objects.count(), Variable.objects.count())
    with pytest.raises(ValidationError) as refused:
        save(world)
    assert field in refused.value.message_dict
    assert (Plan.objects.count(), Job.objects.count(), Variable.objects.count()) == before
    assert not Connector.objects.filter(name="newline").exists()


# Trimmed, then matched whole: a trailing newline never reaches the database, nor AWS.


def _task_with(world, settings, field, value):
    settings.ALLOW_HOST_CREDENTIALS = True
    world["team"].host_credentials_allowed = True
    world["team"].save()
    task = TaskConfig(job=world["job"], region="eu-west-1", namespace="trimmed")
    if field == "role_arn":
        task.credentials_source = TaskConfig.Source.HOST
    else:
        task.connector = world["connector"]
    setattr(task, field, value)
    task_save(task=task, actor=SYSTEM)


@pytest.mark.parametrize(
    ("model", "field", "value"),
    [
        (TaskConfig, "namespace", "custom.ecr\n"),
        (TaskConfig, "registry_id", "111111111111\n"),
        (TaskConfig, "role_arn", ROLE + "\n"),
        (Connector, "access_key_id", "AKIAIOSFODNN7EXAMPLE\n"),
        (Connector, "role_arn", ROLE + "\n"),
    ],
    ids=["task namespace", "registry ID", "task role ARN", "access key ID", "connector role"],
)
def test_a_trimmed_setting_never_stores_its_trailing_newline(world, settings, model, field, value):
    """These are trimmed before their pattern is matched (as the API and the forms trim every
    text field), so the newline was never stored; whatever the model does with it, saved
    trimmed or refused, no row holds it."""
    refused = {}
    try:
        if model is TaskConfig:
            _task_with(world, settings, field, value)
        else:
            extra = {"principal_type": "assumed_role"} if field == "role_arn" else {}
            _connector(world, name="trimmed", **extra, **{field: value})
    except ValidationError as e:
        refused = e.message_dict
    assert set(refused) <= {field}
    assert not model.objects.filter(**{f"{field}__contains": "\n"}).exists()
    saved = model.objects.filter(**{field: value.strip()})
    assert refused or saved.exists()  # the registry ID (13 characters) is over its 12
