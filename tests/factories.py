"""The objects tests build: people, teams, connectors, plans, jobs, tasks, credentials, tokens.

Plain functions (no fixtures), so that a test, a fixture in tests/conftest.py or a script in
bench/ imports what it needs: `from tests.factories import make_team, make_task`. They call
the ORM (and the services where a row needs one), so they need the database.
"""

import base64
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.utils.timezone import now

from tasks_app.models import Membership, Role, Team

PASSWORD = "correct horse battery staple"
HOST_ACCESS_KEY_ID = "AKIAHOSTCHAIN0000001"
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


def make_user(username: str, *, password: str = PASSWORD, **fields):
    fields.setdefault("email", f"{username}@example.com")
    return get_user_model().objects.create_user(username=username, password=password, **fields)


def make_team(name: str, **members: Role) -> Team:
    """A team; each keyword argument a new member (username=role)."""
    team = Team.objects.create(name=name, slug=name.lower().replace(" ", "-"))
    for username, role in members.items():
        Membership.objects.create(team=team, user=make_user(username), role=role)
    return team


def make_connector(team, **fields):
    """An access-key connector of the team, validated as the form would (full_clean)."""
    from tasks_app.models import Connector

    fields.setdefault("name", "prod-ecr")
    fields.setdefault("access_key_id", "AKIAIOSFODNN7EXAMPLE")
    fields.setdefault("secret_access_key", SECRET)
    connector = Connector(team=team, **fields)
    connector.full_clean()
    connector.save()
    connector.refresh_from_db()
    return connector


def make_plan(team, key: str = "WEB-BUILD", name: str = "Web", **fields):
    from tasks_app.models import Plan

    return Plan.objects.create(team=team, key=key, name=name, **fields)


def make_job(plan, key: str = "BUILD", name: str = "Build", **fields):
    from tasks_app.models import Job

    return Job.objects.create(plan=plan, key=key, name=name, **fields)


def make_task(job, connector=None, *, region: str = "eu-west-1", **fields):
    """An Amazon ECR credentials task of the job (saved without the form's checks)."""
    from tasks_app.models import TaskConfig

    return TaskConfig.objects.create(job=job, region=region, connector=connector, **fields)


def make_due_tasks(count: int, *, due: bool = True, registry_ids=(), **members: Role):
    """`count` tasks of one team, sharing a connector and eu-west-1, one job each;
    due for refresh (or not for a long time)."""
    from tasks_app.models import TaskConfig

    team = make_team("Platform", **members)
    connector = make_connector(team)
    plan = make_plan(team)
    tasks = [
        make_task(
            make_job(plan, key=f"JOB{i}", name=f"Job {i}"),
            connector,
            registry_id=registry_ids[i] if i < len(registry_ids) else "",
        )
        for i in range(count)
    ]
    TaskConfig.objects.filter(pk__in=[t.pk for t in tasks]).update(
        refresh_due_at="2000-01-01T00:00:00Z" if due else "2999-01-01T00:00:00Z"
    )
    for task in tasks:
        task.refresh_from_db()
    return tasks


def give_credential(task, *, password=None, expires_in=None, endpoint=None):
    """Point the task at a credential, as a good run would: a token whose password is
    `password` (default "pw-<namespace>"), valid for `expires_in` (default 6 h)."""
    from tasks_app.models import Credential, TaskConfig

    password = f"pw-{task.namespace}" if password is None else password
    expires = now() + (timedelta(hours=6) if expires_in is None else expires_in)
    credential = Credential.objects.create(
        group=f"test:{task.pk}",
        token=base64.b64encode(f"AWS:{password}".encode()).decode(),
        expires_at=expires,
        proxy_endpoint=endpoint or "https://123456789012.dkr.ecr.eu-west-1.amazonaws.com",
    )
    TaskConfig.objects.filter(pk=task.pk).update(credential=credential, last_run_ok=True)
    task.credential, task.last_run_ok = credential, True
    return credential


def make_served_task(team, connector):
    """Plan WEB-BUILD, job BUILD and a result-scoped task whose credentials are fresh for
    six hours, plus a plan input variable aws.region."""
    from tasks_app.models import Variable

    plan = make_plan(team)
    job = make_job(plan)
    task = make_task(job, connector, scope="result")
    give_credential(task)
    variable = Variable(team=team, plan=plan, key="aws.region")
    variable.set_value("eu-west-1")
    variable.save()
    return plan, job, task, variable


def generated(task):
    """The task's variables as served, by key (secrets in clear)."""
    from tasks_app.models import TaskConfig
    from tasks_app.services.variables import task_variables

    task = TaskConfig.objects.select_related("credential").get(pk=task.pk)
    return {v.key: v.value for v in task_variables(task, secrets=True)}


def api_token(plan, job=None, *, expires_at=None) -> str:
    """A new API token of the plan (or job), created by a member; its plain text."""
    from tasks_app.identity.actor import Actor
    from tasks_app.services.tokens import token_create

    user = plan.team.members.first()
    _, raw = token_create(
        plan=plan,
        job=job,
        name="ci",
        expires_at=expires_at,
        actor=Actor(user=user, address="192.0.2.9"),
    )
    return raw


def token_client(raw=None):
    """An API client that sends the token, if any, as a bearer token."""
    from rest_framework.test import APIClient

    client = APIClient()
    if raw:
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return client


def make_destructibles() -> dict:
    """One of everything a page can delete, revoke or withdraw, in team Platform (ada admin,
    vic viewer; root a portal administrator, erin another one): by name, for the tests that
    check every such action asks once first."""
    from tasks_app.identity.actor import Actor
    from tasks_app.models import ApiToken, TrustedIssuer, TrustRule, Variable
    from tasks_app.services.people import invitation_create

    root = make_user("root", is_superuser=True, is_staff=True)
    erin = make_user("erin", is_superuser=True)
    team = make_team("Platform", ada=Role.ADMIN, vic=Role.VIEWER)
    Team.objects.filter(pk=team.pk).update(host_credentials_allowed=True)
    ada = team.members.get(username="ada")
    connector = make_connector(team)
    unused = make_connector(team, name="spare-ecr")
    plan = make_plan(team)
    job = make_job(plan)
    task = make_task(job, connector)
    variable = Variable(team=team, plan=plan, key="aws.region")
    variable.set_value("eu-west-1")
    variable.save()
    api_token(plan, job)
    issuer = TrustedIssuer.objects.create(issuer="https://ci.example.com", name="Example CI")
    rule = TrustRule.objects.create(
        team=team, plan=plan, issuer=issuer, audience="a", conditions={"sub": "x"}, name="deploy"
    )
    invitation = invitation_create(
        team=team, email="new@example.com", role=Role.VIEWER, actor=Actor(user=ada)
    )
    return {
        "root": root,
        "erin": erin,
        "ada": ada,
        "team": team,
        "membership": Membership.objects.get(team=team, user__username="vic"),
        "connector": unused,
        "plan": plan,
        "job": job,
        "task": task,
        "variable": variable,
        "token": ApiToken.objects.get(),
        "issuer": issuer,
        "rule": rule,
        "invitation": invitation,
    }
