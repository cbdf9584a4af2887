"""Fuzzing the forms and the filters with hypothesis, on PostgreSQL (which refuses NUL in text):
NUL bytes, control characters, huge values, any unicode, numbers and JSON where text belongs.
No answer is a 500, and a form with a bad value saves nothing and changes nothing.
"""

import uuid

import pytest
from django.contrib.auth.forms import PasswordChangeForm
from django.db import connection, transaction
from django.forms.models import model_to_dict
from django.test import Client
from django.urls import reverse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tasks_app.forms import accounts as accounts_forms
from tasks_app.forms import connectors as connectors_forms
from tasks_app.forms import plans as plans_forms
from tasks_app.forms import teams as teams_forms
from tasks_app.forms import tokens as tokens_forms
from tasks_app.models import (
    ApiToken,
    AuditEvent,
    Connector,
    Job,
    Membership,
    Plan,
    Role,
    TaskConfig,
    Team,
    Variable,
)
from tests.factories import make_connector, make_team, make_user
from tests.helpers import require

pytestmark = [pytest.mark.django_db, pytest.mark.slow]

EXAMPLES = 25
FUZZ = settings(
    max_examples=EXAMPLES,
    derandomize=True,  # the same inputs in every run, so CI is reproducible
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# Values a person or a script could send in a form field or a query string.
VALUES = st.one_of(
    st.text(max_size=40),  # any unicode, control characters included
    st.text(max_size=10).map(lambda s: f"{s}\x00{s}"),
    st.builds(
        lambda ch, n: ch * n, st.characters(exclude_categories=["Cs"]), st.integers(1, 30000)
    ),
    st.integers().map(str),
    st.floats(allow_nan=True).map(str),
    st.sampled_from(
        [
            "",
            " ",
            "null",
            "[]",
            '{"a": 1}',
            "true",
            "-1",
            "9" * 40,
            "../../etc/passwd",
            "<script>alert(1)</script>",
            "${bamboo.x}",
            "%00",
            "\u202e\u0000",
            str(uuid.uuid4()),
        ]
    ),
)


@pytest.fixture
def world(db):
    require(
        connection.vendor == "postgresql",
        "the fuzzing runs on PostgreSQL, which refuses NUL in text; set DATABASE_URL=postgres://...",
    )
    team = make_team("Platform", ada=Role.ADMIN, vic=Role.VIEWER)
    connector = make_connector(team)
    plan = Plan.objects.create(team=team, key="WEB-BUILD", name="Web")
    job = Job.objects.create(plan=plan, key="BUILD", name="Build")
    task = TaskConfig.objects.create(job=job, region="eu-west-1", connector=connector)
    variable = Variable(team=team, plan=plan, key="aws.region")
    variable.set_value("eu-west-1")
    variable.save()
    make_user("root", is_superuser=True, is_staff=True)
    return {
        "team_id": team.id,
        "membership_id": Membership.objects.get(user__username="vic").id,
        "connector_id": connector.id,
        "plan_id": plan.id,
        "job_id": job.id,
        "task_id": task.id,
        "variable_id": variable.id,
    }


MODELS = [Team, Membership, Connector, Plan, Job, TaskConfig, Variable, ApiToken]


def _state():
    """Every row of what the forms can change, as plain values."""
    return {
        model.__name__: sorted(
            (str(sorted(model_to_dict(obj).items(), key=str)) for obj in model.objects.all()),
        )
        for model in MODELS
    }


def _changes():
    return AuditEvent.objects.exclude(action__in=["login.failed", "login.throttled"]).count()


# (URL name, its arguments, the form it posts, the field that gets a NUL, who posts it)
FORMS = [
    ("login", [], accounts_forms.LoginForm, "username", None),
    ("password_change", [], PasswordChangeForm, "new_password1", "ada"),
    ("team_create", [], teams_forms.TeamForm, "name", "root"),
    ("team_edit", ["team_id"], teams_forms.TeamForm, "name", "ada"),
    ("member_add", ["team_id"], teams_forms.MemberAddForm, "user", "ada"),
    ("member_role", ["team_id", "membership_id"], teams_forms.MemberRoleForm, "role", "ada"),
    (
        "team_notifications",
        ["team_id"],
        teams_forms.NotificationSettingsForm,
        "webhook_url",
        "ada",
    ),
    ("connector_create", [], connectors_forms.ConnectorForm, "name", "ada"),
    ("connector_edit", ["connector_id"], connectors_forms.ConnectorForm, "name", "ada"),
    ("connector_test", ["connector_id"], connectors_forms.ConnectorTestForm, "region", "ada"),
    ("plan_create", [], plans_forms.PlanForm, "key", "ada"),
    ("plan_edit", ["plan_id"], plans_forms.PlanForm, "name", "ada"),
    ("job_create", ["plan_id"], plans_forms.JobForm, "key", "ada"),
    ("job_edit", ["job_id"], plans_forms.JobForm, "name", "ada"),
    ("task_create", ["job_id"], plans_forms.TaskForm, "namespace", "ada"),
    ("task_edit", ["task_id"], plans_forms.TaskForm, "namespace", "ada"),
    ("variable_create", [], plans_forms.VariableForm, "key", "ada"),
    ("variable_edit", ["variable_id"], plans_forms.VariableForm, "key", "ada"),
    ("token_create", [], tokens_forms.ApiTokenForm, "name", "ada"),
]


def _client(username):
    client = Client()
    if username:
        from django.contrib.auth import get_user_model

        client.force_login(get_user_model().objects.get(username=username))
    return client


@pytest.mark.parametrize(
    ("name", "args", "form", "poisoned", "who"), FORMS, ids=[f[0] for f in FORMS]
)
def test_a_form_refuses_bad_input_without_a_500_and_saves_nothing(
    world, name, args, form, poisoned, who
):
    client = _client(who)
    path = reverse(name, args=[world[a] for a in args])
    if name == "variable_create":
        path += f"?team={world['team_id']}"
    fields = sorted(form.base_fields)
    assert poisoned in fields
    before, changes = _state(), _changes()

    @FUZZ
    @given(values=st.fixed_dictionaries({f: VALUES for f in fields}), nul=st.text(max_size=5))
    def post(values, nul):
        values[poisoned] = f"{values[poisoned]}\x00{nul}"
        with transaction.atomic():
            response = client.post(path, values)
            assert response.status_code < 500, (response.status_code, values)
            assert (_state(), _changes()) == (before, changes), values
            transaction.set_rollback(True)

    post()


# (URL name, its arguments, the query parameters it reads)
FILTERS = [
    ("dashboard", [], ["team", "plan", "status"]),
    ("run_list", [], ["team", "outcome", "trigger", "page"]),
    ("audit_log", [], ["team", "action", "actor", "since", "until", "page"]),
    ("variable_create", [], ["team", "plan"]),
    ("task_list", [], ["team", "page"]),
    ("api_plan_variables", ["plan_key"], ["job", "format"]),
    ("api_task_env", ["task_id"], ["shell", "format"]),
    ("api_task_variables", ["task_id"], ["format"]),
]


@pytest.mark.parametrize(("name", "args", "params"), FILTERS, ids=[f[0] for f in FILTERS])
def test_filters_answer_bad_input_without_a_500(world, name, args, params):
    client = _client("ada")
    world = {**world, "plan_key": "WEB-BUILD"}
    path = reverse(name, args=[world[a] for a in args])

    @FUZZ
    @given(query=st.dictionaries(st.sampled_from(params), VALUES, min_size=1))
    def get(query):
        response = client.get(path, query)
        assert response.status_code < 500, (response.status_code, query)
        if any("\x00" in v for v in query.values()):
            assert response.status_code == 400, query

    get()


@FUZZ
@given(segment=VALUES.filter(lambda s: "/" not in s and s not in ("", ".", "..")))
def test_path_segments_answer_bad_input_without_a_500(world, segment):
    client = _client("ada")
    for path in (
        f"/api/v1/plans/{segment}/variables",
        f"/api/v1/connectors/{segment}",
        f"/tasks/{segment}/",
    ):
        from urllib.parse import quote

        response = client.get(quote(path, safe="/"))
        assert response.status_code < 500, (response.status_code, path)
